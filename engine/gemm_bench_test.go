package engine

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// gemmBench records the op from setup once between two timestamps,
// submits it once to warm up (JIT, first touch), then b.N times. It
// reports the median GPU time (gpu-ms/op) and GFLOP/s, the fastest
// submit's GFLOP/s (best-GFLOPS: interference from other work only slows
// a submit down) and, on CPU devices, the process's CPU time per submit
// (cpu-ms/op). On a machine shared with other work the timestamps measure
// wall time and move by up to 2x; the CPU time the kernel burns moves far
// less, which is what makes A/B comparisons of kernel variants possible
// there.
func gemmBench(b *testing.B, flops float64, setup func(d *Device) (func(r *Recorder) error, error)) {
	d := newTestDevice(b)
	op, err := setup(d)
	if err != nil {
		b.Fatal(err)
	}
	r, err := d.Record()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Release()
	t0 := r.Timestamp()
	if err := op(r); err != nil {
		b.Fatal(err)
	}
	t1 := r.Timestamp()
	if err := r.Submit(); err != nil {
		b.Fatal(err)
	}
	var gpu []float64
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		if err := r.Submit(); err != nil {
			b.Fatal(err)
		}
		if t0 < 0 || t1 < 0 {
			continue
		}
		ts, err := r.Timestamps()
		if err != nil {
			b.Fatal(err)
		}
		gpu = append(gpu, ts[t1]-ts[t0])
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	if d.class == ClassCPU {
		b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
	}
	if len(gpu) > 0 {
		slices.Sort(gpu)
		med := gpu[len(gpu)/2]
		b.ReportMetric(med/1e6, "gpu-ms/op")
		b.ReportMetric(flops/med, "GFLOPS")
		b.ReportMetric(flops/gpu[0], "best-GFLOPS")
	}
}

func randTensor(d *Device, seed uint64, shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	return d.FromSlice(randSlice(newRand(seed), n), shape...)
}

// gemmOperandShapes is the shapes of A and B as stored for an M x N x K
// product with op(A) = A^T when ta and op(B) = B^T when tb.
func gemmOperandShapes(m, n, k int, ta, tb bool) (ar, ac, br, bc int) {
	ar, ac, br, bc = m, k, k, n
	if ta {
		ar, ac = ac, ar
	}
	if tb {
		br, bc = bc, br
	}
	return ar, ac, br, bc
}

func BenchmarkMatMul(b *testing.B) {
	for _, n := range []int{256, 1024} {
		for _, tr := range []struct {
			name   string
			ta, tb bool
		}{{"nn", false, false}, {"tn", true, false}, {"nt", false, true}} {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", n, n, n, tr.name), func(b *testing.B) {
				gemmBench(b, 2*float64(n)*float64(n)*float64(n), func(d *Device) (func(r *Recorder) error, error) {
					a, _ := randTensor(d, 1, n, n)
					bb, _ := randTensor(d, 2, n, n)
					c, err := d.NewTensor(n, n)
					b.Cleanup(func() { a.Release(); bb.Release(); c.Release() })
					return func(r *Recorder) error { return r.Gemm(c, a, bb, tr.ta, tr.tb, 1, 0, nil) }, err
				})
			})
		}
	}
}

// BenchmarkToyGemms times the toy's matmuls (batch 512 and 1024 rows,
// 128 hidden units, K down to 1), whose epilogue's stores cost as much as
// their multiply-adds.
func BenchmarkToyGemms(b *testing.B) {
	for _, s := range []struct {
		m, n, k int
		ta, tb  bool
		bias    bool
	}{
		{1024, 128, 2, false, true, true}, {1024, 128, 1, false, false, false}, {512, 128, 2, false, false, false},
		{512, 128, 128, false, false, false}, {512, 128, 256, false, true, true}, {128, 128, 1024, true, false, false},
		{1024, 128, 128, false, true, true},
	} {
		b.Run(fmt.Sprintf("%dx%dx%d_%v%v", s.m, s.n, s.k, s.ta, s.tb), func(b *testing.B) {
			gemmBench(b, 2*float64(s.m*s.n*s.k), func(d *Device) (func(r *Recorder) error, error) {
				ar, ac, br, bc := gemmOperandShapes(s.m, s.n, s.k, s.ta, s.tb)
				a, _ := randTensor(d, 1, ar, ac)
				bb, _ := randTensor(d, 2, br, bc)
				bias, _ := randTensor(d, 3, s.n)
				c, err := d.NewTensor(s.m, s.n)
				b.Cleanup(func() { a.Release(); bb.Release(); c.Release(); bias.Release() })
				var bt *Tensor
				if s.bias {
					bt = bias
				}
				return func(r *Recorder) error { return r.Gemm(c, a, bb, s.ta, s.tb, 1, 0, bt) }, err
			})
		})
	}
}

