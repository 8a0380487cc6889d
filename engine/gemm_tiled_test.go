package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The tiled core is checked per element against the float64 reference
// relative to the element's scale, the same sum over |a|*|b| (plus |beta*c|
// and |bias|): fp32 rounding grows with that sum, not with the result,
// which cancels. A wrong index or a lost slice is off by about the scale
// itself; rounding stayed below 3e-7 of it on lavapipe, K = 65,536
// included (the tests log their maximum), so 1e-5 leaves a 30x margin.
const tiledTol = 1e-5

// assertScaled checks |got-want| <= tol*scale per element and returns the
// largest |got-want|/scale.
func assertScaled(t *testing.T, name string, want, scale []float64, got []float32, tol float64) float64 {
	t.Helper()
	if len(want) != len(got) || len(scale) != len(got) {
		t.Fatalf("%s: %d values, want %d", name, len(got), len(want))
	}
	worst, bad := 0.0, 0
	for i := range want {
		g := float64(got[i])
		s := max(scale[i], 1e-30)
		e := math.Abs(g-want[i]) / s
		if math.IsNaN(g) || e > tol {
			if bad < 5 {
				t.Errorf("%s[%d] = %g, want %g (scale %g)", name, i, g, want[i], scale[i])
			}
			bad++
		}
		worst = max(worst, e)
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance (%g of the scale)", name, bad, len(want), tol)
	}
	return worst
}

func absSlice(x []float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(math.Abs(float64(v)))
	}
	return out
}

// tiledSplits are the split-K settings every configuration is tested
// with: none, and three parts whatever the shape (so some parts are empty
// when K is short).
var tiledSplits = []int{1, 3}

// eachTiled runs fn for every tiling the device offers, with and without
// split-K, as subtests, and logs the worst scaled error fn returns.
func eachTiled(t *testing.T, d *Device, fn func(t *testing.T, cfg tiledConfig) float64) {
	t.Helper()
	cfgs := d.tiledConfigs()
	if len(cfgs) == 0 {
		t.Fatal("no tiled configuration fits the device")
	}
	worst := 0.0
	for _, c := range cfgs {
		for _, s := range tiledSplits {
			c.S = s
			t.Run(c.String(), func(t *testing.T) { worst = max(worst, fn(t, c)) })
		}
	}
	t.Logf("max |error|/scale over %d configurations x %d splits: %.3g", len(cfgs), len(tiledSplits), worst)
}

func TestTiledConfigs(t *testing.T) {
	d := newTestDevice(t)
	cfgs := d.tiledConfigs()
	if len(cfgs) < 4 {
		t.Fatalf("only %d tiled configurations fit: %v", len(cfgs), cfgs)
	}
	for _, c := range cfgs {
		if err := c.check(d); err != nil {
			t.Errorf("%v: %v", c, err)
		}
		t.Logf("%v: %d bytes of shared memory", c, c.sharedBytes())
	}
	shapes := map[[2]int]bool{}
	for _, c := range cfgs {
		shapes[[2]int{c.BM, c.BN}] = true
	}
	for _, want := range [][2]int{{128, 128}, {64, 64}, {32, 32}, {4, 128}, {128, 4}} {
		if !shapes[want] {
			t.Errorf("no %dx%d tile among %v", want[0], want[1], cfgs)
		}
	}
	for _, bad := range []tiledConfig{
		{WG: 128, BM: 128, BN: 128, BK: 8, TM: 8, TN: 8},      // WG != (BM/TM)*(BN/TN)
		{WG: 64, BM: 48, BN: 32, BK: 16, TM: 4, TN: 6},        // not powers of two
		{WG: 1024, BM: 256, BN: 256, BK: 64, TM: 8, TN: 8},    // shared memory
		{WG: 2048, BM: 256, BN: 128, BK: 4, TM: 4, TN: 4},     // invocations
		{WG: 64, BM: 32, BN: 32, BK: 16, TM: 4, TN: 4, S: -1}, // split
	} {
		if bad.check(d) == nil {
			t.Errorf("%v passes the check", bad)
		}
	}

	// The default picks by shape; split-K only for long reductions on
	// small grids.
	for _, tc := range []struct {
		mode, M, N, K int
		bm, bn, s     int
	}{
		{modeConvBackwardWeights, 64, 48, 65536, 64, 64, 16}, // D's first layer, dW
		{modeMatMul, 64, 1, 8192, 128, 4, 2},                 // the 1-logit layer as a GEMV
		{modeMatMul, 1, 8192, 64, 4, 128, 1},                 // its weight gradient
		{modeConvBackwardData, 3, 4096, 256, 4, 128, 1},      // G's RGB output
		{modeMatMul, 1024, 1024, 1024, 128, 128, 1},
		{modeMatMul, 20, 500, 64, 32, 32, 1},
	} {
		g := gemmArgs{M: tc.M, N: tc.N, K: tc.K, cout: tc.K / 4, kh: 4, kw: 4, sh: 2, sw: 2}
		c := d.defaultTiledConfig(tc.mode, g, tc.N, 1)
		if c.BM != tc.bm || c.BN != tc.bn || c.S != tc.s {
			t.Errorf("mode %d, %dx%dx%d: default %v, want %dx%d tiles split %d", tc.mode, tc.M, tc.N, tc.K, c, tc.bm, tc.bn, tc.s)
		}
	}
}

