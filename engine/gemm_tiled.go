package engine

import (
	"cmp"
	"fmt"
	"math/bits"

	"vkgan/shaders"
)

// tiledConfig is one tiling of igemm_tiled.comp, the GPU-class GEMM core: a
// workgroup of WG invocations computes a BM x BN tile of the output in
// BK-deep slices staged through shared memory, each invocation a TM x TN
// register block, so WG = (BM/TM)*(BN/TN). S splits the reduction into S
// parts over the grid's z (split-K) whose partial sums igemm_reduce.comp
// adds; 0 lets igemmTiled choose (tiledSplit), 1 never splits.
type tiledConfig struct {
	WG, BM, BN, BK, TM, TN int
	S                      int
}

func (c tiledConfig) String() string {
	s := fmt.Sprintf("%dx%dx%d/wg%d/%dx%d", c.BM, c.BN, c.BK, c.WG, c.TM, c.TN)
	if c.S != 0 {
		s += fmt.Sprintf("/s%d", c.S)
	}
	return s
}

// sharedBytes is the shared memory igemm_tiled.comp declares for c: two
// buffers of a BK x (BM+1) A slice and a BK x (BN+1) B slice.
func (c tiledConfig) sharedBytes() int { return 2 * c.BK * (c.BM + 1 + c.BN + 1) * 4 }

// check reports why c cannot run on d, or nil.
func (c tiledConfig) check(d *Device) error {
	lim := d.info.Limits
	pow2 := func(v int) bool { return v > 0 && bits.OnesCount(uint(v)) == 1 }
	switch {
	case !pow2(c.WG) || !pow2(c.BM) || !pow2(c.BN) || !pow2(c.BK) || !pow2(c.TM) || !pow2(c.TN):
		return fmt.Errorf("engine: tiled gemm %v: sizes must be powers of two", c)
	case c.TM > c.BM || c.TN > c.BN:
		return fmt.Errorf("engine: tiled gemm %v: register block larger than the tile", c)
	case c.WG != (c.BM/c.TM)*(c.BN/c.TN):
		return fmt.Errorf("engine: tiled gemm %v: WG must be (BM/TM)*(BN/TN) = %d", c, (c.BM/c.TM)*(c.BN/c.TN))
	case c.BK < 4 || c.BN < 4:
		// vec4 loads of A walk k and of B walk n in whole units of four.
		return fmt.Errorf("engine: tiled gemm %v: BK and BN must be at least 4", c)
	case c.S < 0:
		return fmt.Errorf("engine: tiled gemm %v: negative split", c)
	case uint32(c.WG) > lim.MaxWorkGroupSize:
		return fmt.Errorf("engine: tiled gemm %v: %d invocations exceed the device's %d", c, c.WG, lim.MaxWorkGroupSize)
	case uint32(c.sharedBytes()) > lim.MaxSharedMemory:
		return fmt.Errorf("engine: tiled gemm %v: %d bytes of shared memory exceed the device's %d", c, c.sharedBytes(), lim.MaxSharedMemory)
	}
	return nil
}

// The candidate tilings, largest first. The large, medium and small tiles
// follow ggml's Vulkan matmul (128, 64, 32 square; see
// shared/gpu-gemm-notes.md); the narrow ones serve outputs with a few rows
// (a 3-channel image, one logit: M <= 16) or a few columns (a GEMV, N <= 4).
var (
	tileLarge16 = tiledConfig{WG: 256, BM: 128, BN: 128, BK: 16, TM: 8, TN: 8} // 33 KB of shared memory
	tileLarge   = tiledConfig{WG: 256, BM: 128, BN: 128, BK: 8, TM: 8, TN: 8}  // for 32 KB devices
	tileMedium  = tiledConfig{WG: 128, BM: 64, BN: 64, BK: 16, TM: 8, TN: 4}
	tileSmall   = tiledConfig{WG: 64, BM: 32, BN: 32, BK: 16, TM: 4, TN: 4} // fits Vulkan's minimum limits
	// The narrow tiles' slices are 8 deep: 8 loads per invocation per
	// slice, not 16 or 32, keep the unrolled shader small (the 32-load
	// versions took over a minute per pipeline to compile on lavapipe).
	tileRows16 = tiledConfig{WG: 128, BM: 16, BN: 128, BK: 8, TM: 2, TN: 8}
	tileRows4  = tiledConfig{WG: 128, BM: 4, BN: 128, BK: 8, TM: 1, TN: 4} // RGB, one logit
	tileCols4  = tiledConfig{WG: 128, BM: 128, BN: 4, BK: 8, TM: 4, TN: 1} // GEMV

	tiledCandidates = []tiledConfig{tileLarge16, tileLarge, tileMedium, tileSmall, tileRows16, tileRows4, tileCols4}
)

