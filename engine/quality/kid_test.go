package quality

import (
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKIDMatchesNumpy runs the fixtures' subsets, drawn by numpy, through
// KIDSubsets and compares with the float64 numpy port of torch-fidelity's
// estimator: the mean, the std and each subset's MMD², relative 1e-6 (of
// the largest |MMD²| for the per-subset values, which can be near 0).
func TestKIDMatchesNumpy(t *testing.T) {
	t.Parallel()
	const tol = 1e-6
	for _, name := range fidCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := loadFIDFixture(t, "testdata", name)
			r, err := KIDSubsets(f.a, f.b, f.d, f.kid)
			require.NoError(t, err)
			mean, std := f.num(t, "kid_mean"), f.num(t, "kid_std")
			t.Logf("KID %.15g ± %.15g, numpy %.15g ± %.15g", r.Mean, r.Std, mean, std)
			assert.LessOrEqual(t, relErr(r.Mean, mean), tol, "mean")
			assert.LessOrEqual(t, relErr(r.Std, std), tol, "std")
			assert.LessOrEqual(t, maxRelErr(r.MMD2, f.kidMMD2), tol, "per subset")
			assert.Equal(t, len(f.kid[0].X), r.SubsetSize)
			assert.Empty(t, r.Warning)
		})
	}
}

// TestKIDWorkersAgree: the result does not depend on how many goroutines
// computed the tiles, bit for bit.
func TestKIDWorkersAgree(t *testing.T) {
	f := loadFIDFixture(t, "testdata", "full")
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var results []KIDResult
	for _, p := range []int{1, 3, 8} {
		runtime.GOMAXPROCS(p)
		r, err := KIDSubsets(f.a, f.b, f.d, f.kid)
		require.NoError(t, err)
		results = append(results, r)
	}
	for _, r := range results[1:] {
		assert.Equal(t, results[0], r)
	}
}

// TestKIDSeeded: KID draws its subsets from its seed alone.
func TestKIDSeeded(t *testing.T) {
	t.Parallel()
	f := loadFIDFixture(t, "testdata", "full")
	opt := KIDOptions{Subsets: 5, SubsetSize: 50, Seed: 3}
	r1, err := KID(f.a, f.b, f.d, &opt)
	require.NoError(t, err)
	r2, err := KID(f.a, f.b, f.d, &opt)
	require.NoError(t, err)
	assert.Equal(t, r1, r2)
	require.Len(t, r1.MMD2, 5)
	assert.Equal(t, 50, r1.SubsetSize)

	subs, err := DrawSubsets(300, 260, 50, 5, 3)
	require.NoError(t, err)
	r3, err := KIDSubsets(f.a, f.b, f.d, subs)
	require.NoError(t, err)
	assert.Equal(t, r1, r3, "KID is KIDSubsets on DrawSubsets")

	opt.Seed = 4
	r4, err := KID(f.a, f.b, f.d, &opt)
	require.NoError(t, err)
	assert.NotEqual(t, r1.MMD2, r4.MMD2)
}

// TestDrawSubsets: rows in range, none repeated within a subset, and the
// draw itself pinned, so that a change to math/rand/v2's PCG or IntN (which
// would change every KID a seed gives) fails here.
func TestDrawSubsets(t *testing.T) {
	t.Parallel()
	subs, err := DrawSubsets(10, 7, 4, 3, 1)
	require.NoError(t, err)
	require.Len(t, subs, 3)
	for _, s := range subs {
		for _, p := range []struct {
			rows []int
			n    int
		}{{s.X, 10}, {s.Y, 7}} {
			require.Len(t, p.rows, 4)
			sorted := slices.Sorted(slices.Values(p.rows))
			assert.Equal(t, len(sorted), len(slices.Compact(sorted)), "repeated row in %v", p.rows)
			for _, r := range p.rows {
				assert.True(t, r >= 0 && r < p.n, "row %d of %d", r, p.n)
			}
		}
	}
	assert.Equal(t, []Subset{
		{X: []int{9, 3, 0, 8}, Y: []int{6, 3, 2, 4}},
		{X: []int{4, 7, 8, 1}, Y: []int{2, 3, 1, 6}},
		{X: []int{9, 6, 8, 1}, Y: []int{1, 5, 6, 4}},
	}, subs)
	full, err := DrawSubsets(5, 5, 5, 2, 9)
	require.NoError(t, err)
	for _, s := range full {
		assert.ElementsMatch(t, []int{0, 1, 2, 3, 4}, s.X)
		assert.ElementsMatch(t, []int{0, 1, 2, 3, 4}, s.Y)
	}
	for _, bad := range [][4]int{{10, 7, 8, 1}, {10, 7, 0, 1}, {10, 7, 2, -1}} {
		_, err := DrawSubsets(bad[0], bad[1], bad[2], bad[3], 1)
		assert.ErrorIs(t, err, ErrShape, "%v", bad)
	}
}

