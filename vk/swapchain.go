package vk

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>
#include "barrier.h"

// The frame loop (acquire, submit, present, wait) runs through these
// pointers rather than vulkan-go, whose struct marshalling allocates C
// memory on every call that is only freed by finalizers, if at all; a
// viewer presents hundreds of frames a second for hours.
typedef struct {
	PFN_vkAcquireNextImageKHR acquire;
	PFN_vkQueueSubmit submit;
	PFN_vkQueuePresentKHR present;
	PFN_vkWaitForFences wait;
	PFN_vkResetFences reset;
	// Recording, once per swapchain build: vulkan-go marshals the barrier
	// and copy arrays into C memory that a finalizer can free mid-call.
	PFN_vkAllocateCommandBuffers allocCmd;
	PFN_vkFreeCommandBuffers freeCmd;
	PFN_vkBeginCommandBuffer begin;
	PFN_vkEndCommandBuffer end;
	PFN_vkCmdPipelineBarrier barrier;
	PFN_vkCmdCopyBufferToImage toImage;
	PFN_vkCmdCopyImageToBuffer toBuffer;
} vkg_wsi;

// vkg_wsi_init finds the entry points through the loader, which is already
// open (load), so dlopen only takes another reference to it.
static int vkg_wsi_init(const char *so, VkInstance inst, VkDevice dev, vkg_wsi *w) {
	void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) return 0;
	PFN_vkGetInstanceProcAddr gipa = (PFN_vkGetInstanceProcAddr)dlsym(h, "vkGetInstanceProcAddr");
	if (gipa == NULL) return 0;
	PFN_vkGetDeviceProcAddr gdpa = (PFN_vkGetDeviceProcAddr)gipa(inst, "vkGetDeviceProcAddr");
	if (gdpa == NULL) return 0;
	w->acquire = (PFN_vkAcquireNextImageKHR)gdpa(dev, "vkAcquireNextImageKHR");
	w->submit = (PFN_vkQueueSubmit)gdpa(dev, "vkQueueSubmit");
	w->present = (PFN_vkQueuePresentKHR)gdpa(dev, "vkQueuePresentKHR");
	w->wait = (PFN_vkWaitForFences)gdpa(dev, "vkWaitForFences");
	w->reset = (PFN_vkResetFences)gdpa(dev, "vkResetFences");
	w->allocCmd = (PFN_vkAllocateCommandBuffers)gdpa(dev, "vkAllocateCommandBuffers");
	w->freeCmd = (PFN_vkFreeCommandBuffers)gdpa(dev, "vkFreeCommandBuffers");
	w->begin = (PFN_vkBeginCommandBuffer)gdpa(dev, "vkBeginCommandBuffer");
	w->end = (PFN_vkEndCommandBuffer)gdpa(dev, "vkEndCommandBuffer");
	w->barrier = (PFN_vkCmdPipelineBarrier)gdpa(dev, "vkCmdPipelineBarrier");
	w->toImage = (PFN_vkCmdCopyBufferToImage)gdpa(dev, "vkCmdCopyBufferToImage");
	w->toBuffer = (PFN_vkCmdCopyImageToBuffer)gdpa(dev, "vkCmdCopyImageToBuffer");
	return w->acquire && w->submit && w->present && w->wait && w->reset && w->allocCmd && w->freeCmd &&
		w->begin && w->end && w->barrier && w->toImage && w->toBuffer;
}

static VkImageMemoryBarrier vkg_image_barrier(VkImage img, VkAccessFlags src, VkAccessFlags dst, VkImageLayout from, VkImageLayout to) {
	VkImageMemoryBarrier b;
	memset(&b, 0, sizeof b);
	b.sType = VK_STRUCTURE_TYPE_IMAGE_MEMORY_BARRIER;
	b.srcAccessMask = src;
	b.dstAccessMask = dst;
	b.oldLayout = from;
	b.newLayout = to;
	b.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
	b.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
	b.image = img;
	b.subresourceRange.aspectMask = VK_IMAGE_ASPECT_COLOR_BIT;
	b.subresourceRange.levelCount = 1;
	b.subresourceRange.layerCount = 1;
	return b;
}

