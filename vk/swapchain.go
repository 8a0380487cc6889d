package vk

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan.h>

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
	return w->acquire && w->submit && w->present && w->wait && w->reset;
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
	var n uint32
	if err := check("vkGetPhysicalDeviceSurfaceFormatsKHR", vulkan.GetPhysicalDeviceSurfaceFormats(d.phys, d.surface, &n, nil)); err != nil {
		return err
	}
	fmts := make([]vulkan.SurfaceFormat, n)
	if err := check("vkGetPhysicalDeviceSurfaceFormatsKHR", vulkan.GetPhysicalDeviceSurfaceFormats(d.phys, d.surface, &n, fmts)); err != nil {
		return err
	}
	for i := range fmts[:n] {
		fmts[i].Deref()
		if fmts[i].Format == vulkan.FormatB8g8r8a8Unorm && fmts[i].ColorSpace == vulkan.ColorSpaceSrgbNonlinear {
			return nil
		}
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
	if src == nil || src.blk == nil {
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
	cbs := make([]vulkan.CommandBuffer, n)
	if err := check("vkAllocateCommandBuffers", vulkan.AllocateCommandBuffers(d.dev, &vulkan.CommandBufferAllocateInfo{
		SType:              vulkan.StructureTypeCommandBufferAllocateInfo,
		CommandPool:        d.pool,
		Level:              vulkan.CommandBufferLevelPrimary,
		CommandBufferCount: uint32(n),
	}, cbs)); err != nil {
		return nil, err
	}
	arr := (*C.VkCommandBuffer)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.VkCommandBuffer(nil)))))
	out := unsafe.Slice(arr, n)
	for i, cb := range cbs {
		out[i] = C.VkCommandBuffer(unsafe.Pointer(cb))
	}
	for i, cb := range cbs {
		if err := s.recordOne(cb, s.images[i], readBack); err != nil {
			s.freeArray(&arr)
			return nil, err
		}
	}
	return arr, nil
}