// dcganConvs are the convolutions of PyTorch's 64x64 DCGAN discriminator
// at batch 64 and ndf 64.
var dcganConvs = []convShape{
	{64, 3, 64, 64, 64, 4, 4, 2, 1},
	{64, 64, 32, 32, 128, 4, 4, 2, 1},
	{64, 128, 16, 16, 256, 4, 4, 2, 1},
	{64, 256, 8, 8, 512, 4, 4, 2, 1},
	{64, 512, 4, 4, 1, 4, 4, 1, 0},
}

func convFlops(s convShape) float64 {
	oh, ow := s.out()
	return 2 * float64(s.N*s.Cout*oh*ow) * float64(s.Cin*s.KH*s.KW)
}

func BenchmarkConv2D(b *testing.B) {
	for _, s := range dcganConvs {
		for _, pass := range []string{"forward", "backward-data", "backward-weights"} {
			b.Run(fmt.Sprintf("%s/%s", s, pass), func(b *testing.B) {
				gemmBench(b, convFlops(s), func(d *Device) (func(r *Recorder) error, error) { return convOp(b, d, s, pass) })
			})
		}
	}
}

// BenchmarkConvTranspose2D covers the 64x64 DCGAN generator at batch 64,
// nz 100, ngf 64.
func BenchmarkConvTranspose2D(b *testing.B) {
	for _, c := range []struct{ Cin, H, Cout, K, S, P int }{
		{100, 1, 512, 4, 1, 0},
		{512, 4, 256, 4, 2, 1},
		{256, 8, 128, 4, 2, 1},
		{128, 16, 64, 4, 2, 1},
		{64, 32, 3, 4, 2, 1},
	} {
		oh := (c.H-1)*c.S - 2*c.P + c.K
		flops := 2 * float64(64*c.Cin*c.H*c.H) * float64(c.Cout*c.K*c.K)
		b.Run(fmt.Sprintf("%dx%dx%d_to_%dx%dx%d", c.Cin, c.H, c.H, c.Cout, oh, oh), func(b *testing.B) {
			gemmBench(b, flops, func(d *Device) (func(r *Recorder) error, error) {
				x, _ := randTensor(d, 1, 64, c.Cin, c.H, c.H)
				w, _ := randTensor(d, 2, c.Cin, c.Cout, c.K, c.K)
				y, err := d.NewTensor(64, c.Cout, oh, oh)
				b.Cleanup(func() { x.Release(); w.Release(); y.Release() })
				p := ConvParams{StrideH: c.S, StrideW: c.S, PadH: c.P, PadW: c.P}
				return func(r *Recorder) error { return r.ConvTranspose2D(y, x, w, p) }, err
			})
		})
	}
}

