package engine

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// tuneOp is one GEMM-shaped op on fixed inputs: run records it into fresh
// outputs and returns them with their float64 references.
type tuneOp struct {
	name string
	run  func(t *testing.T, d *Device) (got [][]float32, want [][]float64)
}

// tuneOps cover every igemm mode on odd shapes: matmul with and without
// 4-wide loads and transposes (mode 0), the unpadded and padded
// convolution forward (1, 4) and backward-weights (3, 5) paths and the
// parity-class backward-data (2).
func tuneOps() []tuneOp {
	rng := newRand(14)
	gemm := func(M, N, K int, transA, transB, bias bool) tuneOp {
		av, bv, biasv := randSlice(rng, M*K), randSlice(rng, K*N), randSlice(rng, N)
		return tuneOp{fmt.Sprintf("gemm_%dx%dx%d_t%v%v", M, N, K, transA, transB), func(t *testing.T, d *Device) ([][]float32, [][]float64) {
			as, bs := []int{M, K}, []int{K, N}
			if transA {
				as = []int{K, M}
			}
			if transB {
				bs = []int{N, K}
			}
			a, b, c := tensorOf(t, d, av, as...), tensorOf(t, d, bv, bs...), zeros(t, d, M, N)
			var bt *Tensor
			var bref []float32
			if bias {
				bt, bref = tensorOf(t, d, biasv, N), biasv
			}
			run(t, d, func(r *Recorder) error { return r.Gemm(c, a, b, transA, transB, 1, 0, bt) })
			return [][]float32{download(t, c)}, [][]float64{refGemm(av, bv, M, N, K, transA, transB, 1, 0, nil, bref)}
		}}
	}
	conv := func(s convShape) tuneOp {
		oh, ow := s.out()
		xv, wv, rv := randSlice(rng, s.N*s.Cin*s.H*s.W), randSlice(rng, s.Cout*s.Cin*s.KH*s.KW), randSlice(rng, s.N*s.Cout*oh*ow)
		return tuneOp{"conv_" + s.String(), func(t *testing.T, d *Device) ([][]float32, [][]float64) {
			x, w, dy := tensorOf(t, d, xv, s.N, s.Cin, s.H, s.W), tensorOf(t, d, wv, s.Cout, s.Cin, s.KH, s.KW), tensorOf(t, d, rv, s.N, s.Cout, oh, ow)
			y, dx, dw := zeros(t, d, s.N, s.Cout, oh, ow), zeros(t, d, s.N, s.Cin, s.H, s.W), zeros(t, d, s.Cout, s.Cin, s.KH, s.KW)
			p := ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P}
			run(t, d, func(r *Recorder) error {
				r.Conv2D(y, x, w, p)
				r.Conv2DBackwardData(dx, dy, w, p)
				return r.Conv2DBackwardWeights(dw, dy, x, p)
			})
			wantDx, wantDw := refConvGrads(xv, wv, rv, s)
			return [][]float32{download(t, y), download(t, dx), download(t, dw)}, [][]float64{refConv(xv, wv, s), wantDx, wantDw}
		}}
	}
	return []tuneOp{
		gemm(7, 13, 5, false, false, false),
		gemm(9, 12, 8, false, false, true), // 4-wide loads of A and B
		gemm(17, 9, 33, true, false, false),
		gemm(5, 8, 12, false, true, true),
		conv(convShape{2, 3, 9, 9, 5, 4, 4, 2, 1}),   // padded paths (modes 4, 5), 4 parity classes
		conv(convShape{2, 16, 8, 8, 5, 4, 4, 2, 1}),  // spread weights (K 256), quad loads in modes 4-6
		conv(convShape{1, 6, 11, 13, 9, 5, 3, 2, 2}), // unpadded paths (modes 1, 3)
	}
}

