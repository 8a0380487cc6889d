package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/shaders"
)

// TestTexelLoads runs the GEMM and convolution paths that take texel loads
// on CPU devices (igemm_tex: aligned A and B of a matmul, the padded conv
// forward's quad B loads, a transposed B's column loads, the packed
// backward-data's A) with texel loads
// and with storage-buffer loads only (forceNoTexel). Both read the same
// floats in the same order, so they must agree bit for bit, and both must
// match the float64 reference. Shapes are odd where the paths allow:
// partial tiles in M, K not a multiple of the tile, few rows.
func TestTexelLoads(t *testing.T) {
	d := newTestDevice(t)
	if d.class != ClassCPU || !d.info.Limits.ShaderInt64 {
		t.Skipf("texel loads serve CPU devices with 64-bit integers; %s is not one", d.info.Name)
	}
	rng := newRand(16)
	type kase struct {
		name string
		run  func(r *Recorder) error
		out  *Tensor
		want []float64
	}
	var cases []kase
	for _, s := range [][3]int{{37, 36, 20}, {64, 128, 64}, {5, 8, 4}, {130, 4, 260}} {
		M, N, K := s[0], s[1], s[2]
		av, bv := randSlice(rng, M*K), randSlice(rng, K*N)
		a, b, c := tensorOf(t, d, av, M, K), tensorOf(t, d, bv, K, N), zeros(t, d, M, N)
		cases = append(cases, kase{fmt.Sprintf("matmul %dx%dx%d", M, N, K), func(r *Recorder) error { return r.MatMul(c, a, b) }, c,
			refGemm(av, bv, M, N, K, false, false, 1, 0, nil, nil)})
	}
	for _, s := range [][3]int{{37, 36, 20}, {64, 8, 4}} {
		M, N, K := s[0], s[1], s[2]
		av, bv := randSlice(rng, M*K), randSlice(rng, N*K)
		a, b, c := tensorOf(t, d, av, M, K), tensorOf(t, d, bv, N, K), zeros(t, d, M, N)
		cases = append(cases, kase{fmt.Sprintf("A*B^T %dx%dx%d", M, N, K), func(r *Recorder) error { return r.Gemm(c, a, b, false, true, 1, 0, nil) }, c,
			refGemm(av, bv, M, N, K, false, true, 1, 0, nil, nil)})
	}
	for _, s := range []convShape{
		{2, 12, 16, 16, 20, 4, 4, 2, 1}, // DCGAN's discriminator geometry
		{1, 3, 32, 32, 8, 4, 4, 2, 1},   // three input channels
		{3, 8, 8, 8, 35, 4, 4, 2, 1},    // output channels not a multiple of the tile
	} {
		oh, ow := s.out()
		xv, wv := randSlice(rng, s.N*s.Cin*s.H*s.W), randSlice(rng, s.Cout*s.Cin*s.KH*s.KW)
		x, w, y := tensorOf(t, d, xv, s.N, s.Cin, s.H, s.W), tensorOf(t, d, wv, s.Cout, s.Cin, s.KH, s.KW), zeros(t, d, s.N, s.Cout, oh, ow)
		p := ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P}
		cases = append(cases, kase{"conv " + s.String(), func(r *Recorder) error { return r.Conv2D(y, x, w, p) }, y, refConv(xv, wv, s)})
		rv := randSlice(rng, s.N*s.Cout*oh*ow)
		dy, dx := tensorOf(t, d, rv, s.N, s.Cout, oh, ow), zeros(t, d, s.N, s.Cin, s.H, s.W)
		wantDx, _ := refConvGrads(xv, wv, rv, s)
		cases = append(cases, kase{"backward-data " + s.String(), func(r *Recorder) error { return r.Conv2DBackwardData(dx, dy, w, p) }, dx, wantDx})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got [2][]float32
			for i, noTexel := range []bool{false, true} {
				forceNoTexel = noTexel
				var names []string
				run(t, d, func(r *Recorder) error {
					r.EnableProfile()
					err := c.run(r)
					names = r.profNames
					return err
				})
				forceNoTexel = false
				require.Equal(t, !noTexel, slices.Contains(names, "igemm_tex"), "texel loads %v, kernels %v", !noTexel, names)
				got[i] = download(t, c.out)
				assertClose(t, c.name, c.want, got[i], gemmRtol, gemmAtol)
			}
			for j := range got[0] {
				if math.Float32bits(got[0][j]) != math.Float32bits(got[1][j]) {
					t.Fatalf("element %d: %g with texel loads, %g without: want the same bits", j, got[0][j], got[1][j])
				}
			}
		})
	}
}

