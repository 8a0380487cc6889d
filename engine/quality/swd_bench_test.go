package quality

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"vkgan/engine"
)

// BenchmarkSWD times the whole metric on two sets of n 64x64 RGB images
// (levels 64, 32, 16) with the default options, on the host and on the
// device. The n=10000 cases take minutes; select them by name.
//
// On a 2-core AMD EPYC VM shared with other jobs (load 2-8), n=1000 took
// 51 s on the host (89 s of CPU) and 66 s on lavapipe (104 s of CPU);
// n=10000 took 16 min on the host and 20-27 min on lavapipe (17 min of
// CPU). The projections took 86% of the n=1000 host run, the sorts and
// distances 9%, the pyramids and descriptors 5%: the host GEMM and
// lavapipe's both run at 9-10 GFLOP/s on the two cores (BenchmarkSWDGemm).
func BenchmarkSWD(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, where := range []string{"host", "device"} {
			b.Run(fmt.Sprintf("n=%d/%s", n, where), func(b *testing.B) {
				var d *engine.Device
				if where == "device" {
					d = newTestDevice(b)
				}
				x := swdImages(1, n, 3, 64, 0.1)
				y := swdImages(2, n, 3, 64, 0.1)
				b.ReportAllocs()
				for b.Loop() {
					if _, err := SWD(d, x, swdShape(n, 3, 64), y, swdShape(n, 3, 64), nil); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(2*n)*float64(b.N)/b.Elapsed().Seconds(), "images/s")
			})
		}
	}
}

// BenchmarkSWDSort compares the radix sort with slices.Sort on one
// projection column (n images x 128 neighbourhoods).
func BenchmarkSWDSort(b *testing.B) {
	for _, n := range []int{128_000, 1_280_000} {
		r := rand.New(rand.NewPCG(1, 1))
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		b.Run(fmt.Sprintf("n=%d/radix", n), func(b *testing.B) {
			keys, tmp := make([]uint32, n), make([]uint32, n)
			b.SetBytes(int64(4 * n))
			for b.Loop() {
				swdRadixSort(v, keys, tmp)
			}
		})
		b.Run(fmt.Sprintf("n=%d/slices", n), func(b *testing.B) {
			w := make([]float32, n)
			b.SetBytes(int64(4 * n))
			for b.Loop() {
				copy(w, v)
				slices.Sort(w)
			}
		})
	}
}

// BenchmarkSWDGemm times one batch of projections, 3-channel 7x7
// descriptors of 1000 images against 512 directions, in GFLOP/s.
func BenchmarkSWDGemm(b *testing.B) {
	const n, dirs = 128_000, 512
	for _, where := range []string{"host", "device"} {
		b.Run(where, func(b *testing.B) {
			var d *engine.Device
			if where == "device" {
				d = newTestDevice(b)
			}
			s := &swdRun{dev: d, opt: DefaultSWD(), c: 3, workers: runtime.GOMAXPROCS(0), k: 147, kp: 148, n: [2]int{n, n}, ncol: [2]int{n, n}}
			s.opt.DirsPerRepeat = dirs
			r := rand.New(rand.NewPCG(1, 1))
			desc := [2][]float32{make([]float32, s.kp*n), make([]float32, s.kp*n)}
			for i := range desc {
				for j := range desc[i] {
					desc[i][j] = float32(r.NormFloat64())
				}
			}
			p, err := s.newProjector(desc)
			if err != nil {
				b.Fatal(err)
			}
			defer p.release()
			w := swdDirections(1, 0, 0, p.batch(), s.k, s.kp)
			for b.Loop() {
				if _, err := p.project(w, p.batch()); err != nil {
					b.Fatal(err)
				}
			}
			flops := 2 * 2 * float64(n) * float64(s.kp) * float64(p.batch())
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOPS")
		})
	}
}
