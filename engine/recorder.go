package engine

import (
	"fmt"

	"vkgan/shaders"
	"vkgan/vk"
)

// Recorder records kernels into one command buffer that can be submitted
// many times. Each op validates its arguments and returns an error before
// recording anything; the first error is also kept (sticky) and returned by
// Submit, so recording code may check once at the end.
type Recorder struct {
	d    *Device
	r    *vk.Recorder
	err  error
	work []*Tensor // workspace owned by the recording
	// scratchBufs holds the scratch roles' buffers (see scratch): the
	// recording's own, or, with shared, its owner's.
	scratchBufs *scratchSet
	shared      bool
	// dry: a sizing recording (scratchSet.sizing), never submitted, which
	// records no dispatches.
	dry bool

	// With profiling on, every dispatch is followed by a timestamp, so a
	// replay can be broken down by kernel (Profile).
	profile   bool
	profStart int
	profNames []string
	profStamp []int
}

// Record starts a new recording.
func (d *Device) Record() (*Recorder, error) {
	return d.recordWith(nil)
}

// recordWith starts a recording whose scratch buffers come from s, which
// the caller owns and shares only with recordings never submitted at the
// same time as this one; nil gives the recording its own.
func (d *Device) recordWith(s *scratchSet) (*Recorder, error) {
	r, err := d.vk.NewRecorder()
	if err != nil {
		return nil, err
	}
	rec := &Recorder{d: d, r: r, scratchBufs: s, shared: s != nil, dry: s != nil && s.sizing}
	if s == nil {
		rec.scratchBufs = newScratchSet(d)
	}
	return rec, nil
}

// Run records with fn, submits once, waits and releases the recording.
func (d *Device) Run(fn func(r *Recorder) error) error {
	r, err := d.Record()
	if err != nil {
		return err
	}
	defer r.Release()
	if err := fn(r); err != nil {
		return err
	}
	return r.Submit()
}

// Err is the first error seen while recording.
func (r *Recorder) Err() error { return r.err }

// fail keeps the first error and returns err.
func (r *Recorder) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return err
}

// Submit ends the recording (the first time) and runs it, waiting for
// completion.
func (r *Recorder) Submit() error {
	if r.err != nil {
		return r.err
	}
	if r.dry {
		return r.fail(fmt.Errorf("engine: a sizing recording cannot be submitted"))
	}
	if err := r.r.End(); err != nil {
		return r.fail(err)
	}
	return r.d.vk.Submit(r.r)
}

// Release frees the recording and its workspace.
func (r *Recorder) Release() {
	if r == nil {
		return
	}
	r.r.Release()
	for _, t := range r.work {
		t.Release()
	}
	r.work = nil
	if !r.shared {
		r.scratchBufs.release()
	}
	r.scratchBufs = nil
}

// workspace allocates a tensor that lives as long as the recording: ops
// that need an intermediate (a padded copy of an input, say) keep it here,
// so a recording replayed many times allocates nothing per submit.
func (r *Recorder) workspace(shape ...int) (*Tensor, error) {
	t, err := r.d.NewTensor(shape...)
	if err != nil {
		return nil, err
	}
	r.work = append(r.work, t)
	return t, nil
}

// scratchRole names an intermediate that one op writes and the op's next
// dispatch reads, so that a recording's ops (and recordings run one at a
// time) can share one buffer per role.
type scratchRole int

const (
	scratchPad     scratchRole = iota // pad's zero-padded copy of a conv input (or of dy, quadBwdData)
	scratchPacked                     // packBwd's packed weights
	scratchSpreadA                    // spreadRowsCopy's copy of a GEMM's A
	scratchSpreadB                    // the same for a transposed B
	scratchSplitK                     // the tiled core's split-K partial sums
	scratchDiscard                    // an output nothing reads
	numScratchRoles
)

// scratch returns a tensor of the given shape at the start of the
// recording's buffer for role, which the next scratch call for that role
// reuses: a DCGAN step pads each convolution's input up to five times, and
// giving every copy its own buffer held nearly half the step's memory.
// Reuse is safe because every dispatch ends with a barrier, so the next
// writer waits for the last reader, and the previous contents are never
// read again: each role's writer fills the whole view. A larger request
// gets a larger buffer; the old one stays with the recording, whose
// commands still use it (recordPlanned avoids that).
func (r *Recorder) scratch(role scratchRole, shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	buf, err := r.scratchBufs.get(role, n)
	if err != nil {
		return nil, err
	}
	return buf.View(0, shape...)
}

// Timestamp records a GPU timestamp; see Timestamps.
func (r *Recorder) Timestamp() int { return r.r.Timestamp() }

