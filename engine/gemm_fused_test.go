package engine

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGemmActivation checks the matmul epilogue's activations (gemmAct):
// forward, C = f(A*B + bias), and derivative, C = (A*B) * f'(saved), for
// every activation, on shapes that take the general epilogue (ldc % 4 !=
// 0) and the vector one, with A or B transposed. Each must equal the GEMM
// followed by the separate activation kernel bit for bit (the toy's and
// the DCGAN's runs reproduce with or without the fusion) and the float64
// reference within rounding. On GPU-class devices (TestGPUClassKernels)
// it runs the tiled core; TestTiledGemmActivation covers its split-K.
func TestGemmActivation(t *testing.T) {
	d := newTestDevice(t)
	testGemmActivation(t, d, func(r *Recorder, c, a, b *Tensor, tc gemmCase, bias *Tensor, act gemmAct) error {
		return r.gemm(c, a, b, tc.transA, tc.transB, tc.alpha, tc.beta, bias, act, nil)
	})
}

// TestTiledGemmActivation is TestGemmActivation through the tiled core,
// whole and split along K (igemm_reduce applies the epilogue).
func TestTiledGemmActivation(t *testing.T) {
	d := newTestDevice(t)
	cfgs := d.tiledConfigs()
	require.NotEmpty(t, cfgs, "no tiled configuration fits the device")
	for _, s := range []int{1, 3} {
		cfg := cfgs[0]
		cfg.S = s
		t.Run(cfg.String(), func(t *testing.T) {
			testGemmActivation(t, d, func(r *Recorder, c, a, b *Tensor, tc gemmCase, bias *Tensor, act gemmAct) error {
				return tiledGemmAct(r, cfg, c, a, b, tc.transA, tc.transB, tc.alpha, tc.beta, bias, act)
			})
		})
	}
}

type gemmActFn func(r *Recorder, c, a, b *Tensor, tc gemmCase, bias *Tensor, act gemmAct) error

func testGemmActivation(t *testing.T, d *Device, gemm gemmActFn) {
	rng := newRand(21)
	cases := []gemmCase{
		{7, 13, 5, false, false, 1, 0, true},      // general epilogue
		{64, 128, 64, false, true, 1, 0, true},    // a linear layer's forward, vector epilogue
		{33, 20, 100, true, false, 0.5, 1, false}, // A^T, beta
		{32, 128, 36, false, false, 1, 0, false},  // a linear layer's input gradient
		{9, 6, 2, false, true, 1, 0, true},        // the toy's first layer, K = 2
	}
	for _, tc := range cases {
		ashape, bshape := []int{tc.M, tc.K}, []int{tc.K, tc.N}
		if tc.transA {
			ashape = []int{tc.K, tc.M}
		}
		if tc.transB {
			bshape = []int{tc.N, tc.K}
		}
		av, bv, cv := randSlice(rng, tc.M*tc.K), randSlice(rng, tc.K*tc.N), randSlice(rng, tc.M*tc.N)
		var biasv []float32
		if tc.bias {
			biasv = randSlice(rng, tc.N)
		}
		v := refGemm(av, bv, tc.M, tc.N, tc.K, tc.transA, tc.transB, float64(tc.alpha), float64(tc.beta), cv, biasv)
		for _, ea := range ewActs {
			for _, grad := range []bool{false, true} {
				name := fmt.Sprintf("%dx%dx%d_ta%v_tb%v/%s/grad%v", tc.M, tc.N, tc.K, tc.transA, tc.transB, ea.name, grad)
				t.Run(name, func(t *testing.T) {
					act := gemmAct{on: true, op: ea.op, slope: ewSlope}
					var savedv []float32
					bias := (*Tensor)(nil)
					if tc.bias && !grad {
						bias = tensorOf(t, d, biasv, tc.N)
					}
					want := make([]float64, len(v))
					if grad {
						// Saved outputs in the activation's range, with
						// zeros for ReLU's and LeakyReLU's boundary.
						savedv = randSlice(rng, len(v))
						for i := range savedv {
							switch {
							case ea.op == ewSigmoid:
								savedv[i] = 0.5 + savedv[i]/2
							case i%7 == 0:
								savedv[i] = 0
							}
						}
						act.saved = tensorOf(t, d, savedv, tc.M, tc.N)
					}
					w := v
					if grad && tc.bias { // the derivative takes no bias
						w = refGemm(av, bv, tc.M, tc.N, tc.K, tc.transA, tc.transB, float64(tc.alpha), float64(tc.beta), cv, nil)
					}
					for i, x := range w {
						if grad {
							want[i] = x * actDerivRef(ea.op, float64(savedv[i]), ewSlope)
						} else {
							want[i] = actRef(ea.op, x, ewSlope)
						}
					}
					a, b := tensorOf(t, d, av, ashape...), tensorOf(t, d, bv, bshape...)
					fused, sep := tensorOf(t, d, cv, tc.M, tc.N), tensorOf(t, d, cv, tc.M, tc.N)
					run(t, d, func(r *Recorder) error {
						if err := gemm(r, fused, a, b, tc, bias, act); err != nil {
							return err
						}
						if err := gemm(r, sep, a, b, tc, bias, gemmAct{}); err != nil {
							return err
						}
						if grad {
							return ea.bwd(r, sep, sep, act.saved)
						}
						return ea.fwd(r, sep, sep)
					})
					got := download(t, fused)
					require.Equal(t, download(t, sep), got, "fused epilogue against the GEMM and the activation kernel")
					assertClose(t, name, want, got, gemmRtol, gemmAtol)
				})
			}
		}
	}
}

