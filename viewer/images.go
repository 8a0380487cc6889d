package viewer

import (
	"context"
	"errors"
	"fmt"
	"image"
	"runtime"

	"github.com/go-gl/glfw/v3.3/glfw"

	"vkgan/engine"
	"vkgan/vk"
)

// ImageOptions configure ShowImages.
type ImageOptions struct {
	Title         string
	Width, Height int    // window size (default 512 x 512)
	Device        string // vk.Options.Device
	OnMessage     func(string)
	// NoDisplayHint says what to do instead when there is no display.
	NoDisplayHint string
	// Work runs in its own goroutine on the window's device (use it: a
	// second Vulkan instance in the process would replace vulkan-go's
	// function pointers) and calls show with each new picture (vkgan toy
	// -view: the talk's frames as training draws them). The window presents
	// nothing until the first picture, so Work can build its pipelines
	// without the window's Vulkan calls beside them. Closing
	// the window cancels its context; ShowImages returns Work's error once
	// it has returned. The window stays open after Work ends, showing the
	// last picture, until it is closed.
	Work func(ctx context.Context, dev *engine.Device, show func(image.Image)) error
	// Context, when done, closes the window (Ctrl-C).
	Context context.Context
	// Frames, when positive, closes the window after that many frames once
	// Work has ended (for tests).
	Frames int
}

// ShowImages opens a window that shows the pictures Work produces: each is
// scaled (nearest neighbour, aspect kept) on the host, uploaded once into a
// device buffer and copied into the swapchain image every frame.
func ShowImages(opt ImageOptions) (err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if opt.Work == nil {
		return errors.New("viewer: nothing to show")
	}
	if err := initGLFW(""); err != nil {
		if errors.Is(err, ErrNoDisplay) {
			return &ExitError{Code: 2, Err: fmt.Errorf("%w: %s", ErrNoDisplay, opt.NoDisplayHint)}
		}
		return err
	}
	defer glfw.Terminate()
	w, h := opt.Width, opt.Height
	if w <= 0 || h <= 0 {
		w, h = 512, 512
	}
	glfw.WindowHint(glfw.ClientAPI, glfw.NoAPI)
	win, err := glfw.CreateWindow(w, h, opt.Title, nil, nil)
	if err != nil {
		return fmt.Errorf("viewer: glfw: %w", err)
	}
	defer win.Destroy()
	win.SetKeyCallback(func(win *glfw.Window, key glfw.Key, _ int, action glfw.Action, _ glfw.ModifierKey) {
		if action == glfw.Press && (key == glfw.KeyQ || key == glfw.KeyEscape) {
			win.SetShouldClose(true)
		}
	})
	dev, err := engine.Open(vk.Options{Device: opt.Device, OnMessage: opt.OnMessage,
		InstanceExtensions: win.GetRequiredInstanceExtensions(), Surface: surfaceFor(win)})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := dev.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	fw, fh := framebufferSize(win)
	if fw == 0 || fh == 0 {
		fw, fh = w, h
	}
	sc, err := dev.VK().NewSwapchain(fw, fh)
	if err != nil {
		return err
	}
	defer sc.Release()
	var pix *engine.Tensor
	defer func() { pix.Release() }()
	var shown image.Image
	upload := func() error {
		ew, eh := sc.Extent()
		if pix == nil || pix.Len() != ew*eh {
			if err := dev.VK().WaitIdle(); err != nil {
				return err
			}
			pix.Release()
			if pix, err = dev.NewTensor(ew * eh); err != nil {
				return err
			}
			if err := sc.SetSource(pix.Buffer()); err != nil {
				return err
			}
		}
		if shown == nil {
			return nil
		}
		scaled := Scale(shown, ew, eh)
		buf := make([]byte, 4*ew*eh)
		for i := 0; i < len(buf); i += 4 {
			buf[i], buf[i+1], buf[i+2], buf[i+3] = scaled.Pix[i+2], scaled.Pix[i+1], scaled.Pix[i], 0xff
		}
		return pix.Buffer().Write(0, buf)
	}
	if err := upload(); err != nil {
		return err
	}

	parent := opt.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	latest := make(chan image.Image, 1)
	show := func(img image.Image) {
		select { // keep only the newest picture
		case <-latest:
		default:
		}
		latest <- img
	}
	done := make(chan error, 1)
	go func() { done <- opt.Work(ctx, dev, show) }()
	working, frames := true, 0
	var workErr error
	for !win.ShouldClose() && parent.Err() == nil {
		glfw.WaitEventsTimeout(1.0 / 60) // no vsync on some servers: don't spin
		if working {
			select {
			case workErr = <-done:
				working = false
				if workErr != nil {
					return workErr
				}
			default:
			}
		}
		fw, fh := framebufferSize(win)
		if fw == 0 || fh == 0 {
			continue // minimised
		}
		dirty := false
		if ew, eh := sc.Extent(); ew != fw || eh != fh {
			if err := sc.Recreate(fw, fh); err != nil {
				return err
			}
			dirty = true
		}
		select {
		case shown = <-latest:
			dirty = true
		default:
		}
		if shown == nil {
			continue // Work is still setting up
		}
		if dirty {
			if err := upload(); err != nil {
				return err
			}
		}
		if err := sc.Present(); err != nil && !errors.Is(err, vk.ErrOutOfDate) {
			return err
		}
		frames++
		if !working && opt.Frames > 0 && frames >= opt.Frames {
			break
		}
	}
	cancel()
	if working {
		workErr = <-done
	}
	return workErr
}