// vkg_record_frame records cb: copy the source buffer (written by compute
// shaders in earlier submits) into img, with readBack copy img into the
// host buffer too, and leave img ready to present. The image's old
// contents are not needed (UNDEFINED discards them); presentation waits on
// the frame's semaphore, which makes the writes visible, so the last
// barrier only changes the layout.
static VkResult vkg_record_frame(vkg_wsi *w, VkCommandBuffer cb, VkImage img, VkBuffer src, VkDeviceSize srcOff,
		VkDeviceSize srcSize, uint32_t width, uint32_t height, int readBack, VkBuffer host, VkDeviceSize hostOff) {
	VkCommandBufferBeginInfo bi;
	memset(&bi, 0, sizeof bi);
	bi.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
	VkResult r = w->begin(cb, &bi);
	if (r != VK_SUCCESS) return r;
	VkBufferMemoryBarrier bb;
	memset(&bb, 0, sizeof bb);
	bb.sType = VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER;
	bb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
	bb.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
	bb.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
	bb.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
	bb.buffer = src;
	bb.offset = srcOff;
	bb.size = srcSize;
	VkImageMemoryBarrier ib = vkg_image_barrier(img, 0, VK_ACCESS_TRANSFER_WRITE_BIT,
		VK_IMAGE_LAYOUT_UNDEFINED, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL);
	w->barrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0,
		0, NULL, 1, &bb, 1, &ib);
	VkBufferImageCopy region;
	memset(&region, 0, sizeof region);
	region.bufferOffset = srcOff;
	region.imageSubresource.aspectMask = VK_IMAGE_ASPECT_COLOR_BIT;
	region.imageSubresource.layerCount = 1;
	region.imageExtent.width = width;
	region.imageExtent.height = height;
	region.imageExtent.depth = 1;
	w->toImage(cb, src, img, VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, 1, &region);
	VkImageLayout last = VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL;
	VkAccessFlags lastAccess = VK_ACCESS_TRANSFER_WRITE_BIT;
	if (readBack) {
		ib = vkg_image_barrier(img, VK_ACCESS_TRANSFER_WRITE_BIT, VK_ACCESS_TRANSFER_READ_BIT,
			VK_IMAGE_LAYOUT_TRANSFER_DST_OPTIMAL, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL);
		w->barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 0, NULL, 0, NULL, 1, &ib);
		region.bufferOffset = hostOff;
		w->toBuffer(cb, img, VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL, host, 1, &region);
		// The host reads the buffer after the frame's fence.
		vkg_global_barrier(w->barrier, cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT,
			VK_ACCESS_TRANSFER_WRITE_BIT, VK_ACCESS_HOST_READ_BIT);
		last = VK_IMAGE_LAYOUT_TRANSFER_SRC_OPTIMAL;
		lastAccess = VK_ACCESS_TRANSFER_READ_BIT;
	}
	ib = vkg_image_barrier(img, lastAccess, 0, last, VK_IMAGE_LAYOUT_PRESENT_SRC_KHR);
	w->barrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, 0, 0, NULL, 0, NULL, 1, &ib);
	return w->end(cb);
}

static void vkg_free_cmds(vkg_wsi *w, VkDevice dev, VkCommandPool pool, uint32_t n, VkCommandBuffer *cbs) {
	w->freeCmd(dev, pool, n, cbs);
}

// vkg_alloc_cmds allocates n primary command buffers from pool into out.
static VkResult vkg_alloc_cmds(vkg_wsi *w, VkDevice dev, VkCommandPool pool, uint32_t n, VkCommandBuffer *out) {
	VkCommandBufferAllocateInfo ai;
	memset(&ai, 0, sizeof ai);
	ai.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
	ai.commandPool = pool;
	ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
	ai.commandBufferCount = n;
	return w->allocCmd(dev, &ai, out);
}

