package engine

import (
	"fmt"
	"math/rand/v2"
)

// Pool2d is a max or average pooling step (F.max_pool2d, F.avg_pool2d): no
// state, so it has no name of its own in a state_dict. Forward only.
type Pool2d struct {
	name string
	Max  bool
	P    PoolParams // ChannelOffset is set by the binding, not here
	out  []int
}

// MaxPool2d returns a k x k max pool with stride s and padding p.
func MaxPool2d(k, s, p int) *Pool2d {
	return &Pool2d{Max: true, P: PoolParams{KH: k, KW: k, StrideH: s, StrideW: s, PadH: p, PadW: p}}
}

// AvgPool2d returns a k x k average pool with stride s and padding p that
// divides by the taps inside the image (count_include_pad=False).
func AvgPool2d(k, s, p int) *Pool2d {
	return &Pool2d{P: PoolParams{KH: k, KW: k, StrideH: s, StrideW: s, PadH: p, PadW: p}}
}

func (l *Pool2d) Name() string        { return l.name }
func (l *Pool2d) SetName(name string) { l.name = name }

func (l *Pool2d) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if len(in) != 3 {
		return nil, nil, nil, fmt.Errorf("%s: pool input %v, want [C,H,W]", l.name, in)
	}
	oh, ow := l.P.OutSize(in[1], in[2])
	if oh < 1 || ow < 1 {
		return nil, nil, nil, fmt.Errorf("%s: a %dx%d pool does not fit a %dx%d input", l.name, l.P.KH, l.P.KW, in[1], in[2])
	}
	l.out = []int{in[0], oh, ow}
	return []int{in[0], oh, ow}, nil, nil, nil
}

func (l *Pool2d) Init(*rand.Rand, map[string][]float32, map[string][]float32) {}

func (l *Pool2d) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	out, err := alloc(d, keep, batch, l.out[0], l.out[1], l.out[2])
	if err != nil {
		return nil, err
	}
	return l.bindSlice(d, batch, prev, out, 0, keep)
}

func (l *Pool2d) bindSlice(_ *Device, _ int, _ Port, out *Tensor, c0 int, _ func(*Tensor)) (Bound, error) {
	p := l.P
	p.ChannelOffset = c0
	return &boundPool{l: l, p: p, out: Port{X: out}}, nil
}

type boundPool struct {
	l   *Pool2d
	p   PoolParams
	out Port
}

func (b *boundPool) Out() Port { return b.out }

func (b *boundPool) Forward(r *Recorder, _ *Pass, x *Tensor) {
	if b.l.Max {
		r.MaxPool2D(b.out.X, x, b.p)
	} else {
		r.AvgPool2D(b.out.X, x, b.p)
	}
}

func (b *boundPool) Backward(r *Recorder, _ *Pass, _, _ *Tensor) {
	r.fail(fmt.Errorf("engine: %s: pooling has no backward pass (forward only, for evaluation)", b.l.name))
}

// GlobalAvgPool2d averages each channel over the image: [C,H,W] -> [C]
// (Inception-v3's last pool, the 2048-d FID feature). Forward only.
type GlobalAvgPool2d struct {
	name     string
	channels int
}

func (l *GlobalAvgPool2d) Name() string        { return l.name }
func (l *GlobalAvgPool2d) SetName(name string) { l.name = name }

func (l *GlobalAvgPool2d) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if len(in) != 3 {
		return nil, nil, nil, fmt.Errorf("%s: global pool input %v, want [C,H,W]", l.name, in)
	}
	l.channels = in[0]
	return []int{in[0]}, nil, nil, nil
}

func (l *GlobalAvgPool2d) Init(*rand.Rand, map[string][]float32, map[string][]float32) {}

func (l *GlobalAvgPool2d) Bind(d *Device, batch int, prev Port, keep func(*Tensor)) (Bound, error) {
	out, err := alloc(d, keep, batch, l.channels)
	if err != nil {
		return nil, err
	}
	return &boundGlobalPool{name: l.name, out: Port{X: out}}, nil
}

type boundGlobalPool struct {
	name string
	out  Port
}

func (b *boundGlobalPool) Out() Port { return b.out }

func (b *boundGlobalPool) Forward(r *Recorder, _ *Pass, x *Tensor) { r.GlobalAvgPool(b.out.X, x, 0) }

func (b *boundGlobalPool) Backward(r *Recorder, _ *Pass, _, _ *Tensor) {
	r.fail(fmt.Errorf("engine: %s: global pooling has no backward pass (forward only, for evaluation)", b.name))
}

// Resize2d resamples [C,H,W] images to [C,Side,Side] bilinearly as
// F.interpolate(mode='bilinear', align_corners=False) does. Forward only.
type Resize2d struct {
	name     string
	Side     int
	channels int
}

func (l *Resize2d) Name() string        { return l.name }
func (l *Resize2d) SetName(name string) { l.name = name }

func (l *Resize2d) Declare(in []int) ([]int, []ParamSpec, []ParamSpec, error) {
	if len(in) != 3 || l.Side < 1 {
		return nil, nil, nil, fmt.Errorf("%s: resize of %v to side %d", l.name, in, l.Side)
	}
	l.channels = in[0]
	return []int{in[0], l.Side, l.Side}, nil, nil, nil
}

func (l *Resize2d) Init(*rand.Rand, map[string][]float32, map[string][]float32) {}

func (l *Resize2d) Bind(d *Device, batch int, _ Port, keep func(*Tensor)) (Bound, error) {
	out, err := alloc(d, keep, batch, l.channels, l.Side, l.Side)
	if err != nil {
		return nil, err
	}
	return &boundResize{name: l.name, out: Port{X: out}}, nil
}

type boundResize struct {
	name string
	out  Port
}

func (b *boundResize) Out() Port { return b.out }

func (b *boundResize) Forward(r *Recorder, _ *Pass, x *Tensor) {
	r.ResizeBilinear(b.out.X, x, ResizeParams{})
}

func (b *boundResize) Backward(r *Recorder, _ *Pass, _, _ *Tensor) {
	r.fail(fmt.Errorf("engine: %s: resize has no backward pass (forward only, for evaluation)", b.name))
}
