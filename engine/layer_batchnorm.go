package engine

import (
	"fmt"
	"math/rand/v2"
)

// BatchNorm is nn.BatchNorm2d over [N, C, H, W] (and nn.BatchNorm1d over
// [N, C]) with PyTorch's defaults: eps 1e-5, momentum 0.1, affine, running
// statistics.
type BatchNorm struct {
	name string
	C    int
	// InitStd: weights N(1, InitStd) (the DCGAN example's), or 1 when 0.
	InitStd float64
	in      []int
}

// NewBatchNorm is a batch norm over c channels.
func NewBatchNorm(c int, initStd float64) *BatchNorm { return &BatchNorm{C: c, InitStd: initStd} }

func (b *BatchNorm) Name() string        { return b.name }
func (b *BatchNorm) SetName(name string) { b.name = name }
func (b *BatchNorm) TracksBatches() bool { return true }

func (b *BatchNorm) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if len(in) < 1 || in[0] != b.C {
		return nil, nil, nil, fmt.Errorf("%s: input %v, want %d channels first", b.name, in, b.C)
	}
	b.in = in
	c := []int{b.C}
	return in, []ParamSpec{{joinName(b.name, "weight"), c}, {joinName(b.name, "bias"), c}},
		[]ParamSpec{{joinName(b.name, "running_mean"), c}, {joinName(b.name, "running_var"), c}}, nil
}

func (b *BatchNorm) Init(rng *rand.Rand, params, stats map[string][]float32) {
	w := make([]float32, b.C)
	if b.InitStd > 0 {
		normalFill(w, rng, 1, b.InitStd)
	} else {
		for i := range w {
			w[i] = 1 // PyTorch's default; draws nothing
		}
	}
	params[joinName(b.name, "weight")] = w
	params[joinName(b.name, "bias")] = make([]float32, b.C)
	stats[joinName(b.name, "running_mean")] = make([]float32, b.C)
	v := make([]float32, b.C)
	for i := range v {
		v[i] = 1
	}
	stats[joinName(b.name, "running_var")] = v
}

func (b *BatchNorm) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	shape := append([]int{batch}, b.in...)
	bb := &boundBN{
		gamma: joinName(b.name, "weight"), beta: joinName(b.name, "bias"),
		rm: joinName(b.name, "running_mean"), rv: joinName(b.name, "running_var"),
	}
	var err error
	if bb.out.X, err = alloc(d, keep, shape...); err != nil {
		return nil, err
	}
	if bb.out.DX, err = allocGrad(d, prev, keep, shape...); err != nil {
		return nil, err
	}
	for _, t := range []**Tensor{&bb.mean, &bb.invstd, &bb.dgamma, &bb.dbeta} {
		if *t, err = alloc(d, keep, b.C); err != nil {
			return nil, err
		}
	}
	return bb, nil
}

type boundBN struct {
	gamma, beta, rm, rv string
	out                 Port
	mean, invstd        *Tensor // the batch's statistics, saved for backward
	dgamma, dbeta       *Tensor // scratch when gradients are added or not wanted
	// The in-place activation after the batch norm, when its kernels do
	// its work (fuseNext); nil otherwise.
	fused *Activation
	act   bnAct
}

// forceNoBNActFusion keeps batch norm and the activation after it in
// separate kernels; tests and benchmarks compare the two.
var forceNoBNActFusion bool

// fuseNext takes an in-place ReLU or LeakyReLU after the batch norm into
// its kernels and turns the activation's own passes off.
func (b *boundBN) fuseNext(next Bound) {
	a, ok := next.(*boundAct)
	if !ok || !a.inPlace || forceNoBNActFusion {
		return
	}
	if act, ok := fusedAct(a.a.op, a.a.slope); ok {
		b.fused, b.act = a.a, act
		a.fusedFwd, a.fusedBwd = true, true
	}
}

func (b *boundBN) Out() Port { return b.out }

func (b *boundBN) Forward(r *Recorder, p *Pass, x *Tensor) {
	g, bt := p.Params.T(b.gamma), p.Params.T(b.beta)
	rm, rv := p.Stats.T(b.rm), p.Stats.T(b.rv)
	if p.Train {
		r.batchNormTrain(b.out.X, x, g, bt, rm, rv, b.mean, b.invstd, p.Momentum, bnEps, b.act)
		return
	}
	r.BatchNormInference(b.out.X, x, g, bt, rm, rv, bnEps)
	if b.fused != nil { // sampling: one pass more is of no account
		r.actForward(b.fused.op, b.out.X, b.out.X, b.fused.slope)
	}
}

func (b *boundBN) Backward(r *Recorder, p *Pass, x, dx *Tensor) {
	dgamma, dbeta := b.dgamma, b.dbeta
	if p.Grads != nil && !p.Accumulate {
		dgamma, dbeta = p.Grads.T(b.gamma), p.Grads.T(b.beta)
	}
	if dx == nil { // the kernel always writes the input gradient
		var err error
		if dx, err = r.scratch(scratchDiscard, x.shape...); err != nil {
			r.fail(err)
			return
		}
	}
	r.batchNormBackward(dx, dgamma, dbeta, b.out.DX, x, p.Params.T(b.gamma), p.Params.T(b.beta), b.mean, b.invstd, b.act)
	if p.Grads != nil && p.Accumulate {
		r.Axpy(p.Grads.T(b.gamma), dgamma, 1)
		r.Axpy(p.Grads.T(b.beta), dbeta, 1)
	}
}
