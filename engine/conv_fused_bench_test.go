package engine

import (
	"fmt"
	"sort"
	"syscall"
	"testing"
	"time"
)

// inceptionConvs are representative convolutions of the FID Inception-v3
// at batch 8 (BasicConv2d: conv, folded batch norm and ReLU), each written
// into a channel slice of a wider concat buffer as the network does.
var inceptionConvs = []fusedCase{
	{8, 32, 147, 147, 64, 3, 3, 1, 1, 1, 1, 0, 64, true, true},   // Conv2d_2b_3x3 (the largest layer)
	{8, 80, 73, 73, 192, 3, 3, 1, 1, 0, 0, 0, 192, true, true},   // Conv2d_4a_3x3
	{8, 192, 35, 35, 64, 1, 1, 1, 1, 0, 0, 0, 256, true, true},   // Mixed_5b branch1x1
	{8, 48, 35, 35, 64, 5, 5, 1, 1, 2, 2, 64, 256, true, true},   // Mixed_5b branch5x5_2
	{8, 64, 35, 35, 96, 3, 3, 1, 1, 1, 1, 128, 256, true, true},  // Mixed_5b branch3x3dbl_2
	{8, 288, 35, 35, 384, 3, 3, 2, 2, 0, 0, 0, 768, true, true},  // Mixed_6a branch3x3 (stride 2)
	{8, 768, 17, 17, 192, 1, 1, 1, 1, 0, 0, 0, 768, true, true},  // Mixed_6b branch1x1
	{8, 160, 17, 17, 160, 1, 7, 1, 1, 0, 3, 0, 160, true, true},  // Mixed_6c branch7x7_2
	{8, 160, 17, 17, 160, 7, 1, 1, 1, 3, 0, 0, 160, true, true},  // Mixed_6c branch7x7dbl_2
	{8, 2048, 8, 8, 320, 1, 1, 1, 1, 0, 0, 0, 2048, true, true},  // Mixed_7c branch1x1
	{8, 384, 8, 8, 384, 1, 3, 1, 1, 0, 1, 320, 2048, true, true}, // Mixed_7c branch3x3_2a
	{8, 448, 8, 8, 384, 3, 3, 1, 1, 1, 1, 0, 384, true, true},    // Mixed_7c branch3x3dbl_2
}

func (c fusedCase) String() string {
	return fmt.Sprintf("%dx%dx%dx%d_to%d_k%dx%ds%dp%dx%d", c.N, c.Cin, c.H, c.W, c.Cout, c.KH, c.KW, c.SH, c.PH, c.PW)
}

func (c fusedCase) flops() float64 {
	oh, ow := c.out()
	return 2 * float64(c.N*c.Cout*oh*ow) * float64(c.Cin*c.KH*c.KW)
}

// BenchmarkConvFusedInception times Conv2DFused on the FID Inception's
// layer shapes at batch 8. It reports GFLOPS and gpu-ms/op from the
// median of the GPU timestamps, best-GFLOPS from the fastest submit, and
// cpu-ms/op, the process's CPU time per
// submit: on a CPU device shared with other jobs, CPU time moves less
// than elapsed time when those jobs take the cores.
func BenchmarkConvFusedInception(b *testing.B) {
	for _, c := range inceptionConvs {
		b.Run(c.String(), func(b *testing.B) {
			d := newTestDevice(b)
			oh, ow := c.out()
			x := tensorOf(b, d, randSlice(newRand(1), c.N*c.Cin*c.H*c.W), c.N, c.Cin, c.H, c.W)
			w := tensorOf(b, d, randSlice(newRand(2), c.Cout*c.Cin*c.KH*c.KW), c.Cout, c.Cin, c.KH, c.KW)
			s := tensorOf(b, d, randSlice(newRand(3), 2*c.Cout), 2*c.Cout)
			y := zeros(b, d, c.N, c.Ctot, oh, ow)
			p := ConvParams{StrideH: c.SH, StrideW: c.SW, PadH: c.PH, PadW: c.PW}
			e := ConvEpilogue{ChannelOffset: c.C0, ScaleShift: s, ReLU: c.ReLU}
			r, err := d.Record()
			if err != nil {
				b.Fatal(err)
			}
			defer r.Release()
			t0 := r.Timestamp()
			if err := r.Conv2DFused(y, x, w, p, e); err != nil {
				b.Fatal(err)
			}
			t1 := r.Timestamp()
			if err := r.Submit(); err != nil { // warm-up: JIT and first touch
				b.Fatal(err)
			}
			var gpu []float64
			b.ResetTimer()
			cpu0 := cpuTime()
			for range b.N {
				if err := r.Submit(); err != nil {
					b.Fatal(err)
				}
				if t0 >= 0 && t1 >= 0 {
					ts, err := r.Timestamps()
					if err != nil {
						b.Fatal(err)
					}
					gpu = append(gpu, ts[t1]-ts[t0])
				}
			}
			cpu := cpuTime() - cpu0
			b.StopTimer()
			b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
			if len(gpu) > 0 {
				sort.Float64s(gpu)
				med := gpu[len(gpu)/2]
				b.ReportMetric(med/1e6, "gpu-ms/op")
				b.ReportMetric(c.flops()/med, "GFLOPS")
				// The fastest submit: interference only slows a run down.
				b.ReportMetric(c.flops()/gpu[0], "best-GFLOPS")
			}
		})
	}
}

// cpuTime is the process's user plus system CPU time.
func cpuTime() time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