// vkg_frame acquires an image, submits cbs[index] (which waits for the
// acquire and signals rendered[index]), presents the image and waits for
// the submit's fence. which says which call returned the result; a
// suboptimal acquire or present is reported through *stale and is not an
// error.
static VkResult vkg_frame(vkg_wsi *w, VkDevice dev, VkQueue q, VkSwapchainKHR sc, VkSemaphore acquired,
		const VkSemaphore *rendered, const VkCommandBuffer *cbs, VkFence f, uint64_t timeout,
		uint32_t *index, int *which, int *stale) {
	*which = 0; *stale = 0;
	VkResult r = w->acquire(dev, sc, timeout, acquired, VK_NULL_HANDLE, index);
	if (r == VK_SUBOPTIMAL_KHR) *stale = 1;
	else if (r != VK_SUCCESS) return r;
	uint32_t i = *index;
	VkPipelineStageFlags stage = VK_PIPELINE_STAGE_TRANSFER_BIT;
	VkSubmitInfo si;
	memset(&si, 0, sizeof si);
	si.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
	si.waitSemaphoreCount = 1;
	si.pWaitSemaphores = &acquired;
	si.pWaitDstStageMask = &stage;
	si.commandBufferCount = 1;
	si.pCommandBuffers = &cbs[i];
	si.signalSemaphoreCount = 1;
	si.pSignalSemaphores = &rendered[i];
	*which = 1;
	r = w->submit(q, 1, &si, f);
	if (r != VK_SUCCESS) return r;
	VkPresentInfoKHR pi;
	memset(&pi, 0, sizeof pi);
	pi.sType = VK_STRUCTURE_TYPE_PRESENT_INFO_KHR;
	pi.waitSemaphoreCount = 1;
	pi.pWaitSemaphores = &rendered[i];
	pi.swapchainCount = 1;
	pi.pSwapchains = &sc;
	pi.pImageIndices = &i;
	*which = 2;
	VkResult pr = w->present(q, &pi);
	// Wait whatever present said: the submit is in flight either way.
	*which = 3;
	r = w->wait(dev, 1, &f, VK_TRUE, timeout);
	if (r != VK_SUCCESS) return r;
	*which = 4;
	r = w->reset(dev, 1, &f);
	if (r != VK_SUCCESS) return r;
	*which = 2;
	if (pr == VK_SUBOPTIMAL_KHR) { *stale = 1; return VK_SUCCESS; }
	return pr;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

// ErrOutOfDate: the window changed and the swapchain must be recreated
// (Swapchain.Recreate) before the next frame.
var ErrOutOfDate = errors.New("vk: swapchain out of date")

// SwapchainFormat is the pixel format of swapchain images: 8-bit BGRA,
// not sRGB-encoded, so bytes written are the bytes shown. Pack a pixel as
// b | g<<8 | r<<16 | a<<24.
const SwapchainFormat = "B8G8R8A8_UNORM"

var frameCalls = [...]string{"vkAcquireNextImageKHR", "vkQueueSubmit", "vkQueuePresentKHR", "vkWaitForFences", "vkResetFences"}

// swapHandles holds a Swapchain's Vulkan handles with no Go pointers, so
// that &h.x can go to cgo (see handles).
type swapHandles struct {
	chain    vulkan.Swapchain
	acquired vulkan.Semaphore
	fence    vulkan.Fence
}

// Swapchain shows BGRA8 pixels from a device buffer in the window of the
// Device's surface. Each frame copies the whole source buffer into the
// acquired image and presents it (FIFO); one frame is in flight at a time.
// Its command buffers are recorded once per source and size and replayed,
// so a frame allocates nothing.
//
// Reference: https://registry.khronos.org/vulkan/specs/1.3/html/vkspec.html#_wsi_swapchain
type Swapchain struct {
	*swapHandles
	d      *Device
	wsi    *C.vkg_wsi
	images []vulkan.Image
	width  int
	height int

	// C arrays, one entry per image: the semaphore each frame's submit
	// signals, and the command buffers of plain and read-back frames.
	rendered *C.VkSemaphore
	show     *C.VkCommandBuffer
	shot     *C.VkCommandBuffer
	src      *Buffer
	host     *Buffer // read-back destination, with shot
}

// NewSwapchain creates a swapchain for the Device's surface (Options.Surface)
// of width x height pixels, or the surface's own size where it fixes one.
func (d *Device) NewSwapchain(width, height int) (*Swapchain, error) {
	if d.closed {
		return nil, errClosed
	}
	if d.surface == nil {
		return nil, errors.New("vk: swapchain: the device was opened without a surface (Options.Surface)")
	}
	s := &Swapchain{swapHandles: &swapHandles{}, d: d}
	s.wsi = (*C.vkg_wsi)(C.calloc(1, C.size_t(unsafe.Sizeof(C.vkg_wsi{}))))
	so := C.CString(loadedSo)
	ok := C.vkg_wsi_init(so, C.VkInstance(unsafe.Pointer(d.inst.handle)), C.VkDevice(unsafe.Pointer(d.dev)), s.wsi) != 0
	C.free(unsafe.Pointer(so))
	if !ok {
		s.Release()
		return nil, errors.New("vk: vkGetDeviceProcAddr: swapchain entry points missing")
	}
	var sem vulkan.Semaphore
	if err := check("vkCreateSemaphore", vulkan.CreateSemaphore(d.dev, &vulkan.SemaphoreCreateInfo{SType: vulkan.StructureTypeSemaphoreCreateInfo}, nil, &sem)); err != nil {
		s.Release()
		return nil, err
	}
	s.acquired = sem
	var f vulkan.Fence
	if err := check("vkCreateFence", vulkan.CreateFence(d.dev, &vulkan.FenceCreateInfo{SType: vulkan.StructureTypeFenceCreateInfo}, nil, &f)); err != nil {
		s.Release()
		return nil, err
	}
	s.fence = f
	if err := s.create(width, height); err != nil {
		s.Release()
		return nil, err
	}
	d.track(s)
	return s, nil
}

// Extent is the size of the swapchain images.
func (s *Swapchain) Extent() (width, height int) { return s.width, s.height }

// Recreate rebuilds the swapchain at a new size (after a window resize).
// The source must be set again (SetSource) before the next Present.
func (s *Swapchain) Recreate(width, height int) error {
	if s == nil || s.d == nil {
		return errors.New("vk: recreate of a released swapchain")
	}
	if err := s.d.WaitIdle(); err != nil {
		return err
	}
	return s.create(width, height)
}

// create makes the swapchain (replacing the old one, if any) and its
// per-image semaphores.
func (s *Swapchain) create(width, height int) error {
	d := s.d
	s.freeFrames()
	var caps vulkan.SurfaceCapabilities
	if err := check("vkGetPhysicalDeviceSurfaceCapabilitiesKHR", vulkan.GetPhysicalDeviceSurfaceCapabilities(d.phys, d.surface, &caps)); err != nil {
		return err
	}
	caps.Deref()
	caps.CurrentExtent.Deref()
	caps.MinImageExtent.Deref()
	caps.MaxImageExtent.Deref()
	w, h := uint32(width), uint32(height)
	if caps.CurrentExtent.Width != 0xFFFFFFFF {
		w, h = caps.CurrentExtent.Width, caps.CurrentExtent.Height
	}
	w = min(max(w, caps.MinImageExtent.Width), caps.MaxImageExtent.Width)
	h = min(max(h, caps.MinImageExtent.Height), caps.MaxImageExtent.Height)
	if w == 0 || h == 0 {
		return fmt.Errorf("vk: swapchain: the window is %dx%d (minimised?)", w, h)
	}
	const usage = vulkan.ImageUsageFlags(vulkan.ImageUsageTransferDstBit | vulkan.ImageUsageTransferSrcBit)
	if caps.SupportedUsageFlags&usage != usage {
		return errors.New("vk: swapchain: the surface does not support transfer to and from its images")
	}
	if err := s.checkFormat(); err != nil {
		return err
	}
	count := caps.MinImageCount
	if caps.MaxImageCount != 0 && count > caps.MaxImageCount {
		count = caps.MaxImageCount
	}
	alpha := vulkan.CompositeAlphaOpaqueBit
	if caps.SupportedCompositeAlpha&vulkan.CompositeAlphaFlags(alpha) == 0 {
		for bit := vulkan.CompositeAlphaFlagBits(1); bit <= vulkan.CompositeAlphaInheritBit; bit <<= 1 {
			if caps.SupportedCompositeAlpha&vulkan.CompositeAlphaFlags(bit) != 0 {
				alpha = bit
				break
			}
		}
	}
	// A fresh literal every time: vulkan-go caches a struct's C copy.
	info := vulkan.SwapchainCreateInfo{
		SType:            vulkan.StructureTypeSwapchainCreateInfo,
		Surface:          d.surface,
		MinImageCount:    count,
		ImageFormat:      vulkan.FormatB8g8r8a8Unorm,
		ImageColorSpace:  vulkan.ColorSpaceSrgbNonlinear,
		ImageExtent:      vulkan.Extent2D{Width: w, Height: h},
		ImageArrayLayers: 1,
		ImageUsage:       usage,
		ImageSharingMode: vulkan.SharingModeExclusive,
		PreTransform:     caps.CurrentTransform,
		CompositeAlpha:   alpha,
		PresentMode:      vulkan.PresentModeFifo,
		Clipped:          vulkan.True,
		OldSwapchain:     s.chain,
	}
	var chain vulkan.Swapchain
	err := check("vkCreateSwapchainKHR", vulkan.CreateSwapchain(d.dev, &info, nil, &chain))
	info.Free()
	if s.chain != nil {
		vulkan.DestroySwapchain(d.dev, s.chain, nil)
		s.chain = nil
	}
	if err != nil {
		return err
	}
	s.chain = chain
	var n uint32
	if err := check("vkGetSwapchainImagesKHR", vulkan.GetSwapchainImages(d.dev, chain, &n, nil)); err != nil {
		return err
	}
	s.images = make([]vulkan.Image, n)
	if err := check("vkGetSwapchainImagesKHR", vulkan.GetSwapchainImages(d.dev, chain, &n, s.images)); err != nil {
		return err
	}
	s.images = s.images[:n]
	s.width, s.height = int(w), int(h)
	s.rendered = (*C.VkSemaphore)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.VkSemaphore(nil)))))
	sems := unsafe.Slice(s.rendered, n)
	for i := range sems {
		var sem vulkan.Semaphore
		if err := check("vkCreateSemaphore", vulkan.CreateSemaphore(d.dev, &vulkan.SemaphoreCreateInfo{SType: vulkan.StructureTypeSemaphoreCreateInfo}, nil, &sem)); err != nil {
			return err
		}
		sems[i] = C.VkSemaphore(unsafe.Pointer(sem))
	}
	return nil
}

