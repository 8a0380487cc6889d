package engine

import (
	"fmt"
	"math/rand/v2"
)

// Conv2d is nn.Conv2d without bias (the DCGAN's convolutions): square
// kernel, stride and padding. Its weight is [Out, In, K, K].
type Conv2d struct {
	name             string
	In, Out, K, S, P int
	InitStd          float64 // weights N(0, InitStd)
	Transposed       bool    // nn.ConvTranspose2d: weight [In, Out, K, K]
	inC, inHW, outHW int
}

// ConvTranspose2d is nn.ConvTranspose2d without bias.
func ConvTranspose2d(in, out, k, s, p int, initStd float64) *Conv2d {
	return &Conv2d{In: in, Out: out, K: k, S: s, P: p, InitStd: initStd, Transposed: true}
}

// NewConv2d is nn.Conv2d without bias.
func NewConv2d(in, out, k, s, p int, initStd float64) *Conv2d {
	return &Conv2d{In: in, Out: out, K: k, S: s, P: p, InitStd: initStd}
}

func (c *Conv2d) Name() string        { return c.name }
func (c *Conv2d) SetName(name string) { c.name = name }

func (c *Conv2d) weightShape() []int {
	if c.Transposed {
		return []int{c.In, c.Out, c.K, c.K}
	}
	return []int{c.Out, c.In, c.K, c.K}
}

func (c *Conv2d) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if len(in) != 3 || in[0] != c.In || in[1] != in[2] {
		return nil, nil, nil, fmt.Errorf("%s: input %v, want [%d H H]", c.name, in, c.In)
	}
	hw := in[1]
	var out int
	if c.Transposed {
		out = (hw-1)*c.S - 2*c.P + c.K
	} else {
		out = (hw+2*c.P-c.K)/c.S + 1
	}
	if out < 1 {
		return nil, nil, nil, fmt.Errorf("%s: input %dx%d is too small", c.name, hw, hw)
	}
	c.inC, c.inHW, c.outHW = in[0], hw, out
	return []int{c.Out, out, out}, []ParamSpec{{joinName(c.name, "weight"), c.weightShape()}}, nil, nil
}

func (c *Conv2d) Init(rng *rand.Rand, params, _ map[string][]float32) {
	w := make([]float32, prod(c.weightShape()))
	normalFill(w, rng, 0, c.InitStd)
	params[joinName(c.name, "weight")] = w
}

// FLOPs is the multiply-add work (x2) per sample.
func (c *Conv2d) FLOPs() float64 {
	if c.Transposed {
		return 2 * float64(c.In*c.inHW*c.inHW) * float64(c.Out*c.K*c.K)
	}
	return 2 * float64(c.Out*c.outHW*c.outHW) * float64(c.In*c.K*c.K)
}

func (c *Conv2d) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	b := &boundConv{c: c, w: joinName(c.name, "weight")}
	var err error
	if b.out.X, err = alloc(d, keep, batch, c.Out, c.outHW, c.outHW); err != nil {
		return nil, err
	}
	if b.out.DX, err = allocGrad(d, prev, keep, batch, c.Out, c.outHW, c.outHW); err != nil {
		return nil, err
	}
	return b, nil
}

type boundConv struct {
	c   *Conv2d
	w   string
	out Port
	wfn weightFn // nil: the named parameter (SpectralNorm substitutes its own)
	// The in-place activations after and before the layer whose forward
	// and backward work its GEMMs' epilogues do (fuseNext, fusePrev), as
	// boundLinear's.
	actOut, actIn gemmAct
}

// forceNoConvActFusion keeps convolutions and the in-place activations
// around them in separate kernels; tests and benchmarks compare the two.
var forceNoConvActFusion bool

// fuseNext takes the forward of an in-place activation after the
// convolution (D's first LeakyReLU, G's closing tanh) into its epilogue.
func (b *boundConv) fuseNext(next Bound) { b.actOut = takeActForward(next, forceNoConvActFusion) }

// fusePrev takes the backward of an in-place activation before the
// convolution into its backward-data's epilogue, which multiplies in the
// derivative at the activation's output (the layer's input). An
// activation batch norm has fused already is left to it.
func (b *boundConv) fusePrev(prev Bound) { b.actIn = takeActBackward(prev, forceNoConvActFusion) }

func (b *boundConv) Out() Port { return b.out }

func (b *boundConv) params(accumulate bool) ConvParams {
	c := b.c
	return ConvParams{StrideH: c.S, StrideW: c.S, PadH: c.P, PadW: c.P, Accumulate: accumulate}
}

func (b *boundConv) Forward(r *Recorder, p *Pass, x *Tensor) {
	w, _, _ := b.wfn.weights(p, b.w)
	cp := b.params(false)
	cp.act = b.actOut
	if b.c.Transposed {
		r.ConvTranspose2D(b.out.X, x, w, cp)
	} else {
		r.Conv2D(b.out.X, x, w, cp)
	}
}

func (b *boundConv) Backward(r *Recorder, p *Pass, x, dx *Tensor) {
	dy := b.out.DX
	w, dw, acc := b.wfn.weights(p, b.w)
	if dw != nil {
		cp := b.params(acc)
		if b.c.Transposed {
			r.ConvTranspose2DBackwardWeights(dw, dy, x, cp)
		} else {
			r.Conv2DBackwardWeights(dw, dy, x, cp)
		}
	}
	if dx == nil {
		return
	}
	cp := b.params(false)
	cp.act = b.actIn
	if b.c.Transposed {
		r.ConvTranspose2DBackwardData(dx, dy, w, cp)
	} else {
		r.Conv2DBackwardData(dx, dy, w, cp)
	}
}