// BenchmarkGemmRows times igemm's 16-, 32- and 64-row tiles (CPU devices)
// on the same op in one process, alternating submits, so that load from
// other work on a shared machine falls on all variants alike. It reports
// each variant's median and best GFLOP/s and the median over rounds of
// the 16-row time divided by each variant's (speedup-vsTM16).
func BenchmarkGemmRows(b *testing.B) {
	type opCase struct {
		name  string
		flops float64
		setup func(d *Device) (func(r *Recorder) error, error)
	}
	var cases []opCase
	for _, tr := range []struct {
		name   string
		ta, tb bool
	}{{"nn", false, false}, {"tn", true, false}, {"nt", false, true}} {
		cases = append(cases, opCase{"matmul1024/" + tr.name, 2 * 1024 * 1024 * 1024, func(d *Device) (func(r *Recorder) error, error) {
			a, _ := randTensor(d, 1, 1024, 1024)
			bb, _ := randTensor(d, 2, 1024, 1024)
			c, err := d.NewTensor(1024, 1024)
			b.Cleanup(func() { a.Release(); bb.Release(); c.Release() })
			return func(r *Recorder) error { return r.Gemm(c, a, bb, tr.ta, tr.tb, 1, 0, nil) }, err
		}})
	}
	for _, s := range dcganConvs[1:4] {
		for _, pass := range []string{"forward", "backward-weights"} {
			cases = append(cases, opCase{s.String() + "/" + pass, convFlops(s), func(d *Device) (func(r *Recorder) error, error) {
				return convOp(b, d, s, pass)
			}})
		}
	}
	rows := []int{16, 32, 64}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			d := newTestDevice(b)
			if !d.subgroupTiles() {
				b.Skip("tile rows apply to CPU devices only")
			}
			op, err := c.setup(d)
			if err != nil {
				b.Fatal(err)
			}
			recs := recordVariants(b, d, len(rows), func(i int) { forceGemmRows = rows[i] }, op)
			forceGemmRows = 0
			names := make([]string, len(rows))
			for i, tm := range rows {
				names[i] = fmt.Sprintf("TM%d", tm)
			}
			reportAlternating(b, c.flops, names, timeAlternating(b, recs))
		})
	}
}

// convOp returns a recorder of one pass of conv s ("forward",
// "backward-data" or "backward-weights") on random tensors that b
// releases.
func convOp(b *testing.B, d *Device, s convShape, pass string) (func(r *Recorder) error, error) {
	oh, ow := s.out()
	x, _ := randTensor(d, 1, s.N, s.Cin, s.H, s.W)
	w, _ := randTensor(d, 2, s.Cout, s.Cin, s.KH, s.KW)
	y, err := randTensor(d, 3, s.N, s.Cout, oh, ow)
	b.Cleanup(func() { x.Release(); w.Release(); y.Release() })
	p := ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P}
	switch pass {
	case "forward":
		return func(r *Recorder) error { return r.Conv2D(y, x, w, p) }, err
	case "backward-data":
		return func(r *Recorder) error { return r.Conv2DBackwardData(x, y, w, p) }, err
	}
	return func(r *Recorder) error { return r.Conv2DBackwardWeights(w, y, x, p) }, err
}

// BenchmarkConvWeightsQuad times the padded backward-weights of the DCGAN
// discriminator's convolutions with each k's taps as two 64-bit words
// (forceNoQuadWeights) and as a chunk's three aligned quad loads, in one
// process, alternating submits.
func BenchmarkConvWeightsQuad(b *testing.B) {
	for _, s := range dcganConvs[:4] {
		b.Run(s.String(), func(b *testing.B) {
			d := newTestDevice(b)
			if !d.subgroupTiles() {
				b.Skip("the padded paths apply to CPU devices only")
			}
			op, err := convOp(b, d, s, "backward-weights")
			if err != nil {
				b.Fatal(err)
			}
			recs := recordVariants(b, d, 2, func(i int) { forceNoQuadWeights = i == 0 }, op)
			forceNoQuadWeights = false
			reportAlternating(b, convFlops(s), []string{"words", "quad"}, timeAlternating(b, recs))
		})
	}
}

// BenchmarkGANStepQuadWeights is BenchmarkConvWeightsQuad for the whole
// DCGAN step (see benchGANStepAB).
func BenchmarkGANStepQuadWeights(b *testing.B) {
	benchGANStepAB(b, func(d *Device) bool { return d.subgroupTiles() }, [2]string{"words", "quad"},
		func(old bool) { forceNoQuadWeights = old })
}

