package quality

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vkgan/internal/safetensors"
)

// fidFixture is one testdata/fid_<name>.safetensors file, written by
// testdata/make_fid_fixtures.py (its docstring describes the contents).
type fidFixture struct {
	name       string
	d          int
	a, b       []float32 // features, rows of d
	numA, numB Stats     // numpy's mean and cov
	kid        []Subset  // the subsets numpy drew
	kidMMD2    []float64 // numpy's MMD² per subset
	meta       map[string]string
}

// fidCases are the fixture files, each a case make_fid_fixtures.py writes.
var fidCases = []string{"small", "full", "singular", "dead"}

func loadFIDFixture(t testing.TB, dir, name string) fidFixture {
	t.Helper()
	ts, meta, err := safetensors.ReadFile(filepath.Join(dir, "fid_"+name+".safetensors"))
	require.NoError(t, err)
	byName := map[string]safetensors.Tensor{}
	for _, x := range ts {
		byName[x.Name] = x
	}
	get := func(n string, dt safetensors.DType) safetensors.Tensor {
		x, ok := byName[n]
		require.True(t, ok, "%s: no tensor %q", name, n)
		require.Equal(t, dt, x.DType, "%s: %s", name, n)
		return x
	}
	f := fidFixture{name: name, meta: meta}
	a, b := get("a", safetensors.F32), get("b", safetensors.F32)
	f.d = a.Shape[1]
	f.a, f.b = a.F32, b.F32
	stats := func(mu, sigma string, n int) Stats {
		return Stats{N: n, Dim: f.d, Mu: get(mu, safetensors.F64).F64, Sigma: get(sigma, safetensors.F64).F64}
	}
	f.numA = stats("mu_a", "sigma_a", a.Shape[0])
	f.numB = stats("mu_b", "sigma_b", b.Shape[0])
	kx, ky := get("kid_x", safetensors.I64), get("kid_y", safetensors.I64)
	s, m := kx.Shape[0], kx.Shape[1]
	for i := range s {
		var sub Subset
		for j := range m {
			sub.X = append(sub.X, int(kx.I64[i*m+j]))
			sub.Y = append(sub.Y, int(ky.I64[i*m+j]))
		}
		f.kid = append(f.kid, sub)
	}
	f.kidMMD2 = get("kid_mmd2", safetensors.F64).F64
	return f
}

// num is a float from the fixture's metadata.
func (f fidFixture) num(t testing.TB, key string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(f.meta[key], 64)
	require.NoError(t, err, "%s: metadata %q", f.name, key)
	return v
}

// relErr is |got-want| / |want|.
func relErr(got, want float64) float64 { return math.Abs(got-want) / math.Abs(want) }

// maxRelErr is max |got-want| / max |want|: a norm-wise relative error, so
// that entries near zero do not dominate.
func maxRelErr(got, want []float64) float64 {
	var e, w float64
	for i := range want {
		e = max(e, math.Abs(got[i]-want[i]))
		w = max(w, math.Abs(want[i]))
	}
	return e / w
}

// TestFIDMatchesScipy compares with pytorch-fid's formula (scipy's sqrtm)
// and with the exact value from a symmetric eigensolve, relative 1e-6, on
// numpy's statistics and on ours. Where pytorch-fid had to add its 1e-6
// offset (the dead-channel case) its value is a different distance: there
// we check the gap stays the size the offset makes, relative 1e-3.
func TestFIDMatchesScipy(t *testing.T) {
	t.Parallel()
	const tol, epsTol = 1e-6, 1e-3
	for _, name := range fidCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := loadFIDFixture(t, "testdata", name)
			exact, scipy := f.num(t, "fid_exact"), f.num(t, "fid_scipy")
			usedEps := f.meta["scipy_eps"] == "true"
			ourA, err := ComputeStats(f.a, f.d)
			require.NoError(t, err)
			ourB, err := ComputeStats(f.b, f.d)
			require.NoError(t, err)
			for _, c := range []struct {
				stats string
				a, b  Stats
			}{{"numpy's stats", f.numA, f.numB}, {"our stats", ourA, ourB}} {
				r, err := FID(c.a, c.b)
				require.NoError(t, err)
				t.Logf("%s: FID %.15g, exact %.15g (rel %.1e), scipy %.15g (rel %.1e, offset %v)",
					c.stats, r.FID, exact, relErr(r.FID, exact), scipy, relErr(r.FID, scipy), usedEps)
				assert.LessOrEqual(t, relErr(r.FID, exact), tol, "%s vs exact", c.stats)
				if usedEps {
					assert.LessOrEqual(t, relErr(r.FID, scipy), epsTol, "%s vs scipy with its offset", c.stats)
				} else {
					assert.LessOrEqual(t, relErr(r.FID, scipy), tol, "%s vs scipy", c.stats)
				}
				assert.Equal(t, c.a.Singular() || c.b.Singular(), r.Warning != "", "warning %q", r.Warning)
			}
			if name == "dead" {
				assert.True(t, usedEps, "the dead-channel case should make sqrtm fail")
			}
		})
	}
}

