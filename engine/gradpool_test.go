package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A chain's layers alternate between the two buffers, in-place layers
// keep their input's, a network's first layer avoids the gradient its
// backward writes, and a gradient that does not fit gets a tensor of its
// own.
func TestGradPoolSlots(t *testing.T) {
	d := newTestDevice(t)
	keep := keeper(t)
	bufs, err := newGradBuffers(d, 64, keep)
	require.NoError(t, err)
	input := zeros(t, d, 4, 4)
	net := NewSequential(NewLinear(2, 8), ReLU(), NewLinear(8, 16), NewLinear(16, 4), Tanh())
	n, err := NewNet("D", "main", net, []int{2})
	require.NoError(t, err)
	require.Equal(t, 64, maxGradFloats(n, 4))
	b, err := n.bindPooled(d, 4, nil, &gradPool{bufs: bufs, input: input}, keep)
	require.NoError(t, err)
	layers := b.(*boundSequential).layers
	grad := func(i int) *Tensor { return layers[i].Out().DX }
	in := func(t *Tensor, slot int) bool { return t.shares(bufs[slot]) }
	require.True(t, in(grad(0), 0), "first layer: input gradient outside the pool")
	require.Same(t, grad(0), grad(1), "in place")
	require.True(t, in(grad(2), 1))
	require.True(t, in(grad(3), 0))
	require.Same(t, grad(3), grad(4))

	// D's first layer writes G's output gradient, which is in buffer 0.
	gOut, err := bufs[0].View(0, 4, 2)
	require.NoError(t, err)
	b, err = n.bindPooled(d, 4, nil, &gradPool{bufs: bufs, input: gOut}, keep)
	require.NoError(t, err)
	require.True(t, in(b.(*boundSequential).layers[0].Out().DX, 1))

	// Batch 8 needs 128 floats for the third layer's gradient.
	b, err = n.bindPooled(d, 8, nil, &gradPool{bufs: bufs}, keep)
	require.NoError(t, err)
	layers = b.(*boundSequential).layers
	require.True(t, in(layers[0].Out().DX, 0))
	require.False(t, in(layers[2].Out().DX, 0) || in(layers[2].Out().DX, 1), "does not fit: its own")
	require.True(t, in(layers[3].Out().DX, 0))
}

