package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// The spectral-norm tests compare the device with a float64 reference
// written from PyTorch's definition: weight_mat = the weight with dim
// moved first, [h, w]; one power-iteration step v = normalize(W^T u),
// u = normalize(W v); sigma = u . W v; W_sn = W / sigma.

// snRefGeom is the weight as spectral norm's matrix: idx(r, c) is the
// element of the weight tensor at row r, column c.
type snRefGeom struct {
	h, w int
	idx  func(r, c int) int
}

func snRefGeomOf(l Layer) snRefGeom {
	switch l := l.(type) {
	case *Conv2d:
		kk := l.K * l.K
		if l.Transposed { // [In, Out, k, k], dim 1
			return snRefGeom{h: l.Out, w: l.In * kk, idx: func(r, c int) int { return (c/kk*l.Out+r)*kk + c%kk }}
		}
		w := l.In * kk
		return snRefGeom{h: l.Out, w: w, idx: func(r, c int) int { return r*w + c }}
	case *Linear:
		return snRefGeom{h: l.Out, w: l.In, idx: func(r, c int) int { return r*l.In + c }}
	}
	panic(fmt.Sprintf("no spectral-norm geometry for %T", l))
}

func normalize64(x []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	n := max(math.Sqrt(ss), 1e-12)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v / n
	}
	return out
}

// snRefSigma is u^T W v.
func snRefSigma(g snRefGeom, w, u, v []float64) float64 {
	var s float64
	for r := 0; r < g.h; r++ {
		for c := 0; c < g.w; c++ {
			s += u[r] * w[g.idx(r, c)] * v[c]
		}
	}
	return s
}

// snRefPower is one training forward's power iteration: the new u and v
// and sigma.
func snRefPower(g snRefGeom, w, u []float64) (u2, v2 []float64, sigma float64) {
	wu := make([]float64, g.w)
	for r := 0; r < g.h; r++ {
		for c := 0; c < g.w; c++ {
			wu[c] += w[g.idx(r, c)] * u[r]
		}
	}
	v2 = normalize64(wu)
	wv := make([]float64, g.h)
	for r := 0; r < g.h; r++ {
		for c := 0; c < g.w; c++ {
			wv[r] += w[g.idx(r, c)] * v2[c]
		}
	}
	u2 = normalize64(wv)
	return u2, v2, snRefSigma(g, w, u2, v2)
}

// snInnerEach visits every (input, weight, output) index triple of the
// inner layer's product for a batch: y[yi] += x[xi] * w[wi] (Linear's bias
// comes on top).
func snInnerEach(l Layer, batch int) func(fn func(xi, wi, yi int)) {
	switch l := l.(type) {
	case *Conv2d:
		if l.Transposed {
			// The conv from the output back to the input, whose weight
			// [Cout=In, Cin=Out, k, k] is the transposed layer's own.
			s := convShape{N: batch, Cin: l.Out, H: l.outHW, W: l.outHW, Cout: l.In, KH: l.K, KW: l.K, S: l.S, P: l.P}
			return func(fn func(xi, wi, yi int)) { s.each(func(a, wi, b int) { fn(b, wi, a) }) }
		}
		s := convShape{N: batch, Cin: l.In, H: l.inHW, W: l.inHW, Cout: l.Out, KH: l.K, KW: l.K, S: l.S, P: l.P}
		return s.each
	case *Linear:
		return func(fn func(xi, wi, yi int)) {
			for n := 0; n < batch; n++ {
				for o := 0; o < l.Out; o++ {
					for i := 0; i < l.In; i++ {
						fn(n*l.In+i, o*l.In+i, n*l.Out+o)
					}
				}
			}
		}
	}
	panic(fmt.Sprintf("no reference for %T", l))
}

// snSetup declares, initialises and binds SpectralNorm(inner) named "m",
// with its state on the device.
type snSetup struct {
	l              Layer
	inner          Layer
	b              *boundSN
	params, stats  []ParamSpec
	pv, sv         map[string][]float32
	P, S, G        *ParamSet
	in, out        []int
	batch          int
	geom           snRefGeom
	worig, uN, vN  string
	x, dx          *Tensor
	xv, dyv        []float32
	releaseOnClean []*Tensor
}