func (s *Swapchain) checkFormat() error {
	d := s.d
	ok, res := hasSurfaceFormat(d.inst.handle, d.phys, d.surface, vulkan.FormatB8g8r8a8Unorm, vulkan.ColorSpaceSrgbNonlinear)
	if err := check("vkGetPhysicalDeviceSurfaceFormatsKHR", res); err != nil {
		return err
	}
	if ok {
		return nil
	}
	return fmt.Errorf("vk: swapchain: the surface does not offer %s", SwapchainFormat)
}

// SetSource records the frames that copy src, width x height BGRA8 pixels
// row by row with no padding (see SwapchainFormat), into the images. src
// must stay alive, and unchanged in size, until the next SetSource or
// Recreate; its contents may change between frames.
func (s *Swapchain) SetSource(src *Buffer) error {
	if s == nil || s.d == nil {
		return errors.New("vk: set source of a released swapchain")
	}
	if !src.live() {
		return errors.New("vk: swapchain source is a nil or released buffer")
	}
	if want := int64(4 * s.width * s.height); src.Size() < want {
		return fmt.Errorf("vk: swapchain source has %d bytes, want %d for %dx%d", src.Size(), want, s.width, s.height)
	}
	if err := s.d.WaitIdle(); err != nil {
		return err
	}
	s.freeCommands()
	s.src = src
	cbs, err := s.record(false)
	if err != nil {
		return err
	}
	s.show = cbs
	return nil
}

