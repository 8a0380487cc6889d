package engine

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"time"
	"unsafe"

	"vkgan/vk"
)

// Shard makes a GAN one rank of data-parallel training: each of Size
// ranks steps on its own Batch rows of a global batch of Size*Batch, and
// the gradients are summed over the ranks (Reduce) and divided by Size
// before every Adam update, so all ranks apply the same update. Rank r
// draws rows [r*Batch, (r+1)*Batch) of the global batch: the same images,
// labels and noise one process draws at batch Size*Batch.
//
// The zero value is one process: the step is one submit, as without a
// Shard. With Size > 1 the step is recorded in segments cut before each
// Adam update; between them the host averages the flat gradients in a
// mapped staging buffer with Reduce (see GAN.Step).
type Shard struct {
	Rank, Size int // this rank in [0, Size); Size 0 or 1 is one process
	// Reduce replaces buf by its elementwise sum over all ranks (an MPI
	// all-reduce); every rank calls it in the same order with buffers of
	// the same length. Needed when Size > 1.
	Reduce func(buf []float32) error
}

// ranks is the number of ranks, at least 1.
func (s Shard) ranks() int { return max(s.Size, 1) }

func (s Shard) validate() error {
	switch {
	case s.Size < 0 || s.Rank < 0 || (s.Size <= 1 && s.Rank != 0) || (s.Size > 1 && s.Rank >= s.Size):
		return fmt.Errorf("engine: gan: rank %d of %d is not a rank", s.Rank, s.Size)
	case s.Size > 1 && s.Reduce == nil:
		return fmt.Errorf("engine: gan: %d ranks need a Reduce function to sum gradients", s.Size)
	}
	return nil
}

// rows is the rank's place in a global batch of the given per-rank size.
func (s Shard) rows(batch int) Rows {
	return Rows{Global: s.ranks() * batch, Offset: s.Rank * batch}
}

// Rows places a batch in its global batch: the batch is rows [Offset,
// Offset+batch) of global batches of Global rows each. The zero value is
// the whole batch (one process).
type Rows struct{ Global, Offset int }

// push returns the kernels' global batch size and first row for a batch
// of the given size, checking that the rows fit the global batch and the
// kernels' uint32 positions.
func (rw Rows) push(op string, batch int) (global, offset uint32, err error) {
	if rw == (Rows{}) {
		return uint32(batch), 0, nil
	}
	if rw.Offset < 0 || rw.Offset+batch > rw.Global || rw.Global > math.MaxUint32 {
		return 0, 0, fmt.Errorf("engine: %s: rows %d..%d do not fit a global batch of %d", op, rw.Offset, rw.Offset+batch, rw.Global)
	}
	return uint32(rw.Global), uint32(rw.Offset), nil
}

// stepRec is a recorded step: one segment in one process; with ranks,
// segment i ends by copying the gradients grads[i] of an Adam update to
// the host-visible stage[i], where they are averaged over the ranks
// before segment i+1 copies them back and runs the update.
type stepRec struct {
	segs  []*Recorder
	grads []*Tensor    // len(segs)-1 gradient buffers
	stage []*vk.Buffer // their staging buffers, mapped on the host
}

func (s *stepRec) release() {
	if s == nil {
		return
	}
	for _, r := range s.segs {
		r.Release()
	}
	for _, b := range s.stage { // after the recordings that copy to them
		b.Release()
	}
	s.segs, s.grads, s.stage = nil, nil, nil
}

// run submits the segments in order, averaging the gradients over the
// ranks between them; it adds the host's time between segments (Reduce
// and the scaling, while the device idles) to *between.
func (s *stepRec) run(sh Shard, between *time.Duration) error {
	for i, r := range s.segs {
		if err := r.Submit(); err != nil {
			return err
		}
		if i < len(s.stage) {
			t0 := time.Now()
			err := reduceMapped(s.stage[i].Mapped(), sh)
			*between += time.Since(t0)
			if err != nil {
				return fmt.Errorf("engine: all-reduce of %d gradients: %w", s.grads[i].n, err)
			}
		}
	}
	return nil
}

// littleEndian: the device's float32s (little-endian, as Tensor.Upload
// writes them) can be handed to Reduce in place.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// reduceMapped averages the float32s in b (a mapped staging buffer) over
// the ranks in place: no copy on a little-endian host.
func reduceMapped(b []byte, sh Shard) error {
	n := len(b) / 4
	if littleEndian {
		v := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n)
		if err := sh.Reduce(v); err != nil {
			return err
		}
		scaleMean(v, sh.ranks())
		return nil
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	if err := sh.Reduce(v); err != nil {
		return err
	}
	scaleMean(v, sh.ranks())
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return nil
}

// Raw is the first segment's vk recording: the whole step in one
// process (tests count its copies).
func (s *stepRec) Raw() *vk.Recorder { return s.segs[0].Raw() }