// BenchmarkGANStepTexelPad times the DCGAN step with pad reading through
// storage buffers (forceNoTexelPad) and through texels (see
// benchGANStepAB).
func BenchmarkGANStepTexelPad(b *testing.B) {
	benchGANStepAB(b, texelApplies, [2]string{"buffer", "texel"}, func(old bool) { forceNoTexelPad = old })
}

// BenchmarkGANStepQuadBwdData times the DCGAN step with the packed
// backward-data gathering dy tap by tap (forceNoQuadBwdData) and reading it
// padded with quad loads (see benchGANStepAB).
func BenchmarkGANStepQuadBwdData(b *testing.B) {
	benchGANStepAB(b, func(d *Device) bool { return d.class == ClassCPU }, [2]string{"gathered", "quad"},
		func(old bool) { forceNoQuadBwdData = old })
}

// BenchmarkGANStepRows times the DCGAN step (batch 64, PyTorch example
// widths) recorded with igemm's kernels from before larger tiles and quad
// loads (forceGemmRows = 16) and with the default ones, in one process,
// alternating steps (see benchGANStepAB).
func BenchmarkGANStepRows(b *testing.B) {
	benchGANStepAB(b, func(d *Device) bool { return d.subgroupTiles() }, [2]string{"TM16", "default"},
		func(old bool) {
			forceGemmRows = 0
			if old {
				forceGemmRows = 16
			}
		})
}

// benchGANStepAB times the DCGAN-32 and -64 steps (batch 64) recorded two
// ways, the old one with use(true) in force while the GAN is built, the
// new one with use(false), alternating steps in one process so a shared
// machine's load hits both alike. It reports each one's median seconds
// per step and the median over rounds of old time / new time (speedup).
// applies says whether the device has the choice at all.
func benchGANStepAB(b *testing.B, applies func(*Device) bool, names [2]string, use func(old bool)) {
	for _, size := range []int{32, 64} {
		b.Run(fmt.Sprintf("%dx%d/b64", size, size), func(b *testing.B) {
			d := newTestDevice(b)
			if !applies(d) {
				b.Skip("the choice does not apply to this device")
			}
			model := DCGAN{Size: size, NZ: 100, NGF: 64, NDF: 64, Channels: 3}
			data, err := d.UploadData(randomData(1, 256, 3, size), 256, 3, size)
			if err != nil {
				b.Fatal(err)
			}
			defer data.Release()
			ad := DefaultAdam()
			ad.LR, ad.Beta1 = 2e-4, 0.5
			var gans [2]*GAN
			for i, old := range []bool{true, false} {
				use(old)
				g, err := d.NewGAN(GANConfig{Model: model, Batch: 64, Seed: 1, AdamD: ad, AdamG: ad}, data)
				if err == nil {
					defer g.Release()
					if err = g.Init(1); err == nil {
						err = g.Step() // warm-up
					}
				}
				use(false)
				if err != nil {
					b.Fatal(err)
				}
				gans[i] = g
			}
			alternateSteps(b, names, [2]func() error{gans[0].Step, gans[1].Step})
		})
	}
}

// alternateSteps runs the two steps in turn b.N times and reports each
// one's median seconds per step and the median over rounds of the first's
// time / the second's (speedup).
func alternateSteps(b *testing.B, names [2]string, steps [2]func() error) {
	var sec [2][]float64
	b.ResetTimer()
	for range b.N {
		for i, step := range steps {
			t := time.Now()
			if err := step(); err != nil {
				b.Fatal(err)
			}
			sec[i] = append(sec[i], time.Since(t).Seconds())
		}
	}
	b.StopTimer()
	ratio := make([]float64, b.N)
	for n := range ratio {
		ratio[n] = sec[0][n] / sec[1][n]
	}
	slices.Sort(ratio)
	for i, name := range names {
		slices.Sort(sec[i])
		b.ReportMetric(sec[i][len(sec[i])/2], "s/step-"+name)
	}
	b.ReportMetric(ratio[len(ratio)/2], "speedup")
}

