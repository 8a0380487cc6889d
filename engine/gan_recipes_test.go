package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// recipeGAN is a tiny DCGAN with the given recipe options, initialised.
func recipeGAN(t *testing.T, d *Device, data *DeviceData, model DCGAN, edit func(*GANConfig)) *GAN {
	t.Helper()
	ad := DefaultAdam()
	ad.LR, ad.Beta1 = 2e-4, 0.5
	cfg := GANConfig{Model: model, Batch: 4, Seed: 7, AdamD: ad, AdamG: ad}
	if edit != nil {
		edit(&cfg)
	}
	g, err := d.NewGAN(cfg, data)
	require.NoError(t, err)
	t.Cleanup(g.Release)
	require.NoError(t, g.Init(1))
	return g
}

// Lazy R1 takes the penalty on steps R1Every, 2*R1Every, ... only: a run
// with R1 every 2 steps matches one without R1 bit for bit after step 1,
// differs after step 2, and reports the penalty (a run with it every step
// differs at once). The step is picked from G's counter, so setting the
// counter (a resume) picks it too.
func TestGANLazyR1(t *testing.T) {
	d := newTestDevice(t)
	model := DCGAN{Size: 16, NZ: 8, NGF: 4, NDF: 4, Channels: 3, NoDNorm: true, SN: true}
	data, err := d.UploadData(randomData(1, 10, 3, 16), 10, 3, 16)
	require.NoError(t, err)
	defer data.Release()
	plain := recipeGAN(t, d, data, model, nil)
	lazy := recipeGAN(t, d, data, model, func(c *GANConfig) { c.R1, c.R1Every = 0.5, 2 })
	every := recipeGAN(t, d, data, model, func(c *GANConfig) { c.R1 = 0.5 })
	dParams := func(g *GAN) map[string][]float32 {
		v, err := g.D.Params.Get()
		require.NoError(t, err)
		return v
	}
	for _, g := range []*GAN{plain, lazy, every} {
		require.NoError(t, g.Step())
	}
	require.Equal(t, dParams(plain), dParams(lazy), "step 1 is not an R1 step")
	require.NotEqual(t, dParams(plain), dParams(every), "R1 every step")
	m, err := every.ReadMetrics()
	require.NoError(t, err)
	require.Greater(t, m.R1, 0.0)
	m, err = plain.ReadMetrics()
	require.NoError(t, err)
	require.Zero(t, m.R1, "no R1: the metric is 0")

	require.NoError(t, plain.Step())
	require.NoError(t, lazy.Step())
	require.NotEqual(t, dParams(plain), dParams(lazy), "step 2 is an R1 step")
	m, err = lazy.ReadMetrics()
	require.NoError(t, err)
	require.Greater(t, m.R1, 0.0)

	// A counter set as a checkpoint sets it: step 4 is an R1 step.
	require.NoError(t, lazy.G.Counter.Set(3))
	before := dParams(lazy)
	require.NoError(t, lazy.Step())
	m2, err := lazy.ReadMetrics()
	require.NoError(t, err)
	require.NotEqual(t, m.R1, m2.R1, "the penalty was taken again at step 4")
	require.NotEqual(t, before, dParams(lazy))
}

// R1 refuses a D with batch norm, naming the flag that removes it.
func TestGANR1RefusesBatchNorm(t *testing.T) {
	d := newTestDevice(t)
	data, err := d.UploadData(randomData(1, 10, 3, 16), 10, 3, 16)
	require.NoError(t, err)
	defer data.Release()
	ad := DefaultAdam()
	_, err = d.NewGAN(GANConfig{Model: DCGAN{Size: 16, NZ: 8, NGF: 4, NDF: 4, Channels: 3}, Batch: 4, AdamD: ad, AdamG: ad, R1: 1}, data)
	require.ErrorContains(t, err, "-d-norm none")
}

// A conditional model needs a data set with as many classes, and draws
// its fake classes from the data's; DiffAugment changes what D sees and
// gives G a gradient through it.
func TestGANConditionalAugmented(t *testing.T) {
	d := newTestDevice(t)
	model := DCGAN{Size: 16, NZ: 8, NGF: 4, NDF: 4, Channels: 3, Classes: 3, ClassDim: 2}
	data, err := d.UploadData(randomData(1, 10, 3, 16), 10, 3, 16)
	require.NoError(t, err)
	defer data.Release()
	ad := DefaultAdam()
	_, err = d.NewGAN(GANConfig{Model: model, Batch: 4, AdamD: ad, AdamG: ad}, data)
	require.ErrorContains(t, err, "conditional on 3 classes; the data set has labels of 0")

	require.NoError(t, data.SetLabels([]int32{0, 1, 2, 0, 1, 2, 0, 1, 2, 0}, 3))
	aug := Augment{Color: true, Translation: true, Cutout: true, Flip: true}
	g := recipeGAN(t, d, data, model, func(c *GANConfig) { c.Augment = aug })
	for range 3 {
		require.NoError(t, g.Step())
		m, err := g.ReadMetrics()
		require.NoError(t, err)
		require.True(t, m.Finite(), "%+v", m)
	}
	real, fake := g.Labels()
	for _, l := range []*Tensor{real, fake} {
		v := download(t, l)
		for row := range 4 {
			sum := float32(0)
			for _, x := range v[row*3 : row*3+3] {
				require.True(t, x == 0 || x == 1)
				sum += x
			}
			require.Equal(t, float32(1), sum, "one-hot row %d", row)
		}
	}
	require.NotEqual(t, download(t, g.RealBatch()), download(t, g.augReal), "D saw the augmented batch")
	grads, err := g.G.Grads.Get()
	require.NoError(t, err)
	for name, v := range grads {
		nonzero := false
		for _, x := range v {
			nonzero = nonzero || x != 0
		}
		require.True(t, nonzero, "G's gradient %s is zero: nothing came back through the augmentation", name)
	}
}