// TestGemmTransposedB checks A*B^T with B's columns read as aligned
// 4-float loads (VEC_BT) against the element-by-element gather it replaces
// (forceNoVecBT) and the float64 reference, with and without texel loads,
// on shapes with partial tiles, alpha, beta and a bias; K % 4 != 0 takes
// the gather either way. Both read the same values in the same order, so
// they must agree bit for bit.
func TestGemmTransposedB(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(18)
	for _, s := range [][3]int{{37, 36, 20}, {130, 13, 64}, {5, 8, 4}, {70, 44, 18}, {64, 1, 200}} {
		M, N, K := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("%dx%dx%d", M, N, K), func(t *testing.T) {
			av, bv, cv, biasv := randSlice(rng, M*K), randSlice(rng, N*K), randSlice(rng, M*N), randSlice(rng, N)
			a, b, bias := tensorOf(t, d, av, M, K), tensorOf(t, d, bv, N, K), tensorOf(t, d, biasv, N)
			want := refGemm(av, bv, M, N, K, false, true, 0.5, 2, cv, biasv)
			var got [2][]float32
			for _, noTexel := range []bool{false, true} {
				for i, gather := range []bool{false, true} {
					c := tensorOf(t, d, cv, M, N)
					forceNoTexel, forceNoVecBT = noTexel, gather
					run(t, d, func(r *Recorder) error { return r.Gemm(c, a, b, false, true, 0.5, 2, bias) })
					forceNoTexel, forceNoVecBT = false, false
					got[i] = download(t, c)
					assertClose(t, fmt.Sprintf("texel %v, gather %v", !noTexel, gather), want, got[i], gemmRtol, gemmAtol)
				}
				if K%4 == 0 {
					require.True(t, vecBTBuilt(d), "no igemm pipeline with VEC_BT was built")
				}
				for j := range got[0] {
					if math.Float32bits(got[0][j]) != math.Float32bits(got[1][j]) {
						t.Fatalf("element %d: %g with column loads, %g gathered: want the same bits", j, got[0][j], got[1][j])
					}
				}
			}
		})
	}
}

