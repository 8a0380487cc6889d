package engine

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"vkgan/internal/atomicfile"
	"vkgan/shaders"
	"vkgan/vk"
)

// Autotuning of the GEMM kernels. Every Gemm, convolution pass and
// transposed convolution reaches igemm with a problem (a GemmShape); by
// default igemm picks its variant (workgroup, rows per tile, subgroup
// sharing, 64-bit loads) from device heuristics. A Tuning table loaded
// into the device (SetTuning) overrides that choice per shape with the
// variant measured fastest there. Tables live in the user cache
// directory, one file per device, driver and kernel build (TuningPath),
// so a driver update or a new shader build starts from the heuristics
// again instead of trusting stale timings.

// Kernel families a GemmVariant can name.
const (
	// KernelIgemm is igemm.comp (igemm_i64 with GemmVariant.I64,
	// igemm_tex with GemmVariant.Tex).
	KernelIgemm = "igemm"
	// KernelTiled is igemm_tiled.comp, the GPU-class core (gemm_tiled.go),
	// with igemm_reduce.comp for split-K.
	KernelTiled = "igemm_tiled"
)

// tunedKernels are the modules whose SPIR-V a table's timings depend on.
var tunedKernels = []string{"igemm", "igemm_i64", "igemm_tex", "igemm_tiled", "igemm_reduce"}

// igemmTileRows are igemm.comp's tile heights (its TM): 4 and 8 for
// outputs with few rows, 16 to 64 sharing more of each loaded B value.
var igemmTileRows = []int{4, 8, 16, 32, 64}

// GemmVariant is one way to run a GEMM: a kernel family and its
// specialization constants. The zero value is not a variant.
type GemmVariant struct {
	Kernel string `json:"kernel"`        // KernelIgemm
	WG     int    `json:"wg"`            // invocations per workgroup
	TM     int    `json:"tm"`            // output rows per tile (igemmTileRows)
	SG     bool   `json:"sg,omitempty"`  // A rows shared by subgroupBroadcast
	I64    bool   `json:"i64,omitempty"` // 64-bit loads (igemm_i64)
	// Tex: aligned 4-float loads of A and B through texel buffers
	// (igemm_tex, which has I64 too).
	Tex bool `json:"tex,omitempty"`
	// KernelTiled: the workgroup tile BM x BN x BK, columns per invocation
	// TN (rows: TM) and the split-K parts S (see tiledConfig).
	BM int `json:"bm,omitempty"`
	BN int `json:"bn,omitempty"`
	BK int `json:"bk,omitempty"`
	TN int `json:"tn,omitempty"`
	S  int `json:"s,omitempty"`
}

func tiledVariant(c tiledConfig) GemmVariant {
	return GemmVariant{Kernel: KernelTiled, WG: c.WG, TM: c.TM, BM: c.BM, BN: c.BN, BK: c.BK, TN: c.TN, S: c.S}
}

func (v GemmVariant) tiled() tiledConfig {
	return tiledConfig{WG: v.WG, BM: v.BM, BN: v.BN, BK: v.BK, TM: v.TM, TN: v.TN, S: v.S}
}

// String is a short label, e.g. "igemm wg128 tm16 sg i64" or
// "igemm_tiled 64x64x16/wg128/8x4/s16".
func (v GemmVariant) String() string {
	if v.Kernel == KernelTiled {
		return v.Kernel + " " + v.tiled().String()
	}
	s := fmt.Sprintf("%s wg%d tm%d", v.Kernel, v.WG, v.TM)
	if v.SG {
		s += " sg"
	}
	if v.I64 {
		s += " i64"
	}
	if v.Tex {
		s += " tex"
	}
	return s
}

// gemmCall is one igemm call: its arguments, less the tensors, plus the
// tensors' lengths so that it can be replayed on fresh buffers.
type gemmCall struct {
	mode               int
	g                  gemmArgs
	ncols, z           int
	vecA, vecB         bool
	na, nb, nc, nbias  int // elements bound at A, B, C and bias (0: no bias tensor)
	transA, transB     bool
	convShape, convOut [4]int // x and y of a conv mode as [n, c, h, w]
}

