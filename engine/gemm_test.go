package engine

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// GEMM and convolution sums run over up to a few thousand fp32 products:
// a relative 1e-4 plus an absolute 1e-4*sqrt(K)-ish floor covers rounding.
const (
	gemmRtol = 1e-4
	gemmAtol = 2e-4
)

func refGemm(a, b []float32, M, N, K int, transA, transB bool, alpha, beta float64, c0, bias []float32) []float64 {
	out := make([]float64, M*N)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var s float64
			for k := 0; k < K; k++ {
				var av, bv float32
				if transA {
					av = a[k*M+i]
				} else {
					av = a[i*K+k]
				}
				if transB {
					bv = b[j*K+k]
				} else {
					bv = b[k*N+j]
				}
				s += float64(av) * float64(bv)
			}
			v := alpha * s
			if beta != 0 {
				v += beta * float64(c0[i*N+j])
			}
			if bias != nil {
				v += float64(bias[j])
			}
			out[i*N+j] = v
		}
	}
	return out
}

// gemmCase is one GEMM a test runs: C = alpha*op(A)*op(B) + beta*C (+ bias).
type gemmCase struct {
	M, N, K        int
	transA, transB bool
	alpha, beta    float32
	bias           bool
}

func TestGemm(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(1)
	cases := []gemmCase{
		{1, 1, 1, false, false, 1, 0, false},
		{7, 13, 5, false, false, 1, 0, false},
		{17, 9, 33, true, false, 0.5, 0, false},
		{16, 64, 32, false, true, 1, 0, true},
		{33, 65, 100, true, true, 2, 0.5, true},
		{64, 128, 64, false, false, 1, 1, false},
		{3, 1000, 4, false, false, 1, 0, true},
		{100, 3, 257, false, false, 1, 0, false},
		{128, 100, 64, false, false, 1, 0, true}, // linear layer shape: batch 128, 64 -> 100
		{256, 512, 320, false, false, 1, 0, false},
		{200, 264, 96, true, false, 1, 0, false},
		{96, 200, 264, false, true, 1, 0, false},
		// 64-row tiles (CPU devices) with a partial last tile.
		{65, 37, 19, false, false, 1, 0, false},
		{72, 64, 40, false, false, 1, 0.5, true},
		{130, 20, 64, true, false, 1, 0, false},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%dx%dx%d_ta%v_tb%v_b%v", tc.M, tc.N, tc.K, tc.transA, tc.transB, tc.bias)
		t.Run(name, func(t *testing.T) {
			ashape := []int{tc.M, tc.K}
			if tc.transA {
				ashape = []int{tc.K, tc.M}
			}
			bshape := []int{tc.K, tc.N}
			if tc.transB {
				bshape = []int{tc.N, tc.K}
			}
			av, bv, cv := randSlice(rng, tc.M*tc.K), randSlice(rng, tc.K*tc.N), randSlice(rng, tc.M*tc.N)
			a, b, c := tensorOf(t, d, av, ashape...), tensorOf(t, d, bv, bshape...), tensorOf(t, d, cv, tc.M, tc.N)
			var bias *Tensor
			var biasv []float32
			if tc.bias {
				biasv = randSlice(rng, tc.N)
				bias = tensorOf(t, d, biasv, tc.N)
			}
			run(t, d, func(r *Recorder) error { return r.Gemm(c, a, b, tc.transA, tc.transB, tc.alpha, tc.beta, bias) })
			want := refGemm(av, bv, tc.M, tc.N, tc.K, tc.transA, tc.transB, float64(tc.alpha), float64(tc.beta), cv, biasv)
			assertClose(t, "c", want, download(t, c), gemmRtol, gemmAtol)
		})
	}
}

// TestGemmTileRows runs the GEMM and convolution tests with 32- and
// 64-row tiles wherever igemm would take a larger tile than 16 rows, on
// any shape (CPU devices; elsewhere the same tests run again).
func TestGemmTileRows(t *testing.T) {
	for _, rows := range []int{32, 64} {
		t.Run(fmt.Sprint(rows), func(t *testing.T) {
			forceGemmRows = rows
			defer func() { forceGemmRows = 0 }()
			t.Run("Gemm", TestGemm)
			t.Run("Conv2D", TestConv2D)
			t.Run("Conv2DBackward", TestConv2DBackward)
			t.Run("ConvTranspose2D", TestConvTranspose2D)
		})
	}
}

