package quality

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStatsMatchNumpy compares with numpy's mean(axis=0) and
// cov(rowvar=False) of the fixtures' features in float64, relative 1e-6
// (norm-wise: of the largest entry).
func TestStatsMatchNumpy(t *testing.T) {
	t.Parallel()
	const tol = 1e-6
	for _, name := range fidCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := loadFIDFixture(t, "testdata", name)
			for _, c := range []struct {
				set  string
				rows []float32
				want Stats
			}{{"a", f.a, f.numA}, {"b", f.b, f.numB}} {
				got, err := ComputeStats(c.rows, f.d)
				require.NoError(t, err)
				assert.Equal(t, c.want.N, got.N, c.set)
				assert.Equal(t, f.d, got.Dim, c.set)
				t.Logf("%s: mean rel %.1e, covariance rel %.1e", c.set, maxRelErr(got.Mu, c.want.Mu), maxRelErr(got.Sigma, c.want.Sigma))
				assert.LessOrEqual(t, maxRelErr(got.Mu, c.want.Mu), tol, "%s mean", c.set)
				assert.LessOrEqual(t, maxRelErr(got.Sigma, c.want.Sigma), tol, "%s covariance", c.set)
			}
		})
	}
}

// TestAccumulatorBatches: batches of any size, including one row and
// sizes that straddle the internal block, give the statistics of all rows
// at once, relative 1e-12.
func TestAccumulatorBatches(t *testing.T) {
	t.Parallel()
	f := loadFIDFixture(t, "testdata", "full")
	whole, err := ComputeStats(f.a, f.d)
	require.NoError(t, err)
	for _, batch := range []int{1, 7, accBlock - 1, accBlock + 1, 299} {
		acc, err := NewAccumulator(f.d)
		require.NoError(t, err)
		for rows := f.a; len(rows) > 0; {
			n := min(batch*f.d, len(rows))
			require.NoError(t, acc.Add(rows[:n]))
			rows = rows[n:]
		}
		require.NoError(t, acc.Add(nil), "an empty batch is no batch")
		got, err := acc.Stats()
		require.NoError(t, err)
		assert.Equal(t, whole.N, got.N)
		assert.Equal(t, whole.N, acc.N())
		assert.LessOrEqual(t, maxRelErr(got.Mu, whole.Mu), 1e-12, "batch %d mean", batch)
		assert.LessOrEqual(t, maxRelErr(got.Sigma, whole.Sigma), 1e-12, "batch %d covariance", batch)
	}
}

// TestAccumulatorLargeMean: a mean far from zero costs no precision, since
// blocks merge as sums of squares about their own means (the raw second
// moment minus mean² would lose the 1e-8 relative variance here to
// cancellation entirely). Relative 1e-9 against a two-pass reference.
func TestAccumulatorLargeMean(t *testing.T) {
	t.Parallel()
	const n, d = 1000, 3
	rows := make([]float32, n*d)
	for i := range n {
		for j := range d {
			// float32 holds 1e4 to within 1e-3, so the noise is exact.
			rows[i*d+j] = 1e4 + float32((i*(j+3))%17)*0.25
		}
	}
	got, err := ComputeStats(rows, d)
	require.NoError(t, err)
	mu := make([]float64, d)
	for i := range n {
		for j := range d {
			mu[j] += float64(rows[i*d+j]) / n
		}
	}
	sigma := make([]float64, d*d)
	for i := range n {
		for j := range d {
			for k := range d {
				sigma[j*d+k] += (float64(rows[i*d+j]) - mu[j]) * (float64(rows[i*d+k]) - mu[k]) / (n - 1)
			}
		}
	}
	assert.LessOrEqual(t, maxRelErr(got.Mu, mu), 1e-12)
	assert.LessOrEqual(t, maxRelErr(got.Sigma, sigma), 1e-9)
}

func TestAccumulatorRejects(t *testing.T) {
	t.Parallel()
	_, err := NewAccumulator(0)
	assert.ErrorIs(t, err, ErrShape)
	_, err = ComputeStats([]float32{1, 2, 3}, 2)
	assert.ErrorIs(t, err, ErrShape)
	assert.ErrorContains(t, err, "3 values are not whole rows of 2")

	acc, err := NewAccumulator(2)
	require.NoError(t, err)
	_, err = acc.Stats()
	assert.ErrorIs(t, err, ErrTooFew)
	require.NoError(t, acc.Add([]float32{1, 2, 3, 5}))
	before, err := acc.Stats()
	require.NoError(t, err)
	err = acc.Add([]float32{1, 1, 2, float32(math.Inf(-1))})
	assert.ErrorIs(t, err, ErrNonFinite)
	assert.ErrorContains(t, err, "row 1 of the batch, value 1 is -Inf")
	after, err := acc.Stats()
	require.NoError(t, err)
	assert.Equal(t, before, after, "a bad batch changes nothing")
	assert.Equal(t, Stats{N: 2, Dim: 2, Mu: []float64{2, 3.5}, Sigma: []float64{2, 3, 3, 4.5}}, after)
}

// BenchmarkStats times the statistics of 10,000 vectors of 2,048, Inception
// pool features' shape, and reports GFLOPS (N·Dim²/2 multiply-adds).
func BenchmarkStats(b *testing.B) {
	const n, d = 10000, 2048
	rows := randomFeatures(1, n, d)
	b.SetBytes(int64(len(rows) * 4))
	b.ResetTimer()
	for b.Loop() {
		if _, err := ComputeStats(rows, d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(n*d*d*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
}
