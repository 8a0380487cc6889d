package engine

import (
	"cmp"
	"fmt"
	"math"
	"runtime"
	"slices"

	"vkgan/shaders"
)

// ConvParams are a 2D convolution's stride and zero padding. Zero strides
// mean 1.
type ConvParams struct {
	StrideH, StrideW int
	PadH, PadW       int
	// Accumulate adds the result into the output instead of overwriting it
	// (for gradients summed over several passes, such as D's real and fake
	// batches).
	Accumulate bool
	// act is an in-place activation the epilogue does the work of (see
	// gemmAct): the forward of the one after a convolution, or in the
	// backward-data, the derivative of the one before it.
	act gemmAct
}

// epilogue puts p's activation into g's epilogue and returns what the
// epilogue reads where a bias would be: the activation's saved output
// (nil without one), which must be shaped like out and alias nothing.
func (p ConvParams) epilogue(op string, g *gemmArgs, out *Tensor, ins ...*Tensor) (*Tensor, error) {
	if !p.act.on {
		return nil, nil
	}
	if p.Accumulate {
		return nil, fmt.Errorf("engine: %s: an activation in the epilogue cannot add into the output", op)
	}
	if s := p.act.saved; s != nil {
		if s.n != out.n || s.shares(out) || distinct(op, s, ins...) != nil {
			return nil, fmt.Errorf("engine: %s: the activation's saved output %s must match the output %v and alias no operand",
				op, shapeStr(s), out.shape)
		}
	}
	g.setAct(p.act)
	return p.act.saved, nil
}

func (p ConvParams) norm() ConvParams {
	if p.StrideH == 0 {
		p.StrideH = 1
	}
	if p.StrideW == 0 {
		p.StrideW = 1
	}
	return p
}

// The implicit-GEMM kernel's register tile: igemm.comp's TM x TN.
const (
	gemmTM = 16
	gemmTN = 4
)

// Index maps of igemm.comp.
const (
	modeMatMul = iota
	modeConvForward
	modeConvBackwardData
	modeConvBackwardWeights
	modeConvForwardPadded
	modeConvBackwardWeightsPadded
	modeConvBackwardDataPacked
)

// gemmArgs is igemm.comp's push-constant block in the engine's terms (ints
// and a bool); push converts it to the generated shaders.IgemmPush.
type gemmArgs struct {
	M, N, K                                             int
	sAm, sAk, sBk, sBn, ldc                             int
	nb, cin, h, w, cout, oh, ow, kh, kw, sh, sw, ph, pw int
	alpha, beta                                         float32
	hasBias                                             bool
	hp, wp                                              int
	// padB: mode 6's B is dy zero-padded by one on each side (hp x wp
	// planes), read with aligned quad loads (see Conv2DBackwardData).
	padB bool
	// Conv forward into channels yc0.. of an output with yc channels (0:
	// cout), and the epilogue bits (see igemm.comp) with the activation's
	// slope.
	yc, yc0, epi int
	slope        float32
	// sumA: also write op(A)'s row sums into the bias binding (SUM_A;
	// matmuls with A transposed).
	sumA bool
}

// setAct puts act into the epilogue: act.glsl's field, op+1 in bits 2-4
// and bit 5 for the derivative, whose saved values take the bias binding.
func (g *gemmArgs) setAct(act gemmAct) {
	if !act.on {
		return
	}
	g.epi |= int(act.op+1) << 2
	g.slope = act.slope
	if act.saved != nil {
		g.epi |= 32
	}
}

// epiAct reports whether the epilogue has an activation: the kernels
// compile its code only then (EPI_ACT).
func (g gemmArgs) epiAct() bool { return g.epi>>2&7 != 0 }

func (g gemmArgs) push() shaders.IgemmPush {
	u := func(v int) uint32 { return uint32(v) }
	return shaders.IgemmPush{
		M: u(g.M), N: u(g.N), K: u(g.K),
		SAm: u(g.sAm), SAk: u(g.sAk), SBk: u(g.sBk), SBn: u(g.sBn), Ldc: u(g.ldc),
		Nb: u(g.nb), Cin: u(g.cin), H: u(g.h), W: u(g.w), Cout: u(g.cout), Oh: u(g.oh), Ow: u(g.ow),
		Kh: u(g.kh), Kw: u(g.kw), Sh: u(g.sh), Sw: u(g.sw), Ph: u(g.ph), Pw: u(g.pw),
		Alpha: g.alpha, Beta: g.beta, HasBias: b2u(g.hasBias), Hp: u(g.hp), Wp: u(g.wp),
		Yc: u(cmp.Or(g.yc, g.cout)), Yc0: u(g.yc0), Epi: u(g.epi), Slope: g.slope,
	}
}

