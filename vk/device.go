package vk

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

// DeviceType is the kind of physical device, best first.
type DeviceType int

// Device types in the order Open prefers them.
const (
	Discrete DeviceType = iota
	Integrated
	Virtual
	CPU
	Other
)

func (t DeviceType) String() string {
	return [...]string{"discrete GPU", "integrated GPU", "virtual GPU", "CPU", "other"}[t]
}

// Limits are the device limits that shape kernels and allocations.
type Limits struct {
	SubgroupSize           uint32 // lanes per subgroup (lavapipe: 8, NVIDIA: 32)
	SubgroupOps            uint32 // VkSubgroupFeatureFlags
	MaxSharedMemory        uint32 // bytes of shared memory per workgroup
	MaxWorkGroupSize       uint32 // invocations per workgroup
	MaxWorkGroupCount      [3]uint32
	MaxStorageBufferRange  uint64 // largest storage-buffer binding, bytes
	MaxStorageBuffers      uint32 // storage buffers one shader may bind
	MaxSampledImages       uint32 // sampled images and uniform texel buffers one shader may bind
	MaxTexelBufferElements uint32 // texels in one texel buffer view
	TexelOffsetAlignment   uint64 // minTexelBufferOffsetAlignment
	MaxPushConstants       uint32 // bytes
	StorageOffsetAlignment uint64 // minStorageBufferOffsetAlignment
	TimestampPeriodNs      float64
	TimestampCompute       bool
	ShaderInt64            bool
	DeviceLocalBytes       uint64 // largest device-local heap
	MaxAllocations         uint32 // VkDeviceMemory objects the driver allows at once
}

// Subgroup operation bits (VkSubgroupFeatureFlagBits).
const (
	SubgroupBasic   = 0x1
	SubgroupBallot  = 0x8
	SubgroupShuffle = 0x10
)

// DeviceInfo describes one physical device.
type DeviceInfo struct {
	Index         int
	Name          string
	Type          DeviceType
	VendorID      uint32
	DeviceID      uint32
	APIVersion    string
	DriverVersion string
	DriverName    string // e.g. "llvmpipe"; empty before Vulkan 1.2
	DriverInfo    string // e.g. "Mesa 25.0.7 (LLVM 15.0.6)"
	Limits        Limits
	cacheUUID     [16]byte
}

// Options select and configure a device. The zero value picks the best
// device without validation.
type Options struct {
	// Device picks a device by index or by a case-insensitive substring of
	// its name. Empty means VKGAN_DEVICE, and if that is empty too, the best
	// device (discrete > integrated > virtual > CPU).
	Device string
	// Validate enables the Khronos validation layer. Open also enables it
	// when VKGAN_VALIDATE=1.
	Validate bool
	// OnMessage receives each validation message; nil prints to stderr.
	OnMessage func(string)
	// NoPipelineCache disables the on-disk pipeline cache.
	NoPipelineCache bool
	// InstanceExtensions are more instance extensions to enable, such as
	// the ones a window system needs for surfaces (GLFW's
	// GetRequiredInstanceExtensions).
	InstanceExtensions []string
	// Surface, when set, makes a window surface from the new instance: it
	// gets the VkInstance handle and returns the address of a VkSurfaceKHR
	// handle, as GLFW's Window.CreateWindowSurface does. Open then enables
	// VK_KHR_swapchain and picks a device and a queue family that can both
	// compute and present to the surface. The Device owns the surface.
	Surface func(instance unsafe.Pointer) (uintptr, error)
}

// Devices lists the Vulkan devices on this machine.
func Devices() ([]DeviceInfo, error) {
	inst, err := newInstance(false, nil)
	if err != nil {
		return nil, err
	}
	defer inst.release()
	infos, _, err := enumerate(inst)
	return infos, err
}

func enumerate(inst *instance) ([]DeviceInfo, []vulkan.PhysicalDevice, error) {
	var n uint32
	if err := check("vkEnumeratePhysicalDevices", vulkan.EnumeratePhysicalDevices(inst.handle, &n, nil)); err != nil {
		return nil, nil, err
	}
	if n == 0 {
		return nil, nil, nil
	}
	pds := make([]vulkan.PhysicalDevice, n)
	if err := check("vkEnumeratePhysicalDevices", vulkan.EnumeratePhysicalDevices(inst.handle, &n, pds)); err != nil {
		return nil, nil, err
	}
	pds = pds[:n]
	infos := make([]DeviceInfo, n)
	for i, pd := range pds {
		infos[i] = describe(inst, pd, i)
	}
	return infos, pds, nil
}

