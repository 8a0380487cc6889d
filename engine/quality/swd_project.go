package quality

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"vkgan/engine"
)

// swdProjector multiplies a batch of directions (m rows of kp values) by
// both sets' descriptors (kp rows of ncol values), giving m rows of ncol
// projections per set. The rows stay valid until the next call.
type swdProjector interface {
	batch() int // the most directions one call takes
	project(dirs []float32, m int) ([2][]float32, error)
	release()
}

// swdBatchValues bounds one batch's projections per set: 64 Mi float32
// (256 MiB), enough directions per batch to keep every worker sorting
// while the descriptors stay the larger share of the memory.
const swdBatchValues = 1 << 26

// batchSize returns the number of directions per projection batch: as
// many as fit swdBatchValues, at most DirsPerRepeat, and a multiple of 16
// (the device GEMM's row tile; 48 directions for 10,000 images would
// otherwise be 52, and the tile would compute 64) when there are that
// many.
func (s *swdRun) batchSize() int {
	cd := swdBatchValues / max(s.ncol[0], s.ncol[1])
	if cd >= 16 {
		cd &^= 15
	} else {
		cd = max(4, cd&^3)
	}
	return min(s.opt.DirsPerRepeat, cd)
}

func (s *swdRun) newProjector(desc [2][]float32) (swdProjector, error) {
	if s.dev == nil {
		return newSWDHostProjector(s, desc), nil
	}
	return newSWDDeviceProjector(s, desc)
}

// swdTile is the host GEMM's column tile: a kp x 64 block of descriptors,
// transposed, is 37 KiB for 3-channel 7x7 descriptors and stays in L1/L2
// while every direction of the batch passes over it.
const swdTile = 64

type swdHostProjector struct {
	s    *swdRun
	desc [2][]float32
	out  [2][]float32
	cd   int
	xt   [][]float32 // per worker: one transposed tile
}

func newSWDHostProjector(s *swdRun, desc [2][]float32) *swdHostProjector {
	h := &swdHostProjector{s: s, desc: desc, cd: s.batchSize()}
	for i := range 2 {
		h.out[i] = make([]float32, h.cd*s.ncol[i])
	}
	h.xt = make([][]float32, s.workers)
	for w := range h.xt {
		h.xt[w] = make([]float32, swdTile*s.kp)
	}
	return h
}

func (h *swdHostProjector) batch() int { return h.cd }
func (h *swdHostProjector) release()   {}

func (h *swdHostProjector) project(dirs []float32, m int) ([2][]float32, error) {
	s := h.s
	for i := range 2 {
		x, out, ncol := h.desc[i], h.out[i], s.ncol[i]
		tiles := (ncol + swdTile - 1) / swdTile
		swdParallel(s.workers, tiles, func(w, lo, hi int) {
			for t := lo; t < hi; t++ {
				c0 := t * swdTile
				swdGemmTile(out, dirs, x, h.xt[w], m, s.kp, ncol, c0, min(swdTile, ncol-c0))
			}
		})
	}
	return h.out, nil
}

// swdGemmTile computes out[j][c0+c] = sum_k w[j][k] x[k][c0+c] for j < m,
// c < bw (a multiple of 4), through xt, the tile transposed so that each
// column's kp values are contiguous.
func swdGemmTile(out, w, x, xt []float32, m, kp, ncol, c0, bw int) {
	for k := range kp {
		row := x[k*ncol+c0:][:bw]
		for c, v := range row {
			xt[c*kp+k] = v
		}
	}
	// Six directions against one column: six accumulators, and each
	// weight is used once, so it is loaded straight into the multiply.
	// Measured on amd64 against 4x1, 8x1, 4x2, 3x2 and 2x3 tiles: 6x1 is
	// the fastest, 20-40% over 4x1; wider tiles spill accumulators, since
	// Go's ABI leaves 15 float registers.
	j := 0
	for ; j+6 <= m; j += 6 {
		w0, w1, w2 := w[j*kp:][:kp], w[(j+1)*kp:][:kp], w[(j+2)*kp:][:kp]
		w3, w4, w5 := w[(j+3)*kp:][:kp], w[(j+4)*kp:][:kp], w[(j+5)*kp:][:kp]
		o := out[j*ncol+c0:]
		for c := range bw {
			xc := xt[c*kp:][:kp]
			var a0, a1, a2, a3, a4, a5 float32
			for k, v := range xc {
				a0 += w0[k] * v
				a1 += w1[k] * v
				a2 += w2[k] * v
				a3 += w3[k] * v
				a4 += w4[k] * v
				a5 += w5[k] * v
			}
			o[c], o[ncol+c], o[2*ncol+c] = a0, a1, a2
			o[3*ncol+c], o[4*ncol+c], o[5*ncol+c] = a3, a4, a5
		}
	}
	for ; j < m; j++ {
		wj := w[j*kp:][:kp]
		for c := range bw {
			xc := xt[c*kp:][:kp]
			var a float32
			for k, v := range xc {
				a += wj[k] * v
			}
			out[j*ncol+c0+c] = a
		}
	}
}

