package vk

import (
	"fmt"
	"time"
	"unsafe"

	vulkan "github.com/vulkan-go/vulkan"
)

const (
	setsPerPool   = 256
	maxTimestamps = 4096
	submitTimeout = 10 * time.Minute // a dispatch this slow means a hung device
)

// Recorder records a command buffer that can be submitted any number of
// times. It owns the descriptor sets and timestamp queries its commands use.
// Recording errors are sticky: after the first, commands are ignored and End
// returns that error.
type Recorder struct {
	d       *Device
	cb      vulkan.CommandBuffer
	pools   []vulkan.DescriptorPool
	left    int // sets left in the last pool
	queries vulkan.QueryPool
	nQuery  int
	ended   bool
	err     error
	copies  int // buffer copies recorded (a step should record none)
	uses    map[*lifetime]struct{}
	useList []*lifetime // uses in order, for Submit's check
	views   map[viewKey]vulkan.BufferView
}

// viewKey names one texel view: a buffer's region.
type viewKey struct {
	buf      vulkan.Buffer
	off, len uint64
}

// NewRecorder starts recording a command buffer.
func (d *Device) NewRecorder() (*Recorder, error) {
	if d.closed {
		return nil, errClosed
	}
	cbs := make([]vulkan.CommandBuffer, 1)
	d.allocMu.Lock()
	err := check("vkAllocateCommandBuffers", vulkan.AllocateCommandBuffers(d.dev, &vulkan.CommandBufferAllocateInfo{
		SType:              vulkan.StructureTypeCommandBufferAllocateInfo,
		CommandPool:        d.pool,
		Level:              vulkan.CommandBufferLevelPrimary,
		CommandBufferCount: 1,
	}, cbs))
	d.allocMu.Unlock()
	if err != nil {
		return nil, err
	}
	r := &Recorder{d: d, cb: cbs[0]}
	if err := check("vkBeginCommandBuffer", vulkan.BeginCommandBuffer(r.cb, &vulkan.CommandBufferBeginInfo{
		SType: vulkan.StructureTypeCommandBufferBeginInfo,
	})); err != nil {
		d.allocMu.Lock()
		vulkan.FreeCommandBuffers(d.dev, d.pool, 1, cbs)
		d.allocMu.Unlock()
		return nil, err
	}
	d.track(r)
	return r, nil
}

// Err is the first recording error, if any.
func (r *Recorder) Err() error { return r.err }

// Fail stores err as the recorder's sticky error (if none is stored yet).
func (r *Recorder) Fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *Recorder) usable() bool {
	if r.err != nil {
		return false
	}
	if r.ended {
		r.err = fmt.Errorf("vk: recording into an ended command buffer")
		return false
	}
	return true
}

func (r *Recorder) allocSet(p *Pipeline) (vulkan.DescriptorSet, error) {
	if r.left == 0 {
		pool, res := createDescriptorPool(r.d.inst.handle, r.d.dev, setsPerPool, maxBindings)
		err := check("vkCreateDescriptorPool", res)
		if err != nil {
			return nil, err
		}
		r.pools = append(r.pools, pool)
		r.left = setsPerPool
	}
	set, err := r.d.hot.allocSet(r.d.dev, r.pools[len(r.pools)-1], p.setLay)
	if err != nil {
		return nil, err
	}
	r.left--
	return set, nil
}

// Dispatch records one dispatch of p over groups workgroups, binding bufs
// to bindings 0..n-1 and push as push constants.
func (r *Recorder) Dispatch(p *Pipeline, groups [3]uint32, push []byte, bufs ...*Buffer) {
	if !r.usable() {
		return
	}
	if len(bufs) != p.bindings {
		r.err = fmt.Errorf("vk: dispatch %s: %d buffers for %d bindings", p.name, len(bufs), p.bindings)
		return
	}
	if len(push) != p.push {
		r.err = fmt.Errorf("vk: dispatch %s: %d bytes of push constants, want %d", p.name, len(push), p.push)
		return
	}
	lim := r.d.info.Limits.MaxWorkGroupCount
	for i, g := range groups {
		if g == 0 || g > lim[i] {
			r.err = fmt.Errorf("vk: dispatch %s: %d workgroups in dimension %d (device allows 1..%d)", p.name, g, i, lim[i])
			return
		}
	}
	set, err := r.allocSet(p)
	if err != nil {
		r.err = err
		return
	}
	for i, b := range bufs {
		if !b.live() {
			r.err = fmt.Errorf("vk: dispatch %s: binding %d is a nil or released buffer", p.name, i)
			return
		}
	}
	var views []vulkan.BufferView
	if p.texel != 0 {
		views = make([]vulkan.BufferView, len(bufs))
		for i, b := range bufs {
			if p.texel&(1<<uint(i)) == 0 {
				continue
			}
			if views[i], err = r.texelView(b); err != nil {
				r.err = fmt.Errorf("vk: dispatch %s: binding %d: %w", p.name, i, err)
				return
			}
		}
	}
	r.use(bufs...)
	r.d.hot.bindBuffers(r.d.dev, set, bufs, views)
	vulkan.CmdBindPipeline(r.cb, vulkan.PipelineBindPointCompute, p.pipe)
	vulkan.CmdBindDescriptorSets(r.cb, vulkan.PipelineBindPointCompute, p.layout, 0, 1, []vulkan.DescriptorSet{set}, 0, nil)
	if len(push) > 0 {
		cp := cBytes(push)
		vulkan.CmdPushConstants(r.cb, p.layout, vulkan.ShaderStageFlags(vulkan.ShaderStageComputeBit), 0, uint32(len(push)), cp)
		freeC(cp)
	}
	vulkan.CmdDispatch(r.cb, groups[0], groups[1], groups[2])
}