// record allocates and records one command buffer per image; with
// readBack, each also copies the image into s.host after filling it.
func (s *Swapchain) record(readBack bool) (*C.VkCommandBuffer, error) {
	d := s.d
	n := len(s.images)
	arr := (*C.VkCommandBuffer)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.VkCommandBuffer(nil)))))
	if err := check("vkAllocateCommandBuffers", vulkan.Result(C.vkg_alloc_cmds(s.wsi, C.VkDevice(unsafe.Pointer(d.dev)),
		C.VkCommandPool(unsafe.Pointer(d.pool)), C.uint32_t(n), arr))); err != nil {
		C.free(unsafe.Pointer(arr))
		return nil, err
	}
	src := s.src
	var host C.VkBuffer
	var hostOff C.VkDeviceSize
	if readBack {
		host, hostOff = C.VkBuffer(unsafe.Pointer(s.host.blk.buf)), C.VkDeviceSize(s.host.off)
	}
	for i, cb := range unsafe.Slice(arr, n) {
		r := C.vkg_record_frame(s.wsi, cb, C.VkImage(unsafe.Pointer(s.images[i])), C.VkBuffer(unsafe.Pointer(src.blk.buf)),
			C.VkDeviceSize(src.off), C.VkDeviceSize(src.padded), C.uint32_t(s.width), C.uint32_t(s.height),
			boolInt(readBack), host, hostOff)
		if err := check("recording a frame (vkBeginCommandBuffer..vkEndCommandBuffer)", vulkan.Result(r)); err != nil {
			s.freeArray(&arr)
			return nil, err
		}
	}
	return arr, nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Present shows the source in the next image and waits until the copy is
// done. It returns ErrOutOfDate when the swapchain must be recreated; a
// suboptimal swapchain still presents and returns ErrOutOfDate too, so the
// caller rebuilds it. lavapipe's X11 surfaces never report either after a
// resize, so callers must also compare the window's size with Extent.
func (s *Swapchain) Present() error { return s.present(false, nil) }

