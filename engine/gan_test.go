package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func randomData(seed uint64, n, c, s int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n*c*s*s)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

func TestGANStepRuns(t *testing.T) {
	d := newTestDevice(t)
	model := DCGAN{Size: 32, NZ: 8, NGF: 4, NDF: 4, Channels: 3}
	data, err := d.UploadData(randomData(1, 10, 3, 32), 10, 3, 32)
	require.NoError(t, err)
	defer data.Release()
	ad := DefaultAdam()
	ad.LR, ad.Beta1 = 2e-4, 0.5
	g, err := d.NewGAN(GANConfig{Model: model, Batch: 4, Seed: 7, AdamD: ad, AdamG: ad, EMA: 0.9}, data)
	require.NoError(t, err)
	defer g.Release()
	require.NoError(t, g.Init(1))
	// The step reads only device state: no transfers are recorded in it
	// (the host reads the metrics buffer when it logs, outside the step).
	require.Zero(t, g.step.Raw().Copies(), "copies recorded in the training step")
	for i := 0; i < 3; i++ {
		require.NoError(t, g.Step())
		m, err := g.ReadMetrics()
		require.NoError(t, err)
		require.True(t, m.Finite(), "%+v", m)
		t.Logf("step %d: %+v", i, m)
	}
	s, err := g.NewSampler(4, true, true)
	require.NoError(t, err)
	defer s.Release()
	img, err := s.Sample(randSlice(newRand(3), 4*8))
	require.NoError(t, err)
	require.Len(t, img, 4*3*32*32)
}
