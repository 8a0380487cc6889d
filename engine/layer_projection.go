package engine

import (
	"fmt"
	"math"
	"math/rand/v2"

	"vkgan/shaders"
)

// ClassProjection is a projection discriminator's head (Miyato & Koyama,
// "cGANs with projection discriminator", 2018): it wraps D's last layer,
// Final, which maps features h [C, ...spatial] to one logit per image, and
// adds the inner product of the class embedding with h pooled over space:
//
//	logit(h, y) = Final(h) + sum_c E[y, c] * sum_s h[c, s]
//
// E is [classes, C], named EmbedName exactly (not under the layer's
// name, so a checkpoint can give it a name of its own). The classes come
// one-hot in Pass.Labels. Final keeps its name and state (main.11.weight
// stays main.11.weight).
type ClassProjection struct {
	name      string
	Final     Layer
	Classes   int
	EmbedName string
	// InitStd is E's initial N(0, InitStd); 0 takes the std of Final's
	// weights divided by sqrt(spatial) (see Projection).
	InitStd float64
	c, s    int // h's channels and spatial positions per sample
}

// Projection replaces a discriminator's last layer final (a convolution to
// one logit per image, like the DCGAN's 4x4 one on [C,4,4], or a Linear
// on [C]) with the projection head over it: see ClassProjection.
//
// E starts N(0, std) with std = final's weight std (Conv2d's InitStd, or
// Linear's 1/sqrt(3*In)) divided by sqrt(spatial), not nn.Embedding's
// N(0, 1): the class term is then a second final layer whose kernel is
// constant over space, no larger at the start than Final's own logit
// (equal when h is constant over space, smaller otherwise). With N(0, 1)
// the DCGAN's first logits would be about 100 times larger than Final's,
// saturating the loss before training begins.
func Projection(final Layer, classes int, embedName string) Layer {
	return &ClassProjection{Final: final, Classes: classes, EmbedName: embedName}
}

func (l *ClassProjection) Name() string { return l.name }

// SetName names the head and, with the same name, Final: the head adds
// no module level of its own.
func (l *ClassProjection) SetName(name string) {
	l.name = name
	l.Final.SetName(name)
}

func (l *ClassProjection) children() []Layer { return []Layer{l.Final} }

func (l *ClassProjection) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if l.Classes < 1 || l.EmbedName == "" {
		return nil, nil, nil, fmt.Errorf("%s: projection of %d classes into embedding %q", l.name, l.Classes, l.EmbedName)
	}
	if len(in) < 1 {
		return nil, nil, nil, fmt.Errorf("%s: input %v, want [C, ...]", l.name, in)
	}
	out, params, stats, err := l.Final.Declare(in)
	if err != nil {
		return nil, nil, nil, err
	}
	if prod(out) != 1 {
		return nil, nil, nil, fmt.Errorf("%s: the projection head needs one logit per image; %s gives %v", l.name, l.Final.Name(), out)
	}
	for _, p := range params {
		if p.Name == l.EmbedName {
			return nil, nil, nil, fmt.Errorf("%s: embedding name %q is %s's own parameter", l.name, l.EmbedName, l.Final.Name())
		}
	}
	l.c, l.s = in[0], prod(in[1:])
	return out, append(params, ParamSpec{l.EmbedName, []int{l.Classes, l.c}}), stats, nil
}

// initStd is E's initial standard deviation (see Projection).
func (l *ClassProjection) initStd() float64 {
	if l.InitStd > 0 {
		return l.InitStd
	}
	std := 1 / math.Sqrt(float64(l.c*l.s)) // a fan-in scale for other heads
	switch f := l.Final.(type) {
	case *Conv2d:
		std = f.InitStd
	case *Linear:
		std = 1 / math.Sqrt(3*float64(f.In)) // the std of U(+-1/sqrt(In))
	}
	return std / math.Sqrt(float64(l.s))
}

// Init initialises Final, then E (so Final draws what it would alone).
func (l *ClassProjection) Init(rng *rand.Rand, params, stats map[string][]float32) {
	l.Final.Init(rng, params, stats)
	e := make([]float32, l.Classes*l.c)
	normalFill(e, rng, 0, l.initStd())
	params[l.EmbedName] = e
}

func (l *ClassProjection) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	f, err := l.Final.Bind(d, batch, prev, keep)
	if err != nil {
		return nil, err
	}
	return l.bindWith(d, batch, f, keep)
}