// recordVariants records op n times, variant i with use(i) in force,
// each between two timestamps, and submits each once (JIT and first
// touch). The recorders are released when the benchmark ends; it skips on
// a queue without timestamps.
func recordVariants(b *testing.B, d *Device, n int, use func(i int), op func(r *Recorder) error) []*Recorder {
	recs := make([]*Recorder, n)
	for i := range recs {
		use(i)
		r, err := d.Record()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(r.Release)
		t0 := r.Timestamp()
		err = op(r)
		if t1 := r.Timestamp(); t0 != 0 || t1 != 1 {
			b.Skip("no timestamps")
		}
		if err == nil {
			err = r.Submit()
		}
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = r
	}
	return recs
}

// bwdVariant is one way BenchmarkConvBwdPacked records backward-data.
type bwdVariant struct {
	name     string
	unpacked bool // forceUnpackedBwd: mode 2's gathered weights
	rows     int  // forceGemmRows
	gather   bool // forceNoQuadBwdData: dy gathered tap by tap
}

var bwdVariants = []bwdVariant{{"unpacked", true, 0, false}, {"packedTM16", false, 16, false}, {"gathered", false, 0, true}, {"packed", false, 0, false}}

// BenchmarkConvBwdPacked times conv backward-data (every ConvTranspose2D)
// with igemm's mode 2, which gathers the weights tap by tap, and with the
// weights packed per parity class (mode 6: 16-row tiles and dy gathered,
// default tiles and dy gathered, the default), in one process, alternating
// submits. It reports each variant's median and best GFLOP/s and the
// median over rounds of the unpacked time divided by each packed one's
// (speedup).
func BenchmarkConvBwdPacked(b *testing.B) {
	var cases []opCase
	for _, c := range []struct{ Cin, H, Cout int }{{512, 4, 256}, {256, 8, 128}, {128, 16, 64}, {64, 32, 3}} {
		oh := 2 * c.H
		cases = append(cases, opCase{fmt.Sprintf("deconv_%dx%dx%d_to_%dx%dx%d", c.Cin, c.H, c.H, c.Cout, oh, oh),
			2 * float64(64*c.Cin*c.H*c.H) * float64(c.Cout*16), func(d *Device) (func(r *Recorder) error, error) {
				x, _ := randTensor(d, 1, 64, c.Cin, c.H, c.H)
				w, _ := randTensor(d, 2, c.Cin, c.Cout, 4, 4)
				y, err := d.NewTensor(64, c.Cout, oh, oh)
				b.Cleanup(func() { x.Release(); w.Release(); y.Release() })
				p := ConvParams{StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
				return func(r *Recorder) error { return r.ConvTranspose2D(y, x, w, p) }, err
			}})
	}
	s := convShape{64, 64, 32, 32, 128, 4, 4, 2, 1} // D's second layer
	cases = append(cases, opCase{s.String() + "/backward-data", convFlops(s), func(d *Device) (func(r *Recorder) error, error) {
		return convOp(b, d, s, "backward-data")
	}})
	names := make([]string, len(bwdVariants))
	for i, v := range bwdVariants {
		names[i] = v.name
	}
	alternateOps(b, cases, "packed backward-data applies to CPU devices only", names, func(i int) {
		var v bwdVariant // i < 0: the defaults
		if i >= 0 {
			v = bwdVariants[i]
		}
		forceUnpackedBwd, forceGemmRows, forceNoQuadBwdData = v.unpacked, v.rows, v.gather
	})
}

// opCase is one operation a benchmark times: its FLOPs and how to record
// it on a device.
type opCase struct {
	name  string
	flops float64
	setup func(d *Device) (func(r *Recorder) error, error)
}

// alternateOps times each case recorded once per name, with use(i) in
// force while variant i is recorded (use(-1) afterwards restores the
// defaults), in one process, alternating submits; CPU devices only (skip
// says why not).
func alternateOps(b *testing.B, cases []opCase, skip string, names []string, use func(i int)) {
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			d := newTestDevice(b)
			if d.class != ClassCPU {
				b.Skip(skip)
			}
			op, err := c.setup(d)
			if err != nil {
				b.Fatal(err)
			}
			recs := recordVariants(b, d, len(names), use, op)
			use(-1)
			reportAlternating(b, c.flops, names, timeAlternating(b, recs))
		})
	}
}

