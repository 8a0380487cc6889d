package eval

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// nearestRef is the obvious search: every distance, then a stable sort,
// which puts the lower index first among equal distances.
func nearestRef(query, set []float32, dim, k int) ([][]int, [][]float64) {
	var idx [][]int
	var dist [][]float64
	for q := 0; q < len(query)/dim; q++ {
		type cand struct {
			j int
			d float64
		}
		var cs []cand
		for j := 0; j < len(set)/dim; j++ {
			var s float64
			for i := range dim {
				d := float64(query[q*dim+i]) - float64(set[j*dim+i])
				s += d * d
			}
			cs = append(cs, cand{j, s})
		}
		slices.SortStableFunc(cs, func(a, b cand) int {
			switch {
			case a.d < b.d:
				return -1
			case a.d > b.d:
				return 1
			}
			return 0
		})
		var is []int
		var ds []float64
		for _, c := range cs[:k] {
			is, ds = append(is, c.j), append(ds, math.Sqrt(c.d))
		}
		idx, dist = append(idx, is), append(dist, ds)
	}
	return idx, dist
}

// randVecs are n vectors of dim values, each a small integer / 4 when
// coarse (so that many distances tie exactly), else uniform in [-1, 1].
func randVecs(rng *rand.Rand, n, dim int, coarse bool) []float32 {
	v := make([]float32, n*dim)
	for i := range v {
		if coarse {
			v[i] = float32(rng.IntN(3)) / 4
		} else {
			v[i] = float32(rng.Float64()*2 - 1)
		}
	}
	return v
}

func TestNearestMatchesReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		nq, ns, dim, k int
		coarse         bool
	}{
		{1, 1, 1, 1, false},
		{3, 50, 7, 1, false},
		{5, 200, 13, 4, false},
		// Longer than abandonEvery and not a multiple of 4: the early exit
		// and the tail loop.
		{4, 300, 517, 6, false},
		{9, 120, 3, 32, false},
		// Coarse values: many exact ties, which the lower index wins.
		{6, 400, 3, 1, true},
		{6, 400, 5, 7, true},
		{2, 64, 1, 20, true},
	} {
		q := randVecs(rng, c.nq, c.dim, c.coarse)
		s := randVecs(rng, c.ns, c.dim, c.coarse)
		idx, dist, err := Nearest(q, s, c.dim, c.k)
		require.NoError(t, err)
		wantIdx, wantDist := nearestRef(q, s, c.dim, c.k)
		require.Equal(t, wantIdx, idx, "%+v", c)
		for i := range dist {
			// Four partial sums instead of one: float64 rounding only.
			require.InDeltaSlice(t, wantDist[i], dist[i], 1e-12, "%+v", c)
		}
	}
}

func TestNearestTies(t *testing.T) {
	t.Parallel()
	// Vectors 1, 2 and 4 are the same point; 0 and 3 are farther.
	set := []float32{5, 5, 1, 1, 1, 1, 9, 9, 1, 1}
	idx, dist, err := Nearest([]float32{0, 0}, set, 2, 4)
	require.NoError(t, err)
	require.Equal(t, [][]int{{1, 2, 4, 0}}, idx)
	require.InDeltaSlice(t, []float64{math.Sqrt2, math.Sqrt2, math.Sqrt2, 5 * math.Sqrt2}, dist[0], 1e-12)

	// All equal across many chunks, which goroutines search in any order
	// and merge: still the lowest indices.
	same := make([]float32, 3*10*nearestChunk)
	idx, _, err = Nearest([]float32{1, 2, 3, 0, 0, 0}, same, 3, 5)
	require.NoError(t, err)
	require.Equal(t, [][]int{{0, 1, 2, 3, 4}, {0, 1, 2, 3, 4}}, idx)
}

// TestNearestFindsCopy: a training image used as a query is its own
// nearest neighbour, at distance exactly 0.
func TestNearestFindsCopy(t *testing.T) {
	t.Parallel()
	data := blobs(40, 3, 16, 3)
	per := 3 * 16 * 16
	for _, i := range []int{0, 17, 39} {
		q := slices.Clone(data.Pix[i*per : (i+1)*per])
		idx, dist, err := Nearest(q, data.Pix, per, 3)
		require.NoError(t, err)
		require.Equal(t, i, idx[0][0])
		require.Zero(t, dist[0][0])
		require.Positive(t, dist[0][1])
	}

	// The same through FindNearest in pixel space, which needs no device.
	samples := Images{Pix: slices.Clone(data.Pix[5*per : 7*per]), N: 2, C: 3, Size: 16}
	res, err := FindNearest(nil, samples, data, NearestOptions{K: 2})
	require.NoError(t, err)
	require.Equal(t, PixelSpace, res.Space)
	require.Equal(t, 5, res.Index[0][0])
	require.Equal(t, 6, res.Index[1][0])
	require.Zero(t, res.Dist[0][0])
}