// TestGemmTransposedA checks A^T*B with a lane's four rows of A read as
// one aligned load a k (VEC_AT) against the element-by-element loads it
// replaces (forceNoVecAT) and the float64 reference, with and without
// texel loads, on shapes with partial tiles and chunks (K % 4 != 0),
// alpha, beta, a bias and B transposed too. Both read the same values in
// the same order, so they must agree bit for bit.
func TestGemmTransposedA(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(19)
	for _, s := range []struct {
		m, n, k int
		tb      bool
	}{{64, 37, 20, false}, {36, 13, 64, false}, {128, 44, 18, false}, {96, 5, 7, true}, {32, 1, 200, false}, {100, 128, 1024, false},
		{64, 36, 12, false}, {32, 8, 10, false}} { // whole chunks with B's rows aligned (running offsets), and a partial one
		M, N, K := s.m, s.n, s.k
		t.Run(fmt.Sprintf("%dx%dx%d_tb%v", M, N, K, s.tb), func(t *testing.T) {
			_, _, br, bc := gemmOperandShapes(M, N, K, true, s.tb)
			av, bv, cv, biasv := randSlice(rng, M*K), randSlice(rng, N*K), randSlice(rng, M*N), randSlice(rng, N)
			a, b, bias := tensorOf(t, d, av, K, M), tensorOf(t, d, bv, br, bc), tensorOf(t, d, biasv, N)
			want := refGemm(av, bv, M, N, K, true, s.tb, 0.5, 2, cv, biasv)
			var got [2][]float32
			for _, noTexel := range []bool{false, true} {
				for i, scalar := range []bool{false, true} {
					c := tensorOf(t, d, cv, M, N)
					forceNoTexel, forceNoVecAT = noTexel, scalar
					run(t, d, func(r *Recorder) error { return r.Gemm(c, a, b, true, s.tb, 0.5, 2, bias) })
					forceNoTexel, forceNoVecAT = false, false
					got[i] = download(t, c)
					assertClose(t, fmt.Sprintf("texel %v, scalar %v", !noTexel, scalar), want, got[i], gemmRtol, gemmAtol)
				}
				for j := range got[0] {
					if math.Float32bits(got[0][j]) != math.Float32bits(got[1][j]) {
						t.Fatalf("element %d: %g with row loads, %g element by element: want the same bits", j, got[0][j], got[1][j])
					}
				}
			}
		})
	}
	if d.subgroupTiles() { // GPUs take the tiled core
		require.True(t, igemmBuilt(d, func(spec []string) bool { return spec[8] == "1" }), "no igemm pipeline with VEC_AT was built")
	}
}

// vecBTBuilt reports whether d has built an igemm pipeline with VEC_BT
// set.
func vecBTBuilt(d *Device) bool {
	return igemmBuilt(d, func(spec []string) bool { return spec[7] == "1" })
}

// igemmBuilt reports whether d built an igemm pipeline (any variant but
// the tiled core) whose specialization constants satisfy ok.
func igemmBuilt(d *Device, ok func(spec []string) bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for key := range d.pipes {
		f := strings.Split(key, ":")
		switch f[0] {
		case shaders.Igemm.Name, shaders.IgemmI64.Name, shaders.IgemmTex.Name:
			if ok(f[1:]) {
				return true
			}
		}
	}
	return false
}

// TestQuadWeights checks the padded backward-weights with each chunk's
// taps read as three aligned loads (QUAD_B in mode 5) against the two
// 64-bit words per k it replaces (forceNoQuadWeights) and the float64
// reference, with and without texel loads. Both read the same values in
// the same order, so they must agree bit for bit. The last shape's output
// width is not a multiple of 4, which takes the words either way.
func TestQuadWeights(t *testing.T) {
	d := newTestDevice(t)
	if !d.subgroupTiles() {
		t.Skipf("the padded paths serve CPU devices; %s is not one", d.info.Name)
	}
	rng := newRand(19)
	for _, s := range []convShape{
		{2, 12, 16, 16, 20, 4, 4, 2, 1}, // DCGAN's discriminator geometry
		{3, 3, 32, 32, 8, 4, 4, 2, 1},   // three input channels
		{2, 5, 8, 8, 37, 4, 4, 2, 1},    // output channels not a multiple of the tile
		{2, 4, 12, 12, 6, 4, 4, 2, 1},   // 6x6 output: no quads
	} {
		t.Run(s.String(), func(t *testing.T) {
			c := newConvGradCase(t, d, rng, s)
			compareWays(t, d, [2]string{"quad loads", "words"}, c.dw, c.w.shape,
				func(old bool) { forceNoQuadWeights = old },
				func(r *Recorder, dw *Tensor) error { return r.Conv2DBackwardWeights(dw, c.dy, c.x, c.p) })
			if _, ow := s.out(); ow%4 == 0 {
				quad := igemmBuilt(d, func(spec []string) bool {
					return spec[0] == fmt.Sprint(modeConvBackwardWeightsPadded) && spec[6] == "1"
				})
				require.True(t, quad, "no backward-weights pipeline with quad loads was built")
			}
		})
	}
}