// swdDeviceProjector keeps both sets' descriptors on the device, in
// column blocks that each fit one storage-buffer binding, and multiplies
// a batch of directions by them with the engine's GEMM: one submit and
// one download of the projections per batch.
type swdDeviceProjector struct {
	s    *swdRun
	d    *engine.Device
	cd   int
	dirs *engine.Tensor // [cd, kp]
	pad  []float32      // cd*kp host staging for a short last batch
	blk  [2][]swdBlock
	out  [2][]float32
	raw  []byte // one block's projections as read back, reused
}

// swdBlockCols caps a device block's columns: 2^22 keeps the GEMM's grid
// within every device's 65535 workgroups. A variable so that a test can
// force several blocks on small inputs.
var swdBlockCols = 1 << 22

// swdBlock is columns [c0, c0+x.Dim(1)) of one set's descriptors.
type swdBlock struct {
	c0     int
	x, out *engine.Tensor // [kp, cols], [cd, cols]
}

func newSWDDeviceProjector(s *swdRun, desc [2][]float32) (_ *swdDeviceProjector, err error) {
	p := &swdDeviceProjector{s: s, d: s.dev, cd: s.batchSize()}
	defer func() {
		if err != nil {
			p.release()
		}
	}()
	if p.dirs, err = p.d.NewTensor(p.cd, s.kp); err != nil {
		return nil, fmt.Errorf("directions: %w", err)
	}
	p.pad = make([]float32, p.cd*s.kp)
	// Blocks of at most swdBlockCols columns (a multiple of 4) whose
	// descriptors and projections each fit the device's largest binding.
	maxBytes := p.d.Info().Limits.MaxStorageBufferRange
	cols := swdBlockCols
	for cols > 4 && uint64(4*max(s.kp, p.cd)*cols) > maxBytes {
		cols /= 2
	}
	for i := range 2 {
		ncol := s.ncol[i]
		for c0 := 0; c0 < ncol; c0 += cols {
			bw := min(cols, ncol-c0)
			b := swdBlock{c0: c0}
			host := desc[i]
			if bw != ncol {
				host = make([]float32, s.kp*bw)
				for k := range s.kp {
					copy(host[k*bw:(k+1)*bw], desc[i][k*ncol+c0:])
				}
			}
			if b.x, err = p.d.FromSlice(host, s.kp, bw); err != nil {
				return nil, fmt.Errorf("descriptors of set %s: %w", s.sets[i].name, err)
			}
			if b.out, err = p.d.NewTensor(p.cd, bw); err != nil {
				b.x.Release()
				return nil, fmt.Errorf("projections of set %s: %w", s.sets[i].name, err)
			}
			p.blk[i] = append(p.blk[i], b)
		}
		p.out[i] = make([]float32, p.cd*ncol)
	}
	p.raw = make([]byte, 4*p.cd*min(cols, max(s.ncol[0], s.ncol[1])))
	return p, nil
}

func (p *swdDeviceProjector) batch() int { return p.cd }

func (p *swdDeviceProjector) release() {
	p.dirs.Release()
	for i := range p.blk {
		for _, b := range p.blk[i] {
			b.x.Release()
			b.out.Release()
		}
		p.blk[i] = nil
	}
}

func (p *swdDeviceProjector) project(dirs []float32, m int) ([2][]float32, error) {
	s := p.s
	if m < p.cd {
		// Zero rows past m: their projections are computed and ignored.
		clear(p.pad)
		copy(p.pad, dirs)
		dirs = p.pad
	}
	if err := p.dirs.Upload(dirs); err != nil {
		return p.out, fmt.Errorf("directions: %w", err)
	}
	err := p.d.Run(func(r *engine.Recorder) error {
		var errs []error
		for i := range 2 {
			for _, b := range p.blk[i] {
				errs = append(errs, r.MatMul(b.out, p.dirs, b.x))
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return p.out, fmt.Errorf("projection: %w", err)
	}
	// Only the batch's m rows are read, into reused buffers: the
	// projections are the bulk of the host-device traffic (4 bytes per
	// descriptor and direction), and Download would allocate twice that
	// per batch.
	for i := range 2 {
		ncol := s.ncol[i]
		for _, b := range p.blk[i] {
			bw := b.out.Dim(1)
			raw := p.raw[:4*m*bw]
			if err := b.out.Buffer().Read(0, raw); err != nil {
				return p.out, fmt.Errorf("projections of set %s: %w", s.sets[i].name, err)
			}
			for j := range m {
				row, src := p.out[i][j*ncol+b.c0:][:bw], raw[4*j*bw:][:4*bw]
				for c := range row {
					row[c] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*c:]))
				}
			}
		}
	}
	return p.out, nil
}
