package eval

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"

	"vkgan/engine"
	"vkgan/internal/progress"
)

// The spaces nearest-neighbour distances are measured in, as
// NearestResult.Space names them.
const (
	PixelSpace     = "pixels"    // L2 on the [-1, 1] pixels, in the model's channels
	InceptionSpace = "inception" // L2 on the FID Inception's pool features
)

// MaxNearestK is the most neighbours Nearest finds per query: its top-k
// list is kept by insertion, which is fast only while k is small.
const MaxNearestK = 32

// Nearest finds, for each of the len(query)/dim vectors in query, the k
// vectors of set closest to it in L2 distance, by exact brute force. It
// returns their indices in set, nearest first, and their distances. Equal
// distances keep the lower index first, so the result is deterministic.
// Queries run in parallel, one goroutine per CPU.
//
// The cost is queries x set x dim multiply-adds (8 samples against 10k
// images of 3x64x64 is 1e9); a candidate is dropped as soon as its partial
// sum passes the current k-th distance, which usually saves most of it.
func Nearest(query, set []float32, dim, k int) ([][]int, [][]float64, error) {
	return nearest(query, set, dim, k, nil)
}

// nearest is Nearest calling done (from any goroutine) after each query,
// when not nil.
func nearest(query, set []float32, dim, k int, done func()) ([][]int, [][]float64, error) {
	switch {
	case dim < 1:
		return nil, nil, fmt.Errorf("eval: nearest: dimension %d must be positive", dim)
	case len(query)%dim != 0 || len(set)%dim != 0:
		return nil, nil, fmt.Errorf("eval: nearest: %d query and %d set values are not whole vectors of %d", len(query), len(set), dim)
	case len(query) == 0:
		return nil, nil, fmt.Errorf("eval: nearest: no query vectors")
	case k < 1 || k > MaxNearestK:
		return nil, nil, fmt.Errorf("eval: nearest: k = %d must be in 1..%d", k, MaxNearestK)
	case k > len(set)/dim:
		return nil, nil, fmt.Errorf("eval: nearest: k = %d but the set holds only %d vectors", k, len(set)/dim)
	}
	nq := len(query) / dim
	// A query with NaN or Inf would tie with everything; the set's own NaN
	// shows as a NaN distance below.
	for i, v := range query {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, nil, fmt.Errorf("eval: nearest: query %d holds %v", i/dim, v)
		}
	}
	idx, dist := make([][]int, nq), make([][]float64, nq)
	errs := make([]error, nq)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), nq) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := range next {
				idx[q], dist[q], errs[q] = nearestOne(query[q*dim:(q+1)*dim], set, k)
				if done != nil {
					done()
				}
			}
		}()
	}
	for q := range nq {
		next <- q
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return idx, dist, nil
}

// nearestOne is Nearest for one query q, with len(set) a multiple of
// len(q).
func nearestOne(q, set []float32, k int) ([]int, []float64, error) {
	dim := len(q)
	idx := make([]int, 0, k)
	d2 := make([]float64, 0, k) // squared distances, ascending
	bound := math.Inf(1)        // the k-th squared distance once the list is full
	for j := 0; j < len(set)/dim; j++ {
		d := sqDist(q, set[j*dim:(j+1)*dim], bound)
		if math.IsNaN(d) {
			return nil, nil, fmt.Errorf("eval: nearest: set vector %d holds NaN", j)
		}
		// Strictly less: a later (higher) index never displaces an equal
		// distance, which is the tie rule.
		if len(d2) == k && !(d < bound) {
			continue
		}
		// Insert after every entry <= d, again for the tie rule.
		p := len(d2)
		for p > 0 && d2[p-1] > d {
			p--
		}
		if len(d2) < k {
			d2, idx = append(d2, 0), append(idx, 0)
		}
		copy(d2[p+1:], d2[p:])
		copy(idx[p+1:], idx[p:])
		d2[p], idx[p] = d, j
		if len(d2) == k {
			bound = d2[k-1]
		}
	}
	dist := make([]float64, k)
	for i, v := range d2 {
		dist[i] = math.Sqrt(v)
	}
	return idx, dist, nil
}

// abandonEvery is how many components sqDist sums between checks against
// its bound: often enough to stop early, rarely enough to cost nothing.
const abandonEvery = 256

// sqDist is the squared L2 distance of a and b (of equal length), summed
// in float64 so that it does not depend on the vectors' scale. Once the
// partial sum reaches bound it returns that partial sum, which is then
// already >= bound: the terms are non-negative and rounding is monotone,
// so the full sum could only be larger.
func sqDist(a, b []float32, bound float64) float64 {
	b = b[:len(a)] // one bounds check here instead of one per element
	var s0, s1, s2, s3 float64
	i := 0
	for i < len(a) {
		end := min(i+abandonEvery, len(a))
		// Four sums break the dependency chain of one.
		for ; i+4 <= end; i += 4 {
			d0 := float64(a[i]) - float64(b[i])
			d1 := float64(a[i+1]) - float64(b[i+1])
			d2 := float64(a[i+2]) - float64(b[i+2])
			d3 := float64(a[i+3]) - float64(b[i+3])
			s0 += d0 * d0
			s1 += d1 * d1
			s2 += d2 * d2
			s3 += d3 * d3
		}
		for ; i < end; i++ {
			d := float64(a[i]) - float64(b[i])
			s0 += d * d
		}
		if s := (s0 + s1) + (s2 + s3); s >= bound {
			return s
		}
	}
	return (s0 + s1) + (s2 + s3)
}

