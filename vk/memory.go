package vk

import (
	"fmt"
	"sort"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

// Sub-allocation: small buffers come from shared blocks, each one
// VkDeviceMemory bound to one VkBuffer, so a step binds regions of a few
// buffers instead of thousands of small allocations (drivers cap the
// allocation count, some at 4096). Buffers over half a block get their own.
// Blocks of 1 MiB keep what is held within about 1% of what the buffers
// ask for (DCGAN-64, batch 64: 277.9 MiB held for 277.0 in 32 allocations;
// DCGAN-32: 71.3 for 70.4 in 28). With 16 MiB blocks the unused tails and
// the holes that scratch buffers leave held 291.9 and 80.0 MiB. A model
// with so many mid-sized buffers that the allocations held reach half the
// driver's cap falls back to 16 MiB blocks.
const (
	smallBlockSize   = 1 << 20
	crowdedBlockSize = 16 << 20
	regionAlign      = 256 // covers minStorageBufferOffsetAlignment everywhere and keeps vec4/u64 loads aligned
)

type block struct {
	mem    vulkan.DeviceMemory
	buf    vulkan.Buffer
	size   uint64
	mapped unsafe.Pointer // nil unless host-visible
	free   []span         // sorted by offset, coalesced
	used   int
}

type span struct{ off, size uint64 }

type allocator struct {
	d          *Device
	blockSize  uint64 // while allocations are few
	crowded    uint64 // block size near the driver's allocation cap
	maxAllocs  int    // allocations held before falling back to crowded
	typeIndex  uint32
	hostMapped bool
	blocks     []*block
	stats      MemoryStats
}

// MemoryStats counts a device's memory: what vkgan holds from the driver
// (VkDeviceMemory: the sub-allocated blocks, buffers too large for them and
// staging buffers) against what its buffers asked for, now and at the peak.
// Held exceeds Requested by the unused tails of blocks and by alignment.
type MemoryStats struct {
	Held, PeakHeld           uint64
	Requested, PeakRequested uint64
	// Allocations counts the VkDeviceMemory objects held, which drivers
	// cap (maxMemoryAllocationCount, 4096 on some).
	Allocations, PeakAllocations int
}

func (s *MemoryStats) add(held, requested int64) {
	s.Held = uint64(int64(s.Held) + held)
	s.Requested = uint64(int64(s.Requested) + requested)
	s.PeakHeld = max(s.PeakHeld, s.Held)
	s.PeakRequested = max(s.PeakRequested, s.Requested)
}

func (s *MemoryStats) count(n int) {
	s.Allocations += n
	s.PeakAllocations = max(s.PeakAllocations, s.Allocations)
}

// MemoryStats reports the device's memory use so far.
func (d *Device) MemoryStats() MemoryStats {
	d.allocMu.Lock()
	defer d.allocMu.Unlock()
	return d.mem.stats
}

func newAllocator(d *Device) *allocator {
	clamp := func(bs uint64) uint64 {
		if r := d.info.Limits.MaxStorageBufferRange; r < bs {
			bs = r &^ (regionAlign - 1)
		}
		return bs
	}
	limit := int(min(d.info.Limits.MaxAllocations, 1<<30))
	return &allocator{d: d, blockSize: clamp(smallBlockSize), crowded: clamp(crowdedBlockSize), maxAllocs: limit / 2}
}

// nextBlockSize is the size of the next shared block: buffers larger
// than half of it get their own allocation.
func (a *allocator) nextBlockSize() uint64 {
	if a.stats.Allocations >= a.maxAllocs {
		return a.crowded
	}
	return a.blockSize
}

// chooseMemoryType picks device-local memory for the block's buffer. On
// devices that share memory with the host (CPU devices such as lavapipe,
// integrated GPUs) it prefers memory that is also host-visible and coherent,
// so uploads and downloads are plain copies into a persistent mapping.
func (a *allocator) chooseMemoryType(bits uint32) (uint32, bool, error) {
	var mp vulkan.PhysicalDeviceMemoryProperties
	vulkan.GetPhysicalDeviceMemoryProperties(a.d.phys, &mp)
	mp.Deref()
	const local = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyDeviceLocalBit)
	const host = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyHostVisibleBit | vulkan.MemoryPropertyHostCoherentBit)
	shared := a.d.info.Type == CPU || a.d.info.Type == Integrated
	want := []vulkan.MemoryPropertyFlags{local}
	if shared {
		want = []vulkan.MemoryPropertyFlags{local | host, local, host}
	}
	for _, w := range want {
		for i := uint32(0); i < mp.MemoryTypeCount; i++ {
			t := mp.MemoryTypes[i]
			t.Deref()
			if bits&(1<<i) != 0 && t.PropertyFlags&w == w {
				return i, w&host == host, nil
			}
		}
	}
	return 0, false, fmt.Errorf("vk: no device-local memory type for storage buffers on %s", a.d.info.Name)
}