// use notes the buffers a command reads or writes, so Submit can check
// they are still allocated.
func (r *Recorder) use(bufs ...*Buffer) {
	if r.uses == nil {
		r.uses = make(map[*lifetime]struct{})
	}
	for _, b := range bufs {
		if _, ok := r.uses[b.life]; !ok {
			r.uses[b.life] = struct{}{}
			r.useList = append(r.useList, b.life)
		}
	}
}

// Copies is the number of buffer copies recorded.
func (r *Recorder) Copies() int { return r.copies }

// Barrier makes all earlier compute and transfer writes visible to all
// later compute and transfer commands.
func (r *Recorder) Barrier() {
	if !r.usable() {
		return
	}
	const stages = vulkan.PipelineStageFlags(vulkan.PipelineStageComputeShaderBit | vulkan.PipelineStageTransferBit)
	r.d.hot.memoryBarrier(r.cb, stages, stages,
		vulkan.AccessFlags(vulkan.AccessShaderWriteBit|vulkan.AccessTransferWriteBit),
		vulkan.AccessFlags(vulkan.AccessShaderReadBit|vulkan.AccessShaderWriteBit|vulkan.AccessTransferReadBit|vulkan.AccessTransferWriteBit))
}

// Copy records a copy of n bytes between buffer regions.
func (r *Recorder) Copy(dst *Buffer, dstOff int64, src *Buffer, srcOff int64, n int64) {
	if !r.usable() {
		return
	}
	if err := dst.checkRange(dstOff, int(n)); err != nil {
		r.err = fmt.Errorf("vk: copy destination: %w", err)
		return
	}
	if err := src.checkRange(srcOff, int(n)); err != nil {
		r.err = fmt.Errorf("vk: copy source: %w", err)
		return
	}
	r.copies++
	r.use(dst, src)
	r.d.hot.copyBuffer(r.cb, src.blk.buf, dst.blk.buf, src.off+uint64(srcOff), dst.off+uint64(dstOff), uint64(n))
}

// Fill records filling a whole buffer (rounded up to 4 bytes) with a 32-bit word.
func (r *Recorder) Fill(dst *Buffer, word uint32) {
	if !r.usable() {
		return
	}
	if !dst.live() {
		r.err = fmt.Errorf("vk: fill of a nil or released buffer")
		return
	}
	r.use(dst)
	vulkan.CmdFillBuffer(r.cb, dst.blk.buf, vulkan.DeviceSize(dst.off), vulkan.DeviceSize(alignUp(dst.size, 4)), word)
}

// Timestamp records a timestamp after all earlier commands and returns its
// index for Timestamps. It returns -1 when the queue has no timestamps.
func (r *Recorder) Timestamp() int {
	if !r.usable() || !r.d.info.Limits.TimestampCompute {
		return -1
	}
	if r.queries == nil {
		var qp vulkan.QueryPool
		if err := check("vkCreateQueryPool", vulkan.CreateQueryPool(r.d.dev, &vulkan.QueryPoolCreateInfo{
			SType:      vulkan.StructureTypeQueryPoolCreateInfo,
			QueryType:  vulkan.QueryTypeTimestamp,
			QueryCount: maxTimestamps,
		}, nil, &qp)); err != nil {
			r.err = err
			return -1
		}
		r.queries = qp
		// Recorded before the first timestamp so every replay starts reset.
		vulkan.CmdResetQueryPool(r.cb, qp, 0, maxTimestamps)
	}
	if r.nQuery == maxTimestamps {
		r.err = fmt.Errorf("vk: more than %d timestamps in one command buffer", maxTimestamps)
		return -1
	}
	vulkan.CmdWriteTimestamp(r.cb, vulkan.PipelineStageBottomOfPipeBit, r.queries, uint32(r.nQuery))
	r.nQuery++
	return r.nQuery - 1
}

