package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// BasicConv2d is Inception-v3's unit: a convolution without bias, a batch
// norm and a ReLU, named as torchvision names it (conv.weight, bn.weight,
// bn.bias, bn.running_mean, bn.running_var). It runs in inference mode
// only: the batch norm is folded into the convolution's epilogue, so the
// unit is one GEMM pass. Forward only.
type BasicConv2d struct {
	name           string
	In, Out        int
	KH, KW         int
	SH, SW, PH, PW int
	Eps            float32 // the batch norm's eps (1e-3 in Inception-v3)
	out            []int
}

// NewBasicConv2d returns a unit with a kh x kw kernel, stride (sh, sw) and
// padding (ph, pw); zero strides mean 1.
func NewBasicConv2d(in, out, kh, kw, sh, sw, ph, pw int, eps float32) *BasicConv2d {
	return &BasicConv2d{In: in, Out: out, KH: kh, KW: kw, SH: max(sh, 1), SW: max(sw, 1), PH: ph, PW: pw, Eps: eps}
}

func (c *BasicConv2d) Name() string        { return c.name }
func (c *BasicConv2d) SetName(name string) { c.name = name }

func (c *BasicConv2d) n(s string) string { return joinName(c.name, s) }

func (c *BasicConv2d) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if len(in) != 3 || in[0] != c.In {
		return nil, nil, nil, fmt.Errorf("%s: input %v, want [%d,H,W]", c.name, in, c.In)
	}
	oh := (in[1]+2*c.PH-c.KH)/c.SH + 1
	ow := (in[2]+2*c.PW-c.KW)/c.SW + 1
	if in[1]+2*c.PH < c.KH || in[2]+2*c.PW < c.KW || c.PH >= c.KH || c.PW >= c.KW {
		return nil, nil, nil, fmt.Errorf("%s: a %dx%d kernel with padding %dx%d does not fit a %dx%d input", c.name, c.KH, c.KW, c.PH, c.PW, in[1], in[2])
	}
	c.out = []int{c.Out, oh, ow}
	params := []ParamSpec{
		{c.n("conv.weight"), []int{c.Out, c.In, c.KH, c.KW}},
		{c.n("bn.weight"), []int{c.Out}},
		{c.n("bn.bias"), []int{c.Out}},
	}
	stats := []ParamSpec{{c.n("bn.running_mean"), []int{c.Out}}, {c.n("bn.running_var"), []int{c.Out}}}
	return slices.Clone(c.out), params, stats, nil
}

// Init draws the weights with He's initialisation (N(0, 2/fan_in), which
// keeps activations at scale through ReLU units) and sets an identity
// batch norm; real use loads trained weights.
func (c *BasicConv2d) Init(rng *rand.Rand, params, stats map[string][]float32) {
	w := make([]float32, c.Out*c.In*c.KH*c.KW)
	normalFill(w, rng, 0, math.Sqrt(2/float64(c.In*c.KH*c.KW)))
	params[c.n("conv.weight")] = w
	params[c.n("bn.weight")] = filled(c.Out, 1)
	params[c.n("bn.bias")] = filled(c.Out, 0)
	stats[c.n("bn.running_mean")] = filled(c.Out, 0)
	stats[c.n("bn.running_var")] = filled(c.Out, 1)
}

func filled(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// FLOPs is the multiply-add work (x2) per sample.
func (c *BasicConv2d) FLOPs() float64 {
	return 2 * float64(c.Out*c.out[1]*c.out[2]) * float64(c.In*c.KH*c.KW)
}

func (c *BasicConv2d) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	out, err := alloc(d, keep, batch, c.out[0], c.out[1], c.out[2])
	if err != nil {
		return nil, err
	}
	return c.bindSlice(d, batch, prev, out, 0, keep)
}

func (c *BasicConv2d) bindSlice(d *Device, _ int, _ Port, out *Tensor, c0 int, keep func(*Tensor)) (Bound, error) {
	ss, err := alloc(d, keep, 2*c.Out)
	if err != nil {
		return nil, err
	}
	return &boundBasicConv{c: c, out: Port{X: out}, c0: c0, scaleShift: ss}, nil
}

type boundBasicConv struct {
	c          *BasicConv2d
	out        Port
	c0         int
	scaleShift *Tensor
}

func (b *boundBasicConv) Out() Port { return b.out }

func (b *boundBasicConv) Forward(r *Recorder, p *Pass, x *Tensor) {
	c := b.c
	if p.Train {
		r.fail(fmt.Errorf("engine: %s: BasicConv2d runs in inference mode only", c.name))
		return
	}
	r.FoldBatchNorm(b.scaleShift, p.Params.T(c.n("bn.weight")), p.Params.T(c.n("bn.bias")),
		p.Stats.T(c.n("bn.running_mean")), p.Stats.T(c.n("bn.running_var")), c.Eps)
	cp := ConvParams{StrideH: c.SH, StrideW: c.SW, PadH: c.PH, PadW: c.PW}
	r.Conv2DFused(b.out.X, x, p.Params.T(c.n("conv.weight")), cp, ConvEpilogue{ChannelOffset: b.c0, ScaleShift: b.scaleShift, ReLU: true})
}

func (b *boundBasicConv) Backward(r *Recorder, _ *Pass, _, _ *Tensor) {
	r.fail(fmt.Errorf("engine: %s: BasicConv2d has no backward pass (inference only)", b.c.name))
}
