package quality

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// KID defaults: torch-fidelity's kid_subsets and kid_subset_size. Its
// kernel defaults (kid_degree 3, kid_gamma None meaning 1/Dim, kid_coef0
// 1) are the only kernel here: k(x, y) = (x·y/Dim + 1)³.
const (
	KIDDefaultSubsets    = 100
	KIDDefaultSubsetSize = 1000
)

// KIDOptions configures KID. A zero count means its default, so the zero
// value is torch-fidelity's KID with seed 0; DefaultKID spells it out.
type KIDOptions struct {
	// Subsets is the number of subset pairs whose MMD² KID averages
	// (default 100).
	Subsets int
	// SubsetSize is the number of samples drawn from each set for each
	// pair (default 1000). A set with fewer samples lowers it: see KID.
	SubsetSize int
	// Seed selects the subsets: the same seed, features and options give
	// the same result bit for bit, whatever GOMAXPROCS is.
	Seed uint64
}

// DefaultKID returns the defaults with seed 0.
func DefaultKID() KIDOptions {
	return KIDOptions{Subsets: KIDDefaultSubsets, SubsetSize: KIDDefaultSubsetSize}
}

// withDefaults fills zero counts and reports every bad one at once.
func (o KIDOptions) withDefaults() (KIDOptions, error) {
	if o.Subsets == 0 {
		o.Subsets = KIDDefaultSubsets
	}
	if o.SubsetSize == 0 {
		o.SubsetSize = KIDDefaultSubsetSize
	}
	var errs []error
	if o.Subsets < 0 {
		errs = append(errs, fmt.Errorf("Subsets %d must be positive", o.Subsets))
	}
	if o.SubsetSize < 0 {
		errs = append(errs, fmt.Errorf("SubsetSize %d must be positive", o.SubsetSize))
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("quality: kid options: %w", errors.Join(errs...))
	}
	return o, nil
}

// KIDResult is a kernel inception distance as torch-fidelity reports it.
type KIDResult struct {
	// Mean is the KID: the mean of MMD2.
	Mean float64
	// Std is MMD2's standard deviation with numpy's default ddof 0, as
	// torch-fidelity's kernel_inception_distance_std.
	Std float64
	// MMD2 is each subset pair's unbiased MMD² estimate.
	MMD2 []float64
	// SubsetSize is the number of samples per set in each pair: the one
	// asked for, or less when a set was smaller.
	SubsetSize int
	// Warning is empty, or says that SubsetSize is below the one asked
	// for; the caller prints it.
	Warning string
}

// Subset is one pair of subsets: rows of the first feature set and of the
// second, each row at most once, as many of each.
type Subset struct{ X, Y []int }

// kidStream is PCG's second seed word for subset draws, so that they do
// not share a stream with other users of the same seed.
const kidStream = 0x6b69642d73756273 // "kid-subs"

// DrawSubsets draws count pairs of size rows each, without replacement
// within a subset, from sets of nx and ny rows: for each pair, first the
// X rows, then the Y rows, as torch-fidelity draws them (with numpy's RNG
// there, math/rand/v2's PCG seeded with (seed, kidStream) here).
func DrawSubsets(nx, ny, size, count int, seed uint64) ([]Subset, error) {
	if size < 1 || size > nx || size > ny || count < 0 {
		return nil, fmt.Errorf("quality: kid: cannot draw %d subsets of %d rows from %d and %d rows: %w", count, size, nx, ny, ErrShape)
	}
	r := rand.New(rand.NewPCG(seed, kidStream))
	px, py := identity(nx), identity(ny)
	// The first size entries of a partial Fisher-Yates shuffle are a
	// uniform draw without replacement, whatever order perm started in.
	draw := func(perm []int) []int {
		for i := range size {
			j := i + r.IntN(len(perm)-i)
			perm[i], perm[j] = perm[j], perm[i]
		}
		return append([]int(nil), perm[:size]...)
	}
	subs := make([]Subset, count)
	for i := range subs {
		subs[i].X = draw(px)
		subs[i].Y = draw(py)
	}
	return subs, nil
}

func identity(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return p
}