// Timestamps returns the last submit's timestamps in nanoseconds.
func (r *Recorder) Timestamps() ([]float64, error) { return r.r.Timestamps() }

// Raw is the underlying vk recorder, for callers that record their own
// copies or dispatches between engine ops.
func (r *Recorder) Raw() *vk.Recorder { return r.r }

// dispatch records kernel k over groups with the specialization constants
// spec (constant_id i at index i) and the push constants push, binding
// ts[i] to binding i, followed by a barrier so the next command sees its
// writes. Kernels that only read a tensor still get the barrier: on every
// device measured so far it costs microseconds.
//
// k and push come from the GLSL (shaders/zkernels.go), so the push
// constants are the ones the kernel declares, in its layout; the tensor
// and constant counts are checked here, before anything is recorded. A Go
// method cannot have type parameters, hence a function.
func dispatch[P shaders.Push](r *Recorder, k *shaders.Kernel[P], spec []uint32, groups [3]uint32, push P, ts ...*Tensor) error {
	if r.err != nil {
		return r.err
	}
	if len(ts) != len(k.Bindings) {
		return r.fail(fmt.Errorf("engine: %s: %d tensors for the kernel's %d bindings", k.Name, len(ts), len(k.Bindings)))
	}
	if len(spec) != len(k.Spec) {
		return r.fail(fmt.Errorf("engine: %s: %d specialization constants for the kernel's %d", k.Name, len(spec), len(k.Spec)))
	}
	pb := push.Bytes()
	if len(pb) != k.PushSize {
		return r.fail(fmt.Errorf("engine: %s: %d bytes of push constants for the kernel's %d", k.Name, len(pb), k.PushSize))
	}
	p, err := r.d.pipeline(&k.Desc, spec)
	if err != nil {
		return r.fail(err)
	}
	bufs := make([]*vk.Buffer, len(ts))
	for i, t := range ts {
		if t == nil || t.buf == nil {
			return r.fail(fmt.Errorf("engine: %s: tensor argument %d is nil", k.Name, i))
		}
		if t.d != r.d {
			return r.fail(fmt.Errorf("engine: %s: tensor argument %d belongs to another device", k.Name, i))
		}
		bufs[i] = t.buf
	}
	if r.dry {
		return nil
	}
	if r.profile && r.profStart < 0 {
		r.profStart = r.r.Timestamp()
	}
	r.r.Dispatch(p, groups, pb, bufs...)
	r.r.Barrier()
	if r.profile {
		r.profNames = append(r.profNames, k.Name)
		r.profStamp = append(r.profStamp, r.r.Timestamp())
	}
	if err := r.r.Err(); err != nil {
		return r.fail(fmt.Errorf("engine: %s: %w", k.Name, err))
	}
	return nil
}

// gridGroups returns a 1D workgroup count covering n items with wg
// invocations each, capped so grid-stride kernels stay within the device
// limit.
func (r *Recorder) gridGroups(n, wg int) [3]uint32 {
	g := (n + wg - 1) / wg
	if lim := int(r.d.info.Limits.MaxWorkGroupCount[0]); g > lim {
		g = lim
	}
	if g > 4096 {
		g = 4096
	}
	if g < 1 {
		g = 1
	}
	return [3]uint32{uint32(g), 1, 1}
}

// Fill sets every element of x to v.
func (r *Recorder) Fill(x *Tensor, v float32) error {
	if x == nil {
		return r.fail(fmt.Errorf("engine: fill: nil tensor"))
	}
	return dispatch(r, shaders.Fill, nil, r.gridGroups(x.n, 256), shaders.FillPush{N: uint32(x.n), Value: v}, x)
}

// Increment adds one to a counter.
func (r *Recorder) Increment(c *Counter) error {
	if c == nil || c.t == nil {
		return r.fail(fmt.Errorf("engine: increment: nil counter"))
	}
	return dispatch(r, shaders.Counter, nil, [3]uint32{1, 1, 1}, shaders.NoPush{}, c.t)
}

// EnableProfile makes every later dispatch record a timestamp; Profile
// then attributes the last submit's GPU time to kernels. Call it before
// recording anything.
func (r *Recorder) EnableProfile() { r.profile, r.profStart = true, -1 }

// Profile returns GPU milliseconds per kernel name for the last submit.
func (r *Recorder) Profile() (map[string]float64, error) {
	if !r.profile || r.profStart < 0 {
		return nil, fmt.Errorf("engine: profiling was not enabled before recording")
	}
	ts, err := r.r.Timestamps()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	prev := ts[r.profStart]
	for i, name := range r.profNames {
		t := ts[r.profStamp[i]]
		out[name] += (t - prev) / 1e6
		prev = t
	}
	return out, nil
}