// tiledConfigs returns every candidate tiling this device can run.
func (d *Device) tiledConfigs() []tiledConfig {
	var out []tiledConfig
	for _, c := range tiledCandidates {
		if c.check(d) == nil {
			out = append(out, c)
		}
	}
	return out
}

// defaultTiledConfig picks a tiling by shape, as ggml does: small when M
// or N is at most 32, medium when at most 64, else large; narrow tiles for
// outputs with very few rows or columns. S is filled in (tiledSplit).
func (d *Device) defaultTiledConfig(mode int, g gemmArgs, ncols, zslices int) tiledConfig {
	m, n := g.M, ncols
	var want []tiledConfig // preference order; the first that fits wins
	switch {
	case m <= 4 && n > 32:
		want = []tiledConfig{tileRows4, tileRows16}
	case m <= 16 && n > 32:
		want = []tiledConfig{tileRows16}
	case n <= 4 && m > 32:
		want = []tiledConfig{tileCols4}
	case m <= 32 || n <= 32:
	case m <= 64 || n <= 64:
		want = []tiledConfig{tileMedium}
	default:
		want = []tiledConfig{tileLarge16, tileLarge, tileMedium}
	}
	for _, c := range append(want, tileSmall) {
		if c.check(d) == nil {
			c.S = d.tiledSplit(c, mode, g, ncols, zslices)
			return c
		}
	}
	// Every Vulkan device has the 64 invocations and 8.3 KB of shared
	// memory the small tile needs (the minimums are 128 and 16 KB).
	c := tileSmall
	c.S = d.tiledSplit(c, mode, g, ncols, zslices)
	return c
}

// reduction is the GEMM's reduction length: for backward-data the longest
// parity class's (each class has its own, computed in the shader).
func (g gemmArgs) reduction(mode int) int {
	if mode == modeConvBackwardData {
		return g.cout * ((g.kh + g.sh - 1) / g.sh) * ((g.kw + g.sw - 1) / g.sw)
	}
	return g.K
}

// Split-K: parts of about splitChunk reduction steps, at most maxSplit
// of them, only when the tile grid has fewer than splitGridBelow
// workgroups, and the scratch of partial sums at most maxSplitScratch
// floats (64 MiB).
const (
	splitChunk      = 4096
	maxSplit        = 32
	splitGridBelow  = 64
	maxSplitScratch = 16 << 20
)

// tiledSplit is the default number of split-K parts: when the tile grid
// has fewer than 64 workgroups (too few to fill a GPU) and the reduction
// is long, ceil(K/4096) parts, at most 32, and no more than the scratch
// limit and the grid's z allow.
func (d *Device) tiledSplit(c tiledConfig, mode int, g gemmArgs, ncols, zslices int) int {
	tiles := ceilDiv(g.M, c.BM) * ceilDiv(ncols, c.BN) * zslices
	k := g.reduction(mode)
	if tiles >= splitGridBelow || k <= splitChunk {
		return 1
	}
	s := min(ceilDiv(k, splitChunk), maxSplit, ceilDiv(k, c.BK))
	s = min(s, max(1, maxSplitScratch/max(1, g.M*g.outCols(mode))))
	s = min(s, int(d.info.Limits.MaxWorkGroupCount[2])/max(1, zslices))
	return max(s, 1)
}

