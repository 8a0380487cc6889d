package engine

import (
	"fmt"

	"vkgan/shaders"
)

// Pooling and resizing are forward-only: they serve evaluation networks
// (the FID Inception-v3), so there are no backward kernels.

// PoolParams describe a 2D pooling window over NCHW input, as PyTorch's
// F.max_pool2d and F.avg_pool2d take them (with ceil_mode=False: the
// output size is floor((H + 2*PadH - KH)/StrideH) + 1, likewise for W).
type PoolParams struct {
	KH, KW int // window size, at least 1
	// StrideH and StrideW are the window's steps; 0 means the window size
	// (PyTorch's default stride=None).
	StrideH, StrideW int
	// PadH and PadW are the implicit padding on each side, at most half
	// the window (PyTorch's limit, which keeps a tap of the input in every
	// window). Max pooling treats padding as -inf.
	PadH, PadW int
	// ChannelOffset is the first output channel written: the op writes
	// channels [ChannelOffset, ChannelOffset+C) of y and leaves the others
	// alone, so a branch writes straight into its slice of a channel
	// concatenation. 0 with y's channels equal to x's is a plain pool.
	ChannelOffset int
	// CountIncludePad (AvgPool2D only) divides every window's sum by
	// KH*KW, as PyTorch's count_include_pad=True. False (the default) divides
	// by the number of taps inside the input, as count_include_pad=False,
	// which Inception-v3's average pools use.
	CountIncludePad bool
}

func (p PoolParams) norm() PoolParams {
	if p.StrideH == 0 {
		p.StrideH = p.KH
	}
	if p.StrideW == 0 {
		p.StrideW = p.KW
	}
	return p
}

// OutSize returns the pooled size of an h x w input.
func (p PoolParams) OutSize(h, w int) (oh, ow int) {
	p = p.norm()
	if p.StrideH < 1 || p.StrideW < 1 {
		return 0, 0
	}
	return (h+2*p.PadH-p.KH)/p.StrideH + 1, (w+2*p.PadW-p.KW)/p.StrideW + 1
}

// Pool modes: pool2d.comp's specialization constant MODE.
const (
	poolMax = iota
	poolAvg
	poolAvgIncludePad
)

// MaxPool2D records y = max_pool2d(x) over windows p: x is [N,C,H,W], y is
// [N,Ctot,OH,OW] with OH, OW from p.OutSize, and only channels
// [p.ChannelOffset, p.ChannelOffset+C) of y are written. A NaN in a window
// is its maximum, as in PyTorch. Forward only.
func (r *Recorder) MaxPool2D(y, x *Tensor, p PoolParams) error {
	return r.pool2d("max pool2d", poolMax, y, x, p)
}

// AvgPool2D records y = avg_pool2d(x) over windows p, dividing by the taps
// inside x unless p.CountIncludePad; shapes and the channel slice as in
// MaxPool2D. Forward only.
func (r *Recorder) AvgPool2D(y, x *Tensor, p PoolParams) error {
	mode := poolAvg
	if p.CountIncludePad {
		mode = poolAvgIncludePad
	}
	return r.pool2d("avg pool2d", mode, y, x, p)
}

func (r *Recorder) pool2d(op string, mode int, y, x *Tensor, p PoolParams) error {
	p = p.norm()
	if err := poolCheck(op, y, x, p); err != nil {
		return r.fail(err)
	}
	nb, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	oh, ow := y.shape[2], y.shape[3]
	push := shaders.Pool2dPush{
		H: uint32(h), W: uint32(w), Oh: uint32(oh), Ow: uint32(ow),
		Kh: uint32(p.KH), Kw: uint32(p.KW), Sh: uint32(p.StrideH), Sw: uint32(p.StrideW),
		Ph: uint32(p.PadH), Pw: uint32(p.PadW),
		Nb: uint32(nb), C: uint32(c), Ctot: uint32(y.shape[1]), C0: uint32(p.ChannelOffset),
	}
	return r.tileDispatch(c, ow, oh, func(base int, groups [3]uint32) error {
		push.ChanBase = uint32(base)
		return dispatch(r, shaders.Pool2d, []uint32{uint32(mode)}, groups, push, y, x)
	})
}