func newGemmCall(mode int, g gemmArgs, ncols, z int, vecA, vecB bool, a, b, c, bias *Tensor) gemmCall {
	k := gemmCall{mode: mode, g: g, ncols: ncols, z: z, vecA: vecA, vecB: vecB, na: a.n, nb: b.n, nc: c.n}
	if bias != nil {
		k.nbias = bias.n
	}
	if mode == modeMatMul {
		k.transA, k.transB = g.sAk != 1, g.sBn != 1
	}
	return k
}

// key is what decides the best variant: the index map, the problem's
// size and layout. Epilogue, alpha and beta cost the same in every
// variant and are left out.
func (k gemmCall) key() string {
	g := k.g
	s := fmt.Sprintf("m%d %dx%dx%d c%d z%d va%d vb%d", k.mode, g.M, g.N, g.K, k.ncols, k.z, b2u(k.vecA), b2u(k.vecB))
	if k.mode == modeMatMul {
		return s + fmt.Sprintf(" t%d%d", b2u(k.transA), b2u(k.transB))
	}
	return s + fmt.Sprintf(" x%dx%dx%dx%d y%dx%dx%d k%dx%d s%dx%d p%dx%d",
		g.nb, g.cin, g.h, g.w, g.cout, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw)
}

// GemmShape is one GEMM problem as a model records it (see CaptureGemms).
type GemmShape struct {
	call gemmCall
	def  GemmVariant
}

// Key identifies the shape in a Tuning table.
func (s GemmShape) Key() string { return s.call.key() }

// Default is the variant the device's heuristics pick for the shape.
func (s GemmShape) Default() GemmVariant { return s.def }

// String describes the shape for people, e.g. "conv_bwd_weights
// 64x128x8x8 k4s2p1 ->256 (M256 N2048 K1024)".
func (s GemmShape) String() string {
	k := s.call
	g := k.g
	mnk := fmt.Sprintf("M%d N%d K%d", g.M, g.N, g.K)
	if k.mode == modeMatMul {
		name := "matmul"
		if k.transA || k.transB {
			name += "_" + map[bool]string{false: "n", true: "t"}[k.transA] + map[bool]string{false: "n", true: "t"}[k.transB]
		}
		return fmt.Sprintf("%s %dx%dx%d", name, g.M, g.N, g.K)
	}
	name := map[int]string{
		modeConvForward:               "conv",
		modeConvForwardPadded:         "conv_pad",
		modeConvBackwardData:          "conv_bwd_data",
		modeConvBackwardDataPacked:    "conv_bwd_data_packed",
		modeConvBackwardWeights:       "conv_bwd_weights",
		modeConvBackwardWeightsPadded: "conv_bwd_weights_pad",
	}[k.mode]
	geom := fmt.Sprintf("k%ds%dp%d", g.kh, g.sh, g.ph)
	if g.kh != g.kw || g.sh != g.sw || g.ph != g.pw {
		geom = fmt.Sprintf("k%dx%ds%dx%dp%dx%d", g.kh, g.kw, g.sh, g.sw, g.ph, g.pw)
	}
	if k.mode == modeConvBackwardData || k.mode == modeConvBackwardDataPacked {
		mnk = fmt.Sprintf("M%d N%d z%d", g.M, g.N, k.z) // K is per parity class
	}
	return fmt.Sprintf("%s %dx%dx%dx%d %s ->%d (%s)", name, g.nb, g.cin, g.h, g.w, geom, g.cout, mnk)
}

// tuneState is a device's tuning: the table igemm consults, and the
// capture and automatic tuning hooks. A window and a training loop may
// record at once, hence the lock.
type tuneState struct {
	mu      sync.Mutex
	table   *Tuning
	capture map[string]GemmShape // non-nil inside CaptureGemms
	order   []string             // capture's keys in first-seen order
	auto    *autoTune
	busy    bool // an automatic tuning is running
}

type autoTune struct {
	repeat int
	done   func(TuneResult, error)
}

// SetTuning makes igemm run t's variant for every shape t holds; nil
// restores the heuristics. Recordings made before keep their variants.
func (d *Device) SetTuning(t *Tuning) {
	d.tune.mu.Lock()
	d.tune.table = t
	d.tune.mu.Unlock()
}