func (a *allocator) newBlock(size uint64, hostVisible bool) (*block, error) {
	d := a.d
	var buf vulkan.Buffer
	err := check("vkCreateBuffer", vulkan.CreateBuffer(d.dev, &vulkan.BufferCreateInfo{
		SType:       vulkan.StructureTypeBufferCreateInfo,
		Size:        vulkan.DeviceSize(size),
		Usage:       vulkan.BufferUsageFlags(vulkan.BufferUsageStorageBufferBit | vulkan.BufferUsageUniformTexelBufferBit | vulkan.BufferUsageTransferSrcBit | vulkan.BufferUsageTransferDstBit),
		SharingMode: vulkan.SharingModeExclusive,
	}, nil, &buf))
	if err != nil {
		return nil, err
	}
	var req vulkan.MemoryRequirements
	vulkan.GetBufferMemoryRequirements(d.dev, buf, &req)
	req.Deref()
	var typ uint32
	var mapped bool
	if hostVisible {
		typ, err = a.hostType(req.MemoryTypeBits)
		mapped = true
	} else {
		typ, mapped, err = a.chooseMemoryType(req.MemoryTypeBits)
	}
	if err != nil {
		vulkan.DestroyBuffer(d.dev, buf, nil)
		return nil, err
	}
	var mem vulkan.DeviceMemory
	err = check("vkAllocateMemory", vulkan.AllocateMemory(d.dev, &vulkan.MemoryAllocateInfo{
		SType:           vulkan.StructureTypeMemoryAllocateInfo,
		AllocationSize:  req.Size,
		MemoryTypeIndex: typ,
	}, nil, &mem))
	if err != nil {
		vulkan.DestroyBuffer(d.dev, buf, nil)
		return nil, err
	}
	if err := check("vkBindBufferMemory", vulkan.BindBufferMemory(d.dev, buf, mem, 0)); err != nil {
		vulkan.FreeMemory(d.dev, mem, nil)
		vulkan.DestroyBuffer(d.dev, buf, nil)
		return nil, err
	}
	b := &block{mem: mem, buf: buf, size: size, free: []span{{0, size}}}
	if mapped {
		var p unsafe.Pointer
		if err := check("vkMapMemory", vulkan.MapMemory(d.dev, mem, 0, vulkan.DeviceSize(vulkan.WholeSize), 0, &p)); err != nil {
			vulkan.FreeMemory(d.dev, mem, nil)
			vulkan.DestroyBuffer(d.dev, buf, nil)
			return nil, err
		}
		b.mapped = p
	}
	a.stats.add(int64(size), 0)
	a.stats.count(1)
	return b, nil
}

func (a *allocator) hostType(bits uint32) (uint32, error) {
	var mp vulkan.PhysicalDeviceMemoryProperties
	vulkan.GetPhysicalDeviceMemoryProperties(a.d.phys, &mp)
	mp.Deref()
	const host = vulkan.MemoryPropertyFlags(vulkan.MemoryPropertyHostVisibleBit | vulkan.MemoryPropertyHostCoherentBit)
	for i := uint32(0); i < mp.MemoryTypeCount; i++ {
		t := mp.MemoryTypes[i]
		t.Deref()
		if bits&(1<<i) != 0 && t.PropertyFlags&host == host {
			return i, nil
		}
	}
	return 0, fmt.Errorf("vk: no host-visible coherent memory on %s", a.d.info.Name)
}

func (a *allocator) freeBlock(b *block) {
	if b.mapped != nil {
		vulkan.UnmapMemory(a.d.dev, b.mem)
	}
	vulkan.DestroyBuffer(a.d.dev, b.buf, nil)
	vulkan.FreeMemory(a.d.dev, b.mem, nil)
	a.stats.add(-int64(b.size), 0)
	a.stats.count(-1)
}

func (a *allocator) release() {
	for _, b := range a.blocks {
		a.freeBlock(b)
	}
	a.blocks = nil
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }

// take carves size bytes out of b, first fit.
func (b *block) take(size uint64) (uint64, bool) {
	for i, s := range b.free {
		if s.size >= size {
			off := s.off
			if s.size == size {
				b.free = append(b.free[:i], b.free[i+1:]...)
			} else {
				b.free[i] = span{s.off + size, s.size - size}
			}
			b.used++
			return off, true
		}
	}
	return 0, false
}