// bindInto binds with out as the logits, when Final can write into a
// given tensor (Linear can).
func (l *ClassProjection) bindInto(d *Device, batch int, prev Port, out *Tensor, keep func(*Tensor)) (Bound, error) {
	in, ok := l.Final.(intoBinder)
	if !ok {
		return nil, fmt.Errorf("%s cannot write its output into a given tensor", l.Final.Name())
	}
	f, err := in.bindInto(d, batch, prev, out, keep)
	if err != nil {
		return nil, err
	}
	return l.bindWith(d, batch, f, keep)
}

func (l *ClassProjection) bindWith(d *Device, batch int, f Bound, keep func(*Tensor)) (Bound, error) {
	b := &boundProjection{l: l, final: f, batch: batch}
	var err error
	if b.e, err = alloc(d, keep, batch, l.c); err != nil {
		return nil, err
	}
	if b.m, err = alloc(d, keep, batch, l.c); err != nil {
		return nil, err
	}
	return b, nil
}

type boundProjection struct {
	l     *ClassProjection
	final Bound
	batch int
	e     *Tensor // [batch, C]: E[y] of each sample
	m     *Tensor // [batch, C]: dy * h pooled over space, for dE
}

// Out is Final's: the class term is added to its logits in place, and
// the logits' gradient is the one both backward passes read.
func (b *boundProjection) Out() Port { return b.final.Out() }

func (b *boundProjection) op() string { return "projection " + b.l.name }

// check returns the labels and whether x (and dx, when not nil) hold h
// for the batch, failing the recording otherwise.
func (b *boundProjection) check(r *Recorder, p *Pass, x, dx *Tensor) *Tensor {
	l := b.l
	y := passLabels(r, b.op(), p, b.batch, l.Classes)
	if y == nil {
		return nil
	}
	want := b.batch * l.c * l.s
	for _, t := range []*Tensor{x, dx} {
		if t != nil && t.n != want {
			r.fail(fmt.Errorf("engine: %s: features %v, want %d values for a batch of %d", b.op(), t.shape, want, b.batch))
			return nil
		}
	}
	if x == nil || x.buf == nil {
		r.fail(fmt.Errorf("engine: %s: nil features", b.op()))
		return nil
	}
	return y
}

func (b *boundProjection) Forward(r *Recorder, p *Pass, x *Tensor) {
	b.final.Forward(r, p, x)
	y := b.check(r, p, x, nil)
	if y == nil {
		return
	}
	l := b.l
	r.Gemm(b.e, y, p.Params.T(l.EmbedName), false, false, 1, 0, nil)
	groups := r.gridGroups(b.batch, 1)
	push := shaders.ProjLogitPush{Batch: uint32(b.batch), C: uint32(l.c), S: uint32(l.s)}
	dispatch(r, shaders.ProjLogit, nil, groups, push, b.Out().X, x, b.e)
}

// Backward runs Final's backward (its weight gradient and its part of dx),
// then adds the class term's: dx[n,c,s] += dy[n] E[y_n,c], and
// dE = Y^T (dy * sum_s h). Final must leave its Out().DX as it found it
// (convolutions and linear layers do).
func (b *boundProjection) Backward(r *Recorder, p *Pass, x, dx *Tensor) {
	b.final.Backward(r, p, x, dx)
	if dx == nil && p.Grads == nil {
		return
	}
	y := b.check(r, p, x, dx)
	if y == nil {
		return
	}
	l := b.l
	e := p.Params.T(l.EmbedName)
	if dx != nil {
		r.Gemm(b.e, y, e, false, false, 1, 0, nil)
	}
	dxT := dx
	if dx == nil {
		dxT = b.m // bound, never touched (WANT_DX is false)
	}
	spec := []uint32{b2u(dx != nil), b2u(p.Grads != nil)}
	push := shaders.ProjBwdPush{Batch: uint32(b.batch), C: uint32(l.c), S: uint32(l.s)}
	dispatch(r, shaders.ProjBwd, spec, r.ewGroups(b.batch*l.c), push, dxT, b.m, x, b.e, b.Out().DX)
	if p.Grads != nil {
		beta := float32(0)
		if p.Accumulate {
			beta = 1
		}
		r.Gemm(p.Grads.T(l.EmbedName), y, b.m, true, false, 1, beta, nil)
	}
}

func (p *ClassProjection) classCount() int { return p.Classes }