// igemm records one dispatch of the implicit-GEMM core. ncols is the number
// of output columns per grid z slice; vecA/vecB say whether A and B allow
// aligned 4-wide loads.
func (r *Recorder) igemm(mode int, g gemmArgs, ncols, zslices int, vecA, vecB bool, a, b, c, bias *Tensor) error {
	d := r.d
	var v GemmVariant
	if d.class == ClassGPU {
		// GPUs take the shared-memory tiled core (gemm_tiled.go).
		v = tiledVariant(d.defaultTiledConfig(mode, g, ncols, zslices))
	} else {
		useSG := d.subgroupTiles()
		wg := d.gemmWorkgroup(useSG, (ncols+gemmTN-1)/gemmTN)
		colGroups := (ncols + wg*gemmTN - 1) / (wg * gemmTN)
		tm := igemmRows(mode, g, useSG, vecA, vecB)
		large := tm > gemmRows(g.M)
		// Larger tiles mean fewer workgroups: keep two per CPU thread (D's
		// last layer has one column and 64 rows).
		for tm > gemmRows(g.M) && colGroups*((g.M+tm-1)/tm)*zslices < 2*runtime.NumCPU() {
			tm /= 2
		}
		if f := forceGemmRows; f > 0 && large && g.M >= f {
			tm = f
		}
		i64 := d.info.Limits.ShaderInt64
		v = GemmVariant{Kernel: KernelIgemm, WG: wg, TM: tm, SG: useSG, I64: i64, Tex: d.texelLoads()}
	}
	// The device's tuning table may pick another variant (tune.go).
	v = r.tuned(newGemmCall(mode, g, ncols, zslices, vecA, vecB, a, b, c, bias), v)
	return r.igemmVariant(v, mode, g, ncols, zslices, vecA, vecB, a, b, c, bias)
}

// igemmVariant records igemm's dispatch with variant v.
func (r *Recorder) igemmVariant(v GemmVariant, mode int, g gemmArgs, ncols, zslices int, vecA, vecB bool, a, b, c, bias *Tensor) error {
	if g.sumA && !(v.Kernel == KernelIgemm && v.SG) {
		// Only igemm's subgroup tiles sum A as they go: a dispatch of its
		// own for the others (g.sumA is set only with A transposed).
		h := g
		h.sumA = false
		if err := r.igemmVariant(v, mode, h, ncols, zslices, vecA, vecB, a, b, c, nil); err != nil {
			return err
		}
		return r.BiasGrad(bias, a)
	}
	if v.Kernel == KernelTiled {
		return r.igemmTiled(v.tiled(), mode, g, ncols, zslices, vecA, vecB, a, b, c, bias)
	}
	// A lane's four columns (forward) or a chunk's four k (backward-weights)
	// are one row's adjacent pixels, 16-byte aligned.
	quad := v.SG && g.ow%4 == 0 && g.sw == 2 && g.wp%4 == 0 && forceGemmRows != 16 &&
		(mode == modeConvForwardPadded || mode == modeConvBackwardWeightsPadded && !forceNoQuadWeights) ||
		mode == modeConvBackwardDataPacked && g.padB // B is padded for it: not optional
	// B transposed: a column's four k are one aligned load.
	vecBT := mode == modeMatMul && !vecB && g.sBk == 1 && g.sBn%4 == 0 && g.K%4 == 0 && !forceNoVecBT
	// A transposed: a lane's four rows are one aligned load a k.
	vecAT := mode == modeMatMul && !vecA && v.SG && v.TM == 32 && g.transposedA4()
	spec := []uint32{uint32(mode), uint32(v.WG), b2u(v.SG), b2u(vecA), b2u(vecB), uint32(v.TM), b2u(quad), b2u(vecBT), b2u(vecAT), b2u(g.epiAct()), b2u(g.sumA)}
	if bias == nil {
		bias = c // bound but never read (hasBias = 0)
	}
	groups := igemmGroups(v, g, ncols, zslices)
	// Texel loads serve only the aligned 4-float loads, and need both
	// operands viewable as texels.
	if v.Tex && !forceNoTexel && (vecA || vecB || vecBT || vecAT || quad) && a.buf.TexelViewable() && b.buf.TexelViewable() {
		return dispatch(r, shaders.IgemmTex, spec, groups, g.push(), a, b, c, bias, a, b)
	}
	kernel := shaders.Igemm
	if v.I64 {
		kernel = shaders.IgemmI64
	}
	return dispatch(r, kernel, spec, groups, g.push(), a, b, c, bias)
}

// igemmGroups is variant v's grid: TN columns per invocation, TM rows per
// workgroup.
func igemmGroups(v GemmVariant, g gemmArgs, ncols, zslices int) [3]uint32 {
	return [3]uint32{
		uint32((ncols + v.WG*gemmTN - 1) / (v.WG * gemmTN)),
		uint32((g.M + v.TM - 1) / v.TM),
		uint32(zslices),
	}
}