// TestGemmCandidates runs tuning candidates of every GEMM the ops record,
// chosen through a tuning table as a tuned run would, against the float64
// references, so that no tuned choice can be wrong: every candidate of
// the first op (an odd matmul), and for the others (every other mode and
// load path) every TM, SG and I64 choice at the largest workgroup. The
// workgroup size only sets the grid, and each (mode, loads) pair costs
// one pipeline compile per candidate (about 0.8 s each on lavapipe
// without the pipeline cache). Tolerances are the GEMM tests' (relative
// 1e-4, absolute 2e-4; 2e-3 for dw, a sum over batch and pixels).
func TestGemmCandidates(t *testing.T) {
	d := newTestDevice(t)
	t.Cleanup(func() { d.SetTuning(nil) })
	for i, op := range tuneOps() {
		t.Run(op.name, func(t *testing.T) {
			var got [][]float32
			var want [][]float64
			shapes, err := d.CaptureGemms(func() error { got, want = op.run(t, d); return nil })
			require.NoError(t, err)
			require.NotEmpty(t, shapes)
			worst := 0.0
			check := func(what string) {
				for i := range want {
					atol := gemmAtol
					if i == 2 {
						atol *= 10
					}
					assertClose(t, fmt.Sprintf("%s output %d", what, i), want[i], got[i], gemmRtol, atol)
					worst = max(worst, maxAbsDiff(want[i], got[i]))
				}
			}
			defer func() { t.Logf("max |error| over every candidate: %.3g", worst) }()
			check("default")
			for _, s := range shapes {
				cands := d.GemmCandidates(s)
				require.Equal(t, s.Default(), cands[0], "%s: the default comes first", s)
				if i > 0 {
					maxWG := slices.MaxFunc(cands, func(a, b GemmVariant) int { return cmp.Compare(a.WG, b.WG) }).WG
					cands = slices.DeleteFunc(cands, func(v GemmVariant) bool { return v.WG != maxWG })
				}
				t.Logf("%s: %d candidates", s, len(cands))
				for _, v := range cands {
					if v == s.Default() {
						continue
					}
					tab := d.NewTuning()
					tab.SetVariant(s, v)
					d.SetTuning(tab)
					require.Equal(t, v, d.GemmVariantFor(s))
					got, want = op.run(t, d)
					d.SetTuning(nil)
					check(s.String() + " " + v.String())
					if t.Failed() {
						return
					}
				}
			}
		})
	}
}

// TestGemmCandidatesEnumerate checks the candidate set on this device:
// every workgroup 8..256, TM 4/8/16, SG and I64 both ways where allowed,
// Tex both ways with I64 on CPU devices, no duplicates, all valid.
func TestGemmCandidatesEnumerate(t *testing.T) {
	d := newTestDevice(t)
	a, b, c := zeros(t, d, 3, 5), zeros(t, d, 5, 7), zeros(t, d, 3, 7)
	shapes, err := d.CaptureGemms(func() error {
		return d.Run(func(r *Recorder) error { return r.MatMul(c, a, b) })
	})
	require.NoError(t, err)
	require.Len(t, shapes, 1)
	cands := d.GemmCandidates(shapes[0])
	want := 6 * 3
	if d.hasSubgroupTiles() {
		want *= 2
	}
	switch {
	case d.info.Limits.ShaderInt64 && d.class == ClassCPU:
		want *= 3 // 32-bit, 64-bit, 64-bit with texel loads
	case d.info.Limits.ShaderInt64:
		want *= 2
	}
	require.Len(t, cands, want)
	seen := map[GemmVariant]bool{}
	for _, v := range cands {
		require.False(t, seen[v], "duplicate %s", v)
		seen[v] = true
		require.NoError(t, d.igemmOK(v, shapes[0].call))
	}
	require.Error(t, d.igemmOK(GemmVariant{Kernel: KernelIgemm, WG: 48, TM: 16}, shapes[0].call))
	require.Error(t, d.igemmOK(GemmVariant{Kernel: KernelIgemm, WG: 64, TM: 2}, shapes[0].call))
	require.Error(t, d.igemmOK(GemmVariant{Kernel: "nope", WG: 64, TM: 16}, shapes[0].call))
	require.Error(t, d.igemmOK(GemmVariant{Kernel: KernelIgemm, WG: 64, TM: 16, Tex: true}, shapes[0].call), "tex without i64")
}

