package quality

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"vkgan/engine"
)

// swdRun is one SWD computation. It works a level at a time, so only one
// level's descriptors (kp x N*NhoodsPerImage float32 per set) and one
// batch of projections are held at once.
type swdRun struct {
	dev  *engine.Device
	opt  SWDOptions
	c    int
	side int
	sets [2]swdSet

	workers int
	k, kp   int    // descriptor length and its padding to a multiple of 4
	n       [2]int // descriptors per set
	ncol    [2]int // n rounded up to a multiple of 4: the device GEMM's aligned loads
	scratch []swdSortScratch
}

func (s *swdRun) run() (*SWDResult, error) {
	o := s.opt
	levels := swdLevels(s.side)
	s.workers = runtime.GOMAXPROCS(0)
	s.k = s.c * o.NhoodSize * o.NhoodSize
	s.kp = (s.k + 3) &^ 3
	for i, set := range s.sets {
		s.n[i] = set.n * o.NhoodsPerImage
		s.ncol[i] = (s.n[i] + 3) &^ 3
	}
	s.scratch = make([]swdSortScratch, s.workers)

	res := &SWDResult{Levels: levels, PerLevel: make([]float64, len(levels))}
	total := len(levels) * o.DirRepeats * o.DirsPerRepeat
	done := 0
	for l := range levels {
		var desc [2][]float32
		for i := range s.sets {
			desc[i] = s.descriptors(i, l, len(levels)-1)
			s.normalise(desc[i], s.n[i], s.ncol[i])
		}
		proj, err := s.newProjector(desc)
		desc = [2][]float32{} // the projector holds what it still needs
		if err != nil {
			return nil, fmt.Errorf("quality: swd: level %dx%d: %w", levels[l], levels[l], err)
		}
		w1 := make([]float64, o.DirRepeats*o.DirsPerRepeat)
		for rep := range o.DirRepeats {
			dirs := swdDirections(o.Seed, l, rep, o.DirsPerRepeat, s.k, s.kp)
			for j0 := 0; j0 < o.DirsPerRepeat; j0 += proj.batch() {
				m := min(proj.batch(), o.DirsPerRepeat-j0)
				p, err := proj.project(dirs[j0*s.kp:(j0+m)*s.kp], m)
				if err != nil {
					proj.release()
					return nil, fmt.Errorf("quality: swd: level %dx%d: %w", levels[l], levels[l], err)
				}
				s.distances(p, m, w1[rep*o.DirsPerRepeat+j0:][:m])
				done += m
				if o.Progress != nil {
					o.Progress(done, total)
				}
			}
		}
		proj.release()
		var sum float64
		for _, v := range w1 { // in order: the result does not depend on scheduling
			sum += v
		}
		res.PerLevel[l] = sum / float64(len(w1)) * 1e3
		res.Mean += res.PerLevel[l]
	}
	res.Mean /= float64(len(levels))
	return res, nil
}

// swdParallel runs fn over [0, n) split into one contiguous range per
// worker.
func swdParallel(workers, n int, fn func(w, lo, hi int)) {
	workers = max(1, min(workers, n))
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		wg.Go(func() { fn(w, lo, hi) })
	}
	wg.Wait()
}

// descriptors returns set i's level-l descriptors as kp rows of ncol
// columns: row (ch*size + dy)*size + dx, column img*NhoodsPerImage + t is
// value (ch, dy, dx) of image img's t-th neighbourhood. (The reference
// orders a descriptor (ch, dx, dy); a fixed permutation of the components
// does not change the distribution of random projections.) Transposed so
// that the per-channel statistics read contiguous rows and the device
// multiplies without a transposed operand.
func (s *swdRun) descriptors(i, l, last int) []float32 {
	o, set := s.opt, s.sets[i]
	ncol, nh, ns := s.ncol[i], o.NhoodsPerImage, o.NhoodSize
	h, side := ns/2, s.side>>l
	plane := s.c * s.side * s.side
	out := make([]float32, s.kp*ncol)
	swdParallel(s.workers, set.n, func(_, lo, hi int) {
		pyr := newSWDPyramid(s.c, s.side, last+1)
		xs, ys := make([]int, nh), make([]int, nh)
		for img := lo; img < hi; img++ {
			lev := pyr.level(set.pix[img*plane:(img+1)*plane], l, last)
			swdPositions(o.Seed, l, img, side, h, xs, ys)
			// Per row, this image's nh columns are contiguous.
			for ch := range s.c {
				src := lev[ch*side*side : (ch+1)*side*side]
				for dy := range ns {
					for dx := range ns {
						row := (ch*ns+dy)*ns + dx
						dst := out[row*ncol+img*nh:][:nh]
						for t := range dst {
							dst[t] = src[(ys[t]-h+dy)*side+xs[t]-h+dx]
						}
					}
				}
			}
		}
	})
	return out
}

// normalise subtracts each channel's mean over the set's n descriptors
// and divides by its standard deviation (population, as numpy's std), as
// the reference's finalize_descriptors does to each set with its own
// statistics. A constant channel is only centred.
func (s *swdRun) normalise(desc []float32, n, ncol int) {
	per := s.opt.NhoodSize * s.opt.NhoodSize
	swdParallel(s.workers, s.c, func(_, lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			rows := desc[ch*per*ncol : (ch+1)*per*ncol]
			mean, std := swdChannelStats(rows, n, ncol, per)
			scale := 1.0
			if std > 0 {
				scale = 1 / std
			}
			for r := range per {
				row := rows[r*ncol:][:n]
				for i, v := range row {
					row[i] = float32((float64(v) - mean) * scale)
				}
			}
		}
	})
}

// swdChannelStats returns the mean and population standard deviation of
// the first n values of each of rows' per rows (stride ncol), in float64
// and two passes so that large means do not cancel the variance.
func swdChannelStats(rows []float32, n, ncol, per int) (mean, std float64) {
	var sum float64
	for r := range per {
		for _, v := range rows[r*ncol:][:n] {
			sum += float64(v)
		}
	}
	count := float64(n * per)
	mean = sum / count
	var ss float64
	for r := range per {
		for _, v := range rows[r*ncol:][:n] {
			d := float64(v) - mean
			ss += d * d
		}
	}
	return mean, math.Sqrt(ss / count)
}

// swdSortScratch is one worker's sort buffers.
type swdSortScratch struct {
	keys, tmp [2][]uint32
}

// distances sorts the m projection rows of both sets and stores each
// direction's Wasserstein-1 distance in out. Rows are split among the
// workers, each sorting whole rows with its own buffers.
func (s *swdRun) distances(p [2][]float32, m int, out []float64) {
	swdParallel(s.workers, m, func(w, lo, hi int) {
		sc := &s.scratch[w]
		for i := range 2 {
			if len(sc.keys[i]) < s.n[i] {
				sc.keys[i] = make([]uint32, s.n[i])
				sc.tmp[i] = make([]uint32, s.n[i])
			}
		}
		for j := lo; j < hi; j++ {
			var sorted [2][]uint32
			for i := range 2 {
				row := p[i][j*s.ncol[i]:][:s.n[i]]
				sorted[i] = swdRadixSort(row, sc.keys[i], sc.tmp[i])
			}
			out[j] = swdW1(sorted[0], sorted[1])
		}
	})
}