// tiledGemm records Gemm's product through igemmTiled with cfg.
func tiledGemm(r *Recorder, cfg tiledConfig, c, a, b *Tensor, transA, transB bool, alpha, beta float32, bias *Tensor) error {
	g := matmulArgs(a, b, transA, transB, alpha, beta)
	g.hasBias = bias != nil
	return r.igemmTiled(cfg, modeMatMul, g, g.N, 1, g.sAk == 1 && g.K%4 == 0, g.sBn == 1 && g.N%4 == 0, a, b, c, bias)
}

// matmulArgs is Gemm's geometry for op(a)*op(b), without bias or epilogue.
func matmulArgs(a, b *Tensor, transA, transB bool, alpha, beta float32) gemmArgs {
	M, K := a.shape[0], a.shape[1]
	sAm, sAk := K, 1
	if transA {
		M, K = K, M
		sAm, sAk = 1, M
	}
	N := b.shape[1]
	sBk, sBn := N, 1
	if transB {
		N = b.shape[0]
		sBk, sBn = 1, K
	}
	return gemmArgs{M: M, N: N, K: K, sAm: sAm, sAk: sAk, sBk: sBk, sBn: sBn, ldc: N, alpha: alpha, beta: beta}
}

func TestTiledGemm(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(14)
	cases := []gemmCase{
		{1, 1, 1, false, false, 1, 0, false},
		{37, 53, 61, false, false, 1, 0, false},
		{37, 53, 61, true, false, 1, 0.5, false},
		{37, 53, 61, false, true, 0.5, 0, true},
		{37, 53, 61, true, true, 2, 1, true},
		{64, 128, 64, false, false, 0.5, 1, true}, // vec4 A and B
		{130, 129, 68, false, true, 1, 0, false},  // vec4 A, B^T
		{3, 65536, 17, false, false, 1, 0, false}, // 3 rows, long N
		{64, 1, 8192, false, true, 1, 0, false},   // D's 1-logit layer (batch 64, K 512*4*4)
		{1, 8192, 64, true, false, 1, 0, false},   // its weight gradient
		{5, 7, 4109, false, false, 1, 0, false},   // long odd K
	}
	type data struct {
		av, bv, cv, biasv []float32
		want, scale       []float64
	}
	prep := make([]data, len(cases))
	for i, tc := range cases {
		av, bv, cv := randSlice(rng, tc.M*tc.K), randSlice(rng, tc.K*tc.N), randSlice(rng, tc.M*tc.N)
		var biasv []float32
		if tc.bias {
			biasv = randSlice(rng, tc.N)
		}
		want := refGemm(av, bv, tc.M, tc.N, tc.K, tc.transA, tc.transB, float64(tc.alpha), float64(tc.beta), cv, biasv)
		var absBias []float32
		if tc.bias {
			absBias = absSlice(biasv)
		}
		scale := refGemm(absSlice(av), absSlice(bv), tc.M, tc.N, tc.K, tc.transA, tc.transB,
			math.Abs(float64(tc.alpha)), math.Abs(float64(tc.beta)), absSlice(cv), absBias)
		prep[i] = data{av, bv, cv, biasv, want, scale}
	}
	eachTiled(t, d, func(t *testing.T, cfg tiledConfig) float64 {
		worst := 0.0
		for i, tc := range cases {
			p := prep[i]
			ashape := []int{tc.M, tc.K}
			if tc.transA {
				ashape = []int{tc.K, tc.M}
			}
			bshape := []int{tc.K, tc.N}
			if tc.transB {
				bshape = []int{tc.N, tc.K}
			}
			a, b, c := tensorOf(t, d, p.av, ashape...), tensorOf(t, d, p.bv, bshape...), tensorOf(t, d, p.cv, tc.M, tc.N)
			var bias *Tensor
			if tc.bias {
				bias = tensorOf(t, d, p.biasv, tc.N)
			}
			run(t, d, func(r *Recorder) error {
				return tiledGemm(r, cfg, c, a, b, tc.transA, tc.transB, tc.alpha, tc.beta, bias)
			})
			name := fmt.Sprintf("%dx%dx%d_ta%v_tb%v", tc.M, tc.N, tc.K, tc.transA, tc.transB)
			worst = max(worst, assertScaled(t, name, p.want, p.scale, download(t, c), tiledTol))
		}
		return worst
	})
}

