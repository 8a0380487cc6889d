package engine

import (
	"fmt"
	"math"
	"math/rand/v2"

	"vkgan/shaders"
)

// snEps is torch.nn.utils.spectral_norm's default eps, the floor of the
// norms its power iteration divides by.
const snEps = 1e-12

// spectralNorm is PyTorch 1.13's torch.nn.utils.spectral_norm(module)
// around a Conv2d (transposed or not) or a Linear: the inner layer runs
// with W_sn = W_orig / sigma, sigma the largest singular value of W_orig
// seen as a matrix [h, w] (dim 0 first; dim 1 for ConvTranspose2d, whose
// weight is [In, Out, k, k]), estimated by one power-iteration step per
// training forward on the vectors u [h] and v [w] kept between steps.
type spectralNorm struct {
	name  string
	inner Layer
	// The weight as spectral norm's matrix: W(r,c) is at element
	// ((c/kk)*h + r)*kk + c%kk of the weight tensor (kk = w for dim 0).
	h, w, kk int
	shape    []int // the weight's shape
}

// SpectralNorm wraps inner, a *Conv2d (including a transposed one) or a
// *Linear, as torch.nn.utils.spectral_norm(inner) does with its defaults
// (one power iteration, eps 1e-12). Its state has PyTorch's names: the
// parameter NAME.weight_orig in place of NAME.weight, the inner's other
// parameters unchanged, and the running statistics NAME.weight_u [h] and
// NAME.weight_v [w]. A training pass that moves running statistics
// (Pass.Train with a nonzero Momentum) updates u and v in place before
// using them, so each forward in a step iterates once, as in PyTorch;
// other passes use them as stored, sampling included, so that drawing
// samples never changes a run's trajectory. Any other inner layer is an
// error at Declare.
func SpectralNorm(inner Layer) Layer { return &spectralNorm{inner: inner} }

func (s *spectralNorm) Name() string { return s.name }

// SetName names s and the inner layer alike: PyTorch keeps the wrapped
// module's name (main.0.weight_orig).
func (s *spectralNorm) SetName(name string) {
	s.name = name
	s.inner.SetName(name)
}

func (s *spectralNorm) children() []Layer { return []Layer{s.inner} }

func (s *spectralNorm) weightName() string { return joinName(s.name, "weight") }
func (s *spectralNorm) origName() string   { return joinName(s.name, "weight_orig") }
func (s *spectralNorm) uName() string      { return joinName(s.name, "weight_u") }
func (s *spectralNorm) vName() string      { return joinName(s.name, "weight_v") }

func (s *spectralNorm) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	switch l := s.inner.(type) {
	case *Conv2d, *Linear:
	default:
		return nil, nil, nil, fmt.Errorf("%s: spectral norm wraps a Conv2d or a Linear, not a %T", s.name, l)
	}
	out, params, stats, err := s.inner.Declare(in)
	if err != nil {
		return nil, nil, nil, err
	}
	renamed := make([]ParamSpec, len(params))
	copy(renamed, params)
	found := false
	for i, p := range renamed {
		if p.Name == s.weightName() {
			renamed[i].Name, found = s.origName(), true
			s.shape = p.Shape
		}
	}
	if !found {
		return nil, nil, nil, fmt.Errorf("%s: spectral norm: the inner layer declares no %s", s.name, s.weightName())
	}
	n := prod(s.shape)
	s.h = s.shape[0]
	s.w = n / s.h
	s.kk = s.w
	if c, ok := s.inner.(*Conv2d); ok && c.Transposed {
		// dim 1: [In, Out, k, k] as [Out, In*k*k].
		s.h, s.w, s.kk = c.Out, c.In*c.K*c.K, c.K*c.K
	}
	stats = append(stats, ParamSpec{s.uName(), []int{s.h}}, ParamSpec{s.vName(), []int{s.w}})
	return out, renamed, stats, nil
}