// Tuning returns the table set by SetTuning (nil: none).
func (d *Device) Tuning() *Tuning {
	d.tune.mu.Lock()
	defer d.tune.mu.Unlock()
	return d.tune.table
}

// AutoTune makes igemm tune each shape the table (SetTuning, which must
// be set) lacks when it is first recorded: TuneGemm with repeat timed
// runs, the winner stored in the table and reported to done (also on
// failure, when the heuristics' variant is used). Recording then waits
// for the timing. repeat < 1 turns it off.
func (d *Device) AutoTune(repeat int, done func(TuneResult, error)) {
	d.tune.mu.Lock()
	defer d.tune.mu.Unlock()
	d.tune.auto = nil
	if repeat >= 1 {
		d.tune.auto = &autoTune{repeat: repeat, done: done}
	}
}

// CaptureGemms runs fn and returns the distinct GEMM shapes recorded on d
// meanwhile, in the order first seen. Recording proceeds as usual.
func (d *Device) CaptureGemms(fn func() error) ([]GemmShape, error) {
	d.tune.mu.Lock()
	if d.tune.capture != nil {
		d.tune.mu.Unlock()
		return nil, errors.New("engine: capture gemms: a capture is already running")
	}
	d.tune.capture, d.tune.order = map[string]GemmShape{}, nil
	d.tune.mu.Unlock()
	err := fn()
	d.tune.mu.Lock()
	defer d.tune.mu.Unlock()
	out := make([]GemmShape, len(d.tune.order))
	for i, k := range d.tune.order {
		out[i] = d.tune.capture[k]
	}
	d.tune.capture, d.tune.order = nil, nil
	return out, err
}

// tuned is igemm's lookup: the variant to run for call k, where def is
// the heuristics' choice. Without a table, a capture or automatic tuning
// it returns def.
func (r *Recorder) tuned(k gemmCall, def GemmVariant) GemmVariant {
	d := r.d
	ts := &d.tune
	ts.mu.Lock()
	if ts.table == nil && ts.capture == nil {
		ts.mu.Unlock()
		return def
	}
	key := k.key()
	if ts.capture != nil {
		if _, ok := ts.capture[key]; !ok {
			ts.capture[key] = GemmShape{call: k, def: def}
			ts.order = append(ts.order, key)
		}
	}
	t, auto := ts.table, ts.auto
	if ts.busy {
		auto = nil // one tuning at a time; this call takes the heuristics
	}
	if t == nil {
		ts.mu.Unlock()
		return def
	}
	if v, ok := t.lookup(key); ok {
		ts.mu.Unlock()
		if d.igemmOK(v, k) == nil {
			return v
		}
		return def
	}
	if auto == nil {
		ts.mu.Unlock()
		return def
	}
	ts.busy = true
	ts.mu.Unlock()
	res, err := d.TuneGemm(GemmShape{call: k, def: def}, nil, auto.repeat)
	if err == nil {
		t.Set(res)
	}
	if auto.done != nil {
		auto.done(res, err) // before busy clears: calls never overlap
	}
	ts.mu.Lock()
	ts.busy = false
	ts.mu.Unlock()
	if err != nil {
		return def
	}
	return res.Best
}