// texelLoads reports whether kernels take their aligned loads through
// texel buffers (igemm_tex, pad_tex): on CPU devices, where a texel fetch
// is one 16-byte load per lane and a storage-buffer load a per-lane loop;
// the texel kernels also use 64-bit words.
func (d *Device) texelLoads() bool { return d.class == ClassCPU && d.info.Limits.ShaderInt64 }

// subgroupTiles reports whether the GEMM kernels share A rows through
// subgroupBroadcast (USE_SG): on CPU devices, whose buffer loads are
// per-lane loops, with subgroups of 8 to 64 lanes that have the basic and
// ballot operations.
func (d *Device) subgroupTiles() bool {
	lim := d.info.Limits
	return d.class == ClassCPU && lim.SubgroupSize >= 8 && lim.SubgroupSize <= 64 && lim.SubgroupOps&0x9 == 0x9
}

// gemmWorkgroup is the workgroup size of the GEMM kernels when need
// invocations have columns to compute.
func (d *Device) gemmWorkgroup(useSG bool, need int) int {
	lim := d.info.Limits
	wg := 64
	if d.class == ClassCPU {
		// Lanes own columns: shrink the workgroup for narrow outputs so lanes
		// are not spent on clamped columns.
		wg = 128
		for wg > 8 && wg/2 >= need {
			wg /= 2
		}
		if useSG && wg < int(lim.SubgroupSize) {
			wg = int(lim.SubgroupSize)
		}
	}
	if uint32(wg) > lim.MaxWorkGroupSize {
		wg = int(lim.MaxWorkGroupSize)
	}
	return wg
}

// gemmRows is the GEMM kernels' rows per tile (TM) for m rows: few output
// rows (an RGB image, one logit) take a shorter tile, which wastes fewer
// lanes on rows past m.
func gemmRows(m int) int {
	tm := gemmTM
	for tm > 4 && m <= tm/2 {
		tm /= 2
	}
	return tm
}

// forceGemmRows, when positive (16, 32 or 64), replaces igemmRows's larger
// tiles where m fills them, and 16 restores the tiles and B loads from
// before them (no QUAD_B): benchmarks set it to time variants side by
// side, tests to cover each.
var forceGemmRows int

