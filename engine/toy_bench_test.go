package engine

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func ringCenters(k int, radius float64) []float32 {
	c := make([]float32, 0, 2*k)
	for i := 0; i < k; i++ {
		a := 2 * math.Pi * float64(i) / float64(k)
		c = append(c, float32(radius*math.Cos(a)), float32(radius*math.Sin(a)))
	}
	return c
}

// smallToy is the small protocol: two hidden layers of 128 tanh units.
func smallToy(nz, hidden, batch, pack int) ToyConfig {
	adamD, adamG := DefaultAdam(), DefaultAdam()
	adamD.LR, adamG.LR = 1e-4, 1e-3
	adamD.Beta1, adamG.Beta1 = 0.5, 0.5
	return ToyConfig{
		G:       ToyNet{In: nz, Layers: []ToyLayer{{Out: hidden, Act: ToyTanh}, {Out: hidden, Act: ToyTanh}, {Out: 2}}},
		D:       ToyNet{In: 2 * pack, Layers: []ToyLayer{{Out: hidden, Act: ToyTanh}, {Out: hidden, Act: ToyTanh}, {Out: 1}}},
		Batch:   batch,
		Pack:    pack,
		Centers: ringCenters(8, 1),
		Std:     0.01,
		Holdout: -1,
		Seed:    1,
		AdamD:   adamD,
		AdamG:   adamG,
	}
}

// largeToy is the large protocol: G 4 x (400, batch norm, ReLU), D three
// maxout layers of 200 units with 5 pieces, batch 128.
func largeToy() ToyConfig {
	c := smallToy(256, 128, 128, 1)
	c.G.Layers = []ToyLayer{{Out: 400, Act: ToyReLU, BN: true}, {Out: 400, Act: ToyReLU, BN: true},
		{Out: 400, Act: ToyReLU, BN: true}, {Out: 400, Act: ToyReLU, BN: true}, {Out: 2}}
	c.D.Layers = []ToyLayer{{Out: 200, Act: ToyMaxout, Pieces: 5}, {Out: 200, Act: ToyMaxout, Pieces: 5},
		{Out: 200, Act: ToyMaxout, Pieces: 5}, {Out: 1}}
	return c
}

// BenchmarkToyStep times one step of each protocol and logs where the
// time goes (a separate profiled step, since timestamps cost time).
func BenchmarkToyStep(b *testing.B) {
	for _, p := range []struct {
		name string
		cfg  ToyConfig
	}{{"small", smallToy(256, 128, 512, 1)}, {"large", largeToy()}} {
		b.Run(p.name, func(b *testing.B) { benchToy(b, p.cfg) })
	}
}

func benchToy(b *testing.B, cfg ToyConfig) {
	d := newTestDevice(b)
	pc := cfg
	pc.Profile = true
	pg, err := d.NewToyGAN(pc)
	require.NoError(b, err)
	require.NoError(b, pg.Init(1))
	require.NoError(b, pg.Step())
	require.NoError(b, pg.Step())
	prof, err := pg.StepProfile()
	require.NoError(b, err)
	pg.Release()
	var total float64
	for _, v := range prof {
		total += v
	}
	keys := slices.SortedFunc(maps.Keys(prof), func(x, y string) int { return int(math.Copysign(1, prof[y]-prof[x])) })
	var lines []string
	for _, k := range keys {
		lines = append(lines, fmt.Sprintf("%s %.2f ms (%.0f%%)", k, prof[k], 100*prof[k]/total))
	}
	b.Logf("profile of one step, %.2f ms: %s", total, strings.Join(lines, ", "))
	g, err := d.NewToyGAN(cfg)
	require.NoError(b, err)
	defer g.Release()
	require.NoError(b, g.Init(1))
	require.NoError(b, g.Step())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := g.Step(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
}

// BenchmarkToyStepLinearAct times both toy steps with the activations
// after and before linear layers in their own kernels
// (forceNoLinearActFusion) and in the GEMMs' epilogues, alternating.
func BenchmarkToyStepLinearAct(b *testing.B) {
	benchToyStepAB(b, func(*Device) bool { return true }, [2]string{"separate", "fused"},
		func(old bool) { forceNoLinearActFusion = old })
}

// BenchmarkToyStepBiasGrad times both toy steps with the linear layers'
// bias gradients in kernels of their own (forceSeparateBiasGrad) and
// summed by the weight-gradient GEMMs, alternating.
func BenchmarkToyStepBiasGrad(b *testing.B) {
	benchToyStepAB(b, func(*Device) bool { return true }, [2]string{"separate", "in-gemm"},
		func(old bool) { forceSeparateBiasGrad = old })
}

// BenchmarkToyStepMaxout times both toy steps with the maxout kernels'
// scalar versions (forceScalarMaxout) and their q4 variants, alternating
// (only the large protocol's D has maxout units).
func BenchmarkToyStepMaxout(b *testing.B) {
	benchToyStepAB(b, func(d *Device) bool { return d.class == ClassCPU }, [2]string{"scalar", "q4"},
		func(old bool) { forceScalarMaxout = old })
}