// TestFIDClosedForm checks cases with a known answer: covariances that
// commute (FID = |Δmu|² + Σ (sqrt(a_i) - sqrt(b_i))² over their common
// eigenvalues a_i, b_i) and a rank-one S1 = vvᵀ (Tr sqrt(S1 S2) =
// sqrt(vᵀ S2 v)), relative 1e-9.
func TestFIDClosedForm(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 7))
	const d = 6
	q := randomOrthogonal(r, d)
	rotate := func(diag []float64) []float64 { // Q diag Qᵀ
		s := make([]float64, d*d)
		for i := range d {
			for j := range d {
				for k := range d {
					s[i*d+j] += q[i*d+k] * diag[k] * q[j*d+k]
				}
			}
		}
		symmetrise(s, d)
		return s
	}
	muA, muB := []float64{1, 0, 0, 0, 0, 0}, []float64{0, 2, 0, 0, 0, -1}
	ea, eb := []float64{4, 1, 0.25, 9, 2, 0}, []float64{1, 1, 1, 4, 0.5, 3}
	var want float64
	for i := range d {
		want += (muA[i]-muB[i])*(muA[i]-muB[i]) + (math.Sqrt(ea[i])-math.Sqrt(eb[i]))*(math.Sqrt(ea[i])-math.Sqrt(eb[i]))
	}
	v := []float64{0.5, -1, 2, 0, 0.25, 1}
	rank1 := make([]float64, d*d)
	for i := range d {
		for j := range d {
			rank1[i*d+j] = v[i] * v[j]
		}
	}
	s2 := rotate(eb)
	var vSv float64
	for i := range d {
		for j := range d {
			vSv += v[i] * s2[i*d+j] * v[j]
		}
	}
	var trS1, trS2 float64
	for i := range d {
		trS1 += rank1[i*d+i]
		trS2 += s2[i*d+i]
	}
	zero := make([]float64, d)
	cases := []struct {
		name string
		a, b Stats
		want float64
	}{
		{"diagonal", Stats{N: 100, Dim: d, Mu: muA, Sigma: diagonal(ea)}, Stats{N: 100, Dim: d, Mu: muB, Sigma: diagonal(eb)}, want},
		{"rotated", Stats{N: 100, Dim: d, Mu: muA, Sigma: rotate(ea)}, Stats{N: 100, Dim: d, Mu: muB, Sigma: rotate(eb)}, want},
		{"rank one", Stats{N: 100, Dim: d, Mu: zero, Sigma: rank1}, Stats{N: 100, Dim: d, Mu: zero, Sigma: s2}, trS1 + trS2 - 2*math.Sqrt(vSv)},
		{"zero covariance", Stats{N: 100, Dim: d, Mu: muA, Sigma: make([]float64, d*d)}, Stats{N: 100, Dim: d, Mu: zero, Sigma: s2}, 1 + trS2},
		{"one dimension", Stats{N: 3, Dim: 1, Mu: []float64{1}, Sigma: []float64{4}}, Stats{N: 3, Dim: 1, Mu: []float64{3}, Sigma: []float64{9}}, 4 + 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, swap := range []bool{false, true} {
				a, b := c.a, c.b
				if swap {
					a, b = b, a
				}
				r, err := FID(a, b)
				require.NoError(t, err)
				assert.InDelta(t, c.want, r.FID, 1e-9*c.want, "swapped %v", swap)
				assert.Empty(t, r.Warning)
			}
		})
	}
}

