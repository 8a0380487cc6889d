package engine

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"vkgan/internal/rss"
)

// BenchmarkGANStep times the whole recorded DCGAN step (PyTorch example
// widths, batch 64, or each batch in VKGAN_BENCH_BATCHES, e.g. "64,128")
// and reports images/s and seconds per step.
func BenchmarkGANStep(b *testing.B) {
	batches := []int{64}
	if env := os.Getenv("VKGAN_BENCH_BATCHES"); env != "" {
		batches = batches[:0]
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("VKGAN_BENCH_BATCHES=%q: want positive batch sizes separated by commas", env)
			}
			batches = append(batches, n)
		}
	}
	for _, size := range []int{32, 64} {
		for _, batch := range batches {
			b.Run(fmt.Sprintf("%dx%d/b%d", size, size, batch), func(b *testing.B) {
				d := newTestDevice(b)
				model := DCGAN{Size: size, NZ: 100, NGF: 64, NDF: 64, Channels: 3}
				data, err := d.UploadData(randomData(1, 256, 3, size), 256, 3, size)
				if err != nil {
					b.Fatal(err)
				}
				defer data.Release()
				ad := DefaultAdam()
				ad.LR, ad.Beta1 = 2e-4, 0.5
				g, err := d.NewGAN(GANConfig{Model: model, Batch: batch, Seed: 1, AdamD: ad, AdamG: ad, Profile: true}, data)
				if err != nil {
					b.Fatal(err)
				}
				defer g.Release()
				if err := g.Init(1); err != nil {
					b.Fatal(err)
				}
				if err := g.Step(); err != nil { // warm-up
					b.Fatal(err)
				}
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					if err := g.Step(); err != nil {
						b.Fatal(err)
					}
				}
				sec := time.Since(start).Seconds() / float64(b.N)
				if prof, err := g.StepProfile(); err == nil {
					keys := make([]string, 0, len(prof))
					total := 0.0
					for k, v := range prof {
						keys = append(keys, k)
						total += v
					}
					sort.Slice(keys, func(i, j int) bool { return prof[keys[i]] > prof[keys[j]] })
					for _, k := range keys {
						b.Logf("%-16s %8.1f ms  %5.1f%%", k, prof[k], 100*prof[k]/total)
					}
				}
				// Memory beside PyTorch's peak RSS for the same step: what the
				// device holds at the peak, what the tensors asked for, and the
				// process's peak RSS (on a CPU device the device memory is host
				// memory, so it is inside the RSS).
				mem := d.MemoryStats()
				b.ReportMetric(float64(mem.PeakHeld)/(1<<20), "dev-MiB")
				b.ReportMetric(float64(mem.PeakRequested)/(1<<20), "tensor-MiB")
				b.ReportMetric(float64(mem.PeakAllocations), "allocations")
				b.ReportMetric(float64(rss.Peak())/(1<<20), "rss-MiB")
				b.ReportMetric(sec, "s/step")
				b.ReportMetric(float64(batch)/sec, "images/s")
			})
		}
	}
}

// BenchmarkGANStepSharedGrads times the DCGAN step with a gradient buffer
// per layer (forceOwnGradients) and with the shared pair (gradPool).
func BenchmarkGANStepSharedGrads(b *testing.B) {
	benchGANStepAB(b, func(*Device) bool { return true }, [2]string{"own", "shared"}, func(old bool) { forceOwnGradients = old })
}