// Init draws the inner layer's state as the inner layer does (the weight
// becomes weight_orig), then u and v from N(0, 1), each normalised, as
// spectral_norm does after the module's own initialisation.
func (s *spectralNorm) Init(rng *rand.Rand, params, stats map[string][]float32) {
	s.inner.Init(rng, params, stats)
	params[s.origName()] = params[s.weightName()]
	delete(params, s.weightName())
	stats[s.uName()] = normalDirection(rng, s.h)
	stats[s.vName()] = normalDirection(rng, s.w)
}

// normalDirection is n N(0,1) draws divided by their norm (floored at
// snEps, as F.normalize does).
func normalDirection(rng *rand.Rand, n int) []float32 {
	x := make([]float64, n)
	var ss float64
	for i := range x {
		x[i] = rng.NormFloat64()
		ss += x[i] * x[i]
	}
	norm := max(math.Sqrt(ss), snEps)
	out := make([]float32, n)
	for i, v := range x {
		out[i] = float32(v / norm)
	}
	return out
}

func (s *spectralNorm) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	ib, err := s.inner.Bind(d, batch, prev, keep)
	if err != nil {
		return nil, err
	}
	return s.wrap(d, ib, keep)
}

// bindInto binds the inner layer with out as its output (a Linear can).
func (s *spectralNorm) bindInto(d *Device, batch int, prev Port, out *Tensor, keep func(*Tensor)) (Bound, error) {
	in, ok := s.inner.(intoBinder)
	if !ok {
		return nil, fmt.Errorf("%s cannot write its output into a given tensor", s.name)
	}
	ib, err := in.bindInto(d, batch, prev, out, keep)
	if err != nil {
		return nil, err
	}
	return s.wrap(d, ib, keep)
}

// wrap allocates the normalised weight and the buffers of the power
// iteration, and points the inner bound layer at them.
func (s *spectralNorm) wrap(d *Device, ib Bound, keep func(*Tensor)) (Bound, error) {
	if lim := int(d.info.Limits.MaxWorkGroupCount[0]); s.h > lim {
		return nil, fmt.Errorf("%s: spectral norm over %d rows exceeds the device's %d workgroups", s.name, s.h, lim)
	}
	b := &boundSN{s: s, inner: ib}
	for _, a := range []struct {
		t     **Tensor
		shape []int
	}{
		{&b.wsn, s.shape}, {&b.dwsn, s.shape},
		{&b.wu, []int{s.w}}, {&b.wv, []int{s.h}}, {&b.rows, []int{s.h}},
		{&b.sigma, []int{1}}, {&b.gdot, []int{1}},
	} {
		var err error
		if *a.t, err = alloc(d, keep, a.shape...); err != nil {
			return nil, fmt.Errorf("%s: spectral norm: %w", s.name, err)
		}
	}
	switch ib := ib.(type) {
	case *boundConv:
		ib.wfn = b.weights
	case *boundLinear:
		ib.wfn = b.weights
	default:
		return nil, fmt.Errorf("%s: spectral norm cannot substitute the weight of a %T", s.name, ib)
	}
	return b, nil
}

// weightFn gives the weight a bound Conv2d or Linear runs with and the
// tensor its weight gradient goes to, overwritten or (acc) added to; dw is
// nil when p.Grads is. SpectralNorm sets one to substitute W_sn and a
// scratch gradient for the named parameter.
type weightFn func(p *Pass) (w, dw *Tensor, acc bool)

// weights resolves through f or, when f is nil, to the parameter name, its
// gradient in p.Grads and p.Accumulate.
func (f weightFn) weights(p *Pass, name string) (w, dw *Tensor, acc bool) {
	if f != nil {
		return f(p)
	}
	w = p.Params.T(name)
	if p.Grads != nil {
		dw = p.Grads.T(name)
	}
	return w, dw, p.Accumulate
}

type boundSN struct {
	s     *spectralNorm
	inner Bound
	wsn   *Tensor // W_orig / sigma, the weight the inner layer runs with
	dwsn  *Tensor // the inner layer's weight gradient, dL/dW_sn
	wu    *Tensor // W^T u [w], before normalising into v
	wv    *Tensor // W v [h], before normalising into u
	rows  *Tensor // per-row sums of dL/dW_sn * W_sn [h]
	sigma *Tensor // [1]
	gdot  *Tensor // <dL/dW_sn, W_sn> [1]
}