// profile sums the segments' per-kernel GPU milliseconds.
func (s *stepRec) profile() (map[string]float64, error) {
	out := map[string]float64{}
	for _, r := range s.segs {
		p, err := r.Profile()
		if err != nil {
			return nil, err
		}
		for k, v := range p {
			out[k] += v
		}
	}
	return out, nil
}

// ReduceTime is the host time the GAN's steps have spent averaging
// gradients between segments so far: Shard.Reduce on the mapped staging
// buffers and the scaling, during which the device idles (nothing
// overlaps them yet; the copies to and from the staging buffers are
// device work inside the segments). Zero in one process.
func (g *GAN) ReduceTime() time.Duration { return g.reduceTime }

// allReduceMean replaces t by its mean over the ranks: download, Reduce
// (the sum), scale by 1/Size, upload: for small buffers outside the step
// (running statistics).
func allReduceMean(t *Tensor, sh Shard) error {
	v, err := t.Download()
	if err != nil {
		return fmt.Errorf("engine: all-reduce: %w", err)
	}
	if err := sh.Reduce(v); err != nil {
		return fmt.Errorf("engine: all-reduce of %d values: %w", len(v), err)
	}
	scaleMean(v, sh.ranks())
	if err := t.Upload(v); err != nil {
		return fmt.Errorf("engine: all-reduce: %w", err)
	}
	return nil
}

// scaleMean divides a sum over n ranks by n: a multiply by 1/n, exact
// for powers of two, as a single process's mean over its batch is not
// bit-for-bit anyway.
func scaleMean(v []float32, n int) {
	if n == 1 {
		return
	}
	inv := float32(1 / float64(n))
	for i := range v {
		v[i] *= inv
	}
}

// stateTensors are every tensor of the training state in a fixed order:
// each network's weights, Adam's moments, running statistics, average
// and Adam's step counter (G's counter is the step number).
func (g *GAN) stateTensors() []*Tensor {
	var ts []*Tensor
	for _, ns := range []*NetState{g.G, g.D} {
		for _, ps := range []*ParamSet{ns.Params, ns.M, ns.V, ns.Stats, ns.EMA} {
			if ps != nil {
				ts = append(ts, ps.Flat)
			}
		}
		ts = append(ts, ns.Counter.t)
	}
	return ts
}

// SyncState makes every rank's training state a copy of one rank's: for
// each state tensor in a fixed order it downloads the tensor, calls bcast
// (an MPI broadcast from that rank, which overwrites the buffer on the
// others) and uploads the result. Ranks start from rank 0's weights this
// way, fresh or resumed. Counters travel as their float32 bit patterns.
func (g *GAN) SyncState(bcast func(buf []float32) error) error {
	for _, t := range g.stateTensors() {
		v, err := t.Download()
		if err != nil {
			return fmt.Errorf("engine: sync state: %w", err)
		}
		if err := bcast(v); err != nil {
			return fmt.Errorf("engine: sync state of %d values: %w", len(v), err)
		}
		if err := t.Upload(v); err != nil {
			return fmt.Errorf("engine: sync state: %w", err)
		}
	}
	g.r1Count.steps = -1 // the counters may have changed under it
	return nil
}

// AverageStats replaces both networks' running statistics (batch norm's
// running mean and variance) by their mean over the ranks, through
// Shard.Reduce; every rank must call it at the same step. Each rank's
// statistics follow its own shard between calls: training uses batch
// statistics, so only what a checkpoint saves (and samples drawn in
// evaluation mode) see the running ones. A no-op in one process.
func (g *GAN) AverageStats() error {
	sh := g.cfg.Shard
	if sh.ranks() == 1 {
		return nil
	}
	for _, ns := range []*NetState{g.G, g.D} {
		if ns.Stats == nil {
			continue
		}
		if err := allReduceMean(ns.Stats.Flat, sh); err != nil {
			return fmt.Errorf("engine: averaging %s's running statistics: %w", ns.Net.Name, err)
		}
	}
	return nil
}

// Checksum is a 64-bit FNV-1a hash of the bits of both networks'
// weights, Adam moments and G's average: equal on two ranks exactly when
// (up to hash collisions) they hold the same state, which data-parallel
// training keeps after every step. It downloads all of them.
func (g *GAN) Checksum() (uint64, error) {
	h := fnv.New64a()
	var b [4]byte
	for _, ns := range []*NetState{g.G, g.D} {
		for _, ps := range []*ParamSet{ns.Params, ns.M, ns.V, ns.EMA} {
			if ps == nil {
				continue
			}
			v, err := ps.Flat.Download()
			if err != nil {
				return 0, fmt.Errorf("engine: checksum: %w", err)
			}
			for _, x := range v {
				binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
				h.Write(b[:])
			}
		}
	}
	return h.Sum64(), nil
}
