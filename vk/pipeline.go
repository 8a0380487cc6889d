package vk

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"runtime"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

// PipelineDesc describes a compute kernel's interface.
type PipelineDesc struct {
	Name     string   // for error messages
	SPIRV    []byte   // the module; entry point "main"
	Bindings int      // storage buffers at set 0, bindings 0..Bindings-1
	PushSize int      // bytes of push constants
	Spec     []uint32 // specialization constants with ids 0..len-1, 32 bits each
	// Texel marks (bit i) the bindings read as uniform texel buffers of
	// RGBA32F texels (GLSL textureBuffer) instead of storage buffers: on
	// CPU drivers a texel fetch is a vector gather, where a storage-buffer
	// load is a per-lane scalar loop.
	Texel uint32
}

// Pipeline is a compute pipeline with its layouts.
type Pipeline struct {
	d        *Device
	name     string
	bindings int
	texel    uint32
	push     int
	module   vulkan.ShaderModule
	setLay   vulkan.DescriptorSetLayout
	layout   vulkan.PipelineLayout
	pipe     vulkan.Pipeline
}

// NewPipeline compiles desc through the device's pipeline cache.
//
// Reference: https://registry.khronos.org/vulkan/specs/1.3/html/vkspec.html#pipelines-compute
func (d *Device) NewPipeline(desc PipelineDesc) (*Pipeline, error) {
	if d.closed {
		return nil, errClosed
	}
	if len(desc.SPIRV) == 0 || len(desc.SPIRV)%4 != 0 {
		return nil, fmt.Errorf("vk: pipeline %s: SPIR-V of %d bytes is not a whole number of words", desc.Name, len(desc.SPIRV))
	}
	if desc.PushSize > int(d.info.Limits.MaxPushConstants) {
		return nil, fmt.Errorf("vk: pipeline %s: %d bytes of push constants exceed the device's %d", desc.Name, desc.PushSize, d.info.Limits.MaxPushConstants)
	}
	if desc.Bindings < 0 || desc.Bindings > maxBindings {
		return nil, fmt.Errorf("vk: pipeline %s: %d buffer bindings, want 0..%d", desc.Name, desc.Bindings, maxBindings)
	}
	if desc.Texel>>uint(desc.Bindings) != 0 {
		return nil, fmt.Errorf("vk: pipeline %s: texel binding mask %#x outside its %d bindings", desc.Name, desc.Texel, desc.Bindings)
	}
	texels := bits.OnesCount32(desc.Texel)
	if lim := d.info.Limits; desc.Bindings-texels > int(lim.MaxStorageBuffers) || texels > int(lim.MaxSampledImages) {
		return nil, fmt.Errorf("vk: pipeline %s: %d storage buffers and %d texel buffers, the device allows %d and %d per shader",
			desc.Name, desc.Bindings-texels, texels, lim.MaxStorageBuffers, lim.MaxSampledImages)
	}
	p := &Pipeline{d: d, name: desc.Name, bindings: desc.Bindings, texel: desc.Texel, push: desc.PushSize}
	if err := p.build(desc); err != nil {
		p.destroy()
		return nil, fmt.Errorf("pipeline %s: %w", desc.Name, err)
	}
	d.track(p)
	return p, nil
}

func (p *Pipeline) build(desc PipelineDesc) error {
	dev := p.d.dev
	code := make([]uint32, len(desc.SPIRV)/4)
	for i := range code {
		code[i] = binary.LittleEndian.Uint32(desc.SPIRV[4*i:])
	}
	var mod vulkan.ShaderModule
	if err := check("vkCreateShaderModule", vulkan.CreateShaderModule(dev, &vulkan.ShaderModuleCreateInfo{
		SType:    vulkan.StructureTypeShaderModuleCreateInfo,
		CodeSize: uint(len(desc.SPIRV)),
		PCode:    code,
	}, nil, &mod)); err != nil {
		return err
	}
	runtime.KeepAlive(code) // vulkan-go hands the driver a pointer into it
	p.module = mod
	sl, pl, err := createLayouts(p.d.inst.handle, dev, desc.Bindings, desc.Texel, desc.PushSize)
	if err != nil {
		return err
	}
	p.setLay = sl
	p.layout = pl
	// Specialization data lives in C memory, and the create infos are
	// built in C (see vkg_create_compute_pipeline): vulkan-go's marshalling
	// can free them under the driver.
	var specData unsafe.Pointer
	if len(desc.Spec) > 0 {
		raw := make([]byte, 4*len(desc.Spec))
		for i, v := range desc.Spec {
			binary.LittleEndian.PutUint32(raw[4*i:], v)
		}
		specData = cBytes(raw)
	}
	defer freeC(specData)
	pipe, err := createComputePipeline(p.d.inst.handle, dev, p.d.cache, mod, pl, len(desc.Spec), specData)
	if err != nil {
		return err
	}
	p.pipe = pipe
	return nil
}

// Name is the kernel name given at creation.
func (p *Pipeline) Name() string { return p.name }

// Release destroys the pipeline; safe on nil and twice. It must not be
// called while a submitted command buffer may use it.
func (p *Pipeline) Release() {
	if p == nil || p.d == nil {
		return
	}
	p.d.untrack(p)
	p.destroy()
	*p = Pipeline{}
}

func (p *Pipeline) destroy() {
	dev := p.d.dev
	if p.pipe != nil {
		vulkan.DestroyPipeline(dev, p.pipe, nil)
	}
	if p.layout != nil {
		vulkan.DestroyPipelineLayout(dev, p.layout, nil)
	}
	if p.setLay != nil {
		vulkan.DestroyDescriptorSetLayout(dev, p.setLay, nil)
	}
	if p.module != nil {
		vulkan.DestroyShaderModule(dev, p.module, nil)
	}
}