func (b *boundSN) Out() Port { return b.inner.Out() }

// fuseNext and fusePrev let the inner layer's epilogues do the work of
// the activations around it, as they would without spectral norm.
func (b *boundSN) fuseNext(next Bound) {
	if f, ok := b.inner.(nextFuser); ok {
		f.fuseNext(next)
	}
}

func (b *boundSN) fusePrev(prev Bound) {
	if f, ok := b.inner.(prevFuser); ok {
		f.fusePrev(prev)
	}
}

func (b *boundSN) weights(p *Pass) (w, dw *Tensor, acc bool) {
	if p.Grads != nil {
		dw = b.dwsn
	}
	return b.wsn, dw, false
}

// Forward records the power iteration (training passes only), sigma and
// W_sn, then the inner layer with W_sn. Everything stays on the device.
func (b *boundSN) Forward(r *Recorder, p *Pass, x *Tensor) {
	s := b.s
	w := p.Params.T(s.origName())
	u, v := p.Stats.T(s.uName()), p.Stats.T(s.vName())
	geom := snGeom{h: s.h, w: s.w, kk: s.kk}
	mode := snSigmaStored
	if p.Train && p.Momentum != 0 {
		r.snColVec(b.wu, w, u, geom)
		r.snNormalize(snNormalizeOnly, v, b.wu, b.sigma)
		mode = snSigmaUpdate
	}
	r.rowDot("spectral norm W v", b.wv, w, v, geom, false)
	r.snNormalize(mode, u, b.wv, b.sigma)
	r.snScale(b.wsn, w, b.sigma)
	b.inner.Forward(r, p, x)
}

// Backward records the inner layer's backward with W_sn, its weight
// gradient into scratch, and maps that to weight_orig with u and v held
// constant: dW = (G - <G, W_sn> u v^T) / sigma.
func (b *boundSN) Backward(r *Recorder, p *Pass, x, dx *Tensor) {
	b.inner.Backward(r, p, x, dx)
	if p.Grads != nil {
		b.mapGrad(r, p, b.dwsn, p.Accumulate)
	}
}

// mapGrad records dW_orig from g = dL/dW_sn into p.Grads (added when acc),
// from the last forward's sigma, u and v.
func (b *boundSN) mapGrad(r *Recorder, p *Pass, g *Tensor, acc bool) {
	s := b.s
	// <G, W_sn> is a sum over every element: any split into h rows does.
	r.rowDot("spectral norm backward", b.rows, g, b.wsn, snGeom{h: s.h, w: s.w, kk: s.w}, true)
	r.Sum(b.gdot, b.rows)
	r.snBackward(p.Grads.T(s.origName()), g, p.Stats.T(s.uName()), p.Stats.T(s.vName()), b.sigma, b.gdot, snGeom{h: s.h, w: s.w, kk: s.kk}, acc)
}

// snGeom is a weight tensor seen as spectral norm's [h, w] matrix: W(r,c)
// at element ((c/kk)*h + r)*kk + c%kk.
type snGeom struct{ h, w, kk int }

// snCheck checks that each tensor is set and has its expected length.
func snCheck(op string, ts []*Tensor, lens []int) error {
	for i, t := range ts {
		if t == nil || t.buf == nil {
			return fmt.Errorf("engine: %s: tensor argument %d is nil or released", op, i)
		}
		if t.n != lens[i] {
			return fmt.Errorf("engine: %s: tensor argument %d %v has %d elements, want %d", op, i, t.shape, t.n, lens[i])
		}
	}
	return nil
}

