package engine

import "slices"

// scratchSet holds one buffer per scratch role (see Recorder.scratch) for
// recordings that never run at the same time: a recording's own, or a
// GAN's step segments and its R1 step together.
//
// A role's first buffer is as large as its first request. Recording a
// DCGAN step asks for larger and larger pads (6, 7.5, 11.2, then 19.1 MiB
// at 64x64), and each outgrown buffer stays, since recorded commands use
// it: 27 MiB of the step's memory. recordPlanned first records without
// dispatches (sizing), when an outgrown buffer can go at once, so each
// role holds one buffer of its largest request before the recording that
// is kept.
type scratchSet struct {
	d    *Device
	cur  [numScratchRoles]*Tensor // each role's buffer for the next request
	bufs []*Tensor                // every buffer held, the outgrown ones too
	need [numScratchRoles]int     // each role's largest request, in floats
	// sizing: the recordings taking buffers now record no dispatches
	// (Recorder.dry), so nothing uses an outgrown buffer.
	sizing bool
	// peak is the most floats the set has held at once.
	peak int
}

// forceGrowingScratch makes recordPlanned record once, keeping the
// outgrown buffers, as before it (tests and benchmarks compare).
var forceGrowingScratch bool

func newScratchSet(d *Device) *scratchSet { return &scratchSet{d: d} }

// get returns a buffer of at least n floats for role.
func (s *scratchSet) get(role scratchRole, n int) (*Tensor, error) {
	s.need[role] = max(s.need[role], n)
	old := s.cur[role]
	if old != nil && old.n >= n {
		return old, nil
	}
	if old != nil && s.sizing {
		s.bufs = slices.DeleteFunc(s.bufs, func(b *Tensor) bool { return b == old })
		s.cur[role] = nil
		old.Release()
	}
	buf, err := s.d.NewTensor(s.need[role])
	if err != nil {
		return nil, err
	}
	s.cur[role], s.bufs = buf, append(s.bufs, buf)
	s.peak = max(s.peak, s.floats())
	return buf, nil
}

// floats is the size of every buffer the set holds.
func (s *scratchSet) floats() int {
	n := 0
	for _, b := range s.bufs {
		n += b.n
	}
	return n
}

// release frees every buffer; the recordings that used them must have
// been released.
func (s *scratchSet) release() {
	if s == nil {
		return
	}
	for _, b := range s.bufs {
		b.Release()
	}
	s.bufs, s.cur = nil, [numScratchRoles]*Tensor{}
}

// recordPlanned calls record, which records into recordings that take
// their scratch from s, twice: first without dispatches, releasing those
// recordings with release, to learn each role's largest request while
// holding one buffer a role, then for real into those buffers.
func recordPlanned(s *scratchSet, record func() error, release func()) error {
	if forceGrowingScratch {
		return record()
	}
	s.sizing = true
	err := record()
	s.sizing = false
	release()
	if err != nil {
		return err
	}
	return record()
}

// recordSized records fn into one recording whose scratch roles each
// hold one buffer, of their largest request (see recordPlanned).
func (d *Device) recordSized(fn func(r *Recorder)) (*Recorder, error) {
	s := newScratchSet(d)
	var r *Recorder
	record := func() (err error) {
		if r, err = d.recordWith(s); err != nil {
			return err
		}
		fn(r)
		return r.Err()
	}
	if err := recordPlanned(s, record, func() { r.Release(); r = nil }); err != nil {
		r.Release()
		s.release()
		return nil, err
	}
	r.shared = false // the recording owns s from here
	return r, nil
}
