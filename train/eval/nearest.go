package eval

import (
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"vkgan/engine"
	"vkgan/internal/progress"
)

// The spaces nearest-neighbour distances are measured in, as
// NearestResult.Space names them.
const (
	PixelSpace     = "pixel"     // L2 on the [-1, 1] pixels, in the model's channels
	InceptionSpace = "inception" // L2 on the FID Inception's pool features
)

// MaxNearestK is the most neighbours Nearest finds per query: its top-k
// list is kept by insertion, which is fast only while k is small.
const MaxNearestK = 32

// Nearest finds, for each of the len(query)/dim vectors in query, the k
// vectors of set closest to it in L2 distance, by exact brute force. It
// returns their indices in set, nearest first, and their distances. Equal
// distances keep the lower index first, so the result is deterministic.
//
// The cost is queries x set x dim multiply-adds (8 samples against 10k
// images of 3x64x64 is 1e9), and a candidate is dropped as soon as its
// partial sum passes the current k-th distance. The set (490 MB as
// float32 for those 10k images) is the larger operand, so it is read from
// memory once per 8 queries, and split for parallelism, which then does
// not depend on the number of queries: goroutines, one per CPU, take
// chunks of it and compare each vector with a block of queries that stays
// in cache, keeping their own top-k lists, which are merged at the end.
func Nearest(query, set []float32, dim, k int) ([][]int, [][]float64, error) {
	return nearest(query, set, dim, k, nil)
}

// Blocking of nearest: nearestChunk set vectors (3 MB at 12288 dimensions)
// are compared with nearestQueries queries at a time.
const (
	nearestChunk   = 64
	nearestQueries = 8
)