// TestTuningChangesVariant: a table that picks a non-default variant
// makes igemm build and dispatch that variant's pipeline, with the same
// numbers as the default within fp32 tolerance; nil restores the default.
func TestTuningChangesVariant(t *testing.T) {
	d := newTestDevice(t)
	t.Cleanup(func() { d.SetTuning(nil) })
	rng := newRand(15)
	const M, N, K = 37, 29, 19
	av, bv := randSlice(rng, M*K), randSlice(rng, K*N)
	a, b := tensorOf(t, d, av, M, K), tensorOf(t, d, bv, K, N)
	c0, c1 := zeros(t, d, M, N), zeros(t, d, M, N)
	shapes, err := d.CaptureGemms(func() error {
		return d.Run(func(r *Recorder) error { return r.MatMul(c0, a, b) })
	})
	require.NoError(t, err)
	require.Len(t, shapes, 1)
	s := shapes[0]
	require.Equal(t, s.Default(), d.GemmVariantFor(s), "no table: the heuristics")
	// A variant unlike the default in every field it can differ in.
	v := GemmVariant{Kernel: KernelIgemm, WG: 16, TM: 4, SG: !s.Default().SG && d.hasSubgroupTiles(), I64: false}
	if s.Default().WG == 16 {
		v.WG = 32
	}
	require.NoError(t, d.igemmOK(v, s.call))
	pipe := fmt.Sprintf("igemm:%d:%d:%d:0:0:%d:0:0:0:0:0", modeMatMul, v.WG, b2u(v.SG), v.TM) // quad B, B^T and A^T loads, activation and row sums off
	// Forget the pipeline should an earlier test have built it (the vk
	// device still owns and destroys it), so only this dispatch can
	// build it again.
	d.mu.Lock()
	delete(d.pipes, pipe)
	d.mu.Unlock()
	tab := d.NewTuning()
	tab.SetVariant(s, v)
	d.SetTuning(tab)
	run(t, d, func(r *Recorder) error { return r.MatMul(c1, a, b) })
	d.mu.Lock()
	_, after := d.pipes[pipe]
	d.mu.Unlock()
	require.True(t, after, "the table's variant %s was not dispatched", v)
	assertClose(t, "tuned vs default", to64(download(t, c0)), download(t, c1), 1e-5, 1e-6)
	t.Logf("%s vs default %s: max |difference| %.3g", v, s.Default(), maxAbsDiff(to64(download(t, c0)), download(t, c1)))
	assertClose(t, "tuned vs reference", refGemm(av, bv, M, N, K, false, false, 1, 0, nil, nil), download(t, c1), gemmRtol, gemmAtol)
	// A table entry the device cannot run falls back to the default.
	tab.SetVariant(s, GemmVariant{Kernel: KernelIgemm, WG: 4096, TM: 16})
	require.Equal(t, s.Default(), d.GemmVariantFor(s))
}

// TestAutoTune: with AutoTune on, recording a shape the table lacks
// tunes it once (every candidate screened, the finalists timed), stores
// the winner and runs it; the same shape recorded again is not retuned.
func TestAutoTune(t *testing.T) {
	d := newTestDevice(t)
	t.Cleanup(func() { d.SetTuning(nil); d.AutoTune(0, nil) })
	rng := newRand(16)
	const M, N, K = 7, 13, 5 // the candidates' pipelines are TestGemmCandidates'
	av, bv := randSlice(rng, M*K), randSlice(rng, K*N)
	a, b, c := tensorOf(t, d, av, M, K), tensorOf(t, d, bv, K, N), zeros(t, d, M, N)
	tab := d.NewTuning()
	d.SetTuning(tab)
	var results []TuneResult
	d.AutoTune(1, func(r TuneResult, err error) {
		require.NoError(t, err)
		results = append(results, r)
	})
	for i := 0; i < 2; i++ {
		run(t, d, func(r *Recorder) error { return r.MatMul(c, a, b) })
	}
	require.Len(t, results, 1)
	r := results[0]
	require.Equal(t, 1, tab.Len())
	require.True(t, tab.Has(r.Shape))
	require.Greater(t, r.Candidates, 1)
	require.Greater(t, r.DefaultMs, 0.0)
	require.LessOrEqual(t, r.BestMs, r.DefaultMs)
	require.Equal(t, r.Best, d.GemmVariantFor(r.Shape))
	assertClose(t, "c", refGemm(av, bv, M, N, K, false, false, 1, 0, nil, nil), download(t, c), gemmRtol, gemmAtol)
	t.Logf("%s: default %s %.3f ms, best %s %.3f ms", r.Shape, r.Default, r.DefaultMs, r.Best, r.BestMs)
}

// TestTuningFile: a saved table loads back; a table measured for another
// driver or kernel build, a corrupt file or another version is ignored
// with a warning, never an error; a missing file is an empty table.
func TestTuningFile(t *testing.T) {
	d := newTestDevice(t)
	a, b, c := zeros(t, d, 6, 10), zeros(t, d, 10, 3), zeros(t, d, 6, 3)
	shapes, err := d.CaptureGemms(func() error {
		return d.Run(func(r *Recorder) error { return r.MatMul(c, a, b) })
	})
	require.NoError(t, err)
	s := shapes[0]
	v := GemmVariant{Kernel: KernelIgemm, WG: 32, TM: 8}
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "table.json")

	tab, warn := d.LoadTuning(path)
	require.Empty(t, warn, "a missing file is no warning")
	require.Equal(t, 0, tab.Len())
	tab.SetVariant(s, v)
	require.NoError(t, tab.Save(path))
	back, warn := d.LoadTuning(path)
	require.Empty(t, warn)
	require.Equal(t, 1, back.Len())
	require.True(t, back.Has(s))
	got, ok := back.lookup(s.Key())
	require.True(t, ok)
	require.Equal(t, v, got)
	require.Equal(t, tab.Entries(), back.Entries())

	id := d.TuningID()
	for name, mod := range map[string]func(*TuningID){
		"driver":  func(id *TuningID) { id.DriverInfo += " (updated)" },
		"version": func(id *TuningID) { id.DriverVersion += ".1" },
		"shaders": func(id *TuningID) { id.Shaders = strings.Repeat("0", 64) },
		"device":  func(id *TuningID) { id.DeviceID++ },
	} {
		other := id
		mod(&other)
		require.NotEqual(t, id.fileKey(), other.fileKey(), "%s: a new file name", name)
		stale, warn := loadTuning(path, other)
		require.Contains(t, warn, "another device, driver or kernel build", name)
		require.Equal(t, 0, stale.Len(), name)
	}

	for name, body := range map[string]string{
		"truncated":  `{"version": 1, "id": {`,
		"not json":   "\x00\x01garbage",
		"no entries": `{"version": 1}`,
		"version":    `{"version": 99, "entries": {}}`,
	} {
		require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
		bad, warn := d.LoadTuning(path)
		require.NotEmpty(t, warn, name)
		require.Contains(t, warn, path, name)
		require.NotContains(t, warn, "\n", "%s: one line", name)
		require.Equal(t, 0, bad.Len(), name)
	}

	p, err := d.TuningPath()
	require.NoError(t, err)
	require.Equal(t, id.fileKey()+".json", filepath.Base(p))
	require.Equal(t, "tune", filepath.Base(filepath.Dir(p)))
}