func TestGemmBadInput(t *testing.T) {
	d := newTestDevice(t)
	a, b, c := zeros(t, d, 4, 5), zeros(t, d, 6, 7), zeros(t, d, 4, 7)
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	require.ErrorContains(t, r.Gemm(c, a, b, false, false, 1, 0, nil), "inner dimensions")
	r2, _ := d.Record()
	defer r2.Release()
	require.ErrorContains(t, r2.MatMul(c, a, zeros(t, d, 5, 8)), "c is")
	r3, _ := d.Record()
	defer r3.Release()
	require.ErrorContains(t, r3.Gemm(a, a, zeros(t, d, 5, 5), false, false, 1, 0, nil), "alias")
	require.Error(t, r3.Submit(), "the first error is sticky")
	r4, _ := d.Record()
	defer r4.Release()
	require.ErrorContains(t, r4.Gemm(c, a, zeros(t, d, 5, 7), false, false, 1, 0, zeros(t, d, 3)), "bias")
}

type convShape struct {
	N, Cin, H, W, Cout, KH, KW, S, P int
}

func (s convShape) out() (int, int) {
	return (s.H+2*s.P-s.KH)/s.S + 1, (s.W+2*s.P-s.KW)/s.S + 1
}

func (s convShape) String() string {
	return fmt.Sprintf("n%d_%dx%dx%d_to%d_k%dx%ds%dp%d", s.N, s.Cin, s.H, s.W, s.Cout, s.KH, s.KW, s.S, s.P)
}

// each visits every (input index, weight index, output index) triple of
// the convolution, NCHW input and output, OIHW weights: the one loop nest
// the float64 references below (and the DCGAN step's) are built on.
func (s convShape) each(fn func(xi, wi, yi int)) {
	oh, ow := s.out()
	for n := 0; n < s.N; n++ {
		for co := 0; co < s.Cout; co++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					yi := ((n*s.Cout+co)*oh+i)*ow + j
					for ci := 0; ci < s.Cin; ci++ {
						for kh := 0; kh < s.KH; kh++ {
							ih := i*s.S - s.P + kh
							if ih < 0 || ih >= s.H {
								continue
							}
							for kw := 0; kw < s.KW; kw++ {
								iw := j*s.S - s.P + kw
								if iw < 0 || iw >= s.W {
									continue
								}
								fn(((n*s.Cin+ci)*s.H+ih)*s.W+iw, ((co*s.Cin+ci)*s.KH+kh)*s.KW+kw, yi)
							}
						}
					}
				}
			}
		}
	}
}

func refConv(x, w []float32, s convShape) []float64 {
	oh, ow := s.out()
	y := make([]float64, s.N*s.Cout*oh*ow)
	s.each(func(xi, wi, yi int) { y[yi] += float64(x[xi]) * float64(w[wi]) })
	return y
}

// refConvLoss is L = sum(conv(x, w) * r) in float64, the scalar whose
// gradients the backward kernels compute when fed dy = r.
func refConvLoss(x, w []float64, r []float32, s convShape) float64 {
	var L float64
	s.each(func(xi, wi, yi int) { L += x[xi] * w[wi] * float64(r[yi]) })
	return L
}

// convLossDiff is the central difference of refConvLoss in v[i], v being
// x or w (restored afterwards). The loss is linear in each argument, so
// h = 0.5 has no truncation error.
func convLossDiff(x, w []float64, r []float32, s convShape, v []float64, i int) float64 {
	const h = 0.5
	old := v[i]
	v[i] = old + h
	lp := refConvLoss(x, w, r, s)
	v[i] = old - h
	lm := refConvLoss(x, w, r, s)
	v[i] = old
	return (lp - lm) / (2 * h)
}

// refConvGrads returns dL/dx and dL/dw of L = sum(conv(x,w)*r) computed
// directly (the adjoint sums), used where finite differences would be slow.
func refConvGrads(x, w, r []float32, s convShape) (dx, dw []float64) {
	dx = make([]float64, len(x))
	dw = make([]float64, len(w))
	s.each(func(xi, wi, yi int) {
		dx[xi] += float64(r[yi]) * float64(w[wi])
		dw[wi] += float64(r[yi]) * float64(x[xi])
	})
	return dx, dw
}