// nearest is Nearest calling done(n) (from any goroutine) after each n
// more set vectors, when done is not nil.
func nearest(query, set []float32, dim, k int, done func(n int)) ([][]int, [][]float64, error) {
	switch {
	case dim < 1:
		return nil, nil, fmt.Errorf("eval: nearest: dimension %d must be positive", dim)
	case len(query)%dim != 0 || len(set)%dim != 0:
		return nil, nil, fmt.Errorf("eval: nearest: %d query and %d set values are not whole vectors of %d", len(query), len(set), dim)
	case len(query) == 0:
		return nil, nil, errors.New("eval: nearest: no query vectors")
	case k < 1 || k > MaxNearestK:
		return nil, nil, fmt.Errorf("eval: nearest: k = %d must be in 1..%d", k, MaxNearestK)
	case k > len(set)/dim:
		return nil, nil, fmt.Errorf("eval: nearest: k = %d but the set holds only %d vectors", k, len(set)/dim)
	}
	nq, ns := len(query)/dim, len(set)/dim
	// A query with NaN or Inf would tie with everything; the set's own NaN
	// shows as a NaN distance below.
	for i, v := range query {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, nil, fmt.Errorf("eval: nearest: query %d holds %v", i/dim, v)
		}
	}
	chunks := (ns + nearestChunk - 1) / nearestChunk
	workers := min(runtime.GOMAXPROCS(0), chunks)
	lists := make([][]topK, workers) // per worker, per query
	errs := make([]error, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		lists[w] = make([]topK, nq)
		for q := range lists[w] {
			lists[w][q] = newTopK(k)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				j0, j1 := c*nearestChunk, min((c+1)*nearestChunk, ns)
				if errs[w] = searchChunk(query, set, dim, j0, j1, lists[w]); errs[w] != nil {
					next.Store(int64(chunks)) // stop the others early
					return
				}
				if done != nil {
					done(j1 - j0)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	idx, dist := make([][]int, nq), make([][]float64, nq)
	for q := range nq {
		merged := lists[0][q]
		for w := 1; w < workers; w++ {
			for i, j := range lists[w][q].idx {
				merged.add(lists[w][q].d2[i], j)
			}
		}
		idx[q] = merged.idx
		dist[q] = make([]float64, k)
		for i, v := range merged.d2 {
			dist[q][i] = math.Sqrt(v)
		}
	}
	return idx, dist, nil
}

// searchChunk compares the set vectors j0..j1-1 with every query, adding
// them to the queries' lists.
func searchChunk(query, set []float32, dim, j0, j1 int, lists []topK) error {
	nq := len(lists)
	for q0 := 0; q0 < nq; q0 += nearestQueries {
		q1 := min(q0+nearestQueries, nq)
		for j := j0; j < j1; j++ {
			v := set[j*dim : (j+1)*dim]
			for q := q0; q < q1; q++ {
				l := &lists[q]
				d := sqDist(query[q*dim:(q+1)*dim], v, l.bound())
				if math.IsNaN(d) {
					return fmt.Errorf("eval: nearest: set vector %d holds NaN", j)
				}
				l.add(d, j)
			}
		}
	}
	return nil
}

// topK is the k smallest (squared distance, index) pairs seen, ascending,
// a lower index first among equal distances.
type topK struct {
	k   int
	d2  []float64
	idx []int
}

func newTopK(k int) topK {
	return topK{k: k, d2: make([]float64, 0, k), idx: make([]int, 0, k)}
}

// bound is a squared distance above which a candidate cannot enter: the
// k-th once the list is full. One equal to it still may, by a lower index.
func (t *topK) bound() float64 {
	if len(t.d2) < t.k {
		return math.Inf(1)
	}
	return t.d2[t.k-1]
}

// before orders candidates: by distance, then by index.
func before(d float64, j int, d2 float64, j2 int) bool {
	return d < d2 || d == d2 && j < j2
}

// add offers the pair (d, j); chunks arrive in any order, so the tie rule
// lives in before, not in the order of the calls.
func (t *topK) add(d float64, j int) {
	n := len(t.d2)
	if n == t.k && !before(d, j, t.d2[n-1], t.idx[n-1]) {
		return
	}
	p := n
	for p > 0 && before(d, j, t.d2[p-1], t.idx[p-1]) {
		p--
	}
	if n < t.k {
		t.d2, t.idx = append(t.d2, 0), append(t.idx, 0)
	}
	copy(t.d2[p+1:], t.d2[p:])
	copy(t.idx[p+1:], t.idx[p:])
	t.d2[p], t.idx[p] = d, j
}

// abandonEvery is how many components sqDist sums between checks against
// its bound: often enough to stop early, rarely enough to cost nothing.
const abandonEvery = 256

// sqDist is the squared L2 distance of a and b (of equal length), summed
// in float64 so that it does not depend on the vectors' scale. Once the
// partial sum passes bound it returns that partial sum, which is then
// already > bound: the terms are non-negative and rounding is monotone,
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
		if s := (s0 + s1) + (s2 + s3); s > bound {
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
	per := data.C * data.Size * data.Size
	if len(samples.Pix) != samples.N*per || len(data.Pix) != data.N*per {
		return NearestResult{}, fmt.Errorf("eval: nearest: %d sample and %d data values are not %d and %d images of %dx%dx%d", len(samples.Pix), len(data.Pix), samples.N, data.N, data.C, data.Size, data.Size)
	}
	if opt.K < 1 || opt.K > MaxNearestK {
		return NearestResult{}, fmt.Errorf("eval: nearest: k = %d must be in 1..%d", opt.K, MaxNearestK)
	}
	if data.N < opt.K {
		return NearestResult{}, fmt.Errorf("eval: nearest: k = %d neighbours but the data set holds only %d images", opt.K, data.N)
	}
	res := NearestResult{Space: PixelSpace}
	q, set, dim := samples.Pix, data.Pix, per
	if opt.Inception != "" {
		var err error
		if q, set, err = nearestFeatures(d, samples, data, opt); err != nil {
			return NearestResult{}, err
		}
		res.Space, dim = InceptionSpace, engine.InceptionFeatures
	}
	bar := progress.New(opt.Log, "eval: nearest neighbours in "+res.Space+" space", data.N)
	idx, dist, err := nearest(q, set, dim, opt.K, bar.Add)
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
