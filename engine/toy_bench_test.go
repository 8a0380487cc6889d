package engine

import (
	"math"
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

func BenchmarkToyStep(b *testing.B) {
	d := newTestDevice(b)
	g, err := d.NewToyGAN(smallToy(256, 128, 512, 1))
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