// KID returns the kernel inception distance between feature sets x and y,
// rows of dim float32 values: torch-fidelity's kid_features_to_metric,
// the mean over opt.Subsets random subset pairs of the unbiased MMD² with
// the kernel (x·y/dim + 1)³, computed in float64. (torch-fidelity
// multiplies its float32 features in float32, so its values differ from
// these by float32 rounding.) A nil opt means DefaultKID().
//
// torch-fidelity refuses sets smaller than kid_subset_size (its
// kid_features_to_metric asserts that both have at least that many
// samples). KID instead uses subsets of the smaller set's size and says so
// in the result's Warning, so a short evaluation still gives a number;
// values at different subset sizes do not compare (the estimator's
// variance grows as the size falls). When neither set is larger than the
// subset size every subset is the whole of both, and KID computes that
// one pair (Std 0) instead of repeating it.
//
// Each pair costs about 2·size²·dim multiply-adds through gonum's Dgemm,
// in tiles spread over GOMAXPROCS goroutines: at the defaults and dim
// 2048, 100 pairs are 0.8 TFLOP: 133 to 152 s (5.4 to 6.2 GFLOPS) on our
// shared 2-core test machine. It holds one pair's features in float64
// (2·size·dim values, 32 MB at the defaults).
func KID(x, y []float32, dim int, opt *KIDOptions) (KIDResult, error) {
	o := DefaultKID()
	if opt != nil {
		var err error
		if o, err = opt.withDefaults(); err != nil {
			return KIDResult{}, err
		}
	}
	nx, ny, err := kidCheck(x, y, dim)
	if err != nil {
		return KIDResult{}, err
	}
	size, count := min(o.SubsetSize, nx, ny), o.Subsets
	if size == nx && size == ny {
		count = 1
	}
	subs, err := DrawSubsets(nx, ny, size, count, o.Seed)
	if err != nil {
		return KIDResult{}, err
	}
	r, err := kidSubsets(x, y, dim, nx, ny, subs)
	if err != nil {
		return KIDResult{}, err
	}
	if size < o.SubsetSize {
		r.Warning = fmt.Sprintf("kid: subsets of %d samples instead of %d: the sets have %d and %d; torch-fidelity would refuse, and values at different subset sizes do not compare", size, o.SubsetSize, nx, ny)
	}
	return r, nil
}

// KIDSubsets is KID on the given subset pairs, for comparing with another
// implementation on the same draws. Every pair must have the same number
// of rows, at least 2, from each set.
func KIDSubsets(x, y []float32, dim int, subsets []Subset) (KIDResult, error) {
	nx, ny, err := kidCheck(x, y, dim)
	if err != nil {
		return KIDResult{}, err
	}
	return kidSubsets(x, y, dim, nx, ny, subsets)
}

// kidCheck validates the feature sets and returns their sizes.
func kidCheck(x, y []float32, dim int) (nx, ny int, err error) {
	if dim < 1 {
		return 0, 0, fmt.Errorf("quality: kid: feature dimension %d: %w", dim, ErrShape)
	}
	for _, s := range []struct {
		name string
		v    []float32
	}{{"x", x}, {"y", y}} {
		if len(s.v)%dim != 0 {
			return 0, 0, fmt.Errorf("quality: kid: %s: %d values are not whole rows of %d: %w", s.name, len(s.v), dim, ErrShape)
		}
		if n := len(s.v) / dim; n < 2 {
			return 0, 0, fmt.Errorf("quality: kid: %s: %d samples, the unbiased estimator needs 2: %w", s.name, n, ErrTooFew)
		}
		if i := nonFinite32(s.v); i >= 0 {
			return 0, 0, fmt.Errorf("quality: kid: %s: row %d, value %d is %v: %w", s.name, i/dim, i%dim, s.v[i], ErrNonFinite)
		}
	}
	return len(x) / dim, len(y) / dim, nil
}

func kidSubsets(x, y []float32, dim, nx, ny int, subsets []Subset) (KIDResult, error) {
	if len(subsets) == 0 {
		return KIDResult{}, fmt.Errorf("quality: kid: no subsets: %w", ErrTooFew)
	}
	m := len(subsets[0].X)
	if m < 2 {
		return KIDResult{}, fmt.Errorf("quality: kid: subsets of %d rows, the unbiased estimator needs 2: %w", m, ErrTooFew)
	}
	seenX, seenY := make([]bool, nx), make([]bool, ny)
	for i, s := range subsets {
		if len(s.X) != m || len(s.Y) != m {
			return KIDResult{}, fmt.Errorf("quality: kid: subset %d has %d and %d rows, subset 0 %d: %w", i, len(s.X), len(s.Y), m, ErrShape)
		}
		if err := checkRows(s.X, seenX, i, "x"); err != nil {
			return KIDResult{}, err
		}
		if err := checkRows(s.Y, seenY, i, "y"); err != nil {
			return KIDResult{}, err
		}
	}

	k := newKIDKernel(m, dim)
	r := KIDResult{MMD2: make([]float64, len(subsets)), SubsetSize: m}
	for i, s := range subsets {
		k.gather(x, s.X, 0)
		k.gather(y, s.Y, m)
		r.MMD2[i] = k.mmd2()
	}
	for _, v := range r.MMD2 {
		r.Mean += v
	}
	r.Mean /= float64(len(r.MMD2))
	for _, v := range r.MMD2 {
		r.Std += (v - r.Mean) * (v - r.Mean)
	}
	r.Std = math.Sqrt(r.Std / float64(len(r.MMD2)))
	return r, nil
}

