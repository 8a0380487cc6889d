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
	g, bias, err := fusedArgs(y, x, w, p, e)
	if err != nil {
		return r.fail(err)
	}
	if g.paddable() && r.d.class == ClassCPU {
		return r.convForwardPadded(g, x, w, y, bias)
	}
	if r.d.class == ClassCPU {
		// convwin loads each input value once for all the taps that reach
		// it; on a CPU device loads, not FLOPs, set the speed. GPUs keep
		// igemm: convwin has only been measured on lavapipe.
		if vert, ok := g.windowLayout(); ok {
			return r.convWindow(g, vert, r.d.subgroupTiles(), x, w, y, bias)
		}
	}
	return r.igemm(modeConvForward, g, g.N, 1, g.K%4 == 0, false, w, x, y, bias)
}

// fusedArgs checks Conv2DFused's arguments and returns the GEMM geometry
// with the epilogue set, and the tensor bound as the bias.
func fusedArgs(y, x, w *Tensor, p ConvParams, e ConvEpilogue) (gemmArgs, *Tensor, error) {
	const op = "fused conv2d"
	p = p.norm()
	if p.Accumulate {
		return gemmArgs{}, nil, fmt.Errorf("engine: %s: accumulate is not supported", op)
	}
	g, err := convInputs(op, x, w, p)
	if err == nil && y == nil {
		err = fmt.Errorf("engine: %s: nil output", op)
	}
	if err == nil {
		err = distinct(op, y, x, w)
	}
	if err != nil {
		return g, nil, err
	}
	c0 := e.ChannelOffset
	if len(y.shape) != 4 || y.shape[0] != g.nb || y.shape[2] != g.oh || y.shape[3] != g.ow || c0 < 0 || c0+g.cout > y.shape[1] {
		return g, nil, fmt.Errorf("engine: %s: output %v cannot take channels %d..%d of a [%d,*,%d,%d] result (input %v, weights %v)",
			op, y.shape, c0, c0+g.cout-1, g.nb, g.oh, g.ow, x.shape, w.shape)
	}
	g.yc, g.yc0 = y.shape[1], c0
	bias := y
	if e.ScaleShift != nil {
		if e.ScaleShift.n != 2*g.cout {
			return g, nil, fmt.Errorf("engine: %s: scale-shift has %d values, want 2*%d", op, e.ScaleShift.n, g.cout)
		}
		if e.ScaleShift.shares(y) {
			return g, nil, fmt.Errorf("engine: %s: scale-shift must not alias the output", op)
		}
		g.epi |= 1
		bias = e.ScaleShift
	}
	if e.ReLU {
		g.epi |= 2
	}
	g.M, g.N, g.K = g.cout, g.nb*g.oh*g.ow, g.cin*g.kh*g.kw
	return g, bias, nil
}

// windowLayout reports whether convwin.comp takes the convolution and, if
// it does, whether its lines are columns (vert: a kernel one tap wide and
// 2 to 8 tall) rather than rows (a kernel 2 to 8 taps wide). The stride
// along the line must be 1 or 2.
func (g gemmArgs) windowLayout() (vert, ok bool) {
	switch {
	case g.kw >= 2 && g.kw <= 8 && g.sw <= 2:
		return false, true
	case g.kw == 1 && g.kh >= 2 && g.kh <= 8 && g.sh <= 2:
		return true, true
	}
	return false, false
}

// convWindow records the convolution g (with fusedArgs' epilogue) with
// convwin.comp. useSG is subgroupTiles(), or false to run the kernel as a
// GPU would.
func (r *Recorder) convWindow(g gemmArgs, vert, useSG bool, x, w, y, bias *Tensor) error {
	kt, st, line, lines := g.kw, g.sw, g.ow, g.nb*g.oh // taps, stride, pixels per line, lines
	if vert {
		kt, st, line, lines = g.kh, g.sh, g.oh, g.nb*g.ow
	}
	// 8 pixels per invocation use each loaded weight twice as often as 4,
	// unless the line's last group would be mostly empty (a 17-pixel line
	// takes 3 groups of 8 but 5 of 4). Measured on lavapipe: 3x3 and 5x5
	// gained 1.2-1.4x from 8; 16 lost, and so did 8 at stride 2.
	tn := 4
	if st == 1 && 100*roundUp(line, 8) <= 115*roundUp(line, 4) {
		tn = 8
	}
	gper := (line + tn - 1) / tn
	push := shaders.ConvwinPush{
		M: uint32(g.cout), Cin: uint32(g.cin), H: uint32(g.h), W: uint32(g.w), Oh: uint32(g.oh), Ow: uint32(g.ow),
		Kh: uint32(g.kh), Sh: uint32(g.sh), Sw: uint32(g.sw), Ph: uint32(g.ph), Pw: uint32(g.pw),
		Groups: uint32(lines * gper), Gper: uint32(gper), XLen: uint32(x.n), WLen: uint32(w.n),
		Yc: uint32(g.yc), Yc0: uint32(g.yc0), Epi: uint32(g.epi),
	}
	tm := gemmRows(g.M)
	wg := r.d.gemmWorkgroup(useSG, int(push.Groups))
	groups := [3]uint32{(push.Groups + uint32(wg) - 1) / uint32(wg), uint32((g.M + tm - 1) / tm), 1}
	if lim := r.d.info.Limits.MaxWorkGroupCount; groups[0] > lim[0] || groups[1] > lim[1] {
		return r.fail(fmt.Errorf("engine: fused conv2d: %v workgroups exceed the device's %v (input %dx%dx%dx%d)",
			groups, lim, g.nb, g.cin, g.h, g.w))
	}
	spec := []uint32{b2u(vert), uint32(wg), b2u(useSG), uint32(tm), uint32(tn), uint32(kt), uint32(st)}
	return dispatch(r, shaders.Convwin, spec, groups, push, w, x, y, bias)
}

func roundUp(n, m int) int { return (n + m - 1) / m * m }

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
