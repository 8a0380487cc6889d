package engine

import (
	"fmt"
	"math/rand/v2"
)

// Flatten is nn.Flatten: [N, C, H, W] (or any per-sample shape) seen as
// [N, C*H*W]. It records nothing: its output and gradient are views of the
// layer before it, so it cannot be a network's first layer.
type Flatten struct {
	name string
	n    int
}

// NewFlatten is nn.Flatten().
func NewFlatten() *Flatten { return &Flatten{} }

func (f *Flatten) Name() string        { return f.name }
func (f *Flatten) SetName(name string) { f.name = name }

func (f *Flatten) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	f.n = prod(in)
	return []int{f.n}, nil, nil, nil
}

func (f *Flatten) Init(*rand.Rand, map[string][]float32, map[string][]float32) {}

func (f *Flatten) Bind(_ *Device, batch int, prev Port, _ func(*Tensor)) (Bound, error) {
	if prev.X == nil {
		return nil, fmt.Errorf("%s: Flatten views the layer before it, and there is none", f.name)
	}
	var b boundFlatten
	var err error
	if b.out.X, err = prev.X.Reshape(batch, f.n); err != nil {
		return nil, err
	}
	if b.out.DX, err = prev.DX.Reshape(batch, f.n); err != nil {
		return nil, err
	}
	return &b, nil
}

type boundFlatten struct{ out Port }

func (b *boundFlatten) Out() Port                                   { return b.out }
func (b *boundFlatten) Forward(*Recorder, *Pass, *Tensor)           {}
func (b *boundFlatten) Backward(*Recorder, *Pass, *Tensor, *Tensor) {}
