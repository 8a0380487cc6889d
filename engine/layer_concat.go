package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Part is one child of a Chain: a layer and the attribute name its PyTorch
// module has in the parent ("branch5x5_1"), or "" for a stateless step
// that PyTorch calls as a function (F.avg_pool2d), which has no name.
type Part struct {
	Attr  string
	Layer Layer
}

// Chain runs its parts in order, like Sequential, but names them as a
// module names its attributes: the part with Attr a is Name()+"."+a. An
// Inception block's branches are chains.
type Chain struct {
	name  string
	Parts []Part
}

// NewChain returns a chain of parts.
func NewChain(parts ...Part) *Chain { return &Chain{Parts: parts} }

func (c *Chain) Name() string { return c.name }

func (c *Chain) SetName(name string) {
	c.name = name
	for _, p := range c.Parts {
		if p.Attr == "" {
			p.Layer.SetName(name)
		} else {
			p.Layer.SetName(joinName(name, p.Attr))
		}
	}
}

func (c *Chain) children() []Layer {
	out := make([]Layer, len(c.Parts))
	for i, p := range c.Parts {
		out[i] = p.Layer
	}
	return out
}

func (c *Chain) Declare(in []int) (out []int, params, stats []ParamSpec, err error) {
	return declareAll(c.children(), in)
}

func (c *Chain) Init(rng *rand.Rand, params, stats map[string][]float32) {
	for _, p := range c.Parts {
		p.Layer.Init(rng, params, stats)
	}
}

func (c *Chain) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	return bindChildren(c.children(), d, batch, prev, keep, nil)
}

func (c *Chain) bindSlice(d *Device, batch int, prev Port, out *Tensor, c0 int, keep func(*Tensor)) (Bound, error) {
	return bindChildren(c.children(), d, batch, prev, keep, func(l Layer, prev Port) (Bound, error) {
		s, ok := l.(sliceBinder)
		if !ok {
			return nil, errors.New("cannot write its output into a channel slice")
		}
		return s.bindSlice(d, batch, prev, out, c0, keep)
	})
}

// declareAll declares layers in sequence, from input shape in.
func declareAll(layers []Layer, in []int) (out []int, params, stats []ParamSpec, err error) {
	out = in
	for _, l := range layers {
		o, p, st, err := l.Declare(out)
		if err != nil {
			return nil, nil, nil, err
		}
		out, params, stats = o, append(params, p...), append(stats, st...)
	}
	return out, params, stats, nil
}

// bindChildren binds layers in sequence, the last through bindLast when
// that is not nil.
func bindChildren(layers []Layer, d *Device, batch int, prev Port, keep func(*Tensor), bindLast func(Layer, Port) (Bound, error)) (Bound, error) {
	b := &boundSequential{}
	for i, l := range layers {
		var lb Bound
		var err error
		if i == len(layers)-1 && bindLast != nil {
			lb, err = bindLast(l, prev)
		} else {
			lb, err = l.Bind(d, batch, prev, keep)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Name(), err)
		}
		if i > 0 {
			if f, ok := b.layers[i-1].(nextFuser); ok {
				f.fuseNext(lb)
			}
			if f, ok := lb.(prevFuser); ok {
				f.fusePrev(b.layers[i-1])
			}
		}
		b.layers = append(b.layers, lb)
		pool := prev.grads
		prev = lb.Out()
		prev.grads = pool
	}
	return b, nil
}

// nextFuser is a bound layer whose kernels can do the work of the layer
// bound after it (batch norm fuses the activation that follows it).
type nextFuser interface{ fuseNext(next Bound) }

// prevFuser is a bound layer whose kernels can do the backward work of the
// layer bound before it (a linear layer that of the activation before it).
type prevFuser interface{ fusePrev(prev Bound) }

// sliceBinder is a layer that can write its output into channels c0.. of
// a larger NCHW tensor: a branch of a channel concatenation.
type sliceBinder interface {
	bindSlice(d *Device, batch int, prev Port, out *Tensor, c0 int, keep func(*Tensor)) (Bound, error)
}

// Concat runs its branches on one input and concatenates their outputs
// along channels, as torch.cat(outputs, 1) ends an Inception block. Each
// branch's last layer writes straight into its channel slice of the one
// output buffer, so the concatenation costs no copy. Branch outputs must
// agree in height and width. Forward only: the FID network is its user.
type Concat struct {
	name     string
	Branches []Layer
	widths   []int // output channels per branch
	out      []int
}

// NewConcat returns the concatenation of branches.
func NewConcat(branches ...Layer) *Concat { return &Concat{Branches: branches} }

func (c *Concat) Name() string { return c.name }

// SetName gives the branches the concat's own name: their parts carry the
// attribute names (a block's modules are its direct attributes).
func (c *Concat) SetName(name string) {
	c.name = name
	for _, b := range c.Branches {
		b.SetName(name)
	}
}

func (c *Concat) children() []Layer { return c.Branches }

func (c *Concat) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if len(c.Branches) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: concat of no branches", c.name)
	}
	var params, stats []ParamSpec
	c.widths, c.out = nil, nil
	for i, b := range c.Branches {
		o, p, s, err := b.Declare(in)
		if err != nil {
			return nil, nil, nil, err
		}
		if len(o) != 3 {
			return nil, nil, nil, fmt.Errorf("%s: branch %d gives %v, want [C,H,W]", c.name, i, o)
		}
		if c.out == nil {
			c.out = slices.Clone(o)
		} else if o[1] != c.out[1] || o[2] != c.out[2] {
			return nil, nil, nil, fmt.Errorf("%s: branch %d gives %v, branch 0 gives %dx%d images", c.name, i, o, c.out[1], c.out[2])
		} else {
			c.out[0] += o[0]
		}
		c.widths = append(c.widths, o[0])
		params, stats = append(params, p...), append(stats, s...)
	}
	return slices.Clone(c.out), params, stats, nil
}

func (c *Concat) Init(rng *rand.Rand, params, stats map[string][]float32) {
	for _, b := range c.Branches {
		b.Init(rng, params, stats)
	}
}

func (c *Concat) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	out, err := alloc(d, keep, batch, c.out[0], c.out[1], c.out[2])
	if err != nil {
		return nil, err
	}
	return c.bindSlice(d, batch, prev, out, 0, keep)
}

func (c *Concat) bindSlice(d *Device, batch int, prev Port, out *Tensor, c0 int, keep func(*Tensor)) (Bound, error) {
	b := &boundConcat{name: c.name, out: Port{X: out}}
	for i, br := range c.Branches {
		s, ok := br.(sliceBinder)
		if !ok {
			return nil, fmt.Errorf("%s: branch %d cannot write into a channel slice", c.name, i)
		}
		bb, err := s.bindSlice(d, batch, prev, out, c0, keep)
		if err != nil {
			return nil, err
		}
		b.branches = append(b.branches, bb)
		c0 += c.widths[i]
	}
	return b, nil
}

type boundConcat struct {
	name     string
	branches []Bound
	out      Port
}

func (b *boundConcat) Out() Port { return b.out }

func (b *boundConcat) Forward(r *Recorder, p *Pass, x *Tensor) {
	for _, br := range b.branches {
		br.Forward(r, p, x)
	}
}

func (b *boundConcat) Backward(r *Recorder, _ *Pass, _, _ *Tensor) {
	r.fail(fmt.Errorf("engine: %s: concat has no backward pass (forward only, for evaluation)", b.name))
}
