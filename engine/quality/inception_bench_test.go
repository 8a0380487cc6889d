package quality

import (
	"math/rand/v2"
	"testing"

	"vkgan/engine"
)

// randomInception is the FID network with Init's random weights, for
// benchmarks and tests that need no particular values.
func randomInception(t testing.TB, d *engine.Device, side, batch int) *Inception {
	t.Helper()
	net, err := engine.FIDInception(side)
	if err != nil {
		t.Fatal(err)
	}
	params, stats := net.Init(rand.New(rand.NewPCG(1, 2)))
	w := &InceptionWeights{Path: "random", Tensors: map[string]WeightTensor{}}
	for _, set := range []struct {
		specs []engine.ParamSpec
		vals  map[string][]float32
	}{{net.Params, params}, {net.Stats, stats}} {
		for _, s := range set.specs {
			w.Tensors[s.Name] = WeightTensor{Shape: s.Shape, Data: set.vals[s.Name]}
		}
	}
	inc, err := NewInception(d, w, side, batch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inc.Release)
	return inc
}

// BenchmarkInceptionFeatures reports images per second through the FID
// network (the resize to 299x299 included) at batch 8.
func BenchmarkInceptionFeatures(b *testing.B) {
	d := newTestDevice(b)
	const side, batch = 32, 8
	inc := randomInception(b, d, side, batch)
	images := make([]float32, batch*3*side*side)
	b.ResetTimer()
	for range b.N {
		if _, err := inc.Features(images, batch, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
	b.ReportMetric(inc.FLOPs()*float64(b.N*batch)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