// snColVec records y = W^T u.
func (r *Recorder) snColVec(y, w, u *Tensor, g snGeom) error {
	if err := snCheck("spectral norm W^T u", []*Tensor{y, w, u}, []int{g.w, g.h * g.w, g.h}); err != nil {
		return r.fail(err)
	}
	push := shaders.SnColvecPush{H: uint32(g.h), W: uint32(g.w), Kk: uint32(g.kk)}
	return dispatch(r, shaders.SnColvec, nil, [3]uint32{uint32((g.w + 63) / 64), 1, 1}, push, y, w, u)
}

// rowDot records y[r] = sum_c W(r,c) x[c] or, with mat, the row sums of
// W * x elementwise (x in W's layout; it may be w itself). op names the
// caller in errors.
func (r *Recorder) rowDot(op string, y, w, x *Tensor, g snGeom, mat bool) error {
	xn := g.w
	if mat {
		xn = g.h * g.w
	}
	if err := snCheck(op, []*Tensor{y, w, x}, []int{g.h, g.h * g.w, xn}); err != nil {
		return r.fail(err)
	}
	if lim := int(r.d.info.Limits.MaxWorkGroupCount[0]); g.h > lim {
		return r.fail(fmt.Errorf("engine: %s: %d rows exceed the device's %d workgroups", op, g.h, lim))
	}
	push := shaders.SnRowdotPush{H: uint32(g.h), W: uint32(g.w), Kk: uint32(g.kk)}
	return dispatch(r, shaders.SnRowdot, []uint32{b2u(mat)}, [3]uint32{uint32(g.h), 1, 1}, push, y, w, x)
}

// sn_normalize's modes.
const (
	snNormalizeOnly uint32 = iota // y = x / max(||x||, eps)
	snSigmaUpdate                 // the same, then sigma = y . x
	snSigmaStored                 // sigma = y . x, y unchanged
)

// snNormalize records one of sn_normalize's modes on y and x (the same
// length) with sigma one element.
func (r *Recorder) snNormalize(mode uint32, y, x, sigma *Tensor) error {
	if x == nil {
		return r.fail(fmt.Errorf("engine: spectral norm normalize: x is nil"))
	}
	if err := snCheck("spectral norm normalize", []*Tensor{y, x, sigma}, []int{x.n, x.n, 1}); err != nil {
		return r.fail(err)
	}
	push := shaders.SnNormalizePush{N: uint32(x.n), Eps: snEps}
	return dispatch(r, shaders.SnNormalize, []uint32{mode}, [3]uint32{1, 1, 1}, push, y, x, sigma)
}

// snScale records y = x / sigma[0].
func (r *Recorder) snScale(y, x, sigma *Tensor) error {
	if x == nil {
		return r.fail(fmt.Errorf("engine: spectral norm scale: x is nil"))
	}
	if err := snCheck("spectral norm scale", []*Tensor{y, x, sigma}, []int{x.n, x.n, 1}); err != nil {
		return r.fail(err)
	}
	return dispatch(r, shaders.SnScale, nil, r.ewGroups(x.n), shaders.SnScalePush{N: uint32(x.n)}, y, x, sigma)
}

// snBackward records dw (= or +=) (g - gdot u v^T) / sigma in the weight's
// layout.
func (r *Recorder) snBackward(dw, g, u, v, sigma, gdot *Tensor, geom snGeom, acc bool) error {
	n := geom.h * geom.w
	if err := snCheck("spectral norm backward", []*Tensor{dw, g, u, v, sigma, gdot}, []int{n, n, geom.h, geom.w, 1, 1}); err != nil {
		return r.fail(err)
	}
	if dw.shares(g) {
		return r.fail(fmt.Errorf("engine: spectral norm backward: dw must not alias g"))
	}
	push := shaders.SnBackwardPush{N: uint32(n), H: uint32(geom.h), Kk: uint32(geom.kk), Acc: b2u(acc)}
	return dispatch(r, shaders.SnBackward, nil, r.ewGroups(n), push, dw, g, u, v, sigma, gdot)
}

var (
	_ Layer      = (*spectralNorm)(nil)
	_ parent     = (*spectralNorm)(nil)
	_ intoBinder = (*spectralNorm)(nil)
)
