package engine

import "fmt"

// Tangent support for R1's forward-over-reverse pass (r1.go). A tangent is
// the derivative of a layer's input along the direction R1 moves the
// images, xt = d/de X(x + e*g); each layer maps it through its Jacobian at
// the last forward's point. For the layers here (convolutions and linear
// layers, ReLU and LeakyReLU, flatten, spectral norm) the Jacobian is the
// weight without its bias, or the activation's derivative mask, and the
// upstream gradients of a backward from a constant top gradient do not
// change along e, so a weighted layer's share of d/de grad_W is its
// weight gradient of the backward's Out().DX against its input tangent.

// tangentBound is a bound layer that can take part in R1's pass.
type tangentBound interface {
	// tangentPlan allocates the layer's output tangent for the input
	// tangent xt (shaped like the layer's input) once, and returns it with
	// the function that records the layer's part of the pass (nil when
	// there is nothing to record).
	tangentPlan(d *Device, xt *Tensor, keep func(*Tensor)) (yt *Tensor, rec tangentRec, err error)
}

// tangentRec records a layer's part of R1's pass at the point of the last
// forward and backward: when p.Grads is set, it adds (whatever
// p.Accumulate says) the weight gradient of Out().DX against the input
// tangent, then writes the output tangent.
type tangentRec func(r *Recorder, p *Pass)

var (
	_ tangentBound = (*boundConv)(nil)
	_ tangentBound = (*boundLinear)(nil)
	_ tangentBound = (*boundAct)(nil)
	_ tangentBound = (*boundFlatten)(nil)
	_ tangentBound = (*boundSequential)(nil)
	_ tangentBound = (*boundSN)(nil)
)

// adding is p with weight gradients added to p.Grads.
func adding(p *Pass) *Pass {
	q := *p
	q.Accumulate = true
	return &q
}

func (b *boundConv) tangentPlan(d *Device, xt *Tensor, keep func(*Tensor)) (*Tensor, tangentRec, error) {
	yt, err := alloc(d, keep, b.out.X.shape...)
	if err != nil {
		return nil, nil, err
	}
	return yt, func(r *Recorder, p *Pass) {
		w, dw, acc := b.wfn.weights(adding(p), b.w)
		if dw != nil {
			if b.c.Transposed {
				r.ConvTranspose2DBackwardWeights(dw, b.out.DX, xt, b.params(acc))
			} else {
				r.Conv2DBackwardWeights(dw, b.out.DX, xt, b.params(acc))
			}
		}
		if b.c.Transposed {
			r.ConvTranspose2D(yt, xt, w, b.params(false))
		} else {
			r.Conv2D(yt, xt, w, b.params(false))
		}
	}, nil
}

// The bias is constant along the tangent, so the output tangent is the
// weight alone and the bias gradient (the sum of Out().DX) gains nothing.
func (b *boundLinear) tangentPlan(d *Device, xt *Tensor, keep func(*Tensor)) (*Tensor, tangentRec, error) {
	yt, err := alloc(d, keep, b.out.X.shape...)
	if err != nil {
		return nil, nil, err
	}
	return yt, func(r *Recorder, p *Pass) {
		w, dw, acc := b.wfn.weights(adding(p), b.w)
		if dw != nil {
			r.Gemm(dw, b.out.DX, xt, true, false, 1, float32(b2u(acc)), nil)
		}
		r.Gemm(yt, xt, w, false, true, 1, 0, nil)
	}, nil
}

// ReLU's and LeakyReLU's Jacobian is their derivative mask, which the
// backward kernel applies; in place, since no weight gradient needs the
// tangent before the mask (that of an activation's input).
func (b *boundAct) tangentPlan(_ *Device, xt *Tensor, _ func(*Tensor)) (*Tensor, tangentRec, error) {
	if b.a.op != ewReLU && b.a.op != ewLeakyReLU {
		return nil, nil, fmt.Errorf("%s: %s has no tangent support", b.a.name, ewActNames[b.a.op])
	}
	return xt, func(r *Recorder, _ *Pass) {
		if b.a.op == ewReLU {
			r.ReLUBackward(xt, xt, b.out.X)
		} else {
			r.LeakyReLUBackward(xt, xt, b.out.X, b.a.slope)
		}
	}, nil
}

func (b *boundFlatten) tangentPlan(_ *Device, xt *Tensor, _ func(*Tensor)) (*Tensor, tangentRec, error) {
	yt, err := xt.Reshape(b.out.X.shape...)
	return yt, nil, err
}

func (b *boundSequential) tangentPlan(d *Device, xt *Tensor, keep func(*Tensor)) (*Tensor, tangentRec, error) {
	var recs []tangentRec
	for i, l := range b.layers {
		tl, ok := l.(tangentBound)
		if !ok {
			return nil, nil, fmt.Errorf("layer %d (%T) has no tangent support", i, l)
		}
		yt, rec, err := tl.tangentPlan(d, xt, keep)
		if err != nil {
			return nil, nil, err
		}
		if rec != nil {
			recs = append(recs, rec)
		}
		xt = yt
	}
	return xt, func(r *Recorder, p *Pass) {
		for _, rec := range recs {
			rec(r, p)
		}
	}, nil
}

// The inner layer runs its tangent with W_sn and its weight gradient goes
// to the scratch, which maps to weight_orig as in Backward (W_sn depends
// on the weights only, so the map is the same along the tangent).
func (b *boundSN) tangentPlan(d *Device, xt *Tensor, keep func(*Tensor)) (*Tensor, tangentRec, error) {
	tl, ok := b.inner.(tangentBound)
	if !ok {
		return nil, nil, fmt.Errorf("%s: %T has no tangent support", b.s.name, b.inner)
	}
	yt, inner, err := tl.tangentPlan(d, xt, keep)
	if err != nil {
		return nil, nil, err
	}
	return yt, func(r *Recorder, p *Pass) {
		inner(r, p)
		if p.Grads != nil {
			b.mapGrad(r, p, b.dwsn, true)
		}
	}, nil
}
