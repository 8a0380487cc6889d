package engine

import "math/rand/v2"

// Activation is an elementwise activation: nn.ReLU, nn.LeakyReLU, nn.Tanh
// or nn.Sigmoid. After a layer that keeps its output it works in place, as
// the example's inplace=True modules do; as a network's first layer it has
// buffers of its own.
type Activation struct {
	name  string
	op    uint32 // ewReLU, ...
	slope float32
	in    []int
}

// ReLU is nn.ReLU.
func ReLU() *Activation { return &Activation{op: ewReLU} }

// LeakyReLU is nn.LeakyReLU(slope).
func LeakyReLU(slope float32) *Activation { return &Activation{op: ewLeakyReLU, slope: slope} }

// Tanh is nn.Tanh.
func Tanh() *Activation { return &Activation{op: ewTanh} }

// Sigmoid is nn.Sigmoid.
func Sigmoid() *Activation { return &Activation{op: ewSigmoid} }

func (a *Activation) Name() string        { return a.name }
func (a *Activation) SetName(name string) { a.name = name }

func (a *Activation) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	a.in = in
	return in, nil, nil, nil
}

func (a *Activation) Init(*rand.Rand, map[string][]float32, map[string][]float32) {}

func (a *Activation) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	if prev.X != nil {
		return &boundAct{a: a, out: prev, inPlace: true}, nil
	}
	shape := append([]int{batch}, a.in...)
	b := &boundAct{a: a}
	var err error
	if b.out.X, err = alloc(d, keep, shape...); err != nil {
		return nil, err
	}
	if b.out.DX, err = allocGrad(d, prev, keep, shape...); err != nil {
		return nil, err
	}
	return b, nil
}

type boundAct struct {
	a       *Activation
	out     Port
	inPlace bool
	// The layer before does its forward work (boundBN.fuseNext: also its
	// backward; linear layers' and convolutions' fuseNext); the layer
	// after does its backward work (their fusePrev).
	fusedFwd, fusedBwd bool
}

// gemmAct is the activation as a matmul epilogue, or false when its
// derivative is not a function of its output (a negative leak slope).
func (b *boundAct) gemmAct() (gemmAct, bool) {
	if b.a.op == ewLeakyReLU && !(b.a.slope >= 0) {
		return gemmAct{}, false
	}
	return gemmAct{on: true, op: b.a.op, slope: b.a.slope}, true
}

// takeActForward hands the forward of next, when it is an in-place
// activation no other layer has taken and off is false, to the caller's
// GEMM epilogue; otherwise the activation stays with next (the zero
// gemmAct).
func takeActForward(next Bound, off bool) gemmAct {
	a, ok := next.(*boundAct)
	if !ok || !a.inPlace || a.fusedFwd || off {
		return gemmAct{}
	}
	act, ok := a.gemmAct()
	a.fusedFwd = ok
	return act
}

// takeActBackward hands the backward of prev likewise: the caller's
// input-gradient GEMM multiplies in the derivative at prev's output.
func takeActBackward(prev Bound, off bool) gemmAct {
	a, ok := prev.(*boundAct)
	if !ok || !a.inPlace || a.fusedBwd || off {
		return gemmAct{}
	}
	act, ok := a.gemmAct()
	if ok {
		act.saved, a.fusedBwd = a.out.X, true
	}
	return act
}

func (b *boundAct) Out() Port { return b.out }

func (b *boundAct) Forward(r *Recorder, _ *Pass, x *Tensor) {
	if !b.fusedFwd {
		r.actForward(b.a.op, b.out.X, x, b.a.slope)
	}
}

// Backward reads the output only: ReLU's and LeakyReLU's sign is their
// input's, and tanh's and sigmoid's derivatives are functions of the
// output, so in-place layers need nothing else.
func (b *boundAct) Backward(r *Recorder, _ *Pass, _, dx *Tensor) {
	if dx == nil || b.fusedBwd {
		return
	}
	switch b.a.op {
	case ewReLU:
		r.ReLUBackward(dx, b.out.DX, b.out.X)
	case ewLeakyReLU:
		r.LeakyReLUBackward(dx, b.out.DX, b.out.X, b.a.slope)
	case ewTanh:
		r.TanhBackward(dx, b.out.DX, b.out.X)
	case ewSigmoid:
		r.SigmoidBackward(dx, b.out.DX, b.out.X)
	}
}
