package vk

/*
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

// Every Vulkan call whose arguments hold an array goes through C: vulkan-go
// marshals arrays into C memory that a finalizer frees once the local it
// is set on is unreachable, which is as soon as the marshalling returns. A
// collection during the call then frees an array the loader is still
// writing, and the next malloc anywhere in the process aborts on the
// corrupted heap (TestArraysSurviveCollections). These helpers keep every
// array on the C stack or in memory they free themselves.

static PFN_vkVoidFunction vkg_dev_fn(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, VkDevice dev, const char *name) {
	PFN_vkGetDeviceProcAddr gdpa = (PFN_vkGetDeviceProcAddr)gipa(inst, "vkGetDeviceProcAddr");
	return gdpa == NULL ? NULL : gdpa(dev, name);
}

// vkg_instance_has reports whether the loader offers the instance layer
// (layer != 0) or instance extension called name.
static int vkg_instance_has(PFN_vkGetInstanceProcAddr gipa, int layer, const char *name) {
	uint32_t n = 0;
	int found = 0;
	if (layer) {
		PFN_vkEnumerateInstanceLayerProperties f =
			(PFN_vkEnumerateInstanceLayerProperties)gipa(NULL, "vkEnumerateInstanceLayerProperties");
		if (f == NULL || f(&n, NULL) != VK_SUCCESS || n == 0) return 0;
		VkLayerProperties *p = calloc(n, sizeof *p);
		if (p == NULL) return 0;
		VkResult r = f(&n, p);
		for (uint32_t i = 0; (r == VK_SUCCESS || r == VK_INCOMPLETE) && i < n; i++)
			if (strncmp(p[i].layerName, name, VK_MAX_EXTENSION_NAME_SIZE) == 0) found = 1;
		free(p);
		return found;
	}
	PFN_vkEnumerateInstanceExtensionProperties f =
		(PFN_vkEnumerateInstanceExtensionProperties)gipa(NULL, "vkEnumerateInstanceExtensionProperties");
	if (f == NULL || f(NULL, &n, NULL) != VK_SUCCESS || n == 0) return 0;
	VkExtensionProperties *p = calloc(n, sizeof *p);
	if (p == NULL) return 0;
	VkResult r = f(NULL, &n, p);
	for (uint32_t i = 0; (r == VK_SUCCESS || r == VK_INCOMPLETE) && i < n; i++)
		if (strncmp(p[i].extensionName, name, VK_MAX_EXTENSION_NAME_SIZE) == 0) found = 1;
	free(p);
	return found;
}

// vkg_create_instance creates a Vulkan 1.1 instance named vkgan.
static VkResult vkg_create_instance(PFN_vkGetInstanceProcAddr gipa, VkInstanceCreateFlags flags,
		uint32_t nlayers, const char *const *layers, uint32_t nexts, const char *const *exts, VkInstance *out) {
	PFN_vkCreateInstance f = (PFN_vkCreateInstance)gipa(NULL, "vkCreateInstance");
	if (f == NULL) return VK_ERROR_INITIALIZATION_FAILED;
	VkApplicationInfo app;
	memset(&app, 0, sizeof app);
	app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
	app.pApplicationName = "vkgan";
	app.applicationVersion = VK_MAKE_VERSION(0, 1, 0);
	app.pEngineName = "vkgan";
	app.engineVersion = VK_MAKE_VERSION(0, 1, 0);
	app.apiVersion = VK_MAKE_VERSION(1, 1, 0);
	VkInstanceCreateInfo ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
	ci.flags = flags;
	ci.pApplicationInfo = &app;
	ci.enabledLayerCount = nlayers;
	ci.ppEnabledLayerNames = layers;
	ci.enabledExtensionCount = nexts;
	ci.ppEnabledExtensionNames = exts;
	return f(&ci, NULL, out);
}

// vkg_queue_families writes the queue flags of pd's first max queue
// families into flags and returns how many families pd has.
static uint32_t vkg_queue_families(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, VkPhysicalDevice pd, uint32_t max, VkQueueFlags *flags) {
	PFN_vkGetPhysicalDeviceQueueFamilyProperties f =
		(PFN_vkGetPhysicalDeviceQueueFamilyProperties)gipa(inst, "vkGetPhysicalDeviceQueueFamilyProperties");
	uint32_t n = 0;
	if (f == NULL) return 0;
	f(pd, &n, NULL);
	if (n == 0) return 0;
	VkQueueFamilyProperties *p = calloc(n, sizeof *p);
	if (p == NULL) return 0;
	f(pd, &n, p);
	for (uint32_t i = 0; i < n && i < max; i++) flags[i] = p[i].queueFlags;
	free(p);
	return n;
}

// vkg_create_device creates a device with one queue of family, the 64-bit
// integer feature when int64 is set and the swapchain extension when
// swapchain is set.
static VkResult vkg_create_device(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, VkPhysicalDevice pd, uint32_t family,
		int int64, int swapchain, VkDevice *out) {
	PFN_vkCreateDevice f = (PFN_vkCreateDevice)gipa(inst, "vkCreateDevice");
	if (f == NULL) return VK_ERROR_INITIALIZATION_FAILED;
	float priority = 1.0f;
	VkDeviceQueueCreateInfo q;
	memset(&q, 0, sizeof q);
	q.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
	q.queueFamilyIndex = family;
	q.queueCount = 1;
	q.pQueuePriorities = &priority;
	VkPhysicalDeviceFeatures features;
	memset(&features, 0, sizeof features);
	features.shaderInt64 = int64 ? VK_TRUE : VK_FALSE;
	const char *ext = "VK_KHR_swapchain";
	VkDeviceCreateInfo ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
	ci.queueCreateInfoCount = 1;
	ci.pQueueCreateInfos = &q;
	ci.pEnabledFeatures = &features;
	ci.enabledExtensionCount = swapchain ? 1 : 0;
	ci.ppEnabledExtensionNames = swapchain ? &ext : NULL;
	return f(pd, &ci, NULL, out);
}

// vkg_create_layouts creates the descriptor set layout of n single
// bindings, uniform texel buffers where texel has their bit and storage
// buffers elsewhere, and a pipeline layout of that set and push bytes of
// push constants. *which is 0 when the set layout's create fails, else 1.
static VkResult vkg_create_layouts(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, VkDevice dev, uint32_t n, uint32_t texel, uint32_t push,
		VkDescriptorSetLayout *set, VkPipelineLayout *layout, int *which) {
	*which = 0;
	PFN_vkCreateDescriptorSetLayout fs = (PFN_vkCreateDescriptorSetLayout)vkg_dev_fn(gipa, inst, dev, "vkCreateDescriptorSetLayout");
	PFN_vkCreatePipelineLayout fl = (PFN_vkCreatePipelineLayout)vkg_dev_fn(gipa, inst, dev, "vkCreatePipelineLayout");
	PFN_vkDestroyDescriptorSetLayout fd = (PFN_vkDestroyDescriptorSetLayout)vkg_dev_fn(gipa, inst, dev, "vkDestroyDescriptorSetLayout");
	if (fs == NULL || fl == NULL || fd == NULL || n > 32) return VK_ERROR_INITIALIZATION_FAILED;
	VkDescriptorSetLayoutBinding binds[32];
	memset(binds, 0, sizeof binds);
	for (uint32_t i = 0; i < n; i++) {
		binds[i].binding = i;
		binds[i].descriptorType = (texel >> i) & 1 ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
		binds[i].descriptorCount = 1;
		binds[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
	}
	VkDescriptorSetLayoutCreateInfo si;
	memset(&si, 0, sizeof si);
	si.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO;
	si.bindingCount = n;
	si.pBindings = n > 0 ? binds : NULL;
	VkResult r = fs(dev, &si, NULL, set);
	if (r != VK_SUCCESS) return r;
	*which = 1;
	VkPushConstantRange pr;
	memset(&pr, 0, sizeof pr);
	pr.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
	pr.size = push;
	VkPipelineLayoutCreateInfo li;
	memset(&li, 0, sizeof li);
	li.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO;
	li.setLayoutCount = 1;
	li.pSetLayouts = set;
	li.pushConstantRangeCount = push > 0 ? 1 : 0;
	li.pPushConstantRanges = push > 0 ? &pr : NULL;
	r = fl(dev, &li, NULL, layout);
	if (r != VK_SUCCESS) {
		fd(dev, *set, NULL);
		*set = VK_NULL_HANDLE;
	}
	return r;
}

// vkg_create_descriptor_pool creates a pool of sets descriptor sets with
// per descriptors of each kind a set can bind (storage and texel buffers)
// for every set.
static VkResult vkg_create_descriptor_pool(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, VkDevice dev, uint32_t sets, uint32_t per,
		VkDescriptorPool *out) {
	PFN_vkCreateDescriptorPool f = (PFN_vkCreateDescriptorPool)vkg_dev_fn(gipa, inst, dev, "vkCreateDescriptorPool");
	if (f == NULL) return VK_ERROR_INITIALIZATION_FAILED;
	VkDescriptorPoolSize sizes[2];
	sizes[0].type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
	sizes[0].descriptorCount = sets * per;
	sizes[1].type = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
	sizes[1].descriptorCount = sets * per;
	VkDescriptorPoolCreateInfo ci;
	memset(&ci, 0, sizeof ci);
	ci.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO;
	ci.maxSets = sets;
	ci.poolSizeCount = 2;
	ci.pPoolSizes = sizes;
	return f(dev, &ci, NULL, out);
}

// vkg_has_surface_format reports whether surface offers format in
// colorSpace to pd; *res is the query's result.
static int vkg_has_surface_format(PFN_vkGetInstanceProcAddr gipa, VkInstance inst, VkPhysicalDevice pd, VkSurfaceKHR surface,
		VkFormat format, VkColorSpaceKHR colorSpace, VkResult *res) {
	PFN_vkGetPhysicalDeviceSurfaceFormatsKHR f =
		(PFN_vkGetPhysicalDeviceSurfaceFormatsKHR)gipa(inst, "vkGetPhysicalDeviceSurfaceFormatsKHR");
	uint32_t n = 0;
	int found = 0;
	*res = VK_ERROR_EXTENSION_NOT_PRESENT;
	if (f == NULL) return 0;
	*res = f(pd, surface, &n, NULL);
	if (*res != VK_SUCCESS || n == 0) return 0;
	VkSurfaceFormatKHR *p = calloc(n, sizeof *p);
	if (p == NULL) {
		*res = VK_ERROR_OUT_OF_HOST_MEMORY;
		return 0;
	}
	*res = f(pd, surface, &n, p);
	if (*res == VK_INCOMPLETE) *res = VK_SUCCESS;
	for (uint32_t i = 0; *res == VK_SUCCESS && i < n; i++)
		if (p[i].format == format && p[i].colorSpace == colorSpace) found = 1;
	free(p);
	return found;
}
*/
import "C"

