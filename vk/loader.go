package vk

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <vulkan/vulkan.h>
#include "barrier.h"

static PFN_vkGetInstanceProcAddr vkg_gipa;

// vkg_open loads the Vulkan loader by file name and finds its entry point.
static int vkg_open(const char *name) {
	void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) return 0;
	vkg_gipa = (PFN_vkGetInstanceProcAddr)dlsym(h, "vkGetInstanceProcAddr");
	return vkg_gipa != NULL;
}

static void *vkg_proc_addr(void) { return (void *)vkg_gipa; }

// vkg_props2 queries Vulkan 1.1 subgroup properties and, on 1.2 devices,
// the driver's name and version string: vulkan-go cannot chain structures
// into vkGetPhysicalDeviceProperties2.
static void vkg_props2(VkInstance inst, VkPhysicalDevice pd, uint32_t api, uint32_t *size, uint32_t *ops, uint32_t *stages,
		char *driverName, char *driverInfo) {
	PFN_vkGetPhysicalDeviceProperties2 f =
		(PFN_vkGetPhysicalDeviceProperties2)vkg_gipa(inst, "vkGetPhysicalDeviceProperties2");
	*size = 0; *ops = 0; *stages = 0; driverName[0] = 0; driverInfo[0] = 0;
	if (f == NULL) return;
	VkPhysicalDeviceDriverProperties drv;
	memset(&drv, 0, sizeof drv);
	drv.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
	VkPhysicalDeviceSubgroupProperties sg;
	memset(&sg, 0, sizeof sg);
	sg.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
	if (api >= VK_MAKE_VERSION(1, 2, 0)) sg.pNext = &drv;
	VkPhysicalDeviceProperties2 p2;
	memset(&p2, 0, sizeof p2);
	p2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
	p2.pNext = &sg;
	f(pd, &p2);
	*size = sg.subgroupSize; *ops = sg.supportedOperations; *stages = sg.supportedStages;
	memcpy(driverName, drv.driverName, VK_MAX_DRIVER_NAME_SIZE);
	memcpy(driverInfo, drv.driverInfo, VK_MAX_DRIVER_INFO_SIZE);
	driverName[VK_MAX_DRIVER_NAME_SIZE - 1] = 0; driverInfo[VK_MAX_DRIVER_INFO_SIZE - 1] = 0;
}

// vkg_create_compute_pipeline builds one compute pipeline with all create
// infos on the C stack. vulkan-go's CreateComputePipelines marshals them into
// C memory that a finalizer may free while the driver still reads it (the
// finalizer is set on a local that is unreachable as soon as the marshalling
// function returns), and a pipeline compile is long enough for a GC to run:
// that crashed inside the driver, rarely.
static VkResult vkg_create_compute_pipeline(VkInstance inst, VkDevice dev, VkPipelineCache cache,
		VkShaderModule module, VkPipelineLayout layout, uint32_t nspec, const void *spec, VkPipeline *out) {
	PFN_vkGetDeviceProcAddr gdpa = (PFN_vkGetDeviceProcAddr)vkg_gipa(inst, "vkGetDeviceProcAddr");
	if (gdpa == NULL) return VK_ERROR_INITIALIZATION_FAILED;
	PFN_vkCreateComputePipelines f = (PFN_vkCreateComputePipelines)gdpa(dev, "vkCreateComputePipelines");
	if (f == NULL) return VK_ERROR_INITIALIZATION_FAILED;
	VkSpecializationMapEntry entries[64];
	if (nspec > 64) return VK_ERROR_INITIALIZATION_FAILED;
	for (uint32_t i = 0; i < nspec; i++) {
		entries[i].constantID = i;
		entries[i].offset = 4 * i;
		entries[i].size = 4;
	}
	VkSpecializationInfo si;
	memset(&si, 0, sizeof si);
	si.mapEntryCount = nspec;
	si.pMapEntries = entries;
	si.dataSize = 4 * (size_t)nspec;
	si.pData = spec;
	VkComputePipelineCreateInfo ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
	ci.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
	ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
	ci.stage.module = module;
	ci.stage.pName = "main";
	ci.stage.pSpecializationInfo = nspec > 0 ? &si : NULL;
	ci.layout = layout;
	ci.basePipelineIndex = -1;
	return f(dev, cache, 1, &ci, NULL, out);
}