// Training with shared gradient buffers is bit-identical to training with
// a buffer per layer, for every model and recipe whose passes could meet
// in a buffer, and needs less memory.
func TestGradSharing(t *testing.T) {
	d := newTestDevice(t)
	data, err := d.UploadData(randomData(1, 10, 3, 16), 10, 3, 16)
	require.NoError(t, err)
	defer data.Release()
	labelled, err := d.UploadData(randomData(2, 10, 3, 16), 10, 3, 16)
	require.NoError(t, err)
	defer labelled.Release()
	require.NoError(t, labelled.SetLabels([]int32{0, 1, 2, 0, 1, 2, 0, 1, 2, 0}, 3))
	hinge, err := ParseLoss("hinge", 1)
	require.NoError(t, err)
	small := DCGAN{Size: 16, NZ: 8, NGF: 4, NDF: 4, Channels: 3}
	snModel := small
	snModel.NoDNorm, snModel.SN, snModel.SNG = true, true, true
	cond := small
	cond.Classes, cond.ClassDim = 3, 2

	type run struct {
		params  []map[string][]float32
		bytes   uint64
		dShares bool // a gradient of D's in one of G's buffers
	}
	train := func(t *testing.T, own bool, newGAN func() (*GAN, error)) run {
		defer func(v bool) { forceOwnGradients = v }(forceOwnGradients)
		forceOwnGradients = own
		before := d.MemoryStats().Requested
		g, err := newGAN()
		require.NoError(t, err)
		defer g.Release()
		bytes := d.MemoryStats().Requested - before
		require.NoError(t, g.Init(3))
		for range 3 {
			require.NoError(t, g.Step())
		}
		var r run
		for _, s := range []*ParamSet{g.G.Params, g.D.Params, g.G.Stats, g.D.Stats} {
			if s == nil { // a network without running statistics
				r.params = append(r.params, nil)
				continue
			}
			v, err := s.Get()
			require.NoError(t, err)
			r.params = append(r.params, v)
		}
		r.bytes = bytes
		r.dShares = sharesAny(grads(g.dBound), grads(g.gBound))
		return r
	}
	dcgan := func(model DCGAN, data *DeviceData, edit func(*GANConfig)) func() (*GAN, error) {
		return func() (*GAN, error) {
			ad := DefaultAdam()
			ad.LR, ad.Beta1 = 2e-3, 0.5
			cfg := GANConfig{Model: model, Batch: 4, Seed: 7, AdamD: ad, AdamG: ad}
			if edit != nil {
				edit(&cfg)
			}
			return d.NewGAN(cfg, data)
		}
	}
	toy := func(cfg ToyConfig) func() (*GAN, error) {
		return func() (*GAN, error) {
			g, err := d.NewToyGAN(cfg)
			if err != nil {
				return nil, err
			}
			return g.GAN, nil
		}
	}
	for _, c := range []struct {
		name   string
		newGAN func() (*GAN, error)
		shares bool // D's gradients too (not with R1)
	}{
		{"dcgan", dcgan(small, data, nil), true},
		{"dcgan two D steps", dcgan(small, data, func(c *GANConfig) { c.DSteps = 2 }), true},
		{"spectral hinge", dcgan(snModel, data, func(c *GANConfig) { c.Loss = hinge }), true},
		{"r1", dcgan(snModel, data, func(c *GANConfig) { c.R1 = 0.5 }), false},
		{"conditional augmented", dcgan(cond, labelled, func(c *GANConfig) {
			c.Augment = Augment{Color: true, Translation: true, Cutout: true, Flip: true}
		}), true},
		{"toy small packed", toy(smallToy(8, 16, 32, 2)), true},
		{"toy large", toy(func() ToyConfig { c := largeToy(); c.Batch = 32; return c }()), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			own := train(t, true, c.newGAN)
			shared := train(t, false, c.newGAN)
			for i := range own.params {
				require.Equal(t, own.params[i], shared.params[i], "set %d (G, D params; G, D stats)", i)
			}
			require.False(t, own.dShares)
			require.Equal(t, c.shares, shared.dShares, "D's gradients in G's buffers")
			require.LessOrEqual(t, shared.bytes, own.bytes)
			if c.shares {
				require.Less(t, shared.bytes, own.bytes, "sharing saves memory")
			}
			t.Logf("%d -> %d bytes", own.bytes, shared.bytes)
		})
	}
}

// grads lists the output gradients of b's layers.
func grads(b Bound) []*Tensor {
	var out []*Tensor
	if s, ok := b.(*boundSequential); ok {
		for _, l := range s.layers {
			out = append(out, grads(l)...)
		}
		return out
	}
	return []*Tensor{b.Out().DX}
}

// sharesAny reports whether a tensor of xs overlaps one of ys.
func sharesAny(xs, ys []*Tensor) bool {
	for _, x := range xs {
		for _, y := range ys {
			if x.shares(y) {
				return true
			}
		}
	}
	return false
}

// memoryNeed counts the two shared buffers instead of a gradient per
// layer: for the example's DCGAN-64 at batch 64, the per-sample gradients
// (G 258,048 floats, D 180,225) less two buffers of the largest (64x32x32)
// are 75 MiB, what BenchmarkGANStep's tensor memory fell by.
func TestMemoryNeedSharedGradients(t *testing.T) {
	m := DCGAN{Size: 64, NZ: 100, NGF: 64, NDF: 64, Channels: 3}
	G, err := m.Generator()
	require.NoError(t, err)
	D, err := m.Discriminator()
	require.NoError(t, err)
	cfg := GANConfig{G: G, D: D, Batch: 64}
	shared := memoryNeed(cfg)
	defer func(v bool) { forceOwnGradients = v }(forceOwnGradients)
	forceOwnGradients = true
	own := memoryNeed(cfg)
	require.Equal(t, uint64(4*(64*(258048+180225)-2*64*65536)), own-shared)

	cfg.R1 = 1 // D keeps its own gradients: only G's are shared
	own = memoryNeed(cfg)
	forceOwnGradients = false
	require.Equal(t, uint64(4*(64*258048-2*64*65536)), own-memoryNeed(cfg))
}