import (
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

// gipa is the loader's vkGetInstanceProcAddr (load must have succeeded).
func gipa() C.PFN_vkGetInstanceProcAddr {
	return C.PFN_vkGetInstanceProcAddr(procAddr())
}

func instanceHas(layer bool, name string) bool {
	if load() != nil {
		return false
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	l := C.int(0)
	if layer {
		l = 1
	}
	return C.vkg_instance_has(gipa(), l, cs) != 0
}

func hasInstanceLayer(name string) bool     { return instanceHas(true, name) }
func hasInstanceExtension(name string) bool { return instanceHas(false, name) }

// cStrings copies names into a C array of C strings; free releases them.
func cStrings(names []string) (arr **C.char, free func()) {
	if len(names) == 0 {
		return nil, func() {}
	}
	ptrs := (*[1 << 20]*C.char)(C.calloc(C.size_t(len(names)), C.size_t(unsafe.Sizeof((*C.char)(nil)))))[:len(names):len(names)]
	for i, n := range names {
		ptrs[i] = C.CString(n)
	}
	return &ptrs[0], func() {
		for _, p := range ptrs {
			C.free(unsafe.Pointer(p))
		}
		C.free(unsafe.Pointer(&ptrs[0]))
	}
}

func createInstance(flags vulkan.InstanceCreateFlags, layers, exts []string) (vulkan.Instance, vulkan.Result) {
	cl, freeLayers := cStrings(layers)
	defer freeLayers()
	ce, freeExts := cStrings(exts)
	defer freeExts()
	var h C.VkInstance
	r := C.vkg_create_instance(gipa(), C.VkInstanceCreateFlags(flags), C.uint32_t(len(layers)), cl, C.uint32_t(len(exts)), ce, &h)
	return vulkan.Instance(unsafe.Pointer(h)), vulkan.Result(r)
}

// maxQueueFamilies bounds the families queueFamilies reports; devices
// have a handful.
const maxQueueFamilies = 64

// queueFamilies returns the queue flags of each of pd's queue families.
func queueFamilies(inst vulkan.Instance, pd vulkan.PhysicalDevice) []vulkan.QueueFlags {
	var flags [maxQueueFamilies]C.VkQueueFlags
	n := C.vkg_queue_families(gipa(), C.VkInstance(unsafe.Pointer(inst)), C.VkPhysicalDevice(unsafe.Pointer(pd)), maxQueueFamilies, &flags[0])
	out := make([]vulkan.QueueFlags, min(int(n), maxQueueFamilies))
	for i := range out {
		out[i] = vulkan.QueueFlags(flags[i])
	}
	return out
}

func createDevice(inst vulkan.Instance, pd vulkan.PhysicalDevice, family uint32, int64, swapchain bool) (vulkan.Device, vulkan.Result) {
	var dev C.VkDevice
	r := C.vkg_create_device(gipa(), C.VkInstance(unsafe.Pointer(inst)), C.VkPhysicalDevice(unsafe.Pointer(pd)), C.uint32_t(family),
		cBool(int64), cBool(swapchain), &dev)
	return vulkan.Device(unsafe.Pointer(dev)), vulkan.Result(r)
}

// createLayouts creates a pipeline's descriptor set layout (bindings
// single buffers, texel buffers where texel has their bit) and its
// pipeline layout with push bytes of push constants; an error names the
// call that failed.
func createLayouts(inst vulkan.Instance, dev vulkan.Device, bindings int, texel uint32, push int) (vulkan.DescriptorSetLayout, vulkan.PipelineLayout, error) {
	var set C.VkDescriptorSetLayout
	var layout C.VkPipelineLayout
	var which C.int
	r := C.vkg_create_layouts(gipa(), C.VkInstance(unsafe.Pointer(inst)), C.VkDevice(unsafe.Pointer(dev)), C.uint32_t(bindings), C.uint32_t(texel),
		C.uint32_t(push), &set, &layout, &which)
	call := "vkCreateDescriptorSetLayout"
	if which == 1 {
		call = "vkCreatePipelineLayout"
	}
	if err := check(call, vulkan.Result(r)); err != nil {
		return nil, nil, err
	}
	return vulkan.DescriptorSetLayout(unsafe.Pointer(set)), vulkan.PipelineLayout(unsafe.Pointer(layout)), nil
}

// createDescriptorPool creates a pool of sets descriptor sets, each
// binding up to per storage or texel buffers.
func createDescriptorPool(inst vulkan.Instance, dev vulkan.Device, sets, per int) (vulkan.DescriptorPool, vulkan.Result) {
	var pool C.VkDescriptorPool
	r := C.vkg_create_descriptor_pool(gipa(), C.VkInstance(unsafe.Pointer(inst)), C.VkDevice(unsafe.Pointer(dev)), C.uint32_t(sets), C.uint32_t(per), &pool)
	return vulkan.DescriptorPool(unsafe.Pointer(pool)), vulkan.Result(r)
}

// hasSurfaceFormat reports whether surface offers format in colorSpace.
func hasSurfaceFormat(inst vulkan.Instance, pd vulkan.PhysicalDevice, surface vulkan.Surface, format vulkan.Format, colorSpace vulkan.ColorSpace) (bool, vulkan.Result) {
	var res C.VkResult
	ok := C.vkg_has_surface_format(gipa(), C.VkInstance(unsafe.Pointer(inst)), C.VkPhysicalDevice(unsafe.Pointer(pd)),
		C.VkSurfaceKHR(unsafe.Pointer(surface)), C.VkFormat(format), C.VkColorSpaceKHR(colorSpace), &res)
	return ok != 0, vulkan.Result(res)
}

func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