func newSNSetup(t *testing.T, d *Device, inner Layer, in []int, batch int, seed uint64) *snSetup {
	t.Helper()
	s := &snSetup{inner: inner, l: SpectralNorm(inner), in: in, batch: batch, worig: "m.weight_orig", uN: "m.weight_u", vN: "m.weight_v"}
	s.l.SetName("m")
	var err error
	s.out, s.params, s.stats, err = s.l.Declare(in)
	require.NoError(t, err)
	s.geom = snRefGeomOf(inner)
	rng := newRand(seed)
	s.pv, s.sv = map[string][]float32{}, map[string][]float32{}
	s.l.Init(rng, s.pv, s.sv)
	set := func(specs []ParamSpec, vals map[string][]float32) *ParamSet {
		ps, err := d.NewParamSet(specs)
		require.NoError(t, err)
		t.Cleanup(ps.Release)
		if vals != nil {
			require.NoError(t, ps.Set(vals))
		}
		return ps
	}
	s.P, s.S, s.G = set(s.params, s.pv), set(s.stats, s.sv), set(s.params, nil)
	b, err := s.l.Bind(d, batch, Port{}, func(x *Tensor) { s.releaseOnClean = append(s.releaseOnClean, x) })
	t.Cleanup(func() {
		for _, x := range s.releaseOnClean {
			x.Release()
		}
	})
	require.NoError(t, err)
	s.b = b.(*boundSN)
	s.xv = randSlice(rng, batch*prod(in))
	s.dyv = randSlice(rng, batch*prod(s.out))
	s.x = tensorOf(t, d, s.xv, append([]int{batch}, in...)...)
	s.dx = zeros(t, d, append([]int{batch}, in...)...)
	return s
}

// refForward is the inner layer's output with weight w (float64).
func (s *snSetup) refForward(w []float64) []float64 {
	y := make([]float64, s.batch*prod(s.out))
	snInnerEach(s.inner, s.batch)(func(xi, wi, yi int) { y[yi] += float64(s.xv[xi]) * w[wi] })
	if l, ok := s.inner.(*Linear); ok {
		bias := s.pv["m.bias"]
		for i := range y {
			y[i] += float64(bias[i%l.Out])
		}
	}
	return y
}

// refBackward is the inner layer's input gradient with weight w and its
// weight gradient, for the upstream gradient dyv.
func (s *snSetup) refBackward(w []float64) (dx, gw []float64) {
	dx = make([]float64, len(s.xv))
	gw = make([]float64, len(w))
	snInnerEach(s.inner, s.batch)(func(xi, wi, yi int) {
		dx[xi] += float64(s.dyv[yi]) * w[wi]
		gw[wi] += float64(s.dyv[yi]) * float64(s.xv[xi])
	})
	return dx, gw
}

func (s *snSetup) forward(t *testing.T, d *Device, train bool) {
	t.Helper()
	p := &Pass{Params: s.P, Stats: s.S, Train: train}
	if train {
		p.Momentum = bnMomentum
	}
	run(t, d, func(r *Recorder) error { s.b.Forward(r, p, s.x); return r.Err() })
}

func (s *snSetup) stat(t *testing.T, name string) []float32 {
	t.Helper()
	v, err := s.S.Get()
	require.NoError(t, err)
	return v[name]
}

var snCases = []struct {
	name  string
	layer func() Layer
	in    []int
	batch int
}{
	{"conv2d 3x7x7 k3 s2 p1", func() Layer { return NewConv2d(3, 5, 3, 2, 1, 0.3) }, []int{3, 7, 7}, 2},
	{"conv transpose 5x5x5 k4 s2 p1", func() Layer { return ConvTranspose2d(5, 3, 4, 2, 1, 0.3) }, []int{5, 5, 5}, 2},
	{"linear 7 to 5", func() Layer { return NewLinear(7, 5) }, []int{7}, 3},
	{"linear 13 to 300", func() Layer { return NewLinear(13, 300) }, []int{13}, 2},
	{"dcgan D conv 256 to 512 on 8x8", func() Layer { return NewConv2d(256, 512, 4, 2, 1, 0.02) }, []int{256, 8, 8}, 2},
	{"dcgan G conv transpose 512 to 256 from 4x4", func() Layer { return ConvTranspose2d(512, 256, 4, 2, 1, 0.02) }, []int{512, 4, 4}, 2},
}