// TestFIDSelf: a set against itself is 0 up to rounding, relative to the
// covariances' traces (which FID subtracts from each other).
func TestFIDSelf(t *testing.T) {
	t.Parallel()
	f := loadFIDFixture(t, "testdata", "full")
	r, err := FID(f.numA, f.numA)
	require.NoError(t, err)
	var tr float64
	for i := range f.d {
		tr += f.numA.Sigma[i*f.d+i]
	}
	assert.InDelta(t, 0, r.FID, 1e-10*tr)
}

func TestFIDWarnsWhenSingular(t *testing.T) {
	t.Parallel()
	f := loadFIDFixture(t, "testdata", "full")
	few := f.numA
	few.N = f.d // same matrix; only the count matters to the warning
	for _, c := range []struct {
		a, b Stats
		want string
	}{
		{few, f.numB, "the first covariance is singular (64 samples for 64 dimensions)"},
		{f.numB, few, "the second covariance is singular (64 samples for 64 dimensions)"},
		{few, few, "both covariances are singular (64 and 64 samples for 64 dimensions)"},
	} {
		r, err := FID(c.a, c.b)
		require.NoError(t, err)
		assert.Contains(t, r.Warning, c.want)
	}
}

func TestFIDRejects(t *testing.T) {
	t.Parallel()
	good := Stats{N: 10, Dim: 2, Mu: []float64{0, 1}, Sigma: []float64{2, 0.5, 0.5, 1}}
	with := func(f func(s *Stats)) Stats {
		s := good
		s.Mu = append([]float64(nil), good.Mu...)
		s.Sigma = append([]float64(nil), good.Sigma...)
		f(&s)
		return s
	}
	cases := []struct {
		name    string
		a, b    Stats
		is      error
		problem string
	}{
		{"dims differ", good, Stats{N: 10, Dim: 1, Mu: []float64{0}, Sigma: []float64{1}}, ErrShape, "set a has dimension 2, set b 1"},
		{"zero dim", good, Stats{N: 10}, ErrShape, "set b: dimension 0"},
		{"short mean", with(func(s *Stats) { s.Mu = s.Mu[:1] }), good, ErrShape, "set a: 1 mean values for dimension 2"},
		{"short sigma", good, with(func(s *Stats) { s.Sigma = s.Sigma[:3] }), ErrShape, "set b: 3 covariance values"},
		{"one sample", with(func(s *Stats) { s.N = 1 }), good, ErrTooFew, "set a: 1 samples"},
		{"NaN mean", good, with(func(s *Stats) { s.Mu[1] = math.NaN() }), ErrNonFinite, "set b: mean[1] = NaN"},
		{"infinite sigma", with(func(s *Stats) { s.Sigma[3] = math.Inf(1) }), good, ErrNonFinite, "set a: covariance[1][1] = +Inf"},
		{"asymmetric", with(func(s *Stats) { s.Sigma[1] = 0.4 }), good, ErrNotCovariance, "covariance[0][1] = 0.4 but [1][0] = 0.5"},
		{"negative variance", good, with(func(s *Stats) { s.Sigma[0] = -1 }), ErrNotCovariance, "set b: variance 0 is -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := FID(c.a, c.b)
			require.ErrorIs(t, err, c.is)
			assert.ErrorContains(t, err, c.problem)
			assert.ErrorContains(t, err, "quality: fid: ")
		})
	}
}

