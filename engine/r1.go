package engine

import (
	"fmt"
	"math"
)

// R1 is StyleGAN2's R1 penalty on real images, P = gamma/2 * mean_i
// ||grad_x D(x_i)||^2, and its exact gradient with respect to D's weights,
// recorded forward-over-reverse:
//
//  1. g = grad_x sum_i D(x_i): D's backward from a top gradient of ones,
//     without weight gradients;
//  2. dP/dW = gamma/B * <g, d/dW g> = gamma/B * d/de grad_W sum D(x + e*g)
//     at e = 0 (mixed partials commute). In a D of convolutions, linear
//     layers, ReLU, LeakyReLU, flatten and spectral norm, the upstream
//     gradients of step 1 are piecewise constant in x, so only the layer
//     inputs move along e: a tangent pass from gamma/B * g through each
//     layer's Jacobian, and each weighted layer adds its weight gradient of
//     step 1's upstream gradient against its input tangent. Biases gain
//     nothing.
//
// The cost is about one more backward and forward of D. Layers whose
// Jacobian moves with x (batch norm, tanh, sigmoid) would need the full
// double backward; NewR1 refuses them.
type R1 struct {
	bound Bound
	batch int
	in    []int   // per-sample input shape
	g     *Tensor // grad_x, then gamma/B times it: the input tangent
	norms *Tensor // per-sample ||g_i||^2
	rec   tangentRec
}

// NewR1 prepares the penalty for bound, net's D bound to batch, allocating
// its buffers (a gradient of the input and a tangent per layer output)
// through keep. It refuses, naming the module, a layer it cannot
// differentiate this way.
func NewR1(d *Device, net *Net, bound Bound, batch int, keep func(*Tensor)) (*R1, error) {
	if d == nil || net == nil || bound == nil || keep == nil {
		return nil, fmt.Errorf("engine: r1: nil device, network, bound network or keep")
	}
	if err := r1Supports(net.Body); err != nil {
		return nil, fmt.Errorf("engine: r1: %s: %w", net.Name, err)
	}
	if out := bound.Out().X; out == nil || batch < 1 || out.Dim(0) != batch {
		return nil, fmt.Errorf("engine: r1: %s is not bound to batch %d", net.Name, batch)
	}
	tb, ok := bound.(tangentBound)
	if !ok {
		return nil, fmt.Errorf("engine: r1: %s: the bound network (%T) has no tangent support", net.Name, bound)
	}
	q := &R1{bound: bound, batch: batch, in: append([]int(nil), net.In...)}
	var err error
	if q.g, err = alloc(d, keep, append([]int{batch}, net.In...)...); err != nil {
		return nil, fmt.Errorf("engine: r1: %w", err)
	}
	if q.norms, err = alloc(d, keep, batch); err != nil {
		return nil, fmt.Errorf("engine: r1: %w", err)
	}
	if _, q.rec, err = tb.tangentPlan(d, q.g, keep); err != nil {
		return nil, fmt.Errorf("engine: r1: %s: %w", net.Name, err)
	}
	return q, nil
}

// r1Supports reports the first layer under l that R1 cannot
// differentiate, by name.
func r1Supports(l Layer) error {
	switch l := l.(type) {
	case *Sequential:
		for _, c := range l.Layers {
			if err := r1Supports(c); err != nil {
				return err
			}
		}
		return nil
	case *spectralNorm:
		return r1Supports(l.inner)
	case *Conv2d, *Linear, *Flatten:
		return nil
	case *Activation:
		if l.op == ewReLU || l.op == ewLeakyReLU {
			return nil
		}
		return fmt.Errorf("%s is %s, whose curvature the penalty's gradient would need (a full double backward, not done here); use ReLU or LeakyReLU", l.Name(), ewActNames[l.op])
	case *BatchNorm:
		return fmt.Errorf("%s is a batch norm, which mixes the batch and bends the gradient along the input, so the penalty's gradient here would be wrong; train D with -d-norm none", l.Name())
	default:
		return fmt.Errorf("%s (%T) has no tangent support", l.Name(), l)
	}
}

// Record records the penalty for the real batch x under p. The bound's
// last Forward must have run on x under p (its activations are read). It
// overwrites the bound's gradient buffers, ADDS the penalty's weight
// gradient to p.Grads whatever p.Accumulate says (nothing when p.Grads is
// nil), and writes P into penalty (one element) unless it is nil.
func (q *R1) Record(r *Recorder, p *Pass, x *Tensor, gamma float32, penalty *Tensor) {
	switch {
	case x == nil || x.n != q.g.n:
		r.fail(fmt.Errorf("engine: r1: input %s, want %v", shapeStr(x), q.g.shape))
		return
	case math.IsNaN(float64(gamma)) || math.IsInf(float64(gamma), 0):
		r.fail(fmt.Errorf("engine: r1: gamma %g is not finite", gamma))
		return
	case penalty != nil && penalty.n != 1:
		r.fail(fmt.Errorf("engine: r1: penalty %v must have one element", penalty.shape))
		return
	}
	noGrads := *p
	noGrads.Grads = nil
	r.Fill(q.bound.Out().DX, 1)
	q.bound.Backward(r, &noGrads, x, q.g)
	B := float64(q.batch)
	if penalty != nil {
		per := q.g.n / q.batch
		r.rowDot("r1 penalty", q.norms, q.g, q.g, snGeom{h: q.batch, w: per, kk: per}, true)
		r.reduce("r1 penalty", penalty, q.norms, float32(float64(gamma)/(2*B)))
	}
	if p.Grads == nil {
		return
	}
	r.Scale(q.g, float32(float64(gamma)/B))
	q.rec(r, p)
}
