// Package bench times engine kernels on a device with GPU timestamps and
// reports them in domain units (ms, GFLOP/s, GB/s, fraction of peak). The
// cases live in one table (cases.go); `vkgan bench` prints them.
package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"vkgan/engine"
)

// Case is one benchmark: the tensors an op touches (each allocated and
// filled with seeded random values in [-1, 1)), the op itself and its
// floating-point work.
type Case struct {
	Kernel  string  // e.g. "matmul"; -kernel filters on it
	Shape   string  // human-readable problem size, e.g. "1024x1024x1024"
	Tensors [][]int // shapes of every tensor Op reads or writes, in Op's order
	Flops   float64 // floating-point operations per run; 0 for pure data movement
	// Op records the case on t; step is a counter at 1, for the kernels
	// that read Adam's or the RNG's step.
	Op func(r *engine.Recorder, t []*engine.Tensor, step *engine.Counter) error
}

// Name is "kernel shape".
func (c Case) Name() string { return c.Kernel + " " + c.Shape }

// Bytes is the traffic counted for GB/s: every tensor read or written once
// (inputs plus outputs), 4 bytes per element. Real kernels move at least
// this much.
func (c Case) Bytes() float64 {
	var n float64
	for _, s := range c.Tensors {
		e := 1.0
		for _, d := range s {
			e *= float64(d)
		}
		n += 4 * e
	}
	return n
}

// Filter returns the cases whose kernel name contains substr (all when it
// is empty).
func Filter(cases []Case, substr string) []Case {
	var out []Case
	for _, c := range cases {
		if strings.Contains(c.Kernel, substr) {
			out = append(out, c)
		}
	}
	return out
}

// Result is one case's measurement. JSON keys are part of `vkgan bench
// -json`'s output and are read by scripts.
type Result struct {
	Kernel     string   `json:"kernel"`
	Shape      string   `json:"shape"`
	Device     string   `json:"device"`
	Ms         float64  `json:"ms"`     // median time of one run
	GFLOPS     float64  `json:"gflops"` // Flops / median time
	GBps       float64  `json:"gbps"`   // Bytes / median time
	PeakGFLOPS *float64 `json:"peak_gflops,omitempty"`
	Fraction   *float64 `json:"fraction,omitempty"` // GFLOPS / PeakGFLOPS
	Runs       int      `json:"runs"`
	Timer      string   `json:"timer"` // "gpu" (timestamp queries) or "wall" (device without compute timestamps)
	// Variant is the GEMM variant that ran (e.g. "igemm wg128 tm16 sg
	// i64", from the tuning table or the heuristics); distinct ones joined
	// by "; " when the op records several GEMMs, empty for other kernels.
	Variant string `json:"variant,omitempty"`
}

// Run times c on d: it allocates and fills c's tensors, records the op once
// between two timestamps, submits it once to warm up (pipeline creation,
// first-touch page faults) and then repeat times, and reports the median.
// peak, when positive, is the device's peak GFLOP/s; the fraction of it
// reached is reported for cases that count FLOPs.
func Run(d *engine.Device, c Case, repeat int, seed uint64, peak float64) (Result, error) {
	if repeat < 1 {
		return Result{}, fmt.Errorf("bench: repeat %d must be at least 1", repeat)
	}
	ts := make([]*engine.Tensor, 0, len(c.Tensors))
	defer func() {
		for _, t := range ts {
			t.Release()
		}
	}()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, shape := range c.Tensors {
		n := 1
		for _, s := range shape {
			n *= s
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(rng.Float64()*2 - 1)
		}
		t, err := d.FromSlice(data, shape...)
		if err != nil {
			return Result{}, fmt.Errorf("bench: %s: %w", c.Name(), err)
		}
		ts = append(ts, t)
	}
	step, err := d.NewCounter()
	if err != nil {
		return Result{}, err
	}
	defer step.Release()
	if err := step.Set(1); err != nil {
		return Result{}, err
	}
	rec, err := d.Record()
	if err != nil {
		return Result{}, err
	}
	defer rec.Release()
	t0 := rec.Timestamp()
	gemms, err := d.CaptureGemms(func() error { return c.Op(rec, ts, step) })
	if err != nil {
		return Result{}, err
	}
	t1 := rec.Timestamp()
	gpu := t0 >= 0 && t1 >= 0
	ms := make([]float64, 0, repeat)
	for i := 0; i <= repeat; i++ {
		start := time.Now()
		if err := rec.Submit(); err != nil {
			return Result{}, err
		}
		wall := time.Since(start)
		if i == 0 {
			continue // warm-up
		}
		if !gpu {
			ms = append(ms, float64(wall.Nanoseconds())/1e6)
			continue
		}
		stamps, err := rec.Timestamps()
		if err != nil {
			return Result{}, err
		}
		ms = append(ms, (stamps[t1]-stamps[t0])/1e6)
	}
	res := Result{Kernel: c.Kernel, Shape: c.Shape, Device: d.Info().Name, Ms: median(ms), Runs: repeat, Timer: "wall", Variant: variants(d, gemms)}
	if gpu {
		res.Timer = "gpu"
	}
	if res.Ms > 0 {
		sec := res.Ms / 1e3
		res.GFLOPS = c.Flops / sec / 1e9
		res.GBps = c.Bytes() / sec / 1e9
	}
	if peak > 0 && c.Flops > 0 {
		p, f := peak, res.GFLOPS/peak
		res.PeakGFLOPS, res.Fraction = &p, &f
	}
	return res, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// variants names the variants d runs for the shapes, distinct ones in
// order, joined by "; ".
func variants(d *engine.Device, shapes []engine.GemmShape) string {
	var out []string
	for _, s := range shapes {
		if v := d.GemmVariantFor(s).String(); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return strings.Join(out, "; ")
}