// igemmRows is igemm.comp's TM for g's M rows in mode. With the subgroup
// broadcast (CPU devices) each lane loads TM/8 rows of A, so larger tiles
// cut B's per-lane loads per multiply-add, where A's rows are 64-bit loads
// (vecA; scalar A loads grow with the tile). Measured in one process
// against 16 rows (BenchmarkGemmRows) on a quiet and on a loaded machine:
// 32 rows gave the 1024^3 matmul 1.2x and 1.25x and the padded DCGAN
// convs 1.09-1.38x; 64 rows won only under load (matmul 0.95x quiet,
// 1.7-2.0x loaded) except where B is gathered column by column (B^T:
// 1.6x quiet), and take llvmpipe twice as long to compile. A^T with
// scalar loads and mode 2's gathered weights measured slower with larger
// tiles; they and the rest keep gemmRows. A^T whose lanes load four rows
// at once (transposedA4, VEC_AT) takes 32. Backward-data with packed weights (mode 6)
// measured 1.17-1.36x faster with 32 rows than with 16
// (BenchmarkConvBwdPacked, loaded machine).
func igemmRows(mode int, g gemmArgs, useSG, vecA, vecB bool) int {
	m := g.M
	wide := mode == modeMatMul || mode == modeConvForwardPadded || mode == modeConvBackwardWeightsPadded ||
		mode == modeConvBackwardDataPacked
	switch {
	case mode == modeMatMul && useSG && !vecA && m >= 32 && g.transposedA4():
		return 32 // VEC_AT's tile: a lane's four rows are one load
	case !useSG || !vecA || !wide || m < 32:
		return gemmRows(m)
	case mode == modeMatMul && !vecB && m >= 64:
		return 64
	}
	return 32
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func shapeStr(t *Tensor) string {
	if t == nil {
		return "nil"
	}
	return fmt.Sprint(t.shape)
}

// Gemm records C = alpha*op(A)*op(B) + beta*C (+ bias[j] on every row when
// bias is non-nil), with op(X) = X^T when the trans flag is set. A, B and C
// are 2D: op(A) is [M,K], op(B) is [K,N], C is [M,N], bias has N elements.
// C must not alias A or B.
func (r *Recorder) Gemm(c, a, b *Tensor, transA, transB bool, alpha, beta float32, bias *Tensor) error {
	return r.gemm(c, a, b, transA, transB, alpha, beta, bias, gemmAct{}, nil)
}

// gemmAct is an activation a matmul's epilogue applies to each output
// (saved nil) or, with saved, whose derivative at the same element of saved
// (the activation's output, shaped like C) it multiplies each output by:
// an in-place activation's work, done by the layer before it (forward) or
// after it (backward) without a pass of its own over the tensor.
type gemmAct struct {
	on    bool
	op    uint32 // ewReLU, ...
	slope float32
	saved *Tensor
}

// gemm is Gemm with act in the epilogue and, when sumA is not nil, op(A)'s
// row sums written into it: with A transposed, the column sums of A as
// stored, which are a linear layer's bias gradient when A is dy.
func (r *Recorder) gemm(c, a, b *Tensor, transA, transB bool, alpha, beta float32, bias *Tensor, act gemmAct, sumA *Tensor) error {
	if a == nil || b == nil || c == nil {
		return r.fail(fmt.Errorf("engine: gemm: nil tensor (a %s, b %s, c %s)", shapeStr(a), shapeStr(b), shapeStr(c)))
	}
	if len(a.shape) != 2 || len(b.shape) != 2 || len(c.shape) != 2 {
		return r.fail(fmt.Errorf("engine: gemm: want 2D tensors, got a %v, b %v, c %v", a.shape, b.shape, c.shape))
	}
	M, K := a.shape[0], a.shape[1]
	sAm, sAk := K, 1
	if transA {
		M, K = K, M
		sAm, sAk = 1, M
	}
	Kb, N := b.shape[0], b.shape[1]
	sBk, sBn := N, 1
	if transB {
		Kb, N = N, Kb
		sBk, sBn = 1, Kb
	}
	if Kb != K {
		return r.fail(fmt.Errorf("engine: gemm: inner dimensions differ: op(a) is %dx%d, op(b) is %dx%d", M, K, Kb, N))
	}
	if c.shape[0] != M || c.shape[1] != N {
		return r.fail(fmt.Errorf("engine: gemm: c is %v, want [%d %d]", c.shape, M, N))
	}
	if bias != nil && bias.n != N {
		return r.fail(fmt.Errorf("engine: gemm: bias has %d elements, want %d", bias.n, N))
	}
	if c.shares(a) || c.shares(b) {
		return r.fail(fmt.Errorf("engine: gemm: c must not alias a or b"))
	}
	if isNaN32(alpha) || isNaN32(beta) {
		return r.fail(fmt.Errorf("engine: gemm: alpha %g, beta %g must be numbers", alpha, beta))
	}
	g := gemmArgs{M: M, N: N, K: K, sAm: sAm, sAk: sAk, sBk: sBk, sBn: sBn, ldc: N, alpha: alpha, beta: beta, hasBias: bias != nil}
	if s := act.saved; s != nil {
		if bias != nil || s.n != c.n || s.shares(c) || s.shares(a) || s.shares(b) {
			return r.fail(fmt.Errorf("engine: gemm: the activation's saved output %s must match c %v, alias no operand and come without a bias",
				shapeStr(s), c.shape))
		}
		bias = s // the epilogue reads it where a bias would be
	}
	g.setAct(act)
	if sumA != nil {
		if !transA || bias != nil || sumA.n != M || sumA.shares(c) || sumA.shares(a) || sumA.shares(b) {
			return r.fail(fmt.Errorf("engine: gemm: row sums %s need A transposed and %d values of their own, without a bias or saved activation",
				shapeStr(sumA), M))
		}
		bias, g.sumA = sumA, true
	}
	vecA := sAk == 1 && K%4 == 0
	vecB := sBn == 1 && N%4 == 0
	// A's rows, and a transposed B's columns, are read many at a time at
	// the same k (see spreadRows). The copy pays where each row serves 32
	// or more outputs (D's last layer, one output column, reads each row
	// of its 8192-wide A once) and rows are 2 KiB or more apart: with the
	// toy's 1 KiB rows (K = 256) its step measured 0.98x.
	var err error
	spread := K >= 512
	if vecA && N >= 32 && spread {
		a, g.sAm, err = r.spreadRowsCopy(a, M, K, scratchSpreadA)
	}
	if err == nil && !vecB && sBk == 1 && K%4 == 0 && M >= 32 && spread {
		b, g.sBn, err = r.spreadRowsCopy(b, N, K, scratchSpreadB)
	}
	if err != nil {
		return r.fail(err)
	}
	return r.igemm(modeMatMul, g, N, 1, vecA, vecB, a, b, c, bias)
}

func isNaN32(f float32) bool { return math.IsNaN(float64(f)) }

// MatMul records C = A*B.
func (r *Recorder) MatMul(c, a, b *Tensor) error { return r.Gemm(c, a, b, false, false, 1, 0, nil) }

// convGeom checks x [N,Cin,H,W], w [Cout,Cin,KH,KW], y [N,Cout,OH,OW] for
// a convolution with params p and returns the push-constant geometry.
func convGeom(op string, x, w, y *Tensor, p ConvParams) (gemmArgs, error) {
	if y == nil {
		return gemmArgs{}, fmt.Errorf("engine: %s: nil tensor", op)
	}
	g, err := convInputs(op, x, w, p)
	if err != nil {
		return g, err
	}
	if want := []int{g.nb, g.cout, g.oh, g.ow}; !slices.Equal(y.shape, want) {
		return g, fmt.Errorf("engine: %s: output is %v, want %v for input %v, weights %v, stride %dx%d, padding %dx%d",
			op, y.shape, want, x.shape, w.shape, p.StrideH, p.StrideW, p.PadH, p.PadW)
	}
	return g, nil
}

// convInputs is convGeom without the output: it checks x and w and
// derives the output's size.
func convInputs(op string, x, w *Tensor, p ConvParams) (gemmArgs, error) {
	var g gemmArgs
	if x == nil || w == nil {
		return g, fmt.Errorf("engine: %s: nil tensor", op)
	}
	if len(x.shape) != 4 || len(w.shape) != 4 {
		return g, fmt.Errorf("engine: %s: want 4D NCHW tensors, got input %v, weights %v", op, x.shape, w.shape)
	}
	if p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 {
		return g, fmt.Errorf("engine: %s: stride %dx%d must be >= 1 and padding %dx%d >= 0", op, p.StrideH, p.StrideW, p.PadH, p.PadW)
	}
	nb, cin, h, wd := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	cout, wcin, kh, kw := w.shape[0], w.shape[1], w.shape[2], w.shape[3]
	if wcin != cin {
		return g, fmt.Errorf("engine: %s: input %v has %d channels, weights %v expect %d", op, x.shape, cin, w.shape, wcin)
	}
	if p.PadH >= kh || p.PadW >= kw {
		return g, fmt.Errorf("engine: %s: padding %dx%d must be smaller than the kernel %dx%d", op, p.PadH, p.PadW, kh, kw)
	}
	oh := (h+2*p.PadH-kh)/p.StrideH + 1
	ow := (wd+2*p.PadW-kw)/p.StrideW + 1
	if h+2*p.PadH < kh || wd+2*p.PadW < kw || oh < 1 || ow < 1 {
		return g, fmt.Errorf("engine: %s: kernel %dx%d does not fit input %dx%d with padding %dx%d", op, kh, kw, h, wd, p.PadH, p.PadW)
	}
	g = gemmArgs{nb: nb, cin: cin, h: h, w: wd, cout: cout, oh: oh, ow: ow, kh: kh, kw: kw,
		sh: p.StrideH, sw: p.StrideW, ph: p.PadH, pw: p.PadW, alpha: 1}
	if p.Accumulate {
		g.beta = 1
	}
	return g, nil
}

func distinct(op string, out *Tensor, ins ...*Tensor) error {
	for _, in := range ins {
		if in.shares(out) {
			return fmt.Errorf("engine: %s: output must not alias an input", op)
		}
	}
	return nil
}

// Conv2D records y = conv(x, w): x [N,Cin,H,W], w [Cout,Cin,KH,KW],
// y [N,Cout,OH,OW] with OH = (H+2*PadH-KH)/StrideH + 1 (likewise OW).
func (r *Recorder) Conv2D(y, x, w *Tensor, p ConvParams) error {
	p = p.norm()
	g, err := convGeom("conv2d", x, w, y, p)
	if err == nil {
		err = distinct("conv2d", y, x, w)
	}
	var saved *Tensor
	if err == nil {
		saved, err = p.epilogue("conv2d", &g, y, x, w)
	}
	if err != nil {
		return r.fail(err)
	}
	if g.fullKernel() {
		// Every output is a dot product with the whole input image:
		// y[N,Cout] = x[N,K] * w[Cout,K]^T.
		x2, w2, y2 := x.flat2(g.nb), w.flat2(g.cout), y.flat2(g.nb)
		return r.gemm(y2, x2, w2, false, true, 1, g.beta, nil, p.act, nil)
	}
	g.M, g.N, g.K = g.cout, g.nb*g.oh*g.ow, g.cin*g.kh*g.kw
	if g.paddable() && r.d.class == ClassCPU {
		return r.convForwardPadded(g, x, w, y, saved)
	}
	return r.igemm(modeConvForward, g, g.N, 1, g.K%4 == 0, false, w, x, y, saved)
}

// convForwardPadded records the conv forward of g (M, N, K set) on a
// zero-padded copy of x with w's rows spread (mode 4, CPU devices).
func (r *Recorder) convForwardPadded(g gemmArgs, x, w, y, bias *Tensor) error {
	xp, err := r.pad(x, &g)
	if err == nil {
		w, g.sAm, err = r.spreadRowsCopy(w, g.cout, g.K, scratchSpreadA)
	}
	if err != nil {
		return r.fail(err)
	}
	return r.igemm(modeConvForwardPadded, g, g.N, 1, true, false, w, xp, y, bias)
}

// fullKernel reports a convolution whose kernel covers the whole unpadded
// input, giving a 1x1 output: a plain matrix product.
func (g gemmArgs) fullKernel() bool {
	return g.oh == 1 && g.ow == 1 && g.ph == 0 && g.pw == 0 && g.kh == g.h && g.kw == g.w
}

// paddable reports whether the zero-padded fast paths apply: kw taps come
// in aligned groups of four when KW % 4 == 0 and the column stride is even.
// Only CPU devices take them: the copy saves bounds tests in igemm's
// per-lane loads, while GPUs' tiled core stages taps through shared memory
// with its bounds tests anyway, and the copy would cost a pass over x.
func (g gemmArgs) paddable() bool {
	return g.kw%4 == 0 && g.sw%2 == 0
}

// flat2 views t as [rows, rest].
func (t *Tensor) flat2(rows int) *Tensor {
	v, _ := t.Reshape(rows, t.n/rows) // rows divides t.n for every caller
	return v
}

// pad records a zero-padded copy of x into recording-owned workspace with
// a row width that is a multiple of 4, and sets g.hp, g.wp.
func (r *Recorder) pad(x *Tensor, g *gemmArgs) (xp *Tensor, err error) {
	xp, g.hp, g.wp, err = r.padCopy(x, g.nb*g.cin, g.h, g.w, g.ph, g.pw)
	return xp, err
}

// padCopy records a copy of x's planes (h x w) with ph rows and pw
// columns of zeros on each side into the recording's pad scratch, rows
// widened to a multiple of 4 floats (16-byte aligned: igemm.comp's QUAD_B
// loads), and returns it with its planes' height and width.
func (r *Recorder) padCopy(x *Tensor, planes, h, w, ph, pw int) (xp *Tensor, hp, wp int, err error) {
	hp, wp = h+2*ph, w+2*pw
	wp += (4 - wp%4) % 4
	if xp, err = r.scratch(scratchPad, planes, hp, wp); err != nil {
		return nil, 0, 0, fmt.Errorf("engine: padded copy of %v: %w", x.shape, err)
	}
	return xp, hp, wp, r.padPlanes(x, xp, planes, h, w, hp, wp, ph, pw)
}

// padPlanes records pad.comp: planes planes of x [h, w] into xp [hp, wp]
// at row ph, column pw, zeros around.
func (r *Recorder) padPlanes(x, xp *Tensor, planes, h, w, hp, wp, ph, pw int) error {
	// One invocation per padded row; planes split into slices whose rows
	// fit the device's grid limit.
	const wg = 64 // pad.comp's local_size_x
	step := max(1, int(r.d.info.Limits.MaxWorkGroupCount[0])*wg/hp)
	// Texel reads and vec4 writes where the rows allow (see pad.comp).
	tex := r.d.texelLoads() && w%4 == 0 && pw <= 1 && wp%4 == 0 && x.buf.TexelViewable() && !forceNoTexel && !forceNoTexelPad
	var err error
	for base := 0; base < planes && err == nil; base += step {
		rows := min(step, planes-base) * hp
		push := shaders.PadPush{H: uint32(h), W: uint32(w), Hp: uint32(hp), Wp: uint32(wp),
			Ph: uint32(ph), Pw: uint32(pw), PlaneBase: uint32(base), Rows: uint32(rows)}
		groups := [3]uint32{uint32((rows + wg - 1) / wg), 1, 1}
		if tex {
			err = dispatch(r, shaders.PadTex, nil, groups, push, x, xp, x)
		} else {
			err = dispatch(r, shaders.Pad, nil, groups, push, x, xp)
		}
	}
	return err
}

// spreadRowsCopy returns the [rows, cols] operand t of an igemm dispatch that
// reads its rows at each k, and their stride: t itself on GPUs and where
// cols is a stride spreadRows keeps, else a copy into the recording's
// scratch for role with the stride spreadRows gives.
func (r *Recorder) spreadRowsCopy(t *Tensor, rows, cols int, role scratchRole) (*Tensor, int, error) {
	s := spreadRows(cols)
	if s == cols || r.d.class != ClassCPU {
		return t, cols, nil
	}
	ts, err := r.scratch(role, rows, s)
	if err == nil {
		err = r.padPlanes(t, ts, 1, rows, cols, rows, s, 0, 0)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("engine: copy of %v with spread rows: %w", t.shape, err)
	}
	return ts, s, nil
}

// Conv2DBackwardData records dx = (d conv(x, w) / d x)^T dy: the gradient
// of Conv2D with respect to its input. dx [N,Cin,H,W], dy [N,Cout,OH,OW].
// It runs as a gather over the StrideH*StrideW output parity classes, so
// it needs no atomics and does no work for taps that miss.
func (r *Recorder) Conv2DBackwardData(dx, dy, w *Tensor, p ConvParams) error {
	p = p.norm()
	g, err := convGeom("conv2d backward-data", dx, w, dy, p)
	if err == nil {
		err = distinct("conv2d backward-data", dx, dy, w)
	}
	var saved *Tensor
	if err == nil {
		saved, err = p.epilogue("conv2d backward-data", &g, dx, dy, w)
	}
	if err != nil {
		return r.fail(err)
	}
	if g.fullKernel() {
		// dx[N,K] = dy[N,Cout] * w[Cout,K]: G's first layer from z.
		return r.gemm(dx.flat2(g.nb), dy.flat2(g.nb), w.flat2(g.cout), false, false, 1, g.beta, nil, p.act, nil)
	}
	// Columns per class: at most ceil(H/s)*ceil(W/s) pixels per image.
	maxCols := g.nb * ((g.h + g.sh - 1) / g.sh) * ((g.w + g.sw - 1) / g.sw)
	g.M, g.N, g.K = g.cin, maxCols, 0 // K is per class, computed in the shader
	if r.d.class == ClassCPU && !forceUnpackedBwd {
		wp, err := r.packBwd(w, &g)
		if err != nil {
			return r.fail(err)
		}
		if g.quadBwdData() {
			if dy, g.hp, g.wp, err = r.padCopy(dy, g.nb*g.cout, g.oh, g.ow, 1, 1); err != nil {
				return r.fail(err)
			}
			g.padB = true
		}
		if saved == nil || forceFusedPackedDerivative {
			return r.igemm(modeConvBackwardDataPacked, g, maxCols, g.sh*g.sw, true, false, wp, dy, dx, saved)
		}
		// The derivative as a pass of its own: in this kernel's epilogue
		// it made D's 64x32x32 backward-data 89-97 ms against 72-83
		// without, where the pass takes 4-5 ms. Loading the saved output
		// as vectors did not change that; the activation's variant of the
		// 32-row tile is slower as a whole.
		g.epi, g.slope = 0, 0
		if err := r.igemm(modeConvBackwardDataPacked, g, maxCols, g.sh*g.sw, true, false, wp, dy, dx, nil); err != nil {
			return err
		}
		return r.actBackward(p.act.op, dx, dx, saved, "y", p.act.slope)
	}
	return r.igemm(modeConvBackwardData, g, maxCols, g.sh*g.sw, false, false, w, dy, dx, saved)
}

// forceFusedPackedDerivative keeps an activation's derivative in the
// packed backward-data's epilogue; tests and benchmarks compare the two.
var forceFusedPackedDerivative bool

// spreadRows is a row stride for a matrix igemm reads as A: at least n
// floats, a multiple of 4 (16-byte aligned rows for 4-float loads), and not
// a multiple of 256. A CPU's L1 data cache picks the set from address bits
// 6-11, so rows a multiple of 1 KiB apart fall into a few sets, and the 32
// or 64 rows a tile reads at each k evict one another before their next
// use: 4 more floats spread them (the 1024^3 matmul 67 -> 80 GFLOP/s).
func spreadRows(n int) int {
	s := (n + 3) &^ 3
	if s%256 == 0 && !forceDenseRows {
		s += 4
	}
	return s
}

// forceDenseRows makes spreadRows keep strides that are multiples of 256
// floats, as before it; tests and benchmarks compare the two.
var forceDenseRows bool

// quadBwdData reports whether the packed backward-data can read dy
// zero-padded, with aligned quad loads: with the DCGAN's kernel 4, stride
// 2 and padding 1 each parity class has two by two taps, so a chunk is one
// output channel's taps, and with W % 8 == 0 a class row is whole quads of
// adjacent pixels. A lane's four columns then read, per tap row, five
// adjacent floats of dy, two aligned loads where the gather took eight
// bounds-checked ones.
func (g gemmArgs) quadBwdData() bool {
	return g.kh == 4 && g.kw == 4 && g.sh == 2 && g.sw == 2 && g.ph == 1 && g.pw == 1 &&
		g.h%2 == 0 && g.w%8 == 0 && !forceNoQuadBwdData
}

// forceNoQuadBwdData makes the packed backward-data gather dy tap by tap,
// as before its padded quad loads; tests and benchmarks compare the two.
var forceNoQuadBwdData bool

// forceNoTexel makes igemm load through storage buffers only, as it does
// where texel views are not possible; tests compare the two.
var forceNoTexel bool

// forceNoQuadWeights makes the padded backward-weights load each k's taps
// as two 64-bit words, as before its aligned quad loads; tests and
// benchmarks compare the two.
var forceNoQuadWeights bool

// forceNoTexelPad makes pad read through storage buffers only, as it does
// where texel views are not possible; benchmarks compare the two.
var forceNoTexelPad bool

// transposedA4 reports a matmul whose A is stored transposed with rows
// whose four adjacent m are one aligned load (VEC_AT with 32-row tiles).
// With it the toy's weight gradients (A^T*B, K the batch) measured
// 1.38-1.49x and the 1024^3 A^T*B 1.17x (BenchmarkGemmTransposedA).
func (g gemmArgs) transposedA4() bool {
	return g.sAm == 1 && g.sAk%4 == 0 && g.M%4 == 0 && !forceNoVecAT
}

// forceNoVecAT makes igemm load a transposed A element by element, as
// before its 4-float loads; tests and benchmarks compare the two.
var forceNoVecAT bool

// forceNoVecBT makes igemm gather a transposed B element by element, as
// before its 4-float loads; tests and benchmarks compare the two.
var forceNoVecBT bool

// forceUnpackedBwd makes CPU devices take igemm's mode 2 (weights gathered
// tap by tap) instead of packing them: benchmarks set it to time both in
// one process, tests to cover both.
var forceUnpackedBwd bool

// packBwd records pack_bwd.comp: w's taps per output parity class as
// contiguous, zero-padded rows in recording-owned workspace
// [sh*sw, cin, kp], and sets g.sAm = kp. Class 0 has the most taps,
// ceil(kh/sh)*ceil(kw/sw) per output channel, so kp fits every class.
// Mode 2's scalar A gathers become igemm's 64-bit VEC_A loads; the
// weights change every step, so the pack is recorded with each use (it
// is one pass over w).
func (r *Recorder) packBwd(w *Tensor, g *gemmArgs) (*Tensor, error) {
	taps := ((g.kh + g.sh - 1) / g.sh) * ((g.kw + g.sw - 1) / g.sw)
	kp := spreadRows(g.cout * taps)
	classes := g.sh * g.sw
	wp, err := r.scratch(scratchPacked, classes, g.cin, kp)
	if err != nil {
		return nil, fmt.Errorf("engine: packed weights of %v: %w", w.shape, err)
	}
	g.sAm = kp
	const wg = 64                                  // pack_bwd.comp's local_size_x
	groups := (classes*g.cin*g.cout + wg - 1) / wg // one invocation per (class, m, co)
	gx := min(groups, int(r.d.info.Limits.MaxWorkGroupCount[0]))
	push := shaders.PackBwdPush{Cout: uint32(g.cout), Cin: uint32(g.cin), Kh: uint32(g.kh), Kw: uint32(g.kw),
		Sh: uint32(g.sh), Sw: uint32(g.sw), Kp: uint32(kp), GroupsX: uint32(gx)}
	err = dispatch(r, shaders.PackBwd, nil, [3]uint32{uint32(gx), uint32((groups + gx - 1) / gx), 1}, push, w, wp)
	return wp, err
}

// Conv2DBackwardWeights records dw = d conv(x, w) / d w applied to dy.
// dw [Cout,Cin,KH,KW].
func (r *Recorder) Conv2DBackwardWeights(dw, dy, x *Tensor, p ConvParams) error {
	p = p.norm()
	g, err := convGeom("conv2d backward-weights", x, dw, dy, p)
	if err == nil {
		err = distinct("conv2d backward-weights", dw, dy, x)
	}
	if err != nil {
		return r.fail(err)
	}
	if g.fullKernel() {
		// dw[Cout,K] = dy[N,Cout]^T * x[N,K].
		return r.Gemm(dw.flat2(g.cout), dy.flat2(g.nb), x.flat2(g.nb), true, false, 1, g.beta, nil)
	}
	g.M, g.N, g.K = g.cout, g.cin*g.kh*g.kw, g.nb*g.oh*g.ow
	vecA := (g.oh*g.ow)%4 == 0
	if g.paddable() && r.d.class == ClassCPU {
		xp, err := r.pad(x, &g)
		if err != nil {
			return r.fail(err)
		}
		return r.igemm(modeConvBackwardWeightsPadded, g, g.N, 1, vecA, false, dy, xp, dw, nil)
	}
	return r.igemm(modeConvBackwardWeights, g, g.N, 1, vecA, false, dy, x, dw, nil)
}

// ConvTranspose2D records y = conv_transpose(x, w) with PyTorch's layout:
// x [N,Cin,H,W], w [Cin,Cout,KH,KW], y [N,Cout,(H-1)*S-2P+KH, ...]. It is
// Conv2DBackwardData with the roles of input and output swapped.
func (r *Recorder) ConvTranspose2D(y, x, w *Tensor, p ConvParams) error {
	return r.wrapT("conv-transpose2d", r.Conv2DBackwardData(y, x, w, p))
}

// ConvTranspose2DBackwardData records dx for ConvTranspose2D: a plain
// convolution of dy with w.
func (r *Recorder) ConvTranspose2DBackwardData(dx, dy, w *Tensor, p ConvParams) error {
	return r.wrapT("conv-transpose2d backward-data", r.Conv2D(dx, dy, w, p))
}

// ConvTranspose2DBackwardWeights records dw for ConvTranspose2D.
func (r *Recorder) ConvTranspose2DBackwardWeights(dw, dy, x *Tensor, p ConvParams) error {
	return r.wrapT("conv-transpose2d backward-weights", r.Conv2DBackwardWeights(dw, x, dy, p))
}

func (r *Recorder) wrapT(op string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
