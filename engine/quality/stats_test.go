package quality

import (
	"bufio"
	"bytes"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vkgan/internal/safetensors"
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

// TestSaveLoadStats: statistics come back bit for bit with their metadata,
// and numpy reads the file (through scripts/safetensors_check.py, when
// /usr/bin/python3 has numpy).
func TestSaveLoadStats(t *testing.T) {
	t.Parallel()
	f := loadFIDFixture(t, "testdata", "small")
	path := filepath.Join(t.TempDir(), "ref.safetensors")
	meta := map[string]string{"note": "ünï", "size": "12"}
	require.NoError(t, SaveStats(path, f.numA, meta))
	got, gotMeta, err := LoadStats(path)
	require.NoError(t, err)
	assert.Equal(t, f.numA, got)
	assert.Equal(t, meta, gotMeta)

	const py = "/usr/bin/python3"
	if exec.Command(py, "-c", "import numpy").Run() != nil {
		t.Logf("%s with numpy not available: not checking that numpy reads the file", py)
		return
	}
	cmd := exec.Command(py, "scripts/safetensors_check.py", path)
	cmd.Dir = filepath.Join("..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	var lines []string
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		fields := strings.Split(sc.Text(), "\t")
		lines = append(lines, strings.Join(fields[:3], " "))
	}
	assert.Equal(t, []string{"mu F64 [8]", "sigma F64 [8, 8]", "n I64 []"}, lines)
}

func TestSaveStatsRejects(t *testing.T) {
	t.Parallel()
	f := loadFIDFixture(t, "testdata", "small")
	dir := t.TempDir()
	path := filepath.Join(dir, "ref.safetensors")
	err := SaveStats(path, f.numA, map[string]string{"format": "mine"})
	assert.ErrorContains(t, err, `metadata key "format" is reserved`)
	one := f.numA
	one.N = 1
	assert.ErrorIs(t, SaveStats(path, one, nil), ErrTooFew)
	short := f.numA
	short.Mu = short.Mu[:3]
	assert.ErrorIs(t, SaveStats(path, short, nil), ErrShape)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing written")
}

func TestLoadStatsRejects(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, ts []safetensors.Tensor, md map[string]string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, safetensors.WriteFile(path, ts, md))
		return path
	}
	ours := map[string]string{"format": statsFormat}
	mu := safetensors.Tensor{Name: "mu", DType: safetensors.F64, Shape: []int{2}, F64: []float64{0, 1}}
	sigma := safetensors.Tensor{Name: "sigma", DType: safetensors.F64, Shape: []int{2, 2}, F64: []float64{1, 0, 0, 1}}
	n := safetensors.Tensor{Name: "n", DType: safetensors.I64, Shape: []int{}, I64: []int64{5}}
	asym := sigma
	asym.F64 = []float64{1, 0.5, 0, 1}
	f32 := mu
	f32.DType, f32.F64, f32.F32 = safetensors.F32, nil, []float32{0, 1}
	cases := []struct {
		name, path string
		is         error
		problem    string
	}{
		{"checkpoint", write("G.safetensors", []safetensors.Tensor{mu}, nil), ErrFormat, `format "", want "vkgan-feature-stats-1"`},
		{"newer format", write("v2.safetensors", []safetensors.Tensor{mu, sigma, n}, map[string]string{"format": "vkgan-feature-stats-2"}), ErrFormat, "format"},
		{"missing n", write("non.safetensors", []safetensors.Tensor{mu, sigma}, ours), ErrFormat, "2 tensors"},
		{"float32 mean", write("f32.safetensors", []safetensors.Tensor{f32, sigma, n}, ours), ErrFormat, "mu is F32 [2], want F64"},
		{"sigma wrong shape", write("shape.safetensors", []safetensors.Tensor{mu, {Name: "sigma", DType: safetensors.F64, Shape: []int{4}, F64: []float64{1, 0, 0, 1}}, n}, ours), ErrFormat, "sigma is F64 [4] for mu [2]"},
		{"asymmetric", write("asym.safetensors", []safetensors.Tensor{mu, asym, n}, ours), ErrNotCovariance, "asym.safetensors: covariance[0][1]"},
		{"missing file", filepath.Join(dir, "none.safetensors"), fs.ErrNotExist, "load statistics"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, md, err := LoadStats(c.path)
			require.ErrorIs(t, err, c.is)
			assert.ErrorContains(t, err, c.problem)
			assert.Nil(t, md)
		})
	}
	garbage := filepath.Join(dir, "garbage.safetensors")
	require.NoError(t, os.WriteFile(garbage, []byte("not safetensors"), 0o644))
	_, _, err := LoadStats(garbage)
	var fe *safetensors.FormatError
	assert.ErrorAs(t, err, &fe)
}

// TestCachedStats: the cache finds statistics under their key only.
func TestCachedStats(t *testing.T) {
	t.Parallel()
	f := loadFIDFixture(t, "testdata", "small")
	dir := t.TempDir()
	k := Key{DataHash: "d1", Size: 12, Mode: "rgb-64", WeightsHash: "w1"}
	_, err := LoadCached(dir, k)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.NoError(t, SaveCached(dir, k, f.numA))
	got, err := LoadCached(dir, k)
	require.NoError(t, err)
	assert.Equal(t, f.numA, got)

	// The name is pinned: a change orphans every user's cache.
	assert.Equal(t, "fidstats-66e5ddb0bea4530f.safetensors", k.Filename())
	others := []Key{
		{DataHash: "d2", Size: 12, Mode: "rgb-64", WeightsHash: "w1"},
		{DataHash: "d1", Size: 13, Mode: "rgb-64", WeightsHash: "w1"},
		{DataHash: "d1", Size: 12, Mode: "rgb-32", WeightsHash: "w1"},
		{DataHash: "d1", Size: 12, Mode: "rgb-64", WeightsHash: "w2"},
	}
	for _, o := range others {
		assert.NotEqual(t, k.Filename(), o.Filename(), "%+v", o)
		err := o.Check(k.Meta())
		assert.ErrorIs(t, err, ErrStale, "%+v", o)
		// A file under the wrong name (copied by hand) is caught too.
		data, err := os.ReadFile(filepath.Join(dir, k.Filename()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, o.Filename()), data, 0o644))
		_, err = LoadCached(dir, o)
		assert.ErrorIs(t, err, ErrStale, "%+v", o)
	}
	assert.ErrorContains(t, others[1].Check(k.Meta()), `have size "12", want "13"`)
	assert.ErrorContains(t, k.Check(map[string]string{}), "have no data_hash")
	assert.ErrorIs(t, SaveCached(dir, others[1], f.numA), ErrShape, "13 samples asked for, 12 given")
}