// The per-step path (submit, wait, reset) is called through these pointers
// rather than vulkan-go, whose struct marshalling allocates C memory on every
// call; a training run submits hundreds of thousands of times. The record-
// time calls that take arrays (descriptor writes, barriers, copies) come
// here too: vulkan-go marshals arrays into C memory freed by a finalizer
// that can run before the call returns (see vkg_create_compute_pipeline).
typedef struct {
	PFN_vkQueueSubmit submit;
	PFN_vkWaitForFences wait;
	PFN_vkResetFences reset;
	PFN_vkUpdateDescriptorSets update;
	PFN_vkCmdPipelineBarrier barrier;
	PFN_vkCmdCopyBuffer copy;
	PFN_vkAllocateDescriptorSets allocSet;
} vkg_hot;

static int vkg_hot_init(VkInstance inst, VkDevice dev, vkg_hot *h) {
	PFN_vkGetDeviceProcAddr gdpa = (PFN_vkGetDeviceProcAddr)vkg_gipa(inst, "vkGetDeviceProcAddr");
	if (gdpa == NULL) return 0;
	h->submit = (PFN_vkQueueSubmit)gdpa(dev, "vkQueueSubmit");
	h->wait = (PFN_vkWaitForFences)gdpa(dev, "vkWaitForFences");
	h->reset = (PFN_vkResetFences)gdpa(dev, "vkResetFences");
	h->update = (PFN_vkUpdateDescriptorSets)gdpa(dev, "vkUpdateDescriptorSets");
	h->barrier = (PFN_vkCmdPipelineBarrier)gdpa(dev, "vkCmdPipelineBarrier");
	h->copy = (PFN_vkCmdCopyBuffer)gdpa(dev, "vkCmdCopyBuffer");
	h->allocSet = (PFN_vkAllocateDescriptorSets)gdpa(dev, "vkAllocateDescriptorSets");
	return h->submit && h->wait && h->reset && h->update && h->barrier && h->copy && h->allocSet;
}

// vkg_alloc_set allocates one descriptor set of the layout from pool.
static VkResult vkg_alloc_set(vkg_hot *h, VkDevice dev, VkDescriptorPool pool, VkDescriptorSetLayout layout, VkDescriptorSet *out) {
	VkDescriptorSetAllocateInfo ai;
	memset(&ai, 0, sizeof ai);
	ai.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO;
	ai.descriptorPool = pool;
	ai.descriptorSetCount = 1;
	ai.pSetLayouts = &layout;
	return h->allocSet(dev, &ai, out);
}

#define VKG_MAX_BINDINGS 12