func describe(inst *instance, pd vulkan.PhysicalDevice, index int) DeviceInfo {
	var p vulkan.PhysicalDeviceProperties
	vulkan.GetPhysicalDeviceProperties(pd, &p)
	p.Deref()
	p.Limits.Deref()
	var f vulkan.PhysicalDeviceFeatures
	vulkan.GetPhysicalDeviceFeatures(pd, &f)
	f.Deref()
	var mp vulkan.PhysicalDeviceMemoryProperties
	vulkan.GetPhysicalDeviceMemoryProperties(pd, &mp)
	mp.Deref()
	var localBytes uint64
	for i := uint32(0); i < mp.MemoryHeapCount; i++ {
		h := mp.MemoryHeaps[i]
		h.Deref()
		if h.Flags&vulkan.MemoryHeapFlags(vulkan.MemoryHeapDeviceLocalBit) != 0 && uint64(h.Size) > localBytes {
			localBytes = uint64(h.Size)
		}
	}
	sg := queryProps2(inst.handle, pd, p.ApiVersion)
	l := p.Limits
	t := Other
	switch p.DeviceType {
	case vulkan.PhysicalDeviceTypeDiscreteGpu:
		t = Discrete
	case vulkan.PhysicalDeviceTypeIntegratedGpu:
		t = Integrated
	case vulkan.PhysicalDeviceTypeVirtualGpu:
		t = Virtual
	case vulkan.PhysicalDeviceTypeCpu:
		t = CPU
	}
	info := DeviceInfo{
		Index:         index,
		Name:          cString(p.DeviceName[:]),
		Type:          t,
		VendorID:      p.VendorID,
		DeviceID:      p.DeviceID,
		APIVersion:    versionString(p.ApiVersion),
		DriverVersion: driverVersionString(p.VendorID, p.DriverVersion),
		DriverName:    sg.driverName,
		DriverInfo:    sg.driverInfo,
		Limits: Limits{
			SubgroupSize:           sg.size,
			SubgroupOps:            sg.ops,
			MaxSharedMemory:        l.MaxComputeSharedMemorySize,
			MaxWorkGroupSize:       l.MaxComputeWorkGroupInvocations,
			MaxWorkGroupCount:      l.MaxComputeWorkGroupCount,
			MaxStorageBufferRange:  uint64(l.MaxStorageBufferRange),
			MaxStorageBuffers:      l.MaxPerStageDescriptorStorageBuffers,
			MaxSampledImages:       l.MaxPerStageDescriptorSampledImages,
			MaxTexelBufferElements: l.MaxTexelBufferElements,
			TexelOffsetAlignment:   uint64(l.MinTexelBufferOffsetAlignment),
			MaxPushConstants:       l.MaxPushConstantsSize,
			StorageOffsetAlignment: uint64(l.MinStorageBufferOffsetAlignment),
			TimestampPeriodNs:      float64(l.TimestampPeriod),
			TimestampCompute:       l.TimestampComputeAndGraphics == vulkan.True,
			ShaderInt64:            f.ShaderInt64 == vulkan.True,
			DeviceLocalBytes:       localBytes,
			MaxAllocations:         l.MaxMemoryAllocationCount,
		},
		cacheUUID: p.PipelineCacheUUID,
	}
	return info
}

func versionString(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v>>22, (v>>12)&0x3ff, v&0xfff)
}

// driverVersionString decodes the vendor-specific driver version packing.
func driverVersionString(vendor, v uint32) string {
	switch vendor {
	case 0x10de: // NVIDIA: 10.8.8.6 bits
		return fmt.Sprintf("%d.%d.%d", v>>22, (v>>14)&0xff, (v>>6)&0xff)
	case 0x8086: // Intel on Windows packs 18.14; Mesa uses the standard packing.
		return versionString(v)
	}
	return versionString(v)
}