// TestTunedTiledVariant: on a GPU-class device the candidates include the
// tiled core's tilings, and a table that picks one (unsplit, or split
// where the default would not) runs it correctly.
func TestTunedTiledVariant(t *testing.T) {
	d := newTestDevice(t)
	saved := d.class
	d.class = ClassGPU
	t.Cleanup(func() { d.class = saved; d.SetTuning(nil) })
	const M, N, K = 37, 53, 611
	rng := rand.New(rand.NewPCG(3, 4))
	av, bv := randSlice(rng, M*K), randSlice(rng, K*N)
	a, b, c := tensorOf(t, d, av, M, K), tensorOf(t, d, bv, K, N), zeros(t, d, M, N)
	mm := func() error { return d.Run(func(r *Recorder) error { return r.MatMul(c, a, b) }) }
	shapes, err := d.CaptureGemms(mm)
	require.NoError(t, err)
	require.Len(t, shapes, 1)
	s := shapes[0]
	require.Equal(t, KernelTiled, s.Default().Kernel, "a GPU-class device defaults to the tiled core")
	want := refGemm(av, bv, M, N, K, false, false, 1, 0, nil, nil)
	var tiled []GemmVariant
	for _, v := range d.GemmCandidates(s) {
		if v.Kernel == KernelTiled && v != s.Default() {
			tiled = append(tiled, v)
		}
	}
	require.NotEmpty(t, tiled)
	picks := []GemmVariant{tiled[0], tiled[len(tiled)-1]}
	split := tiledVariant(tileSmall)
	split.S = 4 // a split the default would not choose for this short K
	picks = append(picks, split)
	for _, v := range picks {
		tab := d.NewTuning()
		tab.SetVariant(s, v)
		d.SetTuning(tab)
		require.Equal(t, v, d.GemmVariantFor(s))
		require.NoError(t, mm())
		assertClose(t, v.String(), want, download(t, c), gemmRtol, gemmAtol)
		require.True(t, strings.HasPrefix(v.String(), "igemm_tiled "), v.String())
	}
}

// TestTimeGemmRowSums times a weight gradient that also sums dy's columns
// (SUM_A, a linear layer's bias gradient) with a variant that sums them as
// it goes and one that takes a BiasGrad of its own: the tuner's flat
// buffers once made the second fail (vkgan tune -model toy).
func TestTimeGemmRowSums(t *testing.T) {
	d := newTestDevice(t)
	dy, x := zeros(t, d, 16, 8), zeros(t, d, 16, 12)
	dw, db := zeros(t, d, 8, 12), zeros(t, d, 8)
	shapes, err := d.CaptureGemms(func() error {
		return d.Run(func(r *Recorder) error {
			return r.gemm(dw, dy, x, true, false, 1, 0, nil, gemmAct{}, db)
		})
	})
	require.NoError(t, err)
	require.Len(t, shapes, 1)
	require.True(t, shapes[0].call.g.sumA)
	vs := []GemmVariant{shapes[0].Default()}
	for _, v := range d.GemmCandidates(shapes[0]) {
		if v.Kernel == KernelIgemm && !v.SG {
			vs = append(vs, v)
			break
		}
	}
	require.Len(t, vs, 2, "a variant without subgroup tiles")
	ms, err := d.TimeGemm(shapes[0], vs, 1)
	require.NoError(t, err)
	require.Len(t, ms, 2)
}