// vkg_bind_buffers points bindings 0..n-1 of set at storage-buffer ranges,
// or, where views[i] is not null, at that uniform texel buffer view.
static int vkg_bind_buffers(vkg_hot *h, VkDevice dev, VkDescriptorSet set, uint32_t n,
		const VkBuffer *bufs, const uint64_t *offs, const uint64_t *ranges, const VkBufferView *views) {
	if (n > VKG_MAX_BINDINGS) return 0;
	VkDescriptorBufferInfo infos[VKG_MAX_BINDINGS];
	VkWriteDescriptorSet writes[VKG_MAX_BINDINGS];
	memset(writes, 0, sizeof writes);
	for (uint32_t i = 0; i < n; i++) {
		writes[i].sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
		writes[i].dstSet = set;
		writes[i].dstBinding = i;
		writes[i].descriptorCount = 1;
		if (views[i] != VK_NULL_HANDLE) {
			writes[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
			writes[i].pTexelBufferView = &views[i];
			continue;
		}
		infos[i].buffer = bufs[i];
		infos[i].offset = offs[i];
		infos[i].range = ranges[i];
		writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
		writes[i].pBufferInfo = &infos[i];
	}
	if (n > 0) h->update(dev, n, writes, 0, NULL);
	return 1;
}

// vkg_copy_buffer records one buffer-to-buffer copy.
static void vkg_copy_buffer(vkg_hot *h, VkCommandBuffer cb, VkBuffer src, VkBuffer dst, uint64_t srcOff, uint64_t dstOff, uint64_t size) {
	VkBufferCopy c;
	c.srcOffset = srcOff;
	c.dstOffset = dstOff;
	c.size = size;
	h->copy(cb, src, dst, 1, &c);
}

// vkg_submit_wait submits one command buffer, waits for its fence and resets
// it. It returns the first failing call's result and which call it was.
static VkResult vkg_submit_wait(vkg_hot *h, VkDevice dev, VkQueue q, VkCommandBuffer cb, VkFence f, uint64_t timeout, int *which) {
	VkSubmitInfo si;
	memset(&si, 0, sizeof si);
	si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
	si.commandBufferCount = 1;
	si.pCommandBuffers = &cb;
	*which = 0;
	VkResult r = h->submit(q, 1, &si, f);
	if (r != VK_SUCCESS) return r;
	*which = 1;
	r = h->wait(dev, 1, &f, VK_TRUE, timeout);
	if (r != VK_SUCCESS) return r;
	*which = 2;
	return h->reset(dev, 1, &f);
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

var (
	loadOnce sync.Once
	loadErr  error
	loadedSo string
)

// load finds the Vulkan loader. It asks for the soname libvulkan.so.1, which
// the runtime package (libvulkan1) provides; vulkan-go's own default loader
// asks for libvulkan.so, which exists only where the -dev package is installed.
func load() error {
	loadOnce.Do(func() {
		for _, name := range []string{"libvulkan.so.1", "libvulkan.so"} {
			cs := C.CString(name)
			ok := C.vkg_open(cs) != 0
			C.free(unsafe.Pointer(cs))
			if ok {
				loadedSo = name
				break
			}
		}
		if loadedSo == "" {
			loadErr = fmt.Errorf("vk: cannot load the Vulkan loader (libvulkan.so.1): install libvulkan1 and a driver such as mesa-vulkan-drivers: %w", ErrNoDevice)
			return
		}
		vulkan.SetGetInstanceProcAddr(C.vkg_proc_addr())
		if err := vulkan.Init(); err != nil {
			loadErr = fmt.Errorf("vk: vkInit: %w", err)
		}
	})
	return loadErr
}

// procAddr is the loader's vkGetInstanceProcAddr (after load).
func procAddr() unsafe.Pointer { return C.vkg_proc_addr() }

type props2 struct {
	size, ops, stages      uint32
	driverName, driverInfo string
}

func queryProps2(inst vulkan.Instance, pd vulkan.PhysicalDevice, api uint32) props2 {
	var s, o, st C.uint32_t
	name := (*C.char)(C.calloc(C.VK_MAX_DRIVER_NAME_SIZE, 1))
	info := (*C.char)(C.calloc(C.VK_MAX_DRIVER_INFO_SIZE, 1))
	defer C.free(unsafe.Pointer(name))
	defer C.free(unsafe.Pointer(info))
	C.vkg_props2(C.VkInstance(unsafe.Pointer(inst)), C.VkPhysicalDevice(unsafe.Pointer(pd)), C.uint32_t(api), &s, &o, &st, name, info)
	return props2{uint32(s), uint32(o), uint32(st), C.GoString(name), C.GoString(info)}
}

// hotPath holds the C function pointers for submit-and-wait. It is
// allocated in C memory so cgo pointer rules never see it.
type hotPath struct {
	fns *C.vkg_hot
}

func newHotPath(inst vulkan.Instance, dev vulkan.Device) (*hotPath, error) {
	p := (*C.vkg_hot)(C.calloc(1, C.size_t(unsafe.Sizeof(C.vkg_hot{}))))
	if C.vkg_hot_init(C.VkInstance(unsafe.Pointer(inst)), C.VkDevice(unsafe.Pointer(dev)), p) == 0 {
		C.free(unsafe.Pointer(p))
		return nil, fmt.Errorf("vk: vkGetDeviceProcAddr: queue submit or command recording entry points missing")
	}
	return &hotPath{fns: p}, nil
}

func (h *hotPath) release() {
	if h != nil && h.fns != nil {
		C.free(unsafe.Pointer(h.fns))
		h.fns = nil
	}
}

var hotCalls = [...]string{"vkQueueSubmit", "vkWaitForFences", "vkResetFences"}

func (h *hotPath) submitWait(dev vulkan.Device, q vulkan.Queue, cb vulkan.CommandBuffer, f vulkan.Fence, timeoutNs uint64) error {
	var which C.int
	r := C.vkg_submit_wait(h.fns, C.VkDevice(unsafe.Pointer(dev)), C.VkQueue(unsafe.Pointer(q)),
		C.VkCommandBuffer(unsafe.Pointer(cb)), C.VkFence(unsafe.Pointer(f)), C.uint64_t(timeoutNs), &which)
	if r != C.VK_SUCCESS {
		return check(hotCalls[which], vulkan.Result(r))
	}
	return nil
}

// maxBindings is the most buffers one dispatch binds (vkg_bind_buffers
// and the descriptor pools are sized for it).
const maxBindings = C.VKG_MAX_BINDINGS

// bindBuffers points bindings 0..len(bufs)-1 of set at the buffers' ranges,
// or at views[i] where that is not nil (uniform texel buffers).
func (h *hotPath) bindBuffers(dev vulkan.Device, set vulkan.DescriptorSet, bufs []*Buffer, views []vulkan.BufferView) {
	n := len(bufs)
	if n == 0 {
		return
	}
	var handles [maxBindings]C.VkBuffer
	var vs [maxBindings]C.VkBufferView
	var offs, ranges [maxBindings]C.uint64_t
	for i, b := range bufs {
		handles[i] = C.VkBuffer(unsafe.Pointer(b.blk.buf))
		offs[i] = C.uint64_t(b.off)
		ranges[i] = C.uint64_t(b.padded)
		if views != nil {
			vs[i] = C.VkBufferView(unsafe.Pointer(views[i]))
		}
	}
	C.vkg_bind_buffers(h.fns, C.VkDevice(unsafe.Pointer(dev)), C.VkDescriptorSet(unsafe.Pointer(set)), C.uint32_t(n),
		&handles[0], &offs[0], &ranges[0], &vs[0])
}

// allocSet allocates one descriptor set of layout from pool.
func (h *hotPath) allocSet(dev vulkan.Device, pool vulkan.DescriptorPool, layout vulkan.DescriptorSetLayout) (vulkan.DescriptorSet, error) {
	var set C.VkDescriptorSet
	r := C.vkg_alloc_set(h.fns, C.VkDevice(unsafe.Pointer(dev)), C.VkDescriptorPool(unsafe.Pointer(pool)),
		C.VkDescriptorSetLayout(unsafe.Pointer(layout)), &set)
	if err := check("vkAllocateDescriptorSets", vulkan.Result(r)); err != nil {
		return nil, err
	}
	return vulkan.DescriptorSet(unsafe.Pointer(set)), nil
}

// memoryBarrier records one global memory barrier.
func (h *hotPath) memoryBarrier(cb vulkan.CommandBuffer, srcStages, dstStages vulkan.PipelineStageFlags, srcAccess, dstAccess vulkan.AccessFlags) {
	C.vkg_global_barrier(h.fns.barrier, C.VkCommandBuffer(unsafe.Pointer(cb)), C.VkPipelineStageFlags(srcStages), C.VkPipelineStageFlags(dstStages),
		C.VkAccessFlags(srcAccess), C.VkAccessFlags(dstAccess))
}

// copyBuffer records one buffer-to-buffer copy.
func (h *hotPath) copyBuffer(cb vulkan.CommandBuffer, src, dst vulkan.Buffer, srcOff, dstOff, size uint64) {
	C.vkg_copy_buffer(h.fns, C.VkCommandBuffer(unsafe.Pointer(cb)), C.VkBuffer(unsafe.Pointer(src)), C.VkBuffer(unsafe.Pointer(dst)),
		C.uint64_t(srcOff), C.uint64_t(dstOff), C.uint64_t(size))
}

// cBytes copies b into C memory; the caller frees it with freeC.
func cBytes(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return C.CBytes(b)
}

func freeC(p unsafe.Pointer) {
	if p != nil {
		C.free(p)
	}
}

// createComputePipeline calls vkg_create_compute_pipeline; spec is C memory
// holding 4*nspec bytes (or nil).
func createComputePipeline(inst vulkan.Instance, dev vulkan.Device, cache vulkan.PipelineCache, module vulkan.ShaderModule,
	layout vulkan.PipelineLayout, nspec int, spec unsafe.Pointer) (vulkan.Pipeline, error) {
	var out C.VkPipeline
	r := C.vkg_create_compute_pipeline(C.VkInstance(unsafe.Pointer(inst)), C.VkDevice(unsafe.Pointer(dev)),
		C.VkPipelineCache(unsafe.Pointer(cache)), C.VkShaderModule(unsafe.Pointer(module)), C.VkPipelineLayout(unsafe.Pointer(layout)),
		C.uint32_t(nspec), spec, &out)
	if err := check("vkCreateComputePipelines", vulkan.Result(r)); err != nil {
		return nil, err
	}
	return vulkan.Pipeline(unsafe.Pointer(out)), nil
}