// choose picks a device by the selector (index or name substring), or the
// best type when the selector is empty.
func choose(infos []DeviceInfo, sel string) (int, error) {
	if len(infos) == 0 {
		return -1, fmt.Errorf("vk: no Vulkan device found (install mesa-vulkan-drivers for the CPU device lavapipe): %w", ErrNoDevice)
	}
	if sel != "" {
		if i, err := strconv.Atoi(sel); err == nil {
			if i < 0 || i >= len(infos) {
				return -1, fmt.Errorf("vk: device index %d out of range (have %d devices; see 'vkgan devices'): %w", i, len(infos), ErrNoDevice)
			}
			return i, nil
		}
		for i, d := range infos {
			if strings.Contains(strings.ToLower(d.Name), strings.ToLower(sel)) {
				return i, nil
			}
		}
		return -1, fmt.Errorf("vk: no device name contains %q (see 'vkgan devices'): %w", sel, ErrNoDevice)
	}
	order := make([]int, len(infos))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return infos[order[a]].Type < infos[order[b]].Type })
	return order[0], nil
}

// handles holds the Vulkan handles of a Device in a struct with no Go
// pointers, so that passing &h.x to cgo never trips cgocheck.
type handles struct {
	phys   vulkan.PhysicalDevice
	dev    vulkan.Device
	queue  vulkan.Queue
	pool   vulkan.CommandPool
	cache  vulkan.PipelineCache
	fence  vulkan.Fence
	family uint32
	// surface is the window surface from Options.Surface, or nil.
	surface vulkan.Surface
}

// Device is an open logical device with one compute queue. It owns every
// object made from it; Close releases what callers did not.
type Device struct {
	*handles
	inst      *instance
	info      DeviceInfo
	hot       *hotPath
	mem       *allocator
	cachePath string

	mu     sync.Mutex
	closed bool
	owned  map[releaser]struct{}

	// allocMu serialises the command pool and the sub-allocator, which
	// Vulkan and this package leave to the caller to synchronise: the
	// viewer records and allocates on its own thread while training runs.
	allocMu sync.Mutex
}

type releaser interface{ Release() }

// Open creates a device from opts (see Options).
func Open(opts Options) (*Device, error) {
	validate := opts.Validate || ValidationFromEnv()
	inst, err := newInstance(validate, opts.OnMessage, opts.InstanceExtensions...)
	if err != nil {
		return nil, err
	}
	var surface vulkan.Surface
	if opts.Surface != nil {
		addr, err := opts.Surface(unsafe.Pointer(inst.handle))
		if err != nil {
			inst.release()
			return nil, fmt.Errorf("vk: window surface: %w", err)
		}
		surface = vulkan.SurfaceFromPointer(addr)
	}
	fail := func(err error) (*Device, error) {
		if surface != nil {
			vulkan.DestroySurface(inst.handle, surface, nil)
		}
		inst.release()
		return nil, err
	}
	infos, pds, err := enumerate(inst)
	if err != nil {
		return fail(err)
	}
	sel := opts.Device
	if sel == "" {
		sel = os.Getenv("VKGAN_DEVICE")
	}
	idx, err := chooseFor(inst.handle, infos, pds, sel, surface)
	if err != nil {
		return fail(err)
	}
	d := &Device{handles: &handles{phys: pds[idx], surface: surface}, inst: inst, info: infos[idx], owned: map[releaser]struct{}{}}
	if err := d.init(!opts.NoPipelineCache); err != nil {
		d.destroy()
		return nil, err
	}
	return d, nil
}

func (d *Device) init(diskCache bool) error {
	qfs := queueFamilies(d.inst.handle, d.phys)
	family := -1
	if d.surface != nil {
		// One queue runs G and presents, so it must do both.
		family = presentFamily(d.inst.handle, d.phys, d.surface)
	}
	// Prefer a compute queue family without graphics (async compute on
	// GPUs), else any family with compute.
	for pass := 0; pass < 2 && family < 0 && d.surface == nil; pass++ {
		for i, fl := range qfs {
			hasCompute := fl&vulkan.QueueFlags(vulkan.QueueComputeBit) != 0
			hasGraphics := fl&vulkan.QueueFlags(vulkan.QueueGraphicsBit) != 0
			if hasCompute && (pass == 1 || !hasGraphics) {
				family = i
				break
			}
		}
	}
	if family < 0 {
		return fmt.Errorf("vk: %s has no compute queue: %w", d.info.Name, ErrNoDevice)
	}
	d.family = uint32(family)
	dev, res := createDevice(d.inst.handle, d.phys, d.family, d.info.Limits.ShaderInt64, d.surface != nil)
	if err := check("vkCreateDevice", res); err != nil {
		return err
	}
	d.dev = dev
	var q vulkan.Queue
	vulkan.GetDeviceQueue(d.dev, d.family, 0, &q)
	d.queue = q
	hot, err := newHotPath(d.inst.handle, d.dev)
	if err != nil {
		return err
	}
	d.hot = hot
	var pool vulkan.CommandPool
	if err := check("vkCreateCommandPool", vulkan.CreateCommandPool(d.dev, &vulkan.CommandPoolCreateInfo{
		SType:            vulkan.StructureTypeCommandPoolCreateInfo,
		Flags:            vulkan.CommandPoolCreateFlags(vulkan.CommandPoolCreateResetCommandBufferBit),
		QueueFamilyIndex: d.family,
	}, nil, &pool)); err != nil {
		return err
	}
	d.pool = pool
	var fence vulkan.Fence
	if err := check("vkCreateFence", vulkan.CreateFence(d.dev, &vulkan.FenceCreateInfo{SType: vulkan.StructureTypeFenceCreateInfo}, nil, &fence)); err != nil {
		return err
	}
	d.fence = fence
	if err := d.openPipelineCache(diskCache); err != nil {
		return err
	}
	d.mem = newAllocator(d)
	return nil
}