func TestNearestErrors(t *testing.T) {
	t.Parallel()
	set := make([]float32, 12)
	for _, c := range []struct {
		query, set []float32
		dim, k     int
		err        string
	}{
		{[]float32{1, 2}, set, 0, 1, "dimension 0"},
		{[]float32{1, 2, 3}, set, 2, 1, "not whole vectors"},
		{nil, set, 2, 1, "no query"},
		{[]float32{1, 2}, set, 2, 0, "k = 0 must be in 1..32"},
		{[]float32{1, 2}, set, 2, 33, "k = 33 must be in 1..32"},
		{[]float32{1, 2}, set, 2, 7, "k = 7 but the set holds only 6 vectors"},
		{[]float32{1, 2, 3, float32(math.NaN())}, set, 2, 1, "query 1 holds NaN"},
		{[]float32{1, 2}, append([]float32{0, 0, float32(math.NaN()), 0}, set...), 2, 1, "set vector 1 holds NaN"},
	} {
		_, _, err := Nearest(c.query, c.set, c.dim, c.k)
		require.ErrorContains(t, err, c.err)
	}

	data := blobs(3, 3, 8, 1)
	_, err := FindNearest(nil, blobs(2, 3, 8, 2), data, NearestOptions{K: 4})
	require.ErrorContains(t, err, "k = 4 neighbours but the data set holds only 3 images")
	_, err = FindNearest(nil, blobs(2, 1, 8, 2), data, NearestOptions{K: 1})
	require.ErrorContains(t, err, "samples of 1x8x8 against data of 3x8x8")
	short := blobs(2, 3, 8, 2)
	short.N = 3
	_, err = FindNearest(nil, short, data, NearestOptions{K: 1})
	require.ErrorContains(t, err, "are not 3 and 3 images of 3x8x8")
}

func TestNearestRows(t *testing.T) {
	t.Parallel()
	// One-pixel grey images whose value is their identity.
	samples := Images{Pix: []float32{-1, -0.5}, N: 2, C: 1, Size: 1}
	data := Images{Pix: []float32{0, 0.25, 0.5, 0.75}, N: 4, C: 1, Size: 1}
	rows, err := NearestRows(samples, data, [][]int{{3, 0}, {1, 2}})
	require.NoError(t, err)
	require.Equal(t, Images{Pix: []float32{-1, 0.75, 0, -0.5, 0.25, 0.5}, N: 6, C: 1, Size: 1}, rows)

	_, err = NearestRows(samples, data, [][]int{{3, 0}, {4, 0}})
	require.ErrorContains(t, err, "neighbour 4 of sample 1")
	_, err = NearestRows(samples, data, [][]int{{3, 0}, {1}})
	require.ErrorContains(t, err, "sample 1 has 1 neighbours")
	_, err = NearestRows(samples, data, [][]int{{3, 0}})
	require.ErrorContains(t, err, "1 neighbour lists for 2 samples")
}

// BenchmarkNearestPixels is the pixel search of `vkgan sample -nearest`
// with its defaults: 8 samples of 3x64x64 against 10k images. Unrelated
// random images are the worst case for the early exit.
func BenchmarkNearestPixels(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const dim, ns, nq = 3 * 64 * 64, 10000, 8
	q, s := randVecs(rng, nq, dim, false), randVecs(rng, ns, dim, false)
	b.SetBytes(int64(4 * dim * ns))
	runs := 0
	for b.Loop() {
		if _, _, err := Nearest(q, s, dim, 5); err != nil {
			b.Fatal(err)
		}
		runs++
	}
	b.ReportMetric(float64(nq*ns*dim)*float64(runs)/b.Elapsed().Seconds()/1e9, "Gmadd/s")
}

// TestFindNearestInception: in feature space (random Inception weights) a
// copy of a data image is its own nearest neighbour, at distance ~0. It
// takes about 20 s on lavapipe, as the network runs at 299x299.
func TestFindNearestInception(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the Inception network is slow on a CPU device")
	}
	d := testDevice.Get(t)
	weights := randomInceptionFile(t)

	data := blobs(2, 3, 8, 4)
	data.Hash = "blobs-4"
	per := 3 * 8 * 8
	samples := Images{Pix: slices.Clone(data.Pix[per : 2*per]), N: 1, C: 3, Size: 8}
	cache := t.TempDir()
	res, err := FindNearest(d, samples, data, NearestOptions{K: 2, Inception: weights, Batch: 2, CacheDir: cache})
	require.NoError(t, err)
	require.Equal(t, InceptionSpace, res.Space)
	require.Equal(t, 1, res.Index[0][0])
	t.Logf("feature distances %v", res.Dist[0])
	// The same image through the same network; only the batch differs.
	require.Less(t, res.Dist[0][0], 1e-4*res.Dist[0][1])
	files, err := filepath.Glob(filepath.Join(cache, "features-*.safetensors"))
	require.NoError(t, err)
	require.Len(t, files, 1, "the data's features are cached, the samples' are not")
}