// tiledConvCases are odd geometries and the DCGAN layers' (narrow batch):
// D's first layer on 3 channels, a middle layer, the 4x4 -> 1-logit
// layer, a 3-channel output.
var tiledConvCases = []convShape{
	{1, 3, 5, 7, 2, 3, 3, 1, 1},
	{3, 1, 7, 6, 3, 2, 3, 3, 0},
	{1, 6, 11, 13, 9, 5, 3, 2, 2},
	{2, 5, 8, 8, 7, 4, 4, 1, 0},
	{2, 3, 32, 32, 64, 4, 4, 2, 1}, // D's first layer (DCGAN-32)
	{2, 64, 8, 8, 32, 4, 4, 2, 1},  // a middle layer
	{2, 128, 4, 4, 1, 4, 4, 1, 0},  // D's 1-logit layer
	{2, 16, 8, 8, 3, 3, 3, 1, 1},   // 3 output channels
	{2, 8, 16, 16, 3, 4, 4, 2, 1},  // as backward-data: G's RGB layer
	{2, 7, 9, 10, 66, 4, 4, 2, 1},  // odd, padded path
}

type convData struct {
	xv, wv, rv            []float32
	y, yScale             []float64
	dx, dxScale, dw, dwSc []float64
}

func prepConv(r *rand.Rand, s convShape) convData {
	oh, ow := s.out()
	c := convData{
		xv: randSlice(r, s.N*s.Cin*s.H*s.W), wv: randSlice(r, s.Cout*s.Cin*s.KH*s.KW), rv: randSlice(r, s.N*s.Cout*oh*ow),
	}
	ax, aw, ar := absSlice(c.xv), absSlice(c.wv), absSlice(c.rv)
	c.y, c.yScale = refConv(c.xv, c.wv, s), refConv(ax, aw, s)
	c.dx, c.dw = refConvGrads(c.xv, c.wv, c.rv, s)
	c.dxScale, c.dwSc = refConvGrads(ax, aw, ar, s)
	return c
}

// tiledConv records the convolution op of s through igemmTiled, with the
// argument set-up of Conv2D, Conv2DBackwardData and Conv2DBackwardWeights;
// padded selects their zero-padded modes (when the geometry allows).
func tiledConv(r *Recorder, cfg tiledConfig, op string, s convShape, padded bool, x, w, y *Tensor) error {
	p := ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P}
	g, err := convGeom(op, x, w, y, p)
	if err != nil {
		return err
	}
	switch op {
	case "forward":
		g.M, g.N, g.K = g.cout, g.nb*g.oh*g.ow, g.cin*g.kh*g.kw
		if padded {
			xp, err := r.pad(x, &g)
			if err != nil {
				return err
			}
			return r.igemmTiled(cfg, modeConvForwardPadded, g, g.N, 1, true, false, w, xp, y, nil)
		}
		return r.igemmTiled(cfg, modeConvForward, g, g.N, 1, g.K%4 == 0, false, w, x, y, nil)
	case "data": // x is dx, y is dy
		maxCols := g.nb * ((g.h + g.sh - 1) / g.sh) * ((g.w + g.sw - 1) / g.sw)
		g.M, g.N, g.K = g.cin, maxCols, 0
		return r.igemmTiled(cfg, modeConvBackwardData, g, maxCols, g.sh*g.sw, false, false, w, y, x, nil)
	case "weights": // w is dw, y is dy
		g.M, g.N, g.K = g.cout, g.cin*g.kh*g.kw, g.nb*g.oh*g.ow
		vecA := (g.oh*g.ow)%4 == 0
		if padded {
			xp, err := r.pad(x, &g)
			if err != nil {
				return err
			}
			return r.igemmTiled(cfg, modeConvBackwardWeightsPadded, g, g.N, 1, vecA, false, y, xp, w, nil)
		}
		return r.igemmTiled(cfg, modeConvBackwardWeights, g, g.N, 1, vecA, false, y, x, w, nil)
	}
	return fmt.Errorf("unknown op %s", op)
}