// NearestOptions configure FindNearest.
type NearestOptions struct {
	// K is the number of neighbours per sample, 1..MaxNearestK.
	K int
	// Inception is the FID Inception weights file: distances are between
	// its features when given, between pixels when "".
	Inception string
	// Batch is the number of images per Inception pass (0: 16).
	Batch int
	// CacheDir keeps the data set's Inception features, shared with
	// Evaluator's cache ("" = none).
	CacheDir string
	// Log receives progress; nil is silent.
	Log io.Writer
}

// NearestResult are the neighbours of each sample in the data set.
type NearestResult struct {
	Space string      // PixelSpace or InceptionSpace
	Index [][]int     // per sample, K data indices, nearest first
	Dist  [][]float64 // the matching L2 distances in Space
}

// FindNearest finds the opt.K nearest images of data to each image of
// samples, in Inception feature space when opt.Inception is given (which
// needs device d), else in pixel space. The two sets must have the same
// channels and size.
func FindNearest(d *engine.Device, samples, data Images, opt NearestOptions) (NearestResult, error) {
	if samples.C != data.C || samples.Size != data.Size {
		return NearestResult{}, fmt.Errorf("eval: nearest: samples of %dx%dx%d against data of %dx%dx%d", samples.C, samples.Size, samples.Size, data.C, data.Size, data.Size)
	}
	if opt.K < 1 || opt.K > MaxNearestK {
		return NearestResult{}, fmt.Errorf("eval: nearest: k = %d must be in 1..%d", opt.K, MaxNearestK)
	}
	if data.N < opt.K {
		return NearestResult{}, fmt.Errorf("eval: nearest: k = %d neighbours but the data set holds only %d images", opt.K, data.N)
	}
	res := NearestResult{Space: PixelSpace}
	q, set, dim := samples.Pix, data.Pix, data.C*data.Size*data.Size
	if opt.Inception != "" {
		var err error
		if q, set, err = nearestFeatures(d, samples, data, opt); err != nil {
			return NearestResult{}, err
		}
		res.Space, dim = InceptionSpace, engine.InceptionFeatures
	}
	bar := progress.New(opt.Log, "eval: nearest neighbours in "+res.Space, samples.N)
	idx, dist, err := nearest(q, set, dim, opt.K, func() { bar.Add(1) })
	bar.Done()
	if err != nil {
		return NearestResult{}, err
	}
	res.Index, res.Dist = idx, dist
	return res, nil
}

// nearestFeatures are the Inception features of samples and data, the
// data's through Evaluator's cache so that `vkgan eval` and repeated
// -nearest runs share them.
func nearestFeatures(d *engine.Device, samples, data Images, opt NearestOptions) (q, set []float32, err error) {
	ev, err := New(d, data, Options{
		Metrics: []string{FID}, Inception: opt.Inception, N: max(samples.N, 2), RefN: data.N,
		Batch: opt.Batch, CacheDir: opt.CacheDir, Log: opt.Log,
	})
	if err != nil {
		return nil, nil, err
	}
	defer ev.Release()
	if set, err = ev.features(data, "the data"); err != nil {
		return nil, nil, err
	}
	samples.Hash = "" // generated: nothing to cache
	if q, err = ev.features(samples, "the samples"); err != nil {
		return nil, nil, err
	}
	return q, set, nil
}

// NearestRows lays out each sample followed by its neighbours in data, as
// one image set for a grid of 1+k columns (train/grid.Write): row i is
// samples' image i, then data's images idx[i] in order.
func NearestRows(samples, data Images, idx [][]int) (Images, error) {
	if samples.C != data.C || samples.Size != data.Size {
		return Images{}, fmt.Errorf("eval: nearest rows: samples of %dx%dx%d against data of %dx%dx%d", samples.C, samples.Size, samples.Size, data.C, data.Size, data.Size)
	}
	if len(idx) != samples.N {
		return Images{}, fmt.Errorf("eval: nearest rows: %d neighbour lists for %d samples", len(idx), samples.N)
	}
	per := data.C * data.Size * data.Size
	if len(samples.Pix) != samples.N*per || len(data.Pix) != data.N*per {
		return Images{}, fmt.Errorf("eval: nearest rows: %d sample and %d data values are not whole %dx%dx%d images", len(samples.Pix), len(data.Pix), data.C, data.Size, data.Size)
	}
	k := 0
	if len(idx) > 0 {
		k = len(idx[0])
	}
	out := Images{N: samples.N * (1 + k), C: data.C, Size: data.Size}
	out.Pix = make([]float32, 0, out.N*per)
	for i, row := range idx {
		if len(row) != k {
			return Images{}, fmt.Errorf("eval: nearest rows: sample %d has %d neighbours, sample 0 has %d", i, len(row), k)
		}
		out.Pix = append(out.Pix, samples.Pix[i*per:(i+1)*per]...)
		for _, j := range row {
			if j < 0 || j >= data.N {
				return Images{}, fmt.Errorf("eval: nearest rows: neighbour %d of sample %d is not in the data set of %d", j, i, data.N)
			}
			out.Pix = append(out.Pix, data.Pix[j*per:(j+1)*per]...)
		}
	}
	return out, nil
}