// Info describes the device.
func (d *Device) Info() DeviceInfo { return d.info }

// ValidationMessages returns and clears the validation messages seen so far.
func (d *Device) ValidationMessages() []string { return d.inst.takeMessages() }

func (d *Device) track(r releaser) {
	d.mu.Lock()
	d.owned[r] = struct{}{}
	d.mu.Unlock()
}

func (d *Device) untrack(r releaser) {
	d.mu.Lock()
	delete(d.owned, r)
	d.mu.Unlock()
}

// WaitIdle waits until the device has finished all submitted work.
func (d *Device) WaitIdle() error {
	return check("vkDeviceWaitIdle", vulkan.DeviceWaitIdle(d.dev))
}

// Close waits for the device, releases every object still owned by it,
// saves the pipeline cache and destroys the device and instance. It reports
// a lost device; it is safe to call twice.
func (d *Device) Close() error {
	if d == nil || d.closed {
		return nil
	}
	var err error
	if d.dev != nil {
		err = d.WaitIdle()
	}
	d.destroy()
	return err
}

func (d *Device) destroy() {
	d.closed = true
	d.mu.Lock()
	owned := make([]releaser, 0, len(d.owned))
	for r := range d.owned {
		owned = append(owned, r)
	}
	d.mu.Unlock()
	for _, r := range owned {
		r.Release()
	}
	if d.mem != nil {
		d.mem.release()
	}
	if d.dev != nil {
		d.savePipelineCache()
		if d.cache != nil {
			vulkan.DestroyPipelineCache(d.dev, d.cache, nil)
		}
		if d.fence != nil {
			vulkan.DestroyFence(d.dev, d.fence, nil)
		}
		if d.pool != nil {
			vulkan.DestroyCommandPool(d.dev, d.pool, nil)
		}
		vulkan.DestroyDevice(d.dev, nil)
		d.dev = nil
	}
	d.hot.release()
	if d.surface != nil {
		vulkan.DestroySurface(d.inst.handle, d.surface, nil)
		d.surface = nil
	}
	d.inst.release()
}

func (d *Device) openPipelineCache(disk bool) error {
	var data []byte
	if disk {
		if dir, err := os.UserCacheDir(); err == nil {
			d.cachePath = filepath.Join(dir, "vkgan", fmt.Sprintf("pipelines-%04x-%04x-%x.bin", d.info.VendorID, d.info.DeviceID, d.info.cacheUUID))
			raw, _ := os.ReadFile(d.cachePath) // a missing or unreadable cache just starts empty
			data = unsealCache(raw)
		}
	}
	p := cBytes(data)
	defer freeC(p)
	var cache vulkan.PipelineCache
	err := check("vkCreatePipelineCache", vulkan.CreatePipelineCache(d.dev, &vulkan.PipelineCacheCreateInfo{
		SType:           vulkan.StructureTypePipelineCacheCreateInfo,
		InitialDataSize: uint(len(data)),
		PInitialData:    p,
	}, nil, &cache))
	if err != nil && len(data) > 0 {
		// A cache from another driver build may be rejected; start empty.
		err = check("vkCreatePipelineCache", vulkan.CreatePipelineCache(d.dev, &vulkan.PipelineCacheCreateInfo{
			SType: vulkan.StructureTypePipelineCacheCreateInfo,
		}, nil, &cache))
	}
	if err != nil {
		return err
	}
	d.cache = cache
	return nil
}

