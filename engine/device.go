package engine

import (
	"fmt"
	"strings"
	"sync"

	"vkgan/shaders"
	"vkgan/vk"
)

// Class is the kind of device a kernel variant is tuned for.
type Class int

const (
	// ClassCPU: a CPU Vulkan driver (lavapipe). Loads are per-lane scalar
	// loops, so kernels favour few wide loads per multiply-add, subgroup
	// broadcasts and no shared memory.
	ClassCPU Class = iota
	// ClassGPU: a real GPU. Same-address loads are cheap broadcasts and
	// occupancy matters more than per-lane load counts.
	ClassGPU
)

func (c Class) String() string {
	if c == ClassCPU {
		return "cpu"
	}
	return "gpu"
}

// Device is a Vulkan device with vkgan's kernels. It owns the pipelines it
// builds and every tensor made from it.
type Device struct {
	vk    *vk.Device
	info  vk.DeviceInfo
	class Class
	mu    sync.Mutex // pipes: a window and a training loop may record at once
	pipes map[string]*vk.Pipeline
	tune  tuneState // GEMM tuning table and hooks (tune.go)
}

// Open opens the device chosen by opts (see vk.Options).
func Open(opts vk.Options) (*Device, error) {
	d, err := vk.Open(opts)
	if err != nil {
		return nil, err
	}
	info := d.Info()
	class := ClassGPU
	if info.Type == vk.CPU {
		class = ClassCPU
	}
	return &Device{vk: d, info: info, class: class, pipes: map[string]*vk.Pipeline{}}, nil
}

// Close releases everything made from the device and closes it.
func (d *Device) Close() error {
	if d == nil || d.vk == nil {
		return nil
	}
	err := d.vk.Close()
	d.vk = nil
	return err
}

// Info describes the underlying Vulkan device.
func (d *Device) Info() vk.DeviceInfo { return d.info }

// MemoryStats reports the device memory vkgan holds and what its tensors
// and buffers asked for, now and at the peak.
func (d *Device) MemoryStats() vk.MemoryStats { return d.vk.MemoryStats() }

// Class is the device class kernels are specialised for.
func (d *Device) Class() Class { return d.class }

// VK is the underlying device, for packages that record their own commands.
func (d *Device) VK() *vk.Device { return d.vk }

// ValidationMessages returns and clears validation-layer messages.
func (d *Device) ValidationMessages() []string {
	if d == nil || d.vk == nil {
		return nil
	}
	return d.vk.ValidationMessages()
}

// pipeline returns the (cached) pipeline for kernel k with the given
// specialization constants.
func (d *Device) pipeline(k *shaders.Desc, spec []uint32) (*vk.Pipeline, error) {
	var key strings.Builder
	key.WriteString(k.Name)
	for _, s := range spec {
		fmt.Fprintf(&key, ":%d", s)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pipes[key.String()]; ok {
		return p, nil
	}
	code, err := shaders.SPIRV(k.Name)
	if err != nil {
		return nil, err
	}
	var texel uint32
	for i, b := range k.Bindings {
		if b.Texel {
			texel |= 1 << uint(i)
		}
	}
	p, err := d.vk.NewPipeline(vk.PipelineDesc{Name: k.Name, SPIRV: code, Bindings: len(k.Bindings), PushSize: k.PushSize, Spec: spec, Texel: texel})
	if err != nil {
		return nil, err
	}
	d.pipes[key.String()] = p
	return p, nil
}