func (s *Swapchain) recordOne(cb vulkan.CommandBuffer, img vulkan.Image, readBack bool) error {
	if err := check("vkBeginCommandBuffer", vulkan.BeginCommandBuffer(cb, &vulkan.CommandBufferBeginInfo{
		SType: vulkan.StructureTypeCommandBufferBeginInfo,
	})); err != nil {
		return err
	}
	colour := vulkan.ImageSubresourceRange{AspectMask: vulkan.ImageAspectFlags(vulkan.ImageAspectColorBit), LevelCount: 1, LayerCount: 1}
	region := []vulkan.BufferImageCopy{{
		ImageSubresource: vulkan.ImageSubresourceLayers{AspectMask: vulkan.ImageAspectFlags(vulkan.ImageAspectColorBit), LayerCount: 1},
		ImageExtent:      vulkan.Extent3D{Width: uint32(s.width), Height: uint32(s.height), Depth: 1},
	}}
	src := s.src
	// The source was written by compute shaders in earlier submits; the
	// image's old contents are not needed (UNDEFINED discards them).
	vulkan.CmdPipelineBarrier(cb,
		vulkan.PipelineStageFlags(vulkan.PipelineStageComputeShaderBit|vulkan.PipelineStageTransferBit),
		vulkan.PipelineStageFlags(vulkan.PipelineStageTransferBit), 0,
		0, nil,
		1, []vulkan.BufferMemoryBarrier{{
			SType:               vulkan.StructureTypeBufferMemoryBarrier,
			SrcAccessMask:       vulkan.AccessFlags(vulkan.AccessShaderWriteBit | vulkan.AccessTransferWriteBit),
			DstAccessMask:       vulkan.AccessFlags(vulkan.AccessTransferReadBit),
			SrcQueueFamilyIndex: vulkan.QueueFamilyIgnored,
			DstQueueFamilyIndex: vulkan.QueueFamilyIgnored,
			Buffer:              src.blk.buf,
			Offset:              vulkan.DeviceSize(src.off),
			Size:                vulkan.DeviceSize(src.padded),
		}},
		1, []vulkan.ImageMemoryBarrier{{
			SType:               vulkan.StructureTypeImageMemoryBarrier,
			DstAccessMask:       vulkan.AccessFlags(vulkan.AccessTransferWriteBit),
			OldLayout:           vulkan.ImageLayoutUndefined,
			NewLayout:           vulkan.ImageLayoutTransferDstOptimal,
			SrcQueueFamilyIndex: vulkan.QueueFamilyIgnored,
			DstQueueFamilyIndex: vulkan.QueueFamilyIgnored,
			Image:               img,
			SubresourceRange:    colour,
		}})
	region[0].BufferOffset = vulkan.DeviceSize(src.off)
	vulkan.CmdCopyBufferToImage(cb, src.blk.buf, img, vulkan.ImageLayoutTransferDstOptimal, 1, region)
	last := vulkan.ImageLayoutTransferDstOptimal
	lastAccess := vulkan.AccessFlags(vulkan.AccessTransferWriteBit)
	if readBack {
		vulkan.CmdPipelineBarrier(cb, vulkan.PipelineStageFlags(vulkan.PipelineStageTransferBit), vulkan.PipelineStageFlags(vulkan.PipelineStageTransferBit), 0,
			0, nil, 0, nil,
			1, []vulkan.ImageMemoryBarrier{{
				SType:               vulkan.StructureTypeImageMemoryBarrier,
				SrcAccessMask:       vulkan.AccessFlags(vulkan.AccessTransferWriteBit),
				DstAccessMask:       vulkan.AccessFlags(vulkan.AccessTransferReadBit),
				OldLayout:           vulkan.ImageLayoutTransferDstOptimal,
				NewLayout:           vulkan.ImageLayoutTransferSrcOptimal,
				SrcQueueFamilyIndex: vulkan.QueueFamilyIgnored,
				DstQueueFamilyIndex: vulkan.QueueFamilyIgnored,
				Image:               img,
				SubresourceRange:    colour,
			}})
		back := []vulkan.BufferImageCopy{{
			BufferOffset:     vulkan.DeviceSize(s.host.off),
			ImageSubresource: vulkan.ImageSubresourceLayers{AspectMask: vulkan.ImageAspectFlags(vulkan.ImageAspectColorBit), LayerCount: 1},
			ImageExtent:      vulkan.Extent3D{Width: uint32(s.width), Height: uint32(s.height), Depth: 1},
		}}
		vulkan.CmdCopyImageToBuffer(cb, img, vulkan.ImageLayoutTransferSrcOptimal, s.host.blk.buf, 1, back)
		// The host reads the buffer after the frame's fence.
		vulkan.CmdPipelineBarrier(cb, vulkan.PipelineStageFlags(vulkan.PipelineStageTransferBit), vulkan.PipelineStageFlags(vulkan.PipelineStageHostBit), 0,
			1, []vulkan.MemoryBarrier{{
				SType:         vulkan.StructureTypeMemoryBarrier,
				SrcAccessMask: vulkan.AccessFlags(vulkan.AccessTransferWriteBit),
				DstAccessMask: vulkan.AccessFlags(vulkan.AccessHostReadBit),
			}}, 0, nil, 0, nil)
		last = vulkan.ImageLayoutTransferSrcOptimal
		lastAccess = vulkan.AccessFlags(vulkan.AccessTransferReadBit)
	}
	// Presentation waits on the frame's semaphore, which makes the writes
	// visible; the barrier only changes the layout.
	vulkan.CmdPipelineBarrier(cb, vulkan.PipelineStageFlags(vulkan.PipelineStageTransferBit), vulkan.PipelineStageFlags(vulkan.PipelineStageBottomOfPipeBit), 0,
		0, nil, 0, nil,
		1, []vulkan.ImageMemoryBarrier{{
			SType:               vulkan.StructureTypeImageMemoryBarrier,
			SrcAccessMask:       lastAccess,
			OldLayout:           last,
			NewLayout:           vulkan.ImageLayoutPresentSrc,
			SrcQueueFamilyIndex: vulkan.QueueFamilyIgnored,
			DstQueueFamilyIndex: vulkan.QueueFamilyIgnored,
			Image:               img,
			SubresourceRange:    colour,
		}})
	return check("vkEndCommandBuffer", vulkan.EndCommandBuffer(cb))
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
	cbs := unsafe.Slice(*arr, len(s.images))
	for _, cb := range cbs {
		if cb != nil {
			vulkan.FreeCommandBuffers(s.d.dev, s.d.pool, 1, []vulkan.CommandBuffer{vulkan.CommandBuffer(unsafe.Pointer(cb))})
		}
	}
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