// outCols is the number of output columns over all grid z slices: the
// scratch's row length under split-K.
func (g gemmArgs) outCols(mode int) int {
	if mode == modeConvBackwardData {
		return g.nb * g.h * g.w
	}
	return g.N
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// igemmTiled records the GEMM that igemm would, with igemm_tiled.comp
// tiled as cfg (cfg.S = 0: the default split). The padded modes run as
// their unpadded modes over the padded input (a conv with no padding on
// an [nb, cin, hp, wp] image), so the tiled core needs only modes 0-3.
func (r *Recorder) igemmTiled(cfg tiledConfig, mode int, g gemmArgs, ncols, zslices int, vecA, vecB bool, a, b, c, bias *Tensor) error {
	d := r.d
	if err := cfg.check(d); err != nil {
		return r.fail(err)
	}
	switch mode {
	case modeConvForwardPadded, modeConvBackwardWeightsPadded:
		// The padded input's tap (kh, kw) of output (oh, ow) sits at row
		// oh*sh+kh, column ow*sw+kw: an unpadded conv over [hp, wp].
		if mode == modeConvForwardPadded {
			if g.sAm != 0 && g.sAm != g.K {
				return r.fail(fmt.Errorf("engine: tiled gemm: weights with a row stride of %d floats for K %d", g.sAm, g.K))
			}
			mode = modeConvForward
		} else {
			mode = modeConvBackwardWeights
		}
		g.h, g.w, g.ph, g.pw = g.hp, g.wp, 0, 0
	case modeMatMul, modeConvForward, modeConvBackwardData, modeConvBackwardWeights:
	default:
		return r.fail(fmt.Errorf("engine: tiled gemm: unknown mode %d", mode))
	}
	if cfg.S == 0 {
		cfg.S = d.tiledSplit(cfg, mode, g, ncols, zslices)
	}
	lim := d.info.Limits.MaxWorkGroupCount
	groups := [3]uint32{uint32(ceilDiv(ncols, cfg.BN)), uint32(ceilDiv(g.M, cfg.BM)), uint32(zslices * cfg.S)}
	if groups[0] > lim[0] || groups[1] > lim[1] || groups[2] > lim[2] {
		return r.fail(fmt.Errorf("engine: tiled gemm %v: %v workgroups exceed the device's %v (M %d, N %d)", cfg, groups, lim, g.M, ncols))
	}
	if groups[0] == 0 || groups[1] == 0 || groups[2] == 0 {
		return nil // an empty output
	}
	spec := []uint32{uint32(mode), uint32(cfg.WG), uint32(cfg.BM), uint32(cfg.BN), uint32(cfg.BK),
		uint32(cfg.TM), uint32(cfg.TN), b2u(vecA), b2u(vecB), b2u(g.epiAct())}
	if bias == nil {
		bias = c // bound but never read (hasBias = 0, epi = 0)
	}
	push := shaders.IgemmTiledPush(g.push()) // one block layout for both cores
	if cfg.S == 1 {
		return dispatch(r, shaders.IgemmTiled, spec, groups, push, a, b, c, bias)
	}

	// Split-K: partial sums into recording-owned scratch, then the
	// ordered reduction with the epilogue.
	ntot := g.outCols(mode)
	part, err := r.scratch(scratchSplitK, cfg.S, g.M, ntot)
	if err != nil {
		return r.fail(fmt.Errorf("engine: tiled gemm %v: split-K scratch: %w", cfg, err))
	}
	if err := dispatch(r, shaders.IgemmTiled, spec, groups, push, a, b, part, bias); err != nil {
		return err
	}
	rp := g.reducePush(mode, ntot, cfg.S)
	rgroups := [3]uint32{uint32(ceilDiv(ntot, 256)), uint32(g.M), 1}
	if rgroups[0] > lim[0] || rgroups[1] > lim[1] {
		return r.fail(fmt.Errorf("engine: tiled gemm %v: reduction grid %v exceeds the device's %v", cfg, rgroups, lim))
	}
	return dispatch(r, shaders.IgemmReduce, nil, rgroups, rp, part, c, bias)
}

// reducePush maps the split-K scratch's columns back to the output (see
// igemm_reduce.comp).
func (g gemmArgs) reducePush(mode, ntot, s int) shaders.IgemmReducePush {
	innerN, mStride, yc := g.N, g.ldc, g.M
	switch mode {
	case modeConvForward:
		innerN, mStride, yc = g.oh*g.ow, g.oh*g.ow, cmp.Or(g.yc, g.cout)
	case modeConvBackwardData:
		innerN, mStride, yc = g.h*g.w, g.h*g.w, g.cin
	case modeConvBackwardWeights:
		innerN, mStride = g.N, g.N
	}
	u := func(v int) uint32 { return uint32(v) }
	return shaders.IgemmReducePush{M: u(g.M), Ntot: u(ntot), InnerN: u(innerN), MStride: u(mStride), Yc: u(yc), Yc0: u(g.yc0),
		S: u(s), Alpha: g.alpha, Beta: g.beta, HasBias: b2u(g.hasBias), Epi: u(g.epi), Slope: g.slope}
}