// checkRows reports a row out of range or repeated in subset i; seen is
// all false before and after.
func checkRows(rows []int, seen []bool, i int, set string) error {
	defer func() {
		for _, j := range rows {
			if j >= 0 && j < len(seen) {
				seen[j] = false
			}
		}
	}()
	for _, j := range rows {
		if j < 0 || j >= len(seen) {
			return fmt.Errorf("quality: kid: subset %d: row %d of %s, which has %d: %w", i, j, set, len(seen), ErrShape)
		}
		if seen[j] {
			return fmt.Errorf("quality: kid: subset %d: row %d of %s twice (subsets are drawn without replacement): %w", i, j, set, ErrShape)
		}
		seen[j] = true
	}
	return nil
}

// kidTile is the side of the kernel blocks one Dgemm computes: 64 rows
// of features (1 MB at dim 2048) stay in cache across the block, which ran
// gonum's Dgemm at 7.5 GFLOPS on one core against 4.5 on two for the whole
// 1000×1000 product.
const kidTile = 64

// kidKernel computes one pair's MMD² from z, the X rows then the Y rows
// in float64, by tiles of the upper triangle of the kernel matrix of z:
// each tile one Dgemm, reduced to its sum at once, so no m×m matrix is
// kept.
type kidKernel struct {
	m, dim int
	z      []float64
	tiles  []kidJob
	sums   []float64 // each tile's kernel sum, added up in tile order
}

// kidJob is one tile: rows [i0, i1) against rows [j0, j1) of z.
type kidJob struct {
	i0, i1, j0, j1 int
	kind           int  // kidXX, kidYY or kidXY
	diag           bool // a tile on the diagonal: only j > i counts
}

const (
	kidXX = iota
	kidYY
	kidXY
)

func newKIDKernel(m, dim int) *kidKernel {
	k := &kidKernel{m: m, dim: dim, z: make([]float64, 2*m*dim)}
	add := func(kind, off0, off1 int, upper bool) {
		for i := 0; i < m; i += kidTile {
			j := 0
			if upper {
				j = i
			}
			for ; j < m; j += kidTile {
				k.tiles = append(k.tiles, kidJob{
					i0: off0 + i, i1: off0 + min(i+kidTile, m),
					j0: off1 + j, j1: off1 + min(j+kidTile, m),
					kind: kind, diag: upper && i == j,
				})
			}
		}
	}
	add(kidXX, 0, 0, true)
	add(kidYY, m, m, true)
	add(kidXY, 0, m, false)
	k.sums = make([]float64, len(k.tiles))
	return k
}

// gather converts rows of f into z from row at.
func (k *kidKernel) gather(f []float32, rows []int, at int) {
	d := k.dim
	for r, i := range rows {
		dst, src := k.z[(at+r)*d:(at+r+1)*d], f[i*d:(i+1)*d]
		for j, v := range src {
			dst[j] = float64(v)
		}
	}
}

// mmd2 is torch-fidelity's unbiased estimate for the rows now in z:
// (Σ_{i≠j} k(x_i,x_j) + Σ_{i≠j} k(y_i,y_j)) / (m(m-1)) - 2 Σ k(x_i,y_j) / m².
func (k *kidKernel) mmd2() float64 {
	var next atomic.Int64
	var wg sync.WaitGroup
	workers := min(runtime.GOMAXPROCS(0), len(k.tiles))
	for range workers {
		wg.Go(func() {
			buf := make([]float64, kidTile*kidTile)
			for {
				t := int(next.Add(1) - 1)
				if t >= len(k.tiles) {
					return
				}
				k.sums[t] = k.tileSum(k.tiles[t], buf)
			}
		})
	}
	wg.Wait()
	var s [3]float64
	for t, job := range k.tiles {
		s[job.kind] += k.sums[t]
	}
	m := float64(k.m)
	// Tiles cover each unordered pair of X (of Y) once: twice that is the
	// sum over ordered pairs i ≠ j.
	return 2*(s[kidXX]+s[kidYY])/(m*(m-1)) - 2*s[kidXY]/(m*m)
}

// tileSum is the sum of (x·y/dim + 1)³ over a tile.
func (k *kidKernel) tileSum(t kidJob, buf []float64) float64 {
	d := k.dim
	rows, cols := t.i1-t.i0, t.j1-t.j0
	blas64.Implementation().Dgemm(blas.NoTrans, blas.Trans, rows, cols, d,
		1/float64(d), k.z[t.i0*d:], d, k.z[t.j0*d:], d, 0, buf, kidTile)
	var s float64
	for i := range rows {
		j := 0
		if t.diag {
			j = i + 1
		}
		for _, v := range buf[i*kidTile+j : i*kidTile+cols] {
			v++
			s += v * v * v
		}
	}
	return s
}