func (s convShape) paddable() bool { return s.KW%4 == 0 && s.S%2 == 0 }

func TestTiledConv(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(15)
	prep := make([]convData, len(tiledConvCases))
	for i, s := range tiledConvCases {
		prep[i] = prepConv(rng, s)
	}
	eachTiled(t, d, func(t *testing.T, cfg tiledConfig) float64 {
		worst := 0.0
		for i, s := range tiledConvCases {
			c := prep[i]
			oh, ow := s.out()
			x, w := tensorOf(t, d, c.xv, s.N, s.Cin, s.H, s.W), tensorOf(t, d, c.wv, s.Cout, s.Cin, s.KH, s.KW)
			dy := tensorOf(t, d, c.rv, s.N, s.Cout, oh, ow)
			for _, padded := range []bool{false, true} {
				if padded && !s.paddable() {
					continue
				}
				y, dx, dw := zeros(t, d, s.N, s.Cout, oh, ow), zeros(t, d, s.N, s.Cin, s.H, s.W), zeros(t, d, s.Cout, s.Cin, s.KH, s.KW)
				run(t, d, func(r *Recorder) error {
					if err := tiledConv(r, cfg, "forward", s, padded, x, w, y); err != nil {
						return err
					}
					if err := tiledConv(r, cfg, "data", s, padded, dx, w, dy); err != nil {
						return err
					}
					return tiledConv(r, cfg, "weights", s, padded, x, dw, dy)
				})
				name := fmt.Sprintf("%v_padded%v", s, padded)
				worst = max(worst, assertScaled(t, name+"/y", c.y, c.yScale, download(t, y), tiledTol))
				gotDx, gotDw := download(t, dx), download(t, dw)
				worst = max(worst, assertScaled(t, name+"/dx", c.dx, c.dxScale, gotDx, tiledTol))
				worst = max(worst, assertScaled(t, name+"/dw", c.dw, c.dwSc, gotDw, tiledTol))
				checkConvFD(t, name, s, c, gotDx, gotDw)
			}
		}
		return worst
	})
}

// checkConvFD compares a few gradient elements with float64 central
// differences of L = sum(conv(x, w) * r). L is linear in each argument,
// so h = 0.5 has no truncation error and the tolerance is fp32 rounding:
// 1e-4 + 1e-4*|fd| (dx), 1e-3 + 1e-4*|fd| (dw, which sums over the batch).
func checkConvFD(t *testing.T, name string, s convShape, c convData, gotDx, gotDw []float32) {
	t.Helper()
	x64, w64 := to64(c.xv), to64(c.wv)
	rng := newRand(uint64(len(c.xv)))
	fd := func(v []float64, i int) float64 { return convLossDiff(x64, w64, c.rv, s, v, i) }
	for _, i := range sampleIdx(rng, len(c.xv), 2) {
		if f := fd(x64, i); math.Abs(f-float64(gotDx[i])) > 1e-4+1e-4*math.Abs(f) {
			t.Errorf("%s: dx[%d] = %g, finite difference %g", name, i, gotDx[i], f)
		}
	}
	for _, i := range sampleIdx(rng, len(c.wv), 2) {
		if f := fd(w64, i); math.Abs(f-float64(gotDw[i])) > 1e-3+1e-4*math.Abs(f) {
			t.Errorf("%s: dw[%d] = %g, finite difference %g", name, i, gotDw[i], f)
		}
	}
}