// TestKIDSmallSets: sets below the subset size give smaller subsets and a
// warning (torch-fidelity refuses them); when every subset would be the
// whole of both sets, one is computed.
func TestKIDSmallSets(t *testing.T) {
	t.Parallel()
	f := loadFIDFixture(t, "testdata", "singular") // 40 and 50 samples
	r, err := KID(f.a, f.b, f.d, &KIDOptions{Subsets: 4})
	require.NoError(t, err)
	assert.Equal(t, 40, r.SubsetSize)
	assert.Len(t, r.MMD2, 4)
	assert.Contains(t, r.Warning, "subsets of 40 samples instead of 1000: the sets have 40 and 50")

	b := f.b[:40*f.d]
	r, err = KID(f.a, b, f.d, nil)
	require.NoError(t, err)
	require.Len(t, r.MMD2, 1)
	assert.Equal(t, 0.0, r.Std)
	whole, err := KIDSubsets(f.a, b, f.d, []Subset{{X: identity(40), Y: identity(40)}})
	require.NoError(t, err)
	assert.InDelta(t, whole.Mean, r.Mean, 1e-12*math.Abs(whole.Mean), "the one subset is all of both sets")
}

func TestKIDRejects(t *testing.T) {
	t.Parallel()
	x := []float32{1, 2, 3, 4, 5, 6} // 3 rows of 2
	y := []float32{0, 1, 1, 0}       // 2 rows of 2
	nan := []float32{1, 2, float32(math.NaN()), 4}
	two := []int{0, 1}
	cases := []struct {
		name    string
		err     error
		is      error
		problem string
	}{
		{"zero dim", kidErr(KID(x, y, 0, nil)), ErrShape, "feature dimension 0"},
		{"partial row", kidErr(KID(x[:5], y, 2, nil)), ErrShape, "x: 5 values are not whole rows of 2"},
		{"one sample", kidErr(KID(x, y[:2], 2, nil)), ErrTooFew, "y: 1 samples"},
		{"NaN", kidErr(KID(x, nan, 2, nil)), ErrNonFinite, "y: row 1, value 0 is NaN"},
		{"bad options", kidErr(KID(x, y, 2, &KIDOptions{Subsets: -1, SubsetSize: -2})), nil, "Subsets -1 must be positive\nSubsetSize -2 must be positive"},
		{"no subsets", kidErr(KIDSubsets(x, y, 2, nil)), ErrTooFew, "no subsets"},
		{"subset of one", kidErr(KIDSubsets(x, y, 2, []Subset{{X: []int{0}, Y: []int{0}}})), ErrTooFew, "subsets of 1 rows"},
		{"sizes differ", kidErr(KIDSubsets(x, y, 2, []Subset{{X: two, Y: two}, {X: []int{0, 1, 2}, Y: two}})), ErrShape, "subset 1 has 3 and 2 rows"},
		{"row out of range", kidErr(KIDSubsets(x, y, 2, []Subset{{X: two, Y: []int{0, 2}}})), ErrShape, "row 2 of y, which has 2"},
		{"negative row", kidErr(KIDSubsets(x, y, 2, []Subset{{X: []int{-1, 0}, Y: two}})), ErrShape, "row -1 of x"},
		{"repeated row", kidErr(KIDSubsets(x, y, 2, []Subset{{X: []int{1, 1}, Y: two}})), ErrShape, "row 1 of x twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Error(t, c.err)
			if c.is != nil {
				assert.ErrorIs(t, c.err, c.is)
			}
			assert.ErrorContains(t, c.err, c.problem)
			assert.ErrorContains(t, c.err, "quality: kid")
		})
	}
}

func kidErr(_ KIDResult, err error) error { return err }

// BenchmarkKID times KID at its defaults (100 subsets of 1,000) on 10,000
// against 10,000 vectors of 2,048, and reports the kernel's GFLOPS.
func BenchmarkKID(b *testing.B) {
	const n, d = 10000, 2048
	x, y := randomFeatures(1, n, d), randomFeatures(2, n, d)
	b.ResetTimer()
	for b.Loop() {
		if _, err := KID(x, y, d, nil); err != nil {
			b.Fatal(err)
		}
	}
	// Upper tiles of the 2m×2m kernel matrix: about 2m² dot products of d.
	flops := float64(KIDDefaultSubsets) * 2 * 2 * KIDDefaultSubsetSize * KIDDefaultSubsetSize * d
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}