// Timestamps returns the recorded timestamps of the last completed submit,
// in nanoseconds.
func (r *Recorder) Timestamps() ([]float64, error) {
	if r.nQuery == 0 {
		return nil, nil
	}
	raw := make([]uint64, r.nQuery)
	err := check("vkGetQueryPoolResults", vulkan.GetQueryPoolResults(r.d.dev, r.queries, 0, uint32(r.nQuery),
		uint(8*r.nQuery), unsafe.Pointer(&raw[0]), 8, vulkan.QueryResultFlags(vulkan.QueryResult64Bit|vulkan.QueryResultWaitBit)))
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(raw))
	for i, v := range raw {
		out[i] = float64(v) * r.d.info.Limits.TimestampPeriodNs
	}
	return out, nil
}

// End finishes recording. It returns the first recording error.
func (r *Recorder) End() error {
	if r.err != nil {
		return r.err
	}
	if r.ended {
		return nil
	}
	r.ended = true
	r.err = check("vkEndCommandBuffer", vulkan.EndCommandBuffer(r.cb))
	return r.err
}

// Submit runs an ended recorder on the queue and waits for it to finish.
func (d *Device) Submit(r *Recorder) error {
	if d.closed {
		return errClosed
	}
	if r.err != nil {
		return r.err
	}
	if !r.ended {
		return fmt.Errorf("vk: submit of a recorder that was not ended")
	}
	for _, l := range r.useList {
		if l.released {
			return fmt.Errorf("vk: submit of a recording that uses a buffer released after it was recorded")
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hot.submitWait(d.dev, d.queue, r.cb, d.fence, uint64(submitTimeout.Nanoseconds()))
}

// Release frees the command buffer, descriptor sets and queries. It must
// not be called while a submit of r is in flight (Submit waits). Safe on nil
// and twice.
func (r *Recorder) Release() {
	if r == nil || r.d == nil {
		return
	}
	d := r.d
	d.untrack(r)
	for _, p := range r.pools {
		vulkan.DestroyDescriptorPool(d.dev, p, nil)
	}
	for _, v := range r.views {
		vulkan.DestroyBufferView(d.dev, v, nil)
	}
	if r.queries != nil {
		vulkan.DestroyQueryPool(d.dev, r.queries, nil)
	}
	d.allocMu.Lock()
	vulkan.FreeCommandBuffers(d.dev, d.pool, 1, []vulkan.CommandBuffer{r.cb})
	d.allocMu.Unlock()
	*r = Recorder{}
}

// texelBytes is the size of the RGBA32F texels of a texel binding.
const texelBytes = 16

// TexelViewable reports whether b can be bound as a uniform texel buffer
// (PipelineDesc.Texel): its offset meets the device's alignment and its
// texels are within the device's limit.
func (b *Buffer) TexelViewable() bool {
	if !b.live() {
		return false
	}
	lim := b.d.info.Limits
	return lim.TexelOffsetAlignment > 0 && b.off%lim.TexelOffsetAlignment == 0 && b.off%texelBytes == 0 &&
		alignUp(b.padded, texelBytes)/texelBytes <= uint64(lim.MaxTexelBufferElements)
}

// texelView returns the recorder's RGBA32F view of b's region, made on
// first use and destroyed with the recorder. A region that ends inside a
// texel is viewed to the texel's end: regions start 256-byte aligned in
// blocks of whole 256-byte units, so that stays inside the block.
func (r *Recorder) texelView(b *Buffer) (vulkan.BufferView, error) {
	if !b.TexelViewable() {
		return nil, fmt.Errorf("a buffer region at byte %d of %d bytes cannot be a texel buffer on this device", b.off, b.padded)
	}
	size := alignUp(b.padded, texelBytes)
	k := viewKey{b.blk.buf, b.off, size}
	if v, ok := r.views[k]; ok {
		return v, nil
	}
	var v vulkan.BufferView
	if err := check("vkCreateBufferView", vulkan.CreateBufferView(r.d.dev, &vulkan.BufferViewCreateInfo{
		SType:  vulkan.StructureTypeBufferViewCreateInfo,
		Buffer: b.blk.buf,
		Format: vulkan.FormatR32g32b32a32Sfloat,
		Offset: vulkan.DeviceSize(b.off),
		Range:  vulkan.DeviceSize(size),
	}, nil, &v)); err != nil {
		return nil, err
	}
	if r.views == nil {
		r.views = make(map[viewKey]vulkan.BufferView)
	}
	r.views[k] = v
	return v, nil
}
