package engine

import (
	"fmt"

	"vkgan/shaders"
)

// ConvEpilogue is what Conv2DFused does to each output before storing it,
// and where it stores it.
type ConvEpilogue struct {
	// ChannelOffset is the first channel of y written: y may hold more
	// channels than the weights produce, so that the branches of a channel
	// concatenation write straight into their part of one buffer.
	ChannelOffset int
	// ScaleShift, when not nil, holds 2*Cout values: output channel c
	// becomes v*ScaleShift[c] + ScaleShift[Cout+c] (an inference batch
	// norm, folded by FoldBatchNorm).
	ScaleShift *Tensor
	ReLU       bool
}

// Conv2DFused records a convolution as Conv2D does, applying e in the
// GEMM's epilogue: y is [N, Ctot, OH, OW] with Ctot >= e.ChannelOffset +
// Cout, and only channels e.ChannelOffset .. e.ChannelOffset+Cout-1 are
// written. The other channels are left as they are.
func (r *Recorder) Conv2DFused(y, x, w *Tensor, p ConvParams, e ConvEpilogue) error {
	const op = "fused conv2d"
	p = p.norm()
	if p.Accumulate {
		return r.fail(fmt.Errorf("engine: %s: accumulate is not supported", op))
	}
	g, err := convInputs(op, x, w, p)
	if err == nil && y == nil {
		err = fmt.Errorf("engine: %s: nil output", op)
	}
	if err == nil {
		err = distinct(op, y, x, w)
	}
	if err != nil {
		return r.fail(err)
	}
	c0 := e.ChannelOffset
	if len(y.shape) != 4 || y.shape[0] != g.nb || y.shape[2] != g.oh || y.shape[3] != g.ow || c0 < 0 || c0+g.cout > y.shape[1] {
		return r.fail(fmt.Errorf("engine: %s: output %v cannot take channels %d..%d of a [%d,*,%d,%d] result (input %v, weights %v)",
			op, y.shape, c0, c0+g.cout-1, g.nb, g.oh, g.ow, x.shape, w.shape))
	}
	g.yc, g.yc0 = y.shape[1], c0
	bias := y
	if e.ScaleShift != nil {
		if e.ScaleShift.n != 2*g.cout {
			return r.fail(fmt.Errorf("engine: %s: scale-shift has %d values, want 2*%d", op, e.ScaleShift.n, g.cout))
		}
		if e.ScaleShift.shares(y) {
			return r.fail(fmt.Errorf("engine: %s: scale-shift must not alias the output", op))
		}
		g.epi |= 1
		bias = e.ScaleShift
	}
	if e.ReLU {
		g.epi |= 2
	}
	g.M, g.N, g.K = g.cout, g.nb*g.oh*g.ow, g.cin*g.kh*g.kw
	if g.paddable() {
		xp, err := r.pad(x, &g)
		if err != nil {
			return r.fail(err)
		}
		return r.igemm(modeConvForwardPadded, g, g.N, 1, true, false, w, xp, y, bias)
	}
	return r.igemm(modeConvForward, g, g.N, 1, g.K%4 == 0, false, w, x, y, bias)
}

// FoldBatchNorm records s = the per-channel affine of an inference batch
// norm: s[c] = gamma[c]/sqrt(var[c]+eps), s[C+c] = beta[c] - mean[c]*s[c],
// for Conv2DFused's ScaleShift.
func (r *Recorder) FoldBatchNorm(s, gamma, beta, mean, variance *Tensor, eps float32) error {
	const op = "fold batch norm"
	for _, t := range []*Tensor{s, gamma, beta, mean, variance} {
		if t == nil {
			return r.fail(fmt.Errorf("engine: %s: nil tensor", op))
		}
	}
	c := gamma.n
	if beta.n != c || mean.n != c || variance.n != c || s.n != 2*c {
		return r.fail(fmt.Errorf("engine: %s: gamma %v, beta %v, mean %v, var %v, out %v: want C, C, C, C and 2C values",
			op, gamma.shape, beta.shape, mean.shape, variance.shape, s.shape))
	}
	if !(eps > 0) {
		return r.fail(fmt.Errorf("engine: %s: eps %g must be positive", op, eps))
	}
	if err := distinct(op, s, gamma, beta, mean, variance); err != nil {
		return r.fail(err)
	}
	groups := [3]uint32{uint32((c + 63) / 64), 1, 1}
	return dispatch(r, shaders.BnFold, nil, groups, shaders.BnFoldPush{C: uint32(c), Eps: eps}, gamma, beta, mean, variance, s)
}