func (b *block) give(off, size uint64) {
	i := sort.Search(len(b.free), func(i int) bool { return b.free[i].off > off })
	b.free = append(b.free, span{})
	copy(b.free[i+1:], b.free[i:])
	b.free[i] = span{off, size}
	// Merge with the right, then the left neighbour.
	if i+1 < len(b.free) && b.free[i].off+b.free[i].size == b.free[i+1].off {
		b.free[i].size += b.free[i+1].size
		b.free = append(b.free[:i+1], b.free[i+2:]...)
	}
	if i > 0 && b.free[i-1].off+b.free[i-1].size == b.free[i].off {
		b.free[i-1].size += b.free[i].size
		b.free = append(b.free[:i], b.free[i+1:]...)
	}
	b.used--
}

// Buffer is a region of device memory usable as one storage buffer.
type Buffer struct {
	d      *Device
	blk    *block
	off    uint64
	size   uint64 // requested size
	padded uint64 // size taken from the block
	own    bool   // the block is this buffer's alone
	view   bool   // aliases another buffer; Release does nothing
	life   *lifetime
}

// lifetime is shared by a buffer and its views and aliases. Recordings
// keep the lifetimes of the buffers they use, so a submit can refuse to
// run commands whose memory was given back: on a CPU driver that memory is
// host heap, and a write into it corrupts the process's allocator.
type lifetime struct{ released bool }

// NewBuffer allocates size bytes of device memory, zero-filled is not
// guaranteed. It fails with ErrTooLarge above the device's storage-buffer
// range and with ErrOutOfDeviceMemory when memory runs out.
func (d *Device) NewBuffer(size int64) (*Buffer, error) {
	return d.newBuffer(size, false)
}

// NewHostBuffer allocates host-visible memory (for staging and readbacks).
func (d *Device) NewHostBuffer(size int64) (*Buffer, error) {
	return d.newBuffer(size, true)
}

func (d *Device) newBuffer(size int64, host bool) (*Buffer, error) {
	if d.closed {
		return nil, errClosed
	}
	if size <= 0 {
		return nil, fmt.Errorf("vk: buffer size %d must be positive", size)
	}
	maxRange := d.info.Limits.MaxStorageBufferRange
	if uint64(size) > maxRange {
		return nil, fmt.Errorf("vk: %d bytes exceeds %s's storage-buffer range of %d bytes: %w", size, d.info.Name, maxRange, ErrTooLarge)
	}
	d.allocMu.Lock()
	defer d.allocMu.Unlock()
	a := d.mem
	padded := alignUp(uint64(size), regionAlign)
	bs := a.nextBlockSize()
	if host || padded > bs/2 {
		b, err := a.newBlock(padded, host)
		if err != nil {
			return nil, err
		}
		b.free, b.used = nil, 1
		return a.handOut(&Buffer{d: d, blk: b, size: uint64(size), padded: padded, own: true}), nil
	}
	for _, b := range a.blocks {
		if off, ok := b.take(padded); ok {
			return a.handOut(&Buffer{d: d, blk: b, off: off, size: uint64(size), padded: padded}), nil
		}
	}
	b, err := a.newBlock(bs, false)
	if err != nil {
		return nil, err
	}
	a.blocks = append(a.blocks, b)
	off, _ := b.take(padded)
	return a.handOut(&Buffer{d: d, blk: b, off: off, size: uint64(size), padded: padded}), nil
}

// handOut counts a new buffer and gives it an owner that releases it.
func (a *allocator) handOut(buf *Buffer) *Buffer {
	a.stats.add(0, int64(buf.size))
	buf.life = &lifetime{}
	a.d.track(buf)
	return buf
}

// Size is the buffer's size in bytes.
func (b *Buffer) Size() int64 { return int64(b.size) }

// Release returns the region to its block. It must not be called while a
// submitted command buffer may still use it (Submit waits, so between
// submits is safe). Safe on nil and twice.
func (b *Buffer) Release() {
	if b == nil || b.blk == nil || b.view {
		return
	}
	b.d.untrack(b)
	b.life.released = true
	b.d.allocMu.Lock()
	b.d.mem.stats.add(0, -int64(b.size))
	if b.own {
		b.d.mem.freeBlock(b.blk)
	} else {
		b.blk.give(b.off, b.padded)
	}
	b.d.allocMu.Unlock()
	*b = Buffer{}
}

// HostVisible reports whether Write and Read are plain memory copies.
func (b *Buffer) HostVisible() bool { return b.live() && b.blk.mapped != nil }

// live reports whether b is a buffer whose memory is still allocated: not
// nil, not released, and not a view or alias of a released buffer.
func (b *Buffer) live() bool { return b != nil && b.blk != nil && !b.life.released }

