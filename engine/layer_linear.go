package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Linear is nn.Linear: y = x W^T + b on [N, In] rows, with the weight
// [Out, In] and bias [Out] as PyTorch stores them. Init is nn.Linear's
// (weight and bias uniform in +-1/sqrt(In)), drawn in input-major order.
type Linear struct {
	name    string
	In, Out int
}

// NewLinear is nn.Linear(in, out).
func NewLinear(in, out int) *Linear { return &Linear{In: in, Out: out} }

func (l *Linear) Name() string        { return l.name }
func (l *Linear) SetName(name string) { l.name = name }

func (l *Linear) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if len(in) != 1 || in[0] != l.In {
		return nil, nil, nil, fmt.Errorf("%s: input %v, want [%d]", l.name, in, l.In)
	}
	return []int{l.Out}, []ParamSpec{{joinName(l.name, "weight"), []int{l.Out, l.In}}, {joinName(l.name, "bias"), []int{l.Out}}}, nil, nil
}

// Init draws the weight in input-major order (the toy's order since its
// first version, so its runs reproduce) and stores it [Out, In].
func (l *Linear) Init(rng *rand.Rand, params, _ map[string][]float32) {
	k := 1 / math.Sqrt(float64(l.In))
	w := make([]float32, l.In*l.Out)
	for i := 0; i < l.In; i++ {
		for o := 0; o < l.Out; o++ {
			w[o*l.In+i] = float32((rng.Float64()*2 - 1) * k)
		}
	}
	b := make([]float32, l.Out)
	for o := range b {
		b[o] = float32((rng.Float64()*2 - 1) * k)
	}
	params[joinName(l.name, "weight")], params[joinName(l.name, "bias")] = w, b
}

// FLOPs is the multiply-add work (x2) per sample.
func (l *Linear) FLOPs() float64 { return 2 * float64(l.In*l.Out) }

func (l *Linear) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	return l.bindInto(d, batch, prev, nil, keep)
}

// bindInto binds with out as the output tensor (allocated when nil).
func (l *Linear) bindInto(d *Device, batch int, prev Port, out *Tensor, keep func(*Tensor)) (Bound, error) {
	b := &boundLinear{w: joinName(l.name, "weight"), b: joinName(l.name, "bias")}
	var err error
	if b.out.X = out; out == nil {
		if b.out.X, err = alloc(d, keep, batch, l.Out); err != nil {
			return nil, err
		}
	}
	if b.out.DX, err = allocGrad(d, prev, keep, batch, l.Out); err != nil {
		return nil, err
	}
	if b.db, err = alloc(d, keep, l.Out); err != nil {
		return nil, err
	}
	return b, nil
}

type boundLinear struct {
	w, b string
	out  Port
	db   *Tensor  // scratch bias gradient when gradients are added
	wfn  weightFn // nil: the named weight (SpectralNorm substitutes its own)
	// The in-place activations after and before the layer whose forward
	// and backward work its GEMMs' epilogues do (fuseNext, fusePrev).
	actOut, actIn gemmAct
}

// forceNoLinearActFusion keeps linear layers and the activations around
// them in separate kernels; tests and benchmarks compare the two.
var forceNoLinearActFusion bool

// forceSeparateBiasGrad sums a linear layer's bias gradient in a kernel
// of its own rather than in the weight gradient's GEMM; benchmarks compare
// the two.
var forceSeparateBiasGrad bool

// fuseNext takes the forward of an in-place activation after the layer
// into its GEMM's epilogue: one pass less over the output.
func (b *boundLinear) fuseNext(next Bound) { b.actOut = takeActForward(next, forceNoLinearActFusion) }

// fusePrev takes the backward of an in-place activation before the layer
// into its input-gradient GEMM's epilogue, which multiplies in the
// derivative at the activation's output (the layer's input).
func (b *boundLinear) fusePrev(prev Bound) { b.actIn = takeActBackward(prev, forceNoLinearActFusion) }

func (b *boundLinear) Out() Port { return b.out }

func (b *boundLinear) Forward(r *Recorder, p *Pass, x *Tensor) {
	w, _, _ := b.wfn.weights(p, b.w)
	r.gemm(b.out.X, x, w, false, true, 1, 0, p.Params.T(b.b), b.actOut, nil)
}

func (b *boundLinear) Backward(r *Recorder, p *Pass, x, dx *Tensor) {
	dy := b.out.DX
	w, dw, acc := b.wfn.weights(p, b.w)
	if p.Grads != nil {
		db := p.Grads.T(b.b)
		if p.Accumulate {
			db = b.db
		}
		// The bias gradient, dy's column sums, comes with the weight
		// gradient's GEMM, which reads dy anyway.
		sums := db
		if forceSeparateBiasGrad {
			sums = nil
		}
		r.gemm(dw, dy, x, true, false, 1, float32(b2u(acc)), nil, gemmAct{}, sums)
		if sums == nil {
			r.BiasGrad(db, dy)
		}
		if p.Accumulate {
			r.Axpy(p.Grads.T(b.b), db, 1)
		}
	}
	if dx != nil {
		r.gemm(dx, dy, w, false, false, 1, 0, nil, b.actIn, nil)
	}
}