// actDerivRef is f'(x) from the activation's saved output s (the input
// for ReLU and LeakyReLU, which have its sign).
func actDerivRef(op uint32, s, slope float64) float64 {
	switch op {
	case ewReLU:
		if s > 0 {
			return 1
		}
		return 0
	case ewLeakyReLU:
		if s > 0 {
			return 1
		}
		return slope
	case ewTanh:
		return 1 - s*s
	default:
		return s * (1 - s)
	}
}

// tiledGemmAct is tiledGemm with act in the epilogue (saved, if any,
// bound where the bias would be).
func tiledGemmAct(r *Recorder, cfg tiledConfig, c, a, b *Tensor, transA, transB bool, alpha, beta float32, bias *Tensor, act gemmAct) error {
	g := matmulArgs(a, b, transA, transB, alpha, beta)
	g.hasBias = bias != nil
	g.setAct(act)
	if act.saved != nil {
		bias = act.saved
	}
	return r.igemmTiled(cfg, modeMatMul, g, g.N, 1, g.sAk == 1 && g.K%4 == 0, g.sBn == 1 && g.N%4 == 0, a, b, c, bias)
}

// TestGemmActivationBadInput: a saved output that does not match C,
// aliases it or comes with a bias is an error, not a wrong answer; so are
// row sums of an A that is not transposed, of the wrong length or beside a
// bias.
func TestGemmActivationBadInput(t *testing.T) {
	d := newTestDevice(t)
	a, b := zeros(t, d, 4, 3), zeros(t, d, 3, 8)
	c := zeros(t, d, 4, 8)
	for _, tc := range []struct {
		name  string
		saved *Tensor
		bias  *Tensor
	}{
		{"short", zeros(t, d, 4, 7), nil},
		{"aliased", c, nil},
		{"with bias", zeros(t, d, 4, 8), zeros(t, d, 8)},
	} {
		r, err := d.Record()
		require.NoError(t, err)
		err = r.gemm(c, a, b, false, false, 1, 0, tc.bias, gemmAct{on: true, op: ewTanh, saved: tc.saved}, nil)
		r.Release()
		require.ErrorContains(t, err, "saved output", tc.name)
	}
	at := zeros(t, d, 3, 4)
	for _, tc := range []struct {
		name   string
		a      *Tensor
		transA bool
		sums   *Tensor
		bias   *Tensor
	}{
		{"not transposed", a, false, zeros(t, d, 4), nil},
		{"short", at, true, zeros(t, d, 3), nil},
		{"aliased", at, true, at, nil},
		{"with bias", at, true, zeros(t, d, 4), zeros(t, d, 8)},
	} {
		r, err := d.Record()
		require.NoError(t, err)
		err = r.gemm(c, tc.a, b, tc.transA, false, 1, 0, tc.bias, gemmAct{}, tc.sums)
		r.Release()
		require.ErrorContains(t, err, "row sums", tc.name)
	}
}