// igemmOK reports why v cannot run call k on d, or nil when it can.
func (d *Device) igemmOK(v GemmVariant, k gemmCall) error {
	lim := d.info.Limits
	if v.Kernel == KernelTiled {
		c := v.tiled()
		if err := c.check(d); err != nil {
			return err
		}
		if gx, gy := ceilDiv(k.ncols, c.BN), ceilDiv(k.g.M, c.BM); uint32(gx) > lim.MaxWorkGroupCount[0] || uint32(gy) > lim.MaxWorkGroupCount[1] {
			return fmt.Errorf("%dx%d workgroups exceed the device's %v", gx, gy, lim.MaxWorkGroupCount)
		}
		return nil
	}
	switch {
	case v.Kernel != KernelIgemm:
		return fmt.Errorf("kernel %q is not a GEMM kernel", v.Kernel)
	case v.WG < 1 || v.WG&(v.WG-1) != 0 || uint32(v.WG) > lim.MaxWorkGroupSize:
		return fmt.Errorf("workgroup %d is not a power of two within the device's %d", v.WG, lim.MaxWorkGroupSize)
	case !slices.Contains(igemmTileRows, v.TM):
		return fmt.Errorf("tm %d is not one of %v", v.TM, igemmTileRows)
	case v.I64 && !lim.ShaderInt64:
		return errors.New("the device has no 64-bit integers")
	case v.Tex && !v.I64:
		return errors.New("texel loads come only with 64-bit loads (igemm_tex)")
	case v.SG && !d.hasSubgroupTiles():
		return errors.New("the device's subgroups cannot share tiles")
	case v.SG && uint32(v.WG) < lim.SubgroupSize:
		// Lanes 0..7 of every subgroup load the A tile: a workgroup
		// smaller than a subgroup would leave lanes without rows.
		return fmt.Errorf("workgroup %d is smaller than a subgroup (%d)", v.WG, lim.SubgroupSize)
	}
	groups := igemmGroups(v, k.g, k.ncols, k.z)
	for i, n := range groups {
		if n > lim.MaxWorkGroupCount[i] {
			return fmt.Errorf("%v workgroups exceed the device's %v", groups, lim.MaxWorkGroupCount)
		}
	}
	return nil
}

// hasSubgroupTiles reports whether USE_SG is correct on d, fast or not:
// subgroups of at least 8 lanes (lane l < 8 loads rows) with the basic
// and ballot operations (subgroupBroadcast).
func (d *Device) hasSubgroupTiles() bool {
	lim := d.info.Limits
	return lim.SubgroupSize >= 8 && lim.SubgroupOps&(vk.SubgroupBasic|vk.SubgroupBallot) == vk.SubgroupBasic|vk.SubgroupBallot
}

// GemmCandidates returns every variant that can run shape s on d, the
// heuristics' choice first: workgroups 8..256 (powers of two within the
// device's limit), every TM in igemmTileRows up to the output's rows,
// subgroup sharing on and off where the device has it, 64-bit loads on and
// off where it has shaderInt64; on GPU-class devices also the tiled core's
// tilings.
func (d *Device) GemmCandidates(s GemmShape) []GemmVariant {
	out := []GemmVariant{s.def}
	sgs, i64s := []bool{false}, []bool{false}
	if d.hasSubgroupTiles() {
		sgs = append(sgs, true)
	}
	if d.info.Limits.ShaderInt64 {
		i64s = append(i64s, true)
	}
	if d.class == ClassGPU {
		// The tiled core's tilings, each with the default split and, where
		// that splits, unsplit. (On CPU devices shared memory only costs.)
		for _, c := range d.tiledConfigs() {
			for _, split := range []int{d.tiledSplit(c, s.call.mode, s.call.g, s.call.ncols, s.call.z), 1} {
				c.S = split
				if v := tiledVariant(c); v != s.def && !slices.Contains(out, v) && d.igemmOK(v, s.call) == nil {
					out = append(out, v)
				}
			}
		}
	}
	for wg := 8; wg <= 256; wg *= 2 {
		for _, tm := range igemmTileRows {
			if tm > 16 && s.call.g.M < tm {
				continue // a tile taller than the output: lanes idle, pipelines slow to compile
			}
			for _, sg := range sgs {
				for _, i64 := range i64s {
					for _, tex := range []bool{false, i64 && d.class == ClassCPU} {
						v := GemmVariant{Kernel: KernelIgemm, WG: wg, TM: tm, SG: sg, I64: i64, Tex: tex}
						if v != s.def && !slices.Contains(out, v) && d.igemmOK(v, s.call) == nil {
							out = append(out, v)
						}
					}
				}
			}
		}
	}
	return out
}

// NearCandidates is the part of GemmCandidates one setting away from
// the default (another workgroup, TM, SG, I64 or Tex): about a seventh of
// them, for a quick tuning.
func (d *Device) NearCandidates(s GemmShape) []GemmVariant {
	return slices.DeleteFunc(d.GemmCandidates(s), func(v GemmVariant) bool {
		u := s.def
		n := 0
		for _, diff := range []bool{v.WG != u.WG, v.TM != u.TM, v.SG != u.SG, v.I64 != u.I64, v.Tex != u.Tex, v.Kernel != u.Kernel} {
			if diff {
				n++
			}
		}
		return n > 1
	})
}

