package engine

import (
	"fmt"
	"sort"
	"testing"
)

// benchGPU records the op once between two timestamps, then submits it
// b.N times. It reports the median GPU time from the timestamps
// (gpu-ms/op) and, when bytes > 0, bytes/median as GB/s; ns/op is the
// host-side submit and wait. It returns the median in nanoseconds (0
// without timestamps).
func benchGPU(b *testing.B, d *Device, bytes int64, record func(r *Recorder) error) float64 {
	b.Helper()
	r, err := d.Record()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Release()
	t0 := r.Timestamp()
	if err := record(r); err != nil {
		b.Fatal(err)
	}
	t1 := r.Timestamp()
	if err := r.Submit(); err != nil { // warm-up: JIT and first touch
		b.Fatal(err)
	}
	var gpu []float64
	b.ResetTimer()
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
	b.StopTimer()
	if len(gpu) == 0 {
		return 0
	}
	sort.Float64s(gpu)
	med := gpu[len(gpu)/2]
	b.ReportMetric(med/1e6, "gpu-ms/op")
	if bytes > 0 {
		b.ReportMetric(float64(bytes)/med, "GB/s")
	}
	return med
}

// benchTensor allocates an n-element tensor of random values for a
// benchmark.
func benchTensor(b *testing.B, d *Device, shape ...int) *Tensor {
	b.Helper()
	x, err := d.NewTensor(shape...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(x.Release)
	if err := x.Upload(randSlice(newRand(uint64(x.n)), x.n)); err != nil {
		b.Fatal(err)
	}
	return x
}

var benchSizes = []struct {
	name string
	n    int
}{{"64K", 1 << 16}, {"1M", 1 << 20}}

func BenchmarkScale(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			x := benchTensor(b, d, s.n)
			benchGPU(b, d, int64(8*s.n), func(r *Recorder) error { return r.Scale(x, 1) })
		})
	}
}

func BenchmarkAxpy(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			x, y := benchTensor(b, d, s.n), benchTensor(b, d, s.n)
			benchGPU(b, d, int64(12*s.n), func(r *Recorder) error { return r.Axpy(y, x, 1e-9) })
		})
	}
}

var benchNCHW = [][]int{{64, 128, 16, 16}, {64, 64, 32, 32}, {64, 512, 4, 4}, {64, 1024}, {64, 3, 64, 64}, {64, 1, 1, 1}}

func shapeName(s []int) string {
	name := ""
	for i, v := range s {
		if i > 0 {
			name += "x"
		}
		name += fmt.Sprint(v)
	}
	return name
}

func BenchmarkBiasAdd(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range benchNCHW {
		b.Run(shapeName(s), func(b *testing.B) {
			y, bias := benchTensor(b, d, s...), benchTensor(b, d, s[1])
			benchGPU(b, d, int64(8*y.n), func(r *Recorder) error { return r.BiasAdd(y, bias) })
		})
	}
}

func BenchmarkBiasGrad(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range benchNCHW {
		b.Run(shapeName(s), func(b *testing.B) {
			dy, db := benchTensor(b, d, s...), benchTensor(b, d, s[1])
			benchGPU(b, d, int64(4*dy.n), func(r *Recorder) error { return r.BiasGrad(db, dy) })
		})
	}
}

func BenchmarkActivation(b *testing.B) {
	d := newTestDevice(b)
	const n = 1 << 20
	for _, a := range ewActs {
		b.Run("1M/"+a.name, func(b *testing.B) {
			x, y := benchTensor(b, d, n), benchTensor(b, d, n)
			benchGPU(b, d, 8*n, func(r *Recorder) error { return a.fwd(r, y, x) })
		})
		b.Run("1M/"+a.name+"-backward", func(b *testing.B) {
			x, dy, dx := benchTensor(b, d, n), benchTensor(b, d, n), benchTensor(b, d, n)
			benchGPU(b, d, 12*n, func(r *Recorder) error { return a.bwd(r, dx, dy, x) })
		})
	}
}

func BenchmarkSum(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			x, out := benchTensor(b, d, s.n), benchTensor(b, d, 1)
			benchGPU(b, d, int64(4*s.n), func(r *Recorder) error { return r.Sum(out, x) })
		})
	}
}

func BenchmarkRandNormal(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			x := benchTensor(b, d, s.n)
			step, err := d.NewCounter()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(step.Release)
			benchGPU(b, d, int64(4*s.n), func(r *Recorder) error { return r.RandNormal(x, 1, step, 0, 1) })
		})
	}
}

func BenchmarkRandUniform(b *testing.B) {
	d := newTestDevice(b)
	const n = 1 << 20
	x := benchTensor(b, d, n)
	step, err := d.NewCounter()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(step.Release)
	b.Run("1M", func(b *testing.B) {
		benchGPU(b, d, 4*n, func(r *Recorder) error { return r.RandUniform(x, 1, step, -1, 1) })
	})
}