var convCases = []convShape{
	{1, 1, 1, 1, 1, 1, 1, 1, 0},
	{1, 3, 5, 7, 2, 3, 3, 1, 1},
	{2, 3, 9, 9, 5, 4, 4, 2, 1},
	{3, 1, 7, 6, 3, 2, 3, 3, 0},
	{2, 5, 8, 8, 7, 4, 4, 1, 0},
	{1, 4, 4, 4, 1, 4, 4, 1, 0},    // D's last layer: 4x4 -> 1x1
	{2, 7, 1, 1, 6, 4, 4, 1, 3},    // 1x1 input, G-style first layer geometry seen as a conv
	{2, 3, 64, 64, 16, 4, 4, 2, 1}, // D's first layer (narrow)
	{2, 64, 16, 16, 32, 4, 4, 2, 1},
	{2, 128, 8, 8, 64, 4, 4, 2, 1},
	{1, 6, 11, 13, 9, 5, 3, 2, 2},
	// 32- and 64-row tiles (CPU devices) with partial last tiles, on the
	// zero-padded paths (kw 4, stride 2).
	{2, 5, 9, 10, 40, 4, 4, 2, 1},
	{1, 6, 10, 8, 80, 4, 4, 2, 1},
	{1, 3, 9, 6, 36, 4, 4, 2, 1},
	{1, 3, 6, 16, 36, 4, 4, 2, 1}, // ow 8: quads of adjacent pixels, the last lanes clamped
}

func TestConv2D(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(2)
	for _, s := range convCases {
		t.Run(s.String(), func(t *testing.T) {
			oh, ow := s.out()
			xv, wv := randSlice(rng, s.N*s.Cin*s.H*s.W), randSlice(rng, s.Cout*s.Cin*s.KH*s.KW)
			x, w := tensorOf(t, d, xv, s.N, s.Cin, s.H, s.W), tensorOf(t, d, wv, s.Cout, s.Cin, s.KH, s.KW)
			y := zeros(t, d, s.N, s.Cout, oh, ow)
			p := ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P}
			run(t, d, func(r *Recorder) error { return r.Conv2D(y, x, w, p) })
			assertClose(t, "y", refConv(xv, wv, s), download(t, y), gemmRtol, gemmAtol)
		})
	}
}

func TestConv2DBackward(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(3)
	for _, s := range convCases {
		t.Run(s.String(), func(t *testing.T) {
			oh, ow := s.out()
			xv, wv, rv := randSlice(rng, s.N*s.Cin*s.H*s.W), randSlice(rng, s.Cout*s.Cin*s.KH*s.KW), randSlice(rng, s.N*s.Cout*oh*ow)
			x, w, dy := tensorOf(t, d, xv, s.N, s.Cin, s.H, s.W), tensorOf(t, d, wv, s.Cout, s.Cin, s.KH, s.KW), tensorOf(t, d, rv, s.N, s.Cout, oh, ow)
			dx, dw := zeros(t, d, s.N, s.Cin, s.H, s.W), zeros(t, d, s.Cout, s.Cin, s.KH, s.KW)
			p := ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P}
			run(t, d, func(r *Recorder) error {
				if err := r.Conv2DBackwardData(dx, dy, w, p); err != nil {
					return err
				}
				return r.Conv2DBackwardWeights(dw, dy, x, p)
			})
			wantDx, wantDw := refConvGrads(xv, wv, rv, s)
			gotDx, gotDw := download(t, dx), download(t, dw)
			assertClose(t, "dx", wantDx, gotDx, gemmRtol, gemmAtol)
			assertClose(t, "dw", wantDw, gotDw, gemmRtol, gemmAtol*10)

			// Central finite differences of the float64 forward on a few
			// elements: the loss is linear in each argument, so h can be
			// large and the check is tight.
			x64, w64 := to64(xv), to64(wv)
			for _, i := range sampleIdx(rng, len(xv), 4) {
				fd := convLossDiff(x64, w64, rv, s, x64, i)
				require.InDelta(t, fd, float64(gotDx[i]), 1e-4+1e-4*abs(fd), "dx[%d]", i)
			}
			for _, i := range sampleIdx(rng, len(wv), 4) {
				fd := convLossDiff(x64, w64, rv, s, w64, i)
				require.InDelta(t, fd, float64(gotDw[i]), 1e-3+1e-4*abs(fd), "dw[%d]", i)
			}
		})
	}
}

func TestConvAccumulate(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(4)
	s := convShape{2, 3, 8, 8, 4, 4, 4, 2, 1}
	oh, ow := s.out()
	xv, wv := randSlice(rng, s.N*s.Cin*s.H*s.W), randSlice(rng, s.Cout*s.Cin*s.KH*s.KW)
	x, w := tensorOf(t, d, xv, s.N, s.Cin, s.H, s.W), tensorOf(t, d, wv, s.Cout, s.Cin, s.KH, s.KW)
	y := tensorOf(t, d, make([]float32, s.N*s.Cout*oh*ow), s.N, s.Cout, oh, ow)
	p := ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1, Accumulate: true}
	run(t, d, func(r *Recorder) error {
		if err := r.Conv2D(y, x, w, p); err != nil {
			return err
		}
		return r.Conv2D(y, x, w, p)
	})
	want := refConv(xv, wv, s)
	for i := range want {
		want[i] *= 2
	}
	assertClose(t, "2y", want, download(t, y), gemmRtol, gemmAtol)
}

