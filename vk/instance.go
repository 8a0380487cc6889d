package vk

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

const validationLayer = "VK_LAYER_KHRONOS_validation"

// ValidationFromEnv reports whether VKGAN_VALIDATE asks for the Khronos
// validation layer.
func ValidationFromEnv() bool {
	v := os.Getenv("VKGAN_VALIDATE")
	return v != "" && v != "0" && v != "false"
}

// instance owns a VkInstance and, with validation on, its debug callback.
type instance struct {
	handle   vulkan.Instance
	callback vulkan.DebugReportCallback
	id       unsafe.Pointer // C memory holding this instance's key in live

	mu        sync.Mutex
	onMessage func(string)
	messages  []string
}

// newInstance creates a Vulkan 1.1 instance. With validate, it enables the
// Khronos validation layer and reports every warning and error it raises to
// onMessage (or stderr when nil); the messages are also kept for Messages.
// extra names more instance extensions to enable (a window system's).
//
// Reference: https://registry.khronos.org/vulkan/specs/1.3/html/vkspec.html#vkCreateInstance
func newInstance(validate bool, onMessage func(string), extra ...string) (*instance, error) {
	if err := load(); err != nil {
		return nil, err
	}
	inst := &instance{onMessage: onMessage}
	var layers, exts []string
	if validate {
		if !hasInstanceLayer(validationLayer) {
			return nil, fmt.Errorf("vk: VKGAN_VALIDATE is set but %s is not installed (Debian: vulkan-validationlayers)", validationLayer)
		}
		layers = append(layers, validationLayer)
		exts = append(exts, "VK_EXT_debug_report")
	}
	for _, e := range extra {
		if !hasInstanceExtension(e) {
			return nil, fmt.Errorf("vk: instance extension %s is not available: %w", e, ErrNoDevice)
		}
		exts = append(exts, e)
	}
	// The portability enumeration extension lets MoltenVK devices show up.
	var flags vulkan.InstanceCreateFlags
	if hasInstanceExtension("VK_KHR_portability_enumeration") {
		exts = append(exts, "VK_KHR_portability_enumeration")
		flags |= 0x00000001 // VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR
	}
	h, res := createInstance(flags, layers, exts)
	if err := check("vkCreateInstance", res); err != nil {
		return nil, err
	}
	inst.handle = h
	if err := vulkan.InitInstance(h); err != nil {
		vulkan.DestroyInstance(h, nil)
		return nil, fmt.Errorf("vk: vkInitInstance: %w", err)
	}
	if validate {
		inst.id = register(inst)
		cbInfo := vulkan.DebugReportCallbackCreateInfo{
			SType:       vulkan.StructureTypeDebugReportCallbackCreateInfo,
			Flags:       vulkan.DebugReportFlags(vulkan.DebugReportErrorBit | vulkan.DebugReportWarningBit | vulkan.DebugReportPerformanceWarningBit),
			PfnCallback: routeReport,
			PUserData:   inst.id,
		}
		var cb vulkan.DebugReportCallback
		if err := check("vkCreateDebugReportCallbackEXT", vulkan.CreateDebugReportCallback(h, &cbInfo, nil, &cb)); err != nil {
			unregister(inst.id)
			vulkan.DestroyInstance(h, nil)
			return nil, err
		}
		inst.callback = cb
	}
	return inst, nil
}

// vulkan-go keeps a single Go callback for the whole process (the first
// one registered), so every instance registers routeReport and tells it
// apart by the user-data pointer: C memory holding a key into live.
var (
	liveMu  sync.Mutex
	live    = map[uint64]*instance{}
	liveKey uint64
)

func register(in *instance) unsafe.Pointer {
	liveMu.Lock()
	defer liveMu.Unlock()
	liveKey++
	live[liveKey] = in
	p := cBytes(make([]byte, 8))
	*(*uint64)(p) = liveKey
	return p
}

func unregister(id unsafe.Pointer) {
	if id == nil {
		return
	}
	liveMu.Lock()
	delete(live, *(*uint64)(id))
	liveMu.Unlock()
	freeC(id)
}

func routeReport(flags vulkan.DebugReportFlags, objType vulkan.DebugReportObjectType, obj uint64, loc uint, code int32, prefix, msg string, user unsafe.Pointer) vulkan.Bool32 {
	var in *instance
	if user != nil {
		liveMu.Lock()
		in = live[*(*uint64)(user)]
		liveMu.Unlock()
	}
	if in == nil {
		fmt.Fprintf(os.Stderr, "vulkan validation [%s]: %s\n", prefix, msg)
		return vulkan.False
	}
	return in.report(flags, objType, obj, loc, code, prefix, msg, user)
}

func (in *instance) report(flags vulkan.DebugReportFlags, _ vulkan.DebugReportObjectType, _ uint64, _ uint, _ int32, prefix, msg string, _ unsafe.Pointer) vulkan.Bool32 {
	line := fmt.Sprintf("vulkan validation [%s]: %s", prefix, msg)
	in.mu.Lock()
	in.messages = append(in.messages, line)
	fn := in.onMessage
	in.mu.Unlock()
	if fn != nil {
		fn(line)
	} else {
		fmt.Fprintln(os.Stderr, line)
	}
	return vulkan.False
}

func (in *instance) takeMessages() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	m := in.messages
	in.messages = nil
	return m
}

func (in *instance) release() {
	if in == nil || in.handle == nil {
		return
	}
	if in.callback != nil {
		vulkan.DestroyDebugReportCallback(in.handle, in.callback, nil)
	}
	vulkan.DestroyInstance(in.handle, nil)
	unregister(in.id)
	in.id = nil
	in.handle = nil
}

// cString reads a fixed-size NUL-terminated C char array.
func cString(b []byte) string {
	s := string(b)
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return s
}