// TestFixturesRegenerate reruns make_fid_fixtures.py and checks that it
// still writes what is committed: the features and subsets exactly, the
// numbers to relative 1e-9 (another numpy or LAPACK rounds differently),
// but the square-root terms of singular covariances only to sqrt(eps).
// A mismatch means the script changed without the fixtures, or numpy or
// scipy now computes something else. It needs /usr/bin/python3 with numpy
// and scipy (Debian's python3-numpy and python3-scipy); the other tests
// never do.
func TestFixturesRegenerate(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy, scipy.linalg").Run(); err != nil {
		t.Skipf("%s with numpy and scipy not available: %v", py, err)
	}
	t.Parallel()
	out := t.TempDir()
	cmd := exec.Command(py, filepath.Join("testdata", "make_fid_fixtures.py"), "--out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	log, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	t.Logf("%s", log)
	const tol = 1e-9
	// The square root of a singular matrix keeps only about half of
	// float64's digits (sqrt(eps) = 1.5e-8): its zero eigenvalues come out
	// as +-eps times the largest, and their roots as sqrt of that. So the
	// distances of the cases with singular covariances (too few samples;
	// dead channels) differ with the BLAS kernels: against OpenBLAS's AVX2
	// kernels, which wrote the fixtures, its AVX-512 and Sandy Bridge ones
	// and the reference BLAS are up to 1.7e-9 off.
	const sqrtTol = 1.5e-8
	for _, name := range fidCases {
		want, got := loadFIDFixture(t, "testdata", name), loadFIDFixture(t, out, name)
		assert.Equal(t, want.a, got.a, "%s: features a", name)
		assert.Equal(t, want.b, got.b, "%s: features b", name)
		assert.Equal(t, want.kid, got.kid, "%s: KID subsets", name)
		for _, p := range [][2][]float64{
			{want.numA.Mu, got.numA.Mu}, {want.numA.Sigma, got.numA.Sigma},
			{want.numB.Mu, got.numB.Mu}, {want.numB.Sigma, got.numB.Sigma},
			{want.kidMMD2, got.kidMMD2},
		} {
			assert.LessOrEqual(t, maxRelErr(p[1], p[0]), tol, name)
		}
		for _, k := range []string{"fid_scipy", "fid_exact", "tr_sqrt_exact", "kid_mean", "kid_std"} {
			kt := tol
			if (name == "singular" || name == "dead") && k != "kid_mean" && k != "kid_std" {
				kt = sqrtTol
			}
			assert.LessOrEqual(t, relErr(got.num(t, k), want.num(t, k)), kt, "%s: %s", name, k)
		}
		assert.Equal(t, want.meta["scipy_eps"], got.meta["scipy_eps"], name)
	}
}

// BenchmarkFID times FID at Inception's 2048 dimensions, full rank.
func BenchmarkFID(b *testing.B) {
	const d = 2048
	a, c := benchStats(b, d, 3*d, 1), benchStats(b, d, 3*d, 2)
	b.ResetTimer()
	for b.Loop() {
		if _, err := FID(a, c); err != nil {
			b.Fatal(err)
		}
	}
}

// benchStats is the Stats of n random correlated non-negative vectors.
func benchStats(b *testing.B, d, n int, seed uint64) Stats {
	b.Helper()
	s, err := ComputeStats(randomFeatures(seed, n, d), d)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// randomFeatures are n vectors of d non-negative, correlated values, as
// pooled ReLU activations are: each the ReLU of a sum of a few shared
// random directions plus noise.
func randomFeatures(seed uint64, n, d int) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	const k = 8
	dirs := make([]float64, k*d)
	for i := range dirs {
		dirs[i] = r.NormFloat64()
	}
	out := make([]float32, n*d)
	var z [k]float64
	for i := range n {
		for j := range z {
			z[j] = r.NormFloat64()
		}
		for j := range d {
			v := 0.2*r.NormFloat64() + 0.1
			for l := range z {
				v += 0.3 * z[l] * dirs[l*d+j]
			}
			out[i*d+j] = float32(max(v, 0))
		}
	}
	return out
}

// randomOrthogonal is a d×d orthogonal matrix (Gram-Schmidt on Gaussians).
func randomOrthogonal(r *rand.Rand, d int) []float64 {
	q := make([]float64, d*d)
	for i := range q {
		q[i] = r.NormFloat64()
	}
	for i := range d {
		row := q[i*d : (i+1)*d]
		for k := range i {
			prev := q[k*d : (k+1)*d]
			var dot float64
			for j := range d {
				dot += row[j] * prev[j]
			}
			for j := range d {
				row[j] -= dot * prev[j]
			}
		}
		var norm float64
		for _, v := range row {
			norm += v * v
		}
		norm = math.Sqrt(norm)
		for j := range row {
			row[j] /= norm
		}
	}
	return q
}

func diagonal(v []float64) []float64 {
	d := len(v)
	s := make([]float64, d*d)
	for i, x := range v {
		s[i*d+i] = x
	}
	return s
}

// symmetrise averages s with its transpose, removing rounding asymmetry.
func symmetrise(s []float64, d int) {
	for i := range d {
		for j := i + 1; j < d; j++ {
			m := (s[i*d+j] + s[j*d+i]) / 2
			s[i*d+j], s[j*d+i] = m, m
		}
	}
}