// TuneResult is one shape's tuning: the heuristics' variant and the
// fastest, with their median GPU times.
type TuneResult struct {
	Shape             GemmShape
	Default, Best     GemmVariant
	DefaultMs, BestMs float64
	Candidates        int           // variants timed
	Took              time.Duration // the tuning's wall time, compiles included
}

// Speedup is DefaultMs / BestMs.
func (r TuneResult) Speedup() float64 {
	if r.BestMs <= 0 {
		return 0
	}
	return r.DefaultMs / r.BestMs
}

// TuneFinalists is how many of the screening's fastest variants are timed
// repeat times beside the default.
const TuneFinalists = 3

// tuneMargin is how much faster than the default a variant must be to
// replace it: closer timings are noise on a busy machine, and the
// heuristics' variant is the one every test exercises most.
const tuneMargin = 0.97

// TuneGemm times every candidate of s (cands, or GemmCandidates when nil;
// the default is always one) once (screening), then the default
// and the TuneFinalists fastest repeat times more, interleaved so that a
// busy machine slows them alike; the fastest median, if tuneMargin ahead
// of the default's, is timed against the default once more the same way
// and wins only if it stays ahead. Inputs are seeded random values in
// [-1, 1).
func (d *Device) TuneGemm(s GemmShape, cands []GemmVariant, repeat int) (res TuneResult, err error) {
	start := time.Now()
	defer func() { res.Took = time.Since(start) }()
	res = TuneResult{Shape: s, Default: s.def, Best: s.def}
	if cands == nil {
		cands = d.GemmCandidates(s)
	}
	if len(cands) == 0 || cands[0] != s.def {
		cands = append([]GemmVariant{s.def}, slices.DeleteFunc(slices.Clone(cands), func(v GemmVariant) bool { return v == s.def })...)
	}
	res.Candidates = len(cands)
	if repeat < 1 {
		return res, fmt.Errorf("engine: tune %s: repeat %d must be at least 1", s, repeat)
	}
	screen, err := d.TimeGemm(s, cands, 1)
	if err != nil {
		return res, err
	}
	idx := make([]int, len(cands)-1)
	for i := range idx {
		idx[i] = i + 1
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(screen[a], screen[b]) })
	final := []GemmVariant{s.def}
	for _, i := range idx[:min(TuneFinalists, len(idx))] {
		final = append(final, cands[i])
	}
	ms, err := d.TimeGemm(s, final, repeat)
	if err != nil {
		return res, err
	}
	res.DefaultMs, res.BestMs = ms[0], ms[0]
	best := 0
	for i := range final[1:] {
		if m := ms[i+1]; m < ms[best] && m < tuneMargin*ms[0] {
			best = i + 1
		}
	}
	if best == 0 {
		return res, nil
	}
	// Confirm the winner against the default alone, interleaved again:
	// on a busy machine one round of finalists can flatter a variant.
	ms, err = d.TimeGemm(s, []GemmVariant{s.def, final[best]}, repeat)
	if err != nil {
		return res, err
	}
	res.DefaultMs = ms[0]
	if ms[1] < tuneMargin*ms[0] {
		res.Best, res.BestMs = final[best], ms[1]
	} else {
		res.BestMs = ms[0]
	}
	return res, nil
}