// TestSpectralNormForward checks two training forwards (u, v, sigma, W_sn
// and the output after each), then an evaluation forward, which must
// leave u and v as they are, against the float64 reference.
func TestSpectralNormForward(t *testing.T) {
	d := newTestDevice(t)
	for ci, c := range snCases {
		t.Run(c.name, func(t *testing.T) {
			s := newSNSetup(t, d, c.layer(), c.in, c.batch, uint64(10+ci))
			w := to64(s.pv[s.worig])
			u := to64(s.sv[s.uN])
			var worst [5]float64
			check := func(what string, u2, v2 []float64, sigma float64) {
				wsn := make([]float64, len(w))
				for i := range w {
					wsn[i] = w[i] / sigma
				}
				gotU, gotV := s.stat(t, s.uN), s.stat(t, s.vN)
				gotSigma := download(t, s.b.sigma)[0]
				gotWsn := download(t, s.b.wsn)
				gotY := download(t, s.b.Out().X)
				wantY := s.refForward(wsn)
				// u and v are unit vectors; sigma, W_sn and y are relative
				// to their size (float32 sums of up to 4096 terms).
				assertClose(t, what+" u", u2, gotU, 1e-4, 2e-5)
				assertClose(t, what+" v", v2, gotV, 1e-4, 2e-5)
				assertClose(t, what+" sigma", []float64{sigma}, []float32{gotSigma}, 1e-5, 0)
				assertClose(t, what+" W_sn", wsn, gotWsn, 1e-5, 1e-7)
				yScale := maxAbs(wantY)
				assertClose(t, what+" y", wantY, gotY, 1e-4, 1e-5*yScale)
				for i, e := range []float64{maxAbsDiff(u2, gotU), maxAbsDiff(v2, gotV), math.Abs(float64(gotSigma)-sigma) / sigma,
					maxAbsDiff(wsn, gotWsn) / maxAbs(wsn), maxAbsDiff(wantY, gotY) / yScale} {
					worst[i] = max(worst[i], e)
				}
			}
			for it := range 2 {
				var v2 []float64
				var sigma float64
				u, v2, sigma = snRefPower(s.geom, w, u)
				s.forward(t, d, true)
				check(fmt.Sprintf("train %d", it+1), u, v2, sigma)
			}
			// Evaluation: sigma from the stored (device) vectors, which stay.
			storedU, storedV := s.stat(t, s.uN), s.stat(t, s.vN)
			s.forward(t, d, false)
			require.Equal(t, storedU, s.stat(t, s.uN), "an evaluation pass changed u")
			require.Equal(t, storedV, s.stat(t, s.vN), "an evaluation pass changed v")
			check("eval", to64(storedU), to64(storedV), snRefSigma(s.geom, w, to64(storedU), to64(storedV)))
			// Sampling (batch statistics, Momentum 0) leaves them too.
			sample := &Pass{Params: s.P, Stats: s.S, Train: true}
			run(t, d, func(r *Recorder) error { s.b.Forward(r, sample, s.x); return r.Err() })
			require.Equal(t, storedU, s.stat(t, s.uN), "a sampling pass changed u")
			require.Equal(t, storedV, s.stat(t, s.vN), "a sampling pass changed v")
			check("sample", to64(storedU), to64(storedV), snRefSigma(s.geom, w, to64(storedU), to64(storedV)))
			t.Logf("max error: u %.2g, v %.2g (abs); sigma %.2g, W_sn %.2g, y %.2g (relative to max)", worst[0], worst[1], worst[2], worst[3], worst[4])
		})
	}
}