// Mapped is the buffer's memory as the host sees it (host-coherent), or
// nil unless it is host-visible: a staging buffer's bytes, read and
// written in place between submits without another copy. The slice is
// valid until Release, and only while no submit that uses the buffer is
// in flight.
func (b *Buffer) Mapped() []byte {
	if !b.HostVisible() {
		return nil
	}
	return unsafe.Slice((*byte)(b.blk.mapped), b.blk.size)[b.off : b.off+b.size]
}

func (b *Buffer) checkRange(off int64, n int) error {
	if !b.live() {
		return fmt.Errorf("vk: use of a released buffer")
	}
	if off < 0 || uint64(off)+uint64(n) > b.size {
		return fmt.Errorf("vk: range [%d, %d) outside buffer of %d bytes", off, off+int64(n), b.size)
	}
	return nil
}

// Write copies data into the buffer at byte offset off. On host-visible
// memory it is a memcpy; otherwise it goes through a staging buffer and one
// submit. It must not overlap device work (call it between submits).
func (b *Buffer) Write(off int64, data []byte) error {
	if err := b.checkRange(off, len(data)); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if b.blk.mapped != nil {
		copy(unsafe.Slice((*byte)(b.blk.mapped), b.blk.size)[b.off+uint64(off):], data)
		return nil
	}
	st, err := b.d.NewHostBuffer(int64(len(data)))
	if err != nil {
		return fmt.Errorf("vk: staging upload: %w", err)
	}
	defer st.Release()
	if err := st.Write(0, data); err != nil {
		return err
	}
	return b.d.copyNow(b, uint64(off), st, 0, uint64(len(data)))
}

// Read copies len(dst) bytes from byte offset off into dst.
func (b *Buffer) Read(off int64, dst []byte) error {
	if err := b.checkRange(off, len(dst)); err != nil {
		return err
	}
	if len(dst) == 0 {
		return nil
	}
	if b.blk.mapped != nil {
		copy(dst, unsafe.Slice((*byte)(b.blk.mapped), b.blk.size)[b.off+uint64(off):])
		return nil
	}
	st, err := b.d.NewHostBuffer(int64(len(dst)))
	if err != nil {
		return fmt.Errorf("vk: staging download: %w", err)
	}
	defer st.Release()
	if err := b.d.copyNow(st, 0, b, uint64(off), uint64(len(dst))); err != nil {
		return err
	}
	return st.Read(0, dst)
}

// copyNow records, submits and waits for one buffer copy.
func (d *Device) copyNow(dst *Buffer, dstOff uint64, src *Buffer, srcOff uint64, n uint64) error {
	r, err := d.NewRecorder()
	if err != nil {
		return err
	}
	defer r.Release()
	r.Copy(dst, int64(dstOff), src, int64(srcOff), int64(n))
	if err := r.End(); err != nil {
		return err
	}
	return d.Submit(r)
}

// Alias returns a buffer for all of b, bound with the same range as b,
// that does not own it: releasing the alias does nothing, and it must not
// outlive b. It is View(0, b.Size()) without narrowing the bound range to
// the requested size, so kernels see exactly what they see through b.
func (b *Buffer) Alias() *Buffer {
	if b == nil {
		return nil
	}
	a := *b
	a.own, a.view = false, true
	return &a
}

// Overlaps reports whether b and c share any byte of device memory, as a
// buffer, its views and its aliases do. Compare buffers with it, not with
// ==: a view or alias is a Buffer of its own.
func (b *Buffer) Overlaps(c *Buffer) bool {
	if b == nil || c == nil || b.blk == nil || b.blk != c.blk {
		return false
	}
	return b.off < c.off+c.size && c.off < b.off+b.size
}

// View returns a buffer that aliases size bytes of b from byte offset off.
// off must be a multiple of 256 so the view can be bound as a storage
// buffer. Releasing a view does nothing; it must not outlive b.
func (b *Buffer) View(off, size int64) (*Buffer, error) {
	if err := b.checkRange(off, int(size)); err != nil {
		return nil, err
	}
	if off%regionAlign != 0 || size <= 0 {
		return nil, fmt.Errorf("vk: view at byte %d of %d bytes: offset must be a multiple of %d and size positive", off, size, regionAlign)
	}
	padded := alignUp(uint64(size), 4)
	if rest := b.padded - uint64(off); padded > rest {
		padded = rest
	}
	return &Buffer{d: b.d, blk: b.blk, off: b.off + uint64(off), size: uint64(size), padded: padded, view: true, life: b.life}, nil
}