// TimeGemm returns the median GPU milliseconds of each variant running s,
// over repeat rounds after one warm-up round; each round runs every
// variant once, in order. Variants that cannot run s are an error.
func (d *Device) TimeGemm(s GemmShape, vs []GemmVariant, repeat int) (ms []float64, err error) {
	k := s.call
	fail := func(err error) ([]float64, error) { return nil, fmt.Errorf("engine: time %s: %w", s, err) }
	if repeat < 1 {
		return fail(fmt.Errorf("repeat %d must be at least 1", repeat))
	}
	for _, v := range vs {
		if err := d.igemmOK(v, k); err != nil {
			return fail(fmt.Errorf("%s: %w", v, err))
		}
	}
	if !d.info.Limits.TimestampCompute {
		return fail(errors.New("the device has no compute timestamps"))
	}
	rng := rand.New(rand.NewPCG(uint64(len(k.key())), 0x7e57))
	var ts []*Tensor
	defer func() {
		for _, t := range ts {
			t.Release()
		}
	}()
	for _, n := range []int{k.na, k.nb, k.nc, k.nbias} {
		if n == 0 {
			ts = append(ts, nil)
			continue
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(rng.Float64()*2 - 1)
		}
		shape := []int{n}
		if len(ts) == 0 && k.g.sumA && n%k.g.M == 0 {
			// A is dy [batch, M] (a linear layer's weight gradient), whose
			// column sums variants without subgroup tiles take in a
			// BiasGrad of their own, which wants it 2D.
			shape = []int{n / k.g.M, k.g.M}
		}
		t, err := d.FromSlice(data, shape...)
		if err != nil {
			return fail(err)
		}
		ts = append(ts, t)
	}
	recs := make([]*Recorder, len(vs))
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	stamps := make([][2]int, len(vs))
	for i, v := range vs {
		r, err := d.Record()
		if err != nil {
			return fail(err)
		}
		recs[i] = r
		t0 := r.Timestamp()
		err = r.igemmVariant(v, k.mode, k.g, k.ncols, k.z, k.vecA, k.vecB, ts[0], ts[1], ts[2], ts[3])
		t1 := r.Timestamp()
		if err != nil {
			return fail(err)
		}
		stamps[i] = [2]int{t0, t1}
	}
	times := make([][]float64, len(vs))
	for round := 0; round <= repeat; round++ {
		for i, r := range recs {
			if err := r.Submit(); err != nil {
				return fail(err)
			}
			if round == 0 {
				continue // warm-up: first touch of the buffers, caches
			}
			st, err := r.Timestamps()
			if err != nil {
				return fail(err)
			}
			times[i] = append(times[i], (st[stamps[i][1]]-st[stamps[i][0]])/1e6)
		}
	}
	ms = make([]float64, len(vs))
	for i, t := range times {
		slices.Sort(t)
		ms[i] = t[len(t)/2]
		if len(t)%2 == 0 {
			ms[i] = (t[len(t)/2-1] + t[len(t)/2]) / 2
		}
	}
	return ms, nil
}

// Tuning is a table of GEMM variants by shape (GemmShape.Key) for one
// device, driver and kernel build. It is safe for concurrent use.
type Tuning struct {
	mu      sync.Mutex
	id      TuningID
	entries map[string]TuningEntry
}

// TuningEntry is a table row: the variant to run and how it was measured.
type TuningEntry struct {
	Shape     string      `json:"shape"` // GemmShape.String, for people
	Variant   GemmVariant `json:"variant"`
	Ms        float64     `json:"ms"`         // the variant's median
	DefaultMs float64     `json:"default_ms"` // the heuristics' variant's median
	Default   string      `json:"default"`    // the heuristics' variant
}

// TuningID is what a table's timings hold for: the device, its driver and
// the SPIR-V of the tuned kernels. A table for another ID is stale.
type TuningID struct {
	Device        string `json:"device"`
	VendorID      uint32 `json:"vendor_id"`
	DeviceID      uint32 `json:"device_id"`
	DriverVersion string `json:"driver_version"`
	DriverName    string `json:"driver_name"`
	DriverInfo    string `json:"driver_info"`
	Shaders       string `json:"shaders"` // sha256 of tunedKernels' SPIR-V
}

// TuningID returns d's.
func (d *Device) TuningID() TuningID {
	h := sha256.New()
	for _, name := range tunedKernels {
		code, _ := shaders.SPIRV(name) // embedded: cannot fail for these names
		fmt.Fprintf(h, "%s %d\n", name, len(code))
		h.Write(code)
	}
	i := d.info
	return TuningID{Device: i.Name, VendorID: i.VendorID, DeviceID: i.DeviceID, DriverVersion: i.DriverVersion,
		DriverName: i.DriverName, DriverInfo: i.DriverInfo, Shaders: hex.EncodeToString(h.Sum(nil))}
}