// TestSpectralNormBackward checks the weight_orig gradient against
// central differences of the float64 L(W) = <R, W / (u^T W v)> with u, v
// fixed at their values after the forward and R the inner layer's weight
// gradient (L's gradient through the layer for the upstream gradient dy,
// since the layer is linear in W_sn); the input gradient and Linear's
// bias against the reference; Accumulate (adds) and plain passes
// (overwrite, whatever Grads held); and Grads nil (input gradient only).
func TestSpectralNormBackward(t *testing.T) {
	d := newTestDevice(t)
	for ci, c := range snCases {
		t.Run(c.name, func(t *testing.T) {
			s := newSNSetup(t, d, c.layer(), c.in, c.batch, uint64(20+ci))
			s.forward(t, d, true)
			w := to64(s.pv[s.worig])
			u, v := to64(s.stat(t, s.uN)), to64(s.stat(t, s.vN))
			sigma := snRefSigma(s.geom, w, u, v)
			wsn := make([]float64, len(w))
			for i := range w {
				wsn[i] = w[i] / sigma
			}
			wantDx, R := s.refBackward(wsn)
			_, isLinear := s.inner.(*Linear)
			var wantDb []float64
			if l, ok := s.inner.(*Linear); ok {
				wantDb = make([]float64, l.Out)
				for i, g := range s.dyv {
					wantDb[i%l.Out] += float64(g)
				}
			}

			backward := func(grads *ParamSet, acc bool) {
				require.NoError(t, s.b.Out().DX.Upload(s.dyv))
				p := &Pass{Params: s.P, Stats: s.S, Grads: grads, Accumulate: acc, Train: true, Momentum: bnMomentum}
				run(t, d, func(r *Recorder) error { s.b.Backward(r, p, s.x, s.dx); return r.Err() })
			}
			// Grads hold junk first: a plain pass overwrites it.
			junk := map[string][]float32{}
			for _, p := range s.params {
				junk[p.Name] = randSlice(newRand(99), prod(p.Shape))
			}
			require.NoError(t, s.G.Set(junk))
			backward(s.G, false)
			got, err := s.G.Get()
			require.NoError(t, err)
			gotDx := download(t, s.dx)
			dxScale := maxAbs(wantDx)
			assertClose(t, "dx", wantDx, gotDx, 1e-4, 1e-5*dxScale)
			if isLinear {
				assertClose(t, "bias grad", wantDb, got["m.bias"], 1e-4, 1e-5)
			}

			// L(W) in float64 and its central differences at sampled
			// entries (every entry of the small weights).
			L := func(w []float64) float64 {
				var num float64
				for i := range w {
					num += R[i] * w[i]
				}
				return num / snRefSigma(s.geom, w, u, v)
			}
			idx := make([]int, len(w))
			for i := range idx {
				idx[i] = i
			}
			if len(w) > 400 {
				idx = sampleIdx(newRand(uint64(ci)), len(w), 40)
			}
			gw := got[s.worig]
			gScale := 0.0
			for _, g := range gw {
				gScale = max(gScale, math.Abs(float64(g)))
			}
			var worst float64
			wp := slices.Clone(w)
			for _, i := range idx {
				h := 1e-4 * max(math.Abs(w[i]), 1e-2)
				wp[i] = w[i] + h
				lp := L(wp)
				wp[i] = w[i] - h
				lm := L(wp)
				wp[i] = w[i]
				want := (lp - lm) / (2 * h)
				diff := math.Abs(float64(gw[i]) - want)
				worst = max(worst, diff/gScale)
				require.LessOrEqual(t, diff, 1e-4*math.Abs(want)+2e-5*gScale, "dW_orig[%d] = %g, finite difference %g", i, gw[i], want)
			}
			t.Logf("max error: dW_orig %.2g (relative to max |dW|, %d entries), dx %.2g (relative)", worst, len(idx), maxAbsDiff(wantDx, gotDx)/dxScale)

			// Accumulate adds the same gradient again.
			backward(s.G, true)
			twice, err := s.G.Get()
			require.NoError(t, err)
			for name, g := range got {
				want := make([]float64, len(g))
				for i := range g {
					want[i] = 2 * float64(g[i])
				}
				assertClose(t, name+" accumulated", want, twice[name], 1e-5, 1e-7*gScale)
			}

			// Grads nil: the input gradient only, and no weight gradient
			// anywhere (the scratch is not even written).
			require.NoError(t, s.b.dwsn.Upload(make([]float32, s.b.dwsn.Len())))
			require.NoError(t, s.dx.Upload(make([]float32, s.dx.Len())))
			backward(nil, false)
			assertClose(t, "dx without weight gradients", wantDx, download(t, s.dx), 1e-4, 1e-5*dxScale)
			require.Equal(t, make([]float32, s.b.dwsn.Len()), download(t, s.b.dwsn), "weight gradient computed with Grads nil")
			again, err := s.G.Get()
			require.NoError(t, err)
			require.Equal(t, twice, again, "Grads changed by a pass without them")
		})
	}
}