func TestConvTranspose2D(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(5)
	// DCGAN generator layers at small width, plus odd geometry.
	cases := []struct{ N, Cin, H, Cout, K, S, P int }{
		{2, 10, 1, 16, 4, 1, 0}, // z -> 4x4
		{2, 16, 4, 8, 4, 2, 1},  // 4x4 -> 8x8
		{1, 8, 16, 3, 4, 2, 1},  // -> 32x32 RGB
		{3, 5, 5, 7, 3, 2, 1},
		{1, 2, 3, 1, 5, 3, 2},
		{2, 64, 8, 32, 4, 2, 1},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("n%d_%dx%d_to%d_k%ds%dp%d", c.N, c.Cin, c.H, c.Cout, c.K, c.S, c.P), func(t *testing.T) {
			oh := (c.H-1)*c.S - 2*c.P + c.K
			// y = conv_transpose(x, w) is the backward-data of the conv
			// with input y-shaped and output x-shaped.
			s := convShape{c.N, c.Cout, oh, oh, c.Cin, c.K, c.K, c.S, c.P}
			xv, wv := randSlice(rng, c.N*c.Cin*c.H*c.H), randSlice(rng, c.Cin*c.Cout*c.K*c.K)
			x, w := tensorOf(t, d, xv, c.N, c.Cin, c.H, c.H), tensorOf(t, d, wv, c.Cin, c.Cout, c.K, c.K)
			y := zeros(t, d, c.N, c.Cout, oh, oh)
			p := ConvParams{StrideH: c.S, StrideW: c.S, PadH: c.P, PadW: c.P}
			run(t, d, func(r *Recorder) error { return r.ConvTranspose2D(y, x, w, p) })
			want := refConvTranspose(xv, wv, c.N, c.Cin, c.H, c.Cout, c.K, c.S, c.P)
			assertClose(t, "y", want, download(t, y), gemmRtol, gemmAtol)

			// Its backward: dx = conv(dy, w), dw from (x, dy).
			dyv := randSlice(rng, c.N*c.Cout*oh*oh)
			dy := tensorOf(t, d, dyv, c.N, c.Cout, oh, oh)
			dx, dw := zeros(t, d, c.N, c.Cin, c.H, c.H), zeros(t, d, c.Cin, c.Cout, c.K, c.K)
			run(t, d, func(r *Recorder) error {
				if err := r.ConvTranspose2DBackwardData(dx, dy, w, p); err != nil {
					return err
				}
				return r.ConvTranspose2DBackwardWeights(dw, dy, x, p)
			})
			// L = sum(convT(x,w)*dy) = sum(x * conv(dy,w)): the conv
			// adjoint with the conv's input = dy and output = x.
			wantDw, _ := refConvGradsT(xv, wv, dyv, s)
			assertClose(t, "dx", refConv(dyv, wv, s), download(t, dx), gemmRtol, gemmAtol)
			assertClose(t, "dw", wantDw, download(t, dw), gemmRtol, gemmAtol*10)
		})
	}
}

// refConvTranspose is PyTorch's conv_transpose2d with no output padding.
func refConvTranspose(x, w []float32, N, Cin, H, Cout, K, S, P int) []float64 {
	oh := (H-1)*S - 2*P + K
	y := make([]float64, N*Cout*oh*oh)
	for n := 0; n < N; n++ {
		for ci := 0; ci < Cin; ci++ {
			for i := 0; i < H; i++ {
				for j := 0; j < H; j++ {
					xv := float64(x[((n*Cin+ci)*H+i)*H+j])
					for co := 0; co < Cout; co++ {
						for kh := 0; kh < K; kh++ {
							y0 := i*S - P + kh
							if y0 < 0 || y0 >= oh {
								continue
							}
							for kw := 0; kw < K; kw++ {
								x0 := j*S - P + kw
								if x0 < 0 || x0 >= oh {
									continue
								}
								y[((n*Cout+co)*oh+y0)*oh+x0] += xv * float64(w[((ci*Cout+co)*K+kh)*K+kw])
							}
						}
					}
				}
			}
		}
	}
	return y
}

// refConvGradsT: for the transposed conv the weight gradient is the conv's
// weight gradient with the conv input = dy (y-shaped) and r = x.
func refConvGradsT(x, w, dy []float32, s convShape) ([]float64, []float64) {
	_, dw := refConvGrads(dy, w, x, s)
	return dw, nil
}

func sampleIdx(rng interface{ IntN(int) int }, n, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = rng.IntN(n)
	}
	return out
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