// TestTiledConvEpilogue checks the fused epilogue (per-channel affine,
// ReLU) and the channel offset, with and without split-K (where the
// reduction pass applies them), on the forward conv and its padded mode.
func TestTiledConvEpilogue(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(16)
	for _, s := range []convShape{{2, 5, 9, 9, 6, 3, 3, 1, 1}, {2, 6, 8, 8, 3, 4, 4, 2, 1}} {
		oh, ow := s.out()
		const ctot, c0 = 11, 4 // write channels 4..4+Cout-1 of 11
		xv, wv := randSlice(rng, s.N*s.Cin*s.H*s.W), randSlice(rng, s.Cout*s.Cin*s.KH*s.KW)
		ssv := randSlice(rng, 2*s.Cout)
		prev := randSlice(rng, s.N*ctot*oh*ow)
		conv, scale := refConv(xv, wv, s), refConv(absSlice(xv), absSlice(wv), s)
		want, wantScale := make([]float64, len(prev)), make([]float64, len(prev))
		for i, v := range prev {
			want[i], wantScale[i] = float64(v), 1
		}
		for n := 0; n < s.N; n++ {
			for co := 0; co < s.Cout; co++ {
				for pix := 0; pix < oh*ow; pix++ {
					src := (n*s.Cout+co)*oh*ow + pix
					dst := (n*ctot+c0+co)*oh*ow + pix
					v := conv[src]*float64(ssv[co]) + float64(ssv[s.Cout+co])
					want[dst] = max(v, 0)
					wantScale[dst] = scale[src]*math.Abs(float64(ssv[co])) + math.Abs(float64(ssv[s.Cout+co]))
				}
			}
		}
		x, w, ss := tensorOf(t, d, xv, s.N, s.Cin, s.H, s.W), tensorOf(t, d, wv, s.Cout, s.Cin, s.KH, s.KW), tensorOf(t, d, ssv, 2*s.Cout)
		t.Run(s.String(), func(t *testing.T) {
			eachTiled(t, d, func(t *testing.T, cfg tiledConfig) float64 {
				worst := 0.0
				for _, padded := range []bool{false, true} {
					if padded && !s.paddable() {
						continue
					}
					y := tensorOf(t, d, slices.Clone(prev), s.N, ctot, oh, ow)
					run(t, d, func(r *Recorder) error {
						g, bias, err := fusedArgs(y, x, w, ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P},
							ConvEpilogue{ChannelOffset: c0, ScaleShift: ss, ReLU: true})
						if err != nil {
							return err
						}
						if padded {
							xp, err := r.pad(x, &g)
							if err != nil {
								return err
							}
							return r.igemmTiled(cfg, modeConvForwardPadded, g, g.N, 1, true, false, w, xp, y, bias)
						}
						return r.igemmTiled(cfg, modeConvForward, g, g.N, 1, g.K%4 == 0, false, w, x, y, bias)
					})
					worst = max(worst, assertScaled(t, fmt.Sprintf("%v_padded%v", s, padded), want, wantScale, download(t, y), tiledTol))
				}
				return worst
			})
		})
	}
}

// TestTiledLongReduction runs D's first-layer weight gradient of the
// DCGAN-64 step at batch 64 (M = 64, N = 48, K = 65,536) through every
// tiling, with the default split-K and without, and checks that split-K
// gives the same bits on every run.
func TestTiledLongReduction(t *testing.T) {
	d := newTestDevice(t)
	s := convShape{64, 3, 64, 64, 64, 4, 4, 2, 1}
	rng := newRand(17)
	oh, ow := s.out()
	xv, rv := randSlice(rng, s.N*s.Cin*s.H*s.W), randSlice(rng, s.N*s.Cout*oh*ow)
	wv := make([]float32, s.Cout*s.Cin*s.KH*s.KW)
	_, want := refConvGrads(xv, wv, rv, s)
	_, scale := refConvGrads(absSlice(xv), wv, absSlice(rv), s)
	x, dy := tensorOf(t, d, xv, s.N, s.Cin, s.H, s.W), tensorOf(t, d, rv, s.N, s.Cout, oh, ow)
	worst := 0.0
	for _, cfg := range d.tiledConfigs() {
		for _, split := range []int{1, 0} {
			cfg.S = split
			name := cfg.String()
			if split == 0 {
				name += "/default-split"
			}
			t.Run(name, func(t *testing.T) {
				var first []float32
				for rep := 0; rep < 2; rep++ {
					dw := zeros(t, d, s.Cout, s.Cin, s.KH, s.KW)
					run(t, d, func(r *Recorder) error { return tiledConv(r, cfg, "weights", s, false, x, dw, dy) })
					got := download(t, dw)
					worst = max(worst, assertScaled(t, "dw", want, scale, got, tiledTol))
					if rep == 0 {
						first = got
					} else if !slices.Equal(first, got) {
						t.Errorf("two runs differ")
					}
				}
			})
		}
	}
	t.Logf("max |error|/scale: %.3g", worst)
}