// TestSpectralNormState checks the state's names and shapes (PyTorch's),
// that initialisation draws the inner weight as the inner layer does and
// then u and v from the same rng, reproducibly, and what the wrapper
// reports to the network (output shape, FLOPs, children).
func TestSpectralNormState(t *testing.T) {
	for _, c := range []struct {
		name         string
		layer        func() Layer
		in           []int
		params       []string
		stats        []ParamSpec
		innerParams  []string
		wantOutShape []int
	}{
		{"conv2d", func() Layer { return NewConv2d(3, 8, 4, 2, 1, 0.02) }, []int{3, 8, 8},
			[]string{"main.0.weight_orig"}, []ParamSpec{{"main.0.weight_u", []int{8}}, {"main.0.weight_v", []int{48}}}, []string{"main.0.weight"}, []int{8, 4, 4}},
		{"conv transpose", func() Layer { return ConvTranspose2d(8, 3, 4, 2, 1, 0.02) }, []int{8, 4, 4},
			[]string{"main.0.weight_orig"}, []ParamSpec{{"main.0.weight_u", []int{3}}, {"main.0.weight_v", []int{128}}}, []string{"main.0.weight"}, []int{3, 8, 8}},
		{"linear", func() Layer { return NewLinear(6, 4) }, []int{6},
			[]string{"main.0.weight_orig", "main.0.bias"}, []ParamSpec{{"main.0.weight_u", []int{4}}, {"main.0.weight_v", []int{6}}}, []string{"main.0.weight", "main.0.bias"}, []int{4}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, err := NewNet("D", "main", NewSequential(SpectralNorm(c.layer())), c.in)
			require.NoError(t, err)
			plain, err := NewNet("D", "main", NewSequential(c.layer()), c.in)
			require.NoError(t, err)
			var names []string
			for _, p := range n.Params {
				names = append(names, p.Name)
			}
			require.Equal(t, c.params, names)
			require.Equal(t, c.stats, n.Stats)
			require.Equal(t, c.wantOutShape, n.Out)
			require.Equal(t, plain.FLOPs(), n.FLOPs())
			require.Empty(t, n.BatchNorms())

			seed := func() *rand.Rand { return rand.New(rand.NewPCG(7, 8)) }
			p1, s1 := n.Init(seed())
			p2, s2 := n.Init(seed())
			require.Equal(t, p1, p2, "parameters drawn twice from one seed")
			require.Equal(t, s1, s2, "u and v drawn twice from one seed")
			rng := seed()
			pp, _ := plain.Init(rng)
			for i, name := range c.innerParams {
				require.Equal(t, pp[name], p1[c.params[i]], "%s drawn as the inner layer draws %s", c.params[i], name)
			}
			wantU, wantV := normalDirection(rng, c.stats[0].Shape[0]), normalDirection(rng, c.stats[1].Shape[0])
			require.Equal(t, wantU, s1[c.stats[0].Name], "u: the draws after the inner layer's")
			require.Equal(t, wantV, s1[c.stats[1].Name], "v: the draws after u's")
			for _, st := range c.stats {
				var ss float64
				for _, x := range s1[st.Name] {
					ss += float64(x) * float64(x)
				}
				require.InDelta(t, 1, ss, 1e-6, "%s is a unit vector", st.Name)
			}
		})
	}
	_, _, _, err := SpectralNorm(LeakyReLU(0.2)).Declare([]int{4})
	require.ErrorContains(t, err, "Conv2d or a Linear")
}

// TestSpectralNormBindInto checks that a spectral-norm Linear can write a
// network's output into a given tensor, as a plain Linear can.
func TestSpectralNormBindInto(t *testing.T) {
	d := newTestDevice(t)
	n, err := NewNet("D", "main", NewSequential(NewLinear(3, 4), ReLU(), SpectralNorm(NewLinear(4, 2))), []int{3})
	require.NoError(t, err)
	out := zeros(t, d, 5, 2)
	b, err := n.BindInto(d, 5, out, keeper(t))
	require.NoError(t, err)
	require.Same(t, out, b.Out().X)
}