// TestQuadBwdData checks the packed backward-data reading dy zero-padded
// with aligned quad loads (QUAD_B in mode 6) against the bounds-checked
// gather it replaces (forceNoQuadBwdData) and the float64 reference, with
// and without texel loads: the same values in the same order, so the same
// bits. The last shape's width is not a multiple of 8, which gathers
// either way.
func TestQuadBwdData(t *testing.T) {
	d := newTestDevice(t)
	if d.class != ClassCPU {
		t.Skipf("the packed backward-data serves CPU devices; %s is not one", d.info.Name)
	}
	rng := newRand(20)
	for _, s := range []convShape{
		{2, 12, 16, 16, 20, 4, 4, 2, 1}, // DCGAN's discriminator geometry
		{2, 3, 32, 32, 8, 4, 4, 2, 1},   // G's last layer: three rows
		{3, 37, 8, 8, 5, 4, 4, 2, 1},    // rows not a multiple of the tile
		{2, 4, 12, 12, 6, 4, 4, 2, 1},   // 12 wide: gathered
	} {
		t.Run(s.String(), func(t *testing.T) {
			c := newConvGradCase(t, d, rng, s)
			compareWays(t, d, [2]string{"quad loads", "gathered"}, c.dx, c.x.shape,
				func(old bool) { forceNoQuadBwdData = old },
				func(r *Recorder, dx *Tensor) error { return r.Conv2DBackwardData(dx, c.dy, c.w, c.p) })
			if s.W%8 == 0 {
				quad := igemmBuilt(d, func(spec []string) bool { return spec[0] == fmt.Sprint(modeConvBackwardDataPacked) && spec[6] == "1" })
				require.True(t, quad, "no backward-data pipeline with quad loads was built")
			}
		})
	}
}

// compareWays records op into a fresh zero tensor of the given shape the
// new way (set(false)) and the way it replaces (set(true)), each with and
// without texel loads, checks every result against the float64 reference
// and requires the two ways' bits to agree: they read the same values in
// the same order.
func compareWays(t *testing.T, d *Device, names [2]string, want []float64, shape []int, set func(old bool), op func(r *Recorder, out *Tensor) error) {
	t.Helper()
	for _, noTexel := range []bool{false, true} {
		var got [2][]float32
		for i, old := range []bool{false, true} {
			out := zeros(t, d, shape...)
			forceNoTexel = noTexel
			set(old)
			err := d.Run(func(r *Recorder) error { return op(r, out) })
			forceNoTexel = false
			set(false)
			require.NoError(t, err)
			got[i] = download(t, out)
			assertClose(t, fmt.Sprintf("texel %v, %s", !noTexel, names[i]), want, got[i], gemmRtol, gemmAtol)
		}
		requireSameBits(t, names, got)
	}
}

// requireSameBits fails unless got[0] and got[1] agree bit for bit.
func requireSameBits(t *testing.T, names [2]string, got [2][]float32) {
	t.Helper()
	for j := range got[0] {
		if math.Float32bits(got[0][j]) != math.Float32bits(got[1][j]) {
			t.Fatalf("element %d: %g with %s, %g with %s: want the same bits", j, got[0][j], names[0], got[1][j], names[1])
		}
	}
}

// convGradCase is a convolution's seeded inputs on a device and its
// float64 reference gradients.
type convGradCase struct {
	x, w, dy *Tensor
	dx, dw   []float64
	p        ConvParams
}

func newConvGradCase(t *testing.T, d *Device, rng *rand.Rand, s convShape) convGradCase {
	oh, ow := s.out()
	xv, wv, rv := randSlice(rng, s.N*s.Cin*s.H*s.W), randSlice(rng, s.Cout*s.Cin*s.KH*s.KW), randSlice(rng, s.N*s.Cout*oh*ow)
	c := convGradCase{
		x:  tensorOf(t, d, xv, s.N, s.Cin, s.H, s.W),
		w:  tensorOf(t, d, wv, s.Cout, s.Cin, s.KH, s.KW),
		dy: tensorOf(t, d, rv, s.N, s.Cout, oh, ow),
		p:  ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P},
	}
	c.dx, c.dw = refConvGrads(xv, wv, rv, s)
	return c
}