// poolCheck validates x [N,C,H,W] and y [N,Ctot,OH,OW] for windows p
// (strides already defaulted).
func poolCheck(op string, y, x *Tensor, p PoolParams) error {
	if x == nil || y == nil {
		return fmt.Errorf("engine: %s: nil tensor (x %s, y %s)", op, shapeStr(x), shapeStr(y))
	}
	if len(x.shape) != 4 || len(y.shape) != 4 {
		return fmt.Errorf("engine: %s: want 4D NCHW tensors, got x %v, y %v", op, x.shape, y.shape)
	}
	if p.KH < 1 || p.KW < 1 || p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 {
		return fmt.Errorf("engine: %s: window %dx%d and stride %dx%d must be >= 1, padding %dx%d >= 0",
			op, p.KH, p.KW, p.StrideH, p.StrideW, p.PadH, p.PadW)
	}
	if 2*p.PadH > p.KH || 2*p.PadW > p.KW {
		return fmt.Errorf("engine: %s: padding %dx%d must be at most half the window %dx%d", op, p.PadH, p.PadW, p.KH, p.KW)
	}
	h, w := x.shape[2], x.shape[3]
	if h+2*p.PadH < p.KH || w+2*p.PadW < p.KW {
		return fmt.Errorf("engine: %s: window %dx%d does not fit input %dx%d with padding %dx%d", op, p.KH, p.KW, h, w, p.PadH, p.PadW)
	}
	oh, ow := p.OutSize(h, w)
	if err := sliceCheck(op, y, x, oh, ow, p.ChannelOffset); err != nil {
		return fmt.Errorf("%w (window %dx%d, stride %dx%d, padding %dx%d)", err, p.KH, p.KW, p.StrideH, p.StrideW, p.PadH, p.PadW)
	}
	return nil
}

// sliceCheck validates that y is [N, Ctot, oh, ow] for x [N, C, ., .] with
// the channel slice [c0, c0+C) inside Ctot, and that y does not alias x.
func sliceCheck(op string, y, x *Tensor, oh, ow, c0 int) error {
	nb, c := x.shape[0], x.shape[1]
	if y.shape[0] != nb || y.shape[2] != oh || y.shape[3] != ow {
		return fmt.Errorf("engine: %s: output is %v, want [%d Ctot %d %d] for input %v", op, y.shape, nb, oh, ow, x.shape)
	}
	if c0 < 0 || c0+c > y.shape[1] {
		return fmt.Errorf("engine: %s: channels [%d, %d) of input %v do not fit in the %d channels of output %v",
			op, c0, c0+c, x.shape, y.shape[1], y.shape)
	}
	return distinct(op, y, x)
}

// tileDispatch records a kernel on the grid of pool2d.comp and
// resize_bilinear.comp: 8x8 tiles of an ow x oh output plane in x and y,
// channels in z (each invocation loops over the batch), split into
// dispatches of at most the device's z limit (lavapipe allows 65535). fn
// records one dispatch of channels [base, base+groups[2]).
func (r *Recorder) tileDispatch(channels, ow, oh int, fn func(base int, groups [3]uint32) error) error {
	maxZ := int(r.d.info.Limits.MaxWorkGroupCount[2])
	for base := 0; base < channels; base += maxZ {
		z := min(maxZ, channels-base)
		groups := [3]uint32{uint32((ow + 7) / 8), uint32((oh + 7) / 8), uint32(z)}
		if err := fn(base, groups); err != nil {
			return err
		}
	}
	return nil
}

// GlobalAvgPool records y[n, c0+c] = the mean of x[n, c] over its H*W
// positions (Inception-v3's final 8x8 pool to a 2048-d feature): x is
// [N,C,H,W], y is [N,Ctot] or [N,Ctot,1,1], and only channels
// [channelOffset, channelOffset+C) of y are written. Forward only.
func (r *Recorder) GlobalAvgPool(y, x *Tensor, channelOffset int) error {
	const op = "global avg pool"
	err := func() error {
		if x == nil || y == nil {
			return fmt.Errorf("engine: %s: nil tensor (x %s, y %s)", op, shapeStr(x), shapeStr(y))
		}
		if len(x.shape) != 4 {
			return fmt.Errorf("engine: %s: want a 4D NCHW input, got %v", op, x.shape)
		}
		flat := len(y.shape) == 2 || len(y.shape) == 4 && y.shape[2] == 1 && y.shape[3] == 1
		if !flat || y.shape[0] != x.shape[0] {
			return fmt.Errorf("engine: %s: output is %v, want [%d Ctot] or [%d Ctot 1 1] for input %v", op, y.shape, x.shape[0], x.shape[0], x.shape)
		}
		if c0, c := channelOffset, x.shape[1]; c0 < 0 || c0+c > y.shape[1] {
			return fmt.Errorf("engine: %s: channels [%d, %d) of input %v do not fit in the %d channels of output %v",
				op, c0, c0+c, x.shape, y.shape[1], y.shape)
		}
		return distinct(op, y, x)
	}()
	if err != nil {
		return r.fail(err)
	}
	planes := x.shape[0] * x.shape[1]
	push := shaders.GlobalAvgPoolPush{Planes: uint32(planes), Hw: uint32(x.shape[2] * x.shape[3]),
		C: uint32(x.shape[1]), Ctot: uint32(y.shape[1]), C0: uint32(channelOffset)}
	return dispatch(r, shaders.GlobalAvgPool, nil, r.gridGroups(planes, 64), push, y, x)
}