// BenchmarkGANStepBwdPacked times the DCGAN step (batch 64, PyTorch
// example widths) recorded with backward-data's weights gathered tap by
// tap (forceUnpackedBwd) and packed per parity class (the default on CPU
// devices), in one process, alternating steps (see benchGANStepAB).
func BenchmarkGANStepBwdPacked(b *testing.B) {
	benchGANStepAB(b, func(d *Device) bool { return d.class == ClassCPU }, [2]string{"unpacked", "packed"},
		func(old bool) { forceUnpackedBwd = old })
}

// timeAlternating submits each recording once per round, b.N rounds, so a
// shared machine's load hits every variant alike, and returns each one's
// GPU times (the recordings' first two timestamps).
func timeAlternating(b *testing.B, recs []*Recorder) [][]float64 {
	times := make([][]float64, len(recs))
	b.ResetTimer()
	for range b.N {
		for i, r := range recs {
			if err := r.Submit(); err != nil {
				b.Fatal(err)
			}
			ts, err := r.Timestamps()
			if err != nil {
				b.Fatal(err)
			}
			times[i] = append(times[i], ts[1]-ts[0])
		}
	}
	b.StopTimer()
	return times
}

// reportAlternating reports each variant's median and best rate for flops
// per time unit, and the median over rounds of the first variant's time
// divided by each other's (speedup).
func reportAlternating(b *testing.B, flops float64, names []string, times [][]float64) {
	for i, name := range names {
		t := slices.Sorted(slices.Values(times[i]))
		b.ReportMetric(flops/t[len(t)/2], "GFLOPS-"+name)
		b.ReportMetric(flops/t[0], "best-GFLOPS-"+name)
		if i > 0 {
			ratio := make([]float64, len(t))
			for n := range ratio {
				ratio[n] = times[0][n] / times[i][n]
			}
			slices.Sort(ratio)
			b.ReportMetric(ratio[len(ratio)/2], "speedup-"+name)
		}
	}
}

// BenchmarkGANStepTexel times the DCGAN step with igemm's storage-buffer
// loads only (forceNoTexel) and with its texel loads (the default on CPU
// devices), in one process, alternating steps (see benchGANStepAB).
func BenchmarkGANStepTexel(b *testing.B) {
	benchGANStepAB(b, texelApplies, [2]string{"buffer", "texel"}, func(old bool) { forceNoTexel = old })
}

func texelApplies(d *Device) bool { return d.texelLoads() }

// BenchmarkToyStepTexel is BenchmarkGANStepTexel for both toy protocols.
func BenchmarkToyStepTexel(b *testing.B) {
	benchToyStepAB(b, texelApplies, [2]string{"buffer", "texel"}, func(old bool) { forceNoTexel = old })
}

// BenchmarkToyStepSpreadRows is BenchmarkSpreadRows for both toy
// protocols' steps (see benchToyStepAB).
func BenchmarkToyStepSpreadRows(b *testing.B) {
	benchToyStepAB(b, func(d *Device) bool { return d.class == ClassCPU }, [2]string{"dense", "spread"},
		func(old bool) { forceDenseRows = old })
}

// benchToyStepAB is benchGANStepAB for both toy protocols' steps.
func benchToyStepAB(b *testing.B, applies func(*Device) bool, names [2]string, use func(old bool)) {
	for _, p := range []struct {
		name string
		cfg  ToyConfig
	}{{"small", smallToy(256, 128, 512, 1)}, {"large", largeToy()}} {
		b.Run(p.name, func(b *testing.B) {
			d := newTestDevice(b)
			if !applies(d) {
				b.Skip("the choice does not apply to this device")
			}
			var gans [2]*ToyGAN
			for i, old := range []bool{true, false} {
				use(old)
				g, err := d.NewToyGAN(p.cfg)
				if err == nil {
					defer g.Release()
					if err = g.Init(1); err == nil {
						err = g.Step() // warm-up
					}
				}
				use(false)
				if err != nil {
					b.Fatal(err)
				}
				gans[i] = g
			}
			alternateSteps(b, names, [2]func() error{gans[0].Step, gans[1].Step})
		})
	}
}