// fileKey is the table's file name without extension: a hash of the ID,
// so each device, driver and kernel build has a file of its own.
func (id TuningID) fileKey() string {
	b, _ := json.Marshal(id) // plain strings and numbers
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// TuningPath is where d's table lives: <user cache>/vkgan/tune/<hash of
// d's TuningID>.json.
func (d *Device) TuningPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("engine: tuning: %w", err)
	}
	return filepath.Join(dir, "vkgan", "tune", d.TuningID().fileKey()+".json"), nil
}

// NewTuning returns an empty table for d.
func (d *Device) NewTuning() *Tuning { return newTuning(d.TuningID()) }

func newTuning(id TuningID) *Tuning { return &Tuning{id: id, entries: map[string]TuningEntry{}} }

// tuningFile is a table's JSON.
type tuningFile struct {
	Version int                    `json:"version"`
	ID      TuningID               `json:"id"`
	Entries map[string]TuningEntry `json:"entries"`
}

const tuningVersion = 1

// LoadTuning reads d's table from path. A missing file gives an empty
// table; a file that does not parse, or holds another device's, driver's
// or kernel build's table, gives an empty table and a one-line warning
// saying so. It never fails: tuning only ever changes speed.
func (d *Device) LoadTuning(path string) (t *Tuning, warning string) {
	return loadTuning(path, d.TuningID())
}

func loadTuning(path string, id TuningID) (*Tuning, string) {
	t := newTuning(id)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return t, ""
	}
	if err != nil {
		return t, fmt.Sprintf("tuning table %s ignored: %v", path, err)
	}
	var f tuningFile
	if err := json.Unmarshal(b, &f); err != nil || f.Entries == nil {
		if err == nil {
			err = errors.New("no entries")
		}
		return t, fmt.Sprintf("tuning table %s ignored: corrupt: %v", path, err)
	}
	if f.Version != tuningVersion {
		return t, fmt.Sprintf("tuning table %s ignored: version %d, want %d", path, f.Version, tuningVersion)
	}
	if f.ID != id {
		return t, fmt.Sprintf("tuning table %s ignored: it was measured for another device, driver or kernel build; run vkgan tune again", path)
	}
	t.entries = f.Entries
	return t, ""
}

// Save writes the table to path atomically (creating its folder).
func (t *Tuning) Save(path string) error {
	t.mu.Lock()
	b, err := json.MarshalIndent(tuningFile{Version: tuningVersion, ID: t.id, Entries: t.entries}, "", "  ")
	t.mu.Unlock()
	if err != nil {
		return fmt.Errorf("engine: tuning: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("engine: tuning: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("engine: tuning: %w", err)
	}
	return nil
}

// Len is the number of shapes the table covers.
func (t *Tuning) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// Has reports whether the table covers s.
func (t *Tuning) Has(s GemmShape) bool {
	_, ok := t.lookup(s.Key())
	return ok
}

// Set stores r's winner for r's shape.
func (t *Tuning) Set(r TuneResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries[r.Shape.Key()] = TuningEntry{Shape: r.Shape.String(), Variant: r.Best, Ms: r.BestMs, DefaultMs: r.DefaultMs, Default: r.Default.String()}
}

// SetVariant makes v the table's variant for s (unmeasured).
func (t *Tuning) SetVariant(s GemmShape, v GemmVariant) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries[s.Key()] = TuningEntry{Shape: s.String(), Variant: v, Default: s.def.String()}
}

// Entries returns the table's rows sorted by shape description.
func (t *Tuning) Entries() []TuningEntry {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]TuningEntry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b TuningEntry) int { return strings.Compare(a.Shape, b.Shape) })
	return out
}

func (t *Tuning) lookup(key string) (GemmVariant, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[key]
	return e.Variant, ok
}

// GemmVariantFor is the variant igemm runs for s on d now: the table's
// (SetTuning), else the heuristics'.
func (d *Device) GemmVariantFor(s GemmShape) GemmVariant {
	if t := d.Tuning(); t != nil {
		if v, ok := t.lookup(s.Key()); ok && d.igemmOK(v, s.call) == nil {
			return v
		}
	}
	return s.def
}
