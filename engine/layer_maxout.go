package engine

import (
	"fmt"
	"math/rand/v2"
)

// Maxout is the maximum over Pieces adjacent inputs per unit (Goodfellow
// et al., 2013): [N, Units*Pieces] in, [N, Units] out, after a Linear of
// Units*Pieces outputs.
type Maxout struct {
	name          string
	Units, Pieces int
}

// NewMaxout is a maxout of units units with pieces pieces each.
func NewMaxout(units, pieces int) *Maxout { return &Maxout{Units: units, Pieces: pieces} }

func (m *Maxout) Name() string        { return m.name }
func (m *Maxout) SetName(name string) { m.name = name }

func (m *Maxout) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if m.Pieces < 1 || len(in) != 1 || in[0] != m.Units*m.Pieces {
		return nil, nil, nil, fmt.Errorf("%s: input %v, want [%d] (%d units of %d pieces)", m.name, in, m.Units*m.Pieces, m.Units, m.Pieces)
	}
	return []int{m.Units}, nil, nil, nil
}

func (m *Maxout) Init(*rand.Rand, map[string][]float32, map[string][]float32) {}

func (m *Maxout) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	b := &boundMaxout{pieces: m.Pieces}
	var err error
	if b.out.X, err = alloc(d, keep, batch, m.Units); err != nil {
		return nil, err
	}
	if b.out.DX, err = allocGrad(d, prev, keep, batch, m.Units); err != nil {
		return nil, err
	}
	return b, nil
}

type boundMaxout struct {
	pieces int
	out    Port
}

func (b *boundMaxout) Out() Port { return b.out }

func (b *boundMaxout) Forward(r *Recorder, _ *Pass, x *Tensor) { r.Maxout(b.out.X, x, b.pieces) }

func (b *boundMaxout) Backward(r *Recorder, _ *Pass, x, dx *Tensor) {
	if dx != nil {
		r.MaxoutBackward(dx, b.out.DX, x, b.pieces)
	}
}