// A convolution refuses an activation epilogue whose saved output does not
// match its output or aliases an operand, and one with Accumulate, in the
// forward and the backward-data alike.
func TestConvActivationBadInput(t *testing.T) {
	d := newTestDevice(t)
	x, w, y := zeros(t, d, 2, 3, 8, 8), zeros(t, d, 4, 3, 4, 4), zeros(t, d, 2, 4, 4, 4)
	p := ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	for _, tc := range []struct {
		name  string
		saved *Tensor
		acc   bool
		want  string
	}{
		{"short", zeros(t, d, 2, 4, 4, 3), false, "saved output"},
		{"aliased", x, false, "saved output"},
		{"accumulating", nil, true, "cannot add"},
	} {
		q := p
		q.Accumulate, q.act = tc.acc, gemmAct{on: true, op: ewReLU, saved: tc.saved}
		r, err := d.Record()
		require.NoError(t, err)
		fwd := r.Conv2D(y, x, w, q)
		r.Release()
		require.ErrorContains(t, fwd, tc.want, "forward, %s", tc.name)
		if tc.saved != nil && tc.saved.n != x.n {
			tc.saved = zeros(t, d, 2, 3, 8, 7)
		}
		q.act.saved = tc.saved
		if tc.name == "aliased" {
			q.act.saved = y
		}
		r, err = d.Record()
		require.NoError(t, err)
		bwd := r.Conv2DBackwardData(x, y, w, q)
		r.Release()
		require.ErrorContains(t, bwd, tc.want, "backward-data, %s", tc.name)
	}
}

// TestGemmRowSums checks the row sums of op(A) a matmul with A transposed
// writes beside C (a linear layer's bias gradient from its weight-gradient
// GEMM) against the float64 reference, with C unchanged by them: on shapes
// that take VEC_AT's 32-row tiles (M % 4 == 0), the scalar loads, small
// tiles (M < 16) and one row, with partial chunks (K % 4 != 0). The tiled
// core and variants without subgroup tiles sum in a kernel of their own
// (TestGPUClassKernels; TestTiledGemmRowSums).
func TestGemmRowSums(t *testing.T) {
	d := newTestDevice(t)
	testGemmRowSums(t, d, func(r *Recorder, c, a, b, sums *Tensor, tc gemmCase) error {
		return r.gemm(c, a, b, true, tc.transB, tc.alpha, tc.beta, nil, gemmAct{}, sums)
	})
}

// TestTiledGemmRowSums is TestGemmRowSums through the tiled core, whose
// GEMM leaves the sums to bias_grad.
func TestTiledGemmRowSums(t *testing.T) {
	d := newTestDevice(t)
	cfgs := d.tiledConfigs()
	require.NotEmpty(t, cfgs, "no tiled configuration fits the device")
	testGemmRowSums(t, d, func(r *Recorder, c, a, b, sums *Tensor, tc gemmCase) error {
		g := matmulArgs(a, b, true, tc.transB, tc.alpha, tc.beta)
		g.sumA = true
		return r.igemmVariant(tiledVariant(cfgs[0]), modeMatMul, g, g.N, 1, false, g.sBn == 1 && g.N%4 == 0, a, b, c, sums)
	})
}

func testGemmRowSums(t *testing.T, d *Device, gemm func(r *Recorder, c, a, b, sums *Tensor, tc gemmCase) error) {
	rng := newRand(22)
	for _, tc := range []gemmCase{
		{128, 128, 512, true, false, 1, 0, false}, // the toy's hidden layers' weight gradient
		{128, 2, 1024, true, false, 1, 1, false},  // D's first layer, accumulating
		{36, 20, 30, true, false, 1, 0, false},    // VEC_AT, partial tile and chunk
		{37, 9, 13, true, true, 0.5, 0, false},    // scalar loads, B^T
		{6, 5, 7, true, false, 1, 0, false},       // a small tile
		{1, 128, 512, true, false, 1, 0, false},   // D's logit
	} {
		t.Run(fmt.Sprintf("%dx%dx%d_tb%v", tc.M, tc.N, tc.K, tc.transB), func(t *testing.T) {
			bshape := []int{tc.K, tc.N}
			if tc.transB {
				bshape = []int{tc.N, tc.K}
			}
			av, bv, cv := randSlice(rng, tc.K*tc.M), randSlice(rng, tc.K*tc.N), randSlice(rng, tc.M*tc.N)
			a, b, c := tensorOf(t, d, av, tc.K, tc.M), tensorOf(t, d, bv, bshape...), tensorOf(t, d, cv, tc.M, tc.N)
			sums := tensorOf(t, d, randSlice(rng, tc.M), tc.M)
			run(t, d, func(r *Recorder) error { return gemm(r, c, a, b, sums, tc) })
			want := make([]float64, tc.M)
			for k := 0; k < tc.K; k++ {
				for m := 0; m < tc.M; m++ {
					want[m] += float64(av[k*tc.M+m])
				}
			}
			assertClose(t, "row sums", want, download(t, sums), gemmRtol, gemmAtol)
			wantC := refGemm(av, bv, tc.M, tc.N, tc.K, true, tc.transB, float64(tc.alpha), float64(tc.beta), cv, nil)
			assertClose(t, "c", wantC, download(t, c), gemmRtol, gemmAtol)
		})
	}
}
