package viewer

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"strings"
	"unsafe"

	"github.com/go-gl/glfw/v3.3/glfw"
)

// noDisplay is the one-line error for a missing or unusable display.
func noDisplay(runDir, why string) error {
	if runDir == "" {
		runDir = "RUN_DIR"
	}
	return &ExitError{Code: 2, Err: fmt.Errorf("%w (%s): write samples to a file instead: vkgan sample -run %s -out FILE.png", ErrNoDisplay, why, runDir)}
}

// initGLFW initialises GLFW and reports a missing display as ErrNoDisplay.
// go-gl's glfw.Init returns nil even when the X11 connection fails (it only
// logs the platform error); the next call then panics with NotInitialized.
// So the log is captured around Init and a cheap call is tried under
// recover.
func initGLFW(runDir string) (err error) {
	if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
		return noDisplay(runDir, "DISPLAY and WAYLAND_DISPLAY are unset")
	}
	var logged bytes.Buffer
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(&logged)
	log.SetFlags(0)
	initErr := glfw.Init()
	log.SetOutput(prev)
	log.SetFlags(flags)
	why := strings.TrimSpace(logged.String())
	if initErr != nil {
		why = initErr.Error()
	}
	ok := initErr == nil && func() (ok bool) {
		defer func() {
			if recover() != nil {
				ok = false
			}
		}()
		glfw.GetMonitors()
		return true
	}()
	if !ok {
		if why == "" {
			why = "GLFW could not start"
		}
		return noDisplay(runDir, "glfw: "+strings.ReplaceAll(why, "\n", "; "))
	}
	if !glfw.VulkanSupported() {
		glfw.Terminate()
		return fmt.Errorf("viewer: GLFW finds no Vulkan loader (install libvulkan1)")
	}
	return nil
}

// surfaceFor returns the vk.Options.Surface callback for win.
func surfaceFor(win *glfw.Window) func(unsafe.Pointer) (uintptr, error) {
	return func(inst unsafe.Pointer) (uintptr, error) {
		// GLFW wants a pointer-kinded value holding the VkInstance handle.
		return win.CreateWindowSurface((*struct{})(inst), nil)
	}
}