// BenchmarkSpreadRows times GEMMs whose A rows (or transposed B columns)
// are a multiple of 256 floats apart on their dense rows (forceDenseRows)
// and through a copy with spread rows, copy included (the packed
// backward-data packs with spread rows at no extra cost), in one process,
// alternating submits.
func BenchmarkSpreadRows(b *testing.B) {
	var cases []opCase
	const n = 1024
	for _, tb := range []bool{false, true} {
		name := map[bool]string{false: "matmul", true: "matmul_nt"}[tb]
		cases = append(cases, opCase{fmt.Sprintf("%s_%d", name, n), 2 * float64(n*n*n), func(d *Device) (func(r *Recorder) error, error) {
			a, _ := randTensor(d, 1, n, n)
			bb, _ := randTensor(d, 2, n, n)
			c, err := d.NewTensor(n, n)
			b.Cleanup(func() { a.Release(); bb.Release(); c.Release() })
			return func(r *Recorder) error { return r.Gemm(c, a, bb, false, tb, 1, 0, nil) }, err
		}})
	}
	for _, s := range dcganConvs[1:4] {
		for _, pass := range []string{"forward", "backward-data"} {
			cases = append(cases, opCase{s.String() + "/" + pass, convFlops(s), func(d *Device) (func(r *Recorder) error, error) {
				return convOp(b, d, s, pass)
			}})
		}
	}
	alternateOps(b, cases, "rows are spread on CPU devices only", []string{"dense", "spread"},
		func(i int) { forceDenseRows = i == 0 })
}

// BenchmarkGANStepSpreadRows is BenchmarkSpreadRows for the whole DCGAN
// step (see benchGANStepAB).
func BenchmarkGANStepSpreadRows(b *testing.B) {
	benchGANStepAB(b, func(d *Device) bool { return d.class == ClassCPU }, [2]string{"dense", "spread"},
		func(old bool) { forceDenseRows = old })
}

// BenchmarkGemmTransposedA times A^T*B with A's rows loaded element by
// element (forceNoVecAT) and four rows a load (VEC_AT) in one process,
// alternating submits: the 1024^3 product and the toy's weight gradients
// (M = a layer's outputs, N its inputs, K the batch).
func BenchmarkGemmTransposedA(b *testing.B) {
	var cases []opCase
	for _, s := range [][3]int{{1024, 1024, 1024}, {128, 128, 1024}, {128, 256, 512}, {128, 2, 1024}, {400, 400, 128}, {1000, 200, 256}, {200, 400, 128}} {
		m, n, k := s[0], s[1], s[2]
		cases = append(cases, opCase{fmt.Sprintf("%dx%dx%d", m, n, k), 2 * float64(m*n*k), func(d *Device) (func(r *Recorder) error, error) {
			a, _ := randTensor(d, 1, k, m)
			bb, _ := randTensor(d, 2, k, n)
			c, err := d.NewTensor(m, n)
			b.Cleanup(func() { a.Release(); bb.Release(); c.Release() })
			return func(r *Recorder) error { return r.Gemm(c, a, bb, true, false, 1, 0, nil) }, err
		}})
	}
	alternateOps(b, cases, "VEC_AT is for CPU devices", []string{"scalar", "rows4"},
		func(i int) { forceNoVecAT = i == 0 })
}

// BenchmarkToyStepTransposedA is BenchmarkGemmTransposedA for both toy
// protocols' steps (see benchToyStepAB).
func BenchmarkToyStepTransposedA(b *testing.B) {
	benchToyStepAB(b, func(d *Device) bool { return d.subgroupTiles() }, [2]string{"scalar", "rows4"},
		func(old bool) { forceNoVecAT = old })
}
