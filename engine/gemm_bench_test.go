package engine

import (
	"fmt"
	"slices"
	"testing"
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
				gemmBench(b, convFlops(s), func(d *Device) (func(r *Recorder) error, error) {
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
					default:
						return func(r *Recorder) error { return r.Conv2DBackwardWeights(w, y, x, p) }, err
					}
				})
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