// savePipelineCache writes the cache atomically; failure only costs compile
// time on the next run, so it is not an error.
func (d *Device) savePipelineCache() {
	if d.cachePath == "" || d.cache == nil {
		return
	}
	var size uint
	if vulkan.GetPipelineCacheData(d.dev, d.cache, &size, nil) != vulkan.Success || size == 0 {
		return
	}
	buf := make([]byte, size)
	if vulkan.GetPipelineCacheData(d.dev, d.cache, &size, unsafe.Pointer(&buf[0])) != vulkan.Success {
		return
	}
	if err := os.MkdirAll(filepath.Dir(d.cachePath), 0o755); err != nil {
		return
	}
	// A unique temporary name: test binaries and runs save concurrently,
	// and a shared name let two writers interleave into one torn file that
	// the driver then trusted (a crash in vkCreateComputePipelines).
	f, err := os.CreateTemp(filepath.Dir(d.cachePath), filepath.Base(d.cachePath)+".*.tmp")
	if err != nil {
		return
	}
	_, werr := f.Write(sealCache(buf[:size]))
	if cerr := f.Close(); werr != nil || cerr != nil {
		_ = os.Remove(f.Name())
		return
	}
	if err := os.Rename(f.Name(), d.cachePath); err != nil {
		_ = os.Remove(f.Name())
	}
}

// The on-disk pipeline cache is the driver's blob behind a magic and a
// SHA-256 of it: drivers check the blob's header, not its body, so a
// damaged file must be caught here and never reach the driver.
const cacheMagic = "vkgan-pipeline-cache-1\n"

func sealCache(blob []byte) []byte {
	sum := sha256.Sum256(blob)
	out := make([]byte, 0, len(cacheMagic)+len(sum)+len(blob))
	out = append(out, cacheMagic...)
	out = append(out, sum[:]...)
	return append(out, blob...)
}

// unsealCache returns the blob of a sealed cache file, or nil when the
// file is missing, foreign or damaged.
func unsealCache(raw []byte) []byte {
	head := len(cacheMagic) + sha256.Size
	if len(raw) <= head || string(raw[:len(cacheMagic)]) != cacheMagic {
		return nil
	}
	blob := raw[head:]
	if sum := sha256.Sum256(blob); !bytes.Equal(sum[:], raw[len(cacheMagic):head]) {
		return nil
	}
	return blob
}

var errClosed = errors.New("vk: device is closed")

// chooseFor is choose, restricted with a surface to the devices that can
// present to it.
func chooseFor(inst vulkan.Instance, infos []DeviceInfo, pds []vulkan.PhysicalDevice, sel string, surface vulkan.Surface) (int, error) {
	if surface == nil {
		return choose(infos, sel)
	}
	var able []DeviceInfo
	var index []int
	for i, pd := range pds {
		if presentFamily(inst, pd, surface) >= 0 {
			able = append(able, infos[i])
			index = append(index, i)
		}
	}
	if sel != "" {
		i, err := choose(infos, sel)
		if err != nil {
			return -1, err
		}
		if presentFamily(inst, pds[i], surface) < 0 {
			return -1, fmt.Errorf("vk: %s cannot present to the window (no queue family that computes and presents): %w", infos[i].Name, ErrNoDevice)
		}
		return i, nil
	}
	if len(able) == 0 && len(infos) > 0 {
		return -1, fmt.Errorf("vk: no device can present to the window: %w", ErrNoDevice)
	}
	i, err := choose(able, "")
	if err != nil {
		return -1, err
	}
	return index[i], nil
}

// presentFamily is the first queue family of pd that computes and can
// present to surface, or -1.
//
// Reference: https://registry.khronos.org/vulkan/specs/1.3/html/vkspec.html#vkGetPhysicalDeviceSurfaceSupportKHR
func presentFamily(inst vulkan.Instance, pd vulkan.PhysicalDevice, surface vulkan.Surface) int {
	for i, fl := range queueFamilies(inst, pd) {
		if fl&vulkan.QueueFlags(vulkan.QueueComputeBit) == 0 {
			continue
		}
		var ok vulkan.Bool32
		if vulkan.GetPhysicalDeviceSurfaceSupport(pd, uint32(i), surface, &ok) == vulkan.Success && ok == vulkan.True {
			return i
		}
	}
	return -1
}