// PresentAndRead is Present that also copies the presented image into
// dst, width*height*4 bytes of BGRA rows (see SwapchainFormat).
func (s *Swapchain) PresentAndRead(dst []byte) error { return s.present(true, dst) }

func (s *Swapchain) present(readBack bool, dst []byte) error {
	if s == nil || s.d == nil || s.chain == nil {
		return errors.New("vk: present on a released swapchain")
	}
	if s.show == nil {
		return errors.New("vk: present before SetSource")
	}
	cbs := s.show
	if readBack {
		size := 4 * s.width * s.height
		if len(dst) != size {
			return fmt.Errorf("vk: read-back of %d bytes, want %d", len(dst), size)
		}
		if s.shot == nil {
			if err := s.prepareShot(); err != nil {
				return err
			}
		}
		cbs = s.shot
	}
	d := s.d
	var index C.uint32_t
	var which, stale C.int
	d.mu.Lock()
	r := C.vkg_frame(s.wsi, C.VkDevice(unsafe.Pointer(d.dev)), C.VkQueue(unsafe.Pointer(d.queue)),
		C.VkSwapchainKHR(unsafe.Pointer(s.chain)), C.VkSemaphore(unsafe.Pointer(s.acquired)),
		s.rendered, cbs, C.VkFence(unsafe.Pointer(s.fence)), C.uint64_t(submitTimeout.Nanoseconds()),
		&index, &which, &stale)
	d.mu.Unlock()
	res := vulkan.Result(r)
	if res == vulkan.ErrorOutOfDate {
		return ErrOutOfDate
	}
	if err := check(frameCalls[which], res); err != nil {
		return err
	}
	if readBack {
		if err := s.host.Read(0, dst); err != nil {
			return err
		}
	}
	if stale != 0 {
		return ErrOutOfDate
	}
	return nil
}

func (s *Swapchain) prepareShot() error {
	host, err := s.d.NewHostBuffer(int64(4 * s.width * s.height))
	if err != nil {
		return err
	}
	s.host = host
	cbs, err := s.record(true)
	if err != nil {
		return err
	}
	s.shot = cbs
	return nil
}

// freeArray frees a C array of command buffers and the buffers in it.
func (s *Swapchain) freeArray(arr **C.VkCommandBuffer) {
	if *arr == nil {
		return
	}
	// Null entries (none allocated) are ignored by vkFreeCommandBuffers.
	C.vkg_free_cmds(s.wsi, C.VkDevice(unsafe.Pointer(s.d.dev)), C.VkCommandPool(unsafe.Pointer(s.d.pool)), C.uint32_t(len(s.images)), *arr)
	C.free(unsafe.Pointer(*arr))
	*arr = nil
}

// freeCommands frees the recorded frames and the read-back buffer; the
// device must be idle.
func (s *Swapchain) freeCommands() {
	s.freeArray(&s.show)
	s.freeArray(&s.shot)
	if s.host != nil {
		s.host.Release()
		s.host = nil
	}
}

// freeFrames frees everything made per image (not the swapchain itself,
// which the next create retires); the device must be idle.
func (s *Swapchain) freeFrames() {
	s.freeCommands()
	if s.rendered != nil {
		for _, sem := range unsafe.Slice(s.rendered, len(s.images)) {
			if sem != nil {
				vulkan.DestroySemaphore(s.d.dev, vulkan.Semaphore(unsafe.Pointer(sem)), nil)
			}
		}
		C.free(unsafe.Pointer(s.rendered))
		s.rendered = nil
	}
	s.images = nil
}

// Release waits for the device and destroys the swapchain. Safe on nil and
// twice.
func (s *Swapchain) Release() {
	if s == nil || s.d == nil {
		return
	}
	d := s.d
	d.untrack(s)
	if d.dev != nil {
		_ = d.WaitIdle() // a lost device has nothing left to wait for
		s.freeFrames()
		if s.chain != nil {
			vulkan.DestroySwapchain(d.dev, s.chain, nil)
		}
		if s.acquired != nil {
			vulkan.DestroySemaphore(d.dev, s.acquired, nil)
		}
		if s.fence != nil {
			vulkan.DestroyFence(d.dev, s.fence, nil)
		}
	}
	if s.wsi != nil {
		C.free(unsafe.Pointer(s.wsi))
	}
	*s = Swapchain{}
}
