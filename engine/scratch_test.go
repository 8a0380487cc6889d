package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScratchReuse records convolutions whose padded inputs and packed
// weights share the recording's scratch buffers (small, larger, small
// again, so one buffer grows and is then reused) and checks every output
// bit for bit against the same op recorded alone. On CPU devices, where
// the pads and packs run, it also checks that the six intermediates took
// four buffers: one pad buffer and one pack buffer, each grown once.
func TestScratchReuse(t *testing.T) {
	d := newTestDevice(t)
	shapes := []convShape{
		{2, 3, 8, 8, 4, 4, 4, 2, 1},
		{3, 5, 12, 12, 6, 4, 4, 2, 1},
		{2, 3, 8, 8, 4, 4, 4, 2, 1},
	}
	type op struct {
		out    *Tensor
		record func(r *Recorder) error
	}
	var ops []op
	for i, s := range shapes {
		oh, ow := s.out()
		p := ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P}
		rng := newRand(uint64(i + 1))
		x := tensorOf(t, d, randSlice(rng, s.N*s.Cin*s.H*s.W), s.N, s.Cin, s.H, s.W)
		w := tensorOf(t, d, randSlice(rng, s.Cout*s.Cin*s.KH*s.KW), s.Cout, s.Cin, s.KH, s.KW)
		y := zeros(t, d, s.N, s.Cout, oh, ow)
		ops = append(ops, op{y, func(r *Recorder) error { return r.Conv2D(y, x, w, p) }})
		// The transposed convolution maps y's shape back to x's through
		// packed weights.
		dyv := tensorOf(t, d, randSlice(rng, s.N*s.Cout*oh*ow), s.N, s.Cout, oh, ow)
		xt := zeros(t, d, s.N, s.Cin, s.H, s.W)
		ops = append(ops, op{xt, func(r *Recorder) error { return r.ConvTranspose2D(xt, dyv, w, p) }})
	}
	want := make([][]float32, len(ops))
	for i, o := range ops {
		run(t, d, o.record)
		want[i] = download(t, o.out)
		require.NoError(t, o.out.Upload(make([]float32, o.out.Len())))
	}

	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	for _, o := range ops {
		require.NoError(t, o.record(r))
	}
	require.NoError(t, r.Submit())
	for i, o := range ops {
		require.Equal(t, want[i], download(t, o.out), "op %d in a shared recording", i)
	}
	if d.class == ClassCPU && !forceUnpackedBwd {
		require.Len(t, r.scratchBufs.bufs, 4, "scratch buffers for three pads and three packs")
	}
}

// A GAN's step recordings (the step, the R1 step) share one scratch
// buffer a role, sized for the role's largest request, and the sampler
// gets the same: less memory than buffers grown as the recording asked,
// also while sizing them, with training bit for bit the same.
func TestScratchPlanned(t *testing.T) {
	d := newTestDevice(t)
	data, err := d.UploadData(randomData(1, 10, 3, 32), 10, 3, 32)
	require.NoError(t, err)
	defer data.Release()
	type run struct {
		params   []map[string][]float32
		bytes    uint64
		outgrown [2]bool // the steps', the sampler's
	}
	train := func(growing bool) run {
		defer func(v bool) { forceGrowingScratch = v }(forceGrowingScratch)
		forceGrowingScratch = growing
		ad := DefaultAdam()
		ad.Beta1 = 0.5
		cfg := GANConfig{Model: DCGAN{Size: 32, NZ: 8, NGF: 8, NDF: 8, Channels: 3, NoDNorm: true}, Batch: 4, Seed: 5,
			AdamD: ad, AdamG: ad, R1: 0.5, R1Every: 2}
		before := d.MemoryStats().Requested
		g, err := d.NewGAN(cfg, data)
		require.NoError(t, err)
		defer g.Release()
		s, err := g.NewSampler(6, false, true)
		require.NoError(t, err)
		defer s.Release()
		r := run{bytes: d.MemoryStats().Requested - before}
		r.outgrown = [2]bool{outgrown(g.scratch), outgrown(s.rec.scratchBufs)}
		if !growing {
			for _, set := range []*scratchSet{g.scratch, s.rec.scratchBufs} {
				need := 0
				for _, n := range set.need {
					need += n
				}
				require.Equal(t, need, set.floats(), "one buffer a role, of its largest request")
				require.Equal(t, need, set.peak, "never more than one buffer a role, even while sizing")
			}
		}
		require.NoError(t, g.Init(3))
		for range 3 { // with R1, without, with
			require.NoError(t, g.Step())
		}
		for _, set := range []*ParamSet{g.G.Params, g.D.Params, g.G.Stats} { // D has no statistics
			v, err := set.Get()
			require.NoError(t, err)
			r.params = append(r.params, v)
		}
		return r
	}
	grown, planned := train(true), train(false)
	require.Equal(t, grown.params, planned.params)
	require.Equal(t, [2]bool{false, false}, planned.outgrown)
	if d.class == ClassCPU { // where convolutions pad their inputs
		require.Equal(t, [2]bool{true, true}, grown.outgrown, "the test's recordings should outgrow buffers")
		require.Less(t, planned.bytes, grown.bytes)
	}
	t.Logf("GAN and sampler: %d bytes with grown scratch, %d planned", grown.bytes, planned.bytes)
}

// outgrown reports whether a role of s has needed more than one buffer.
func outgrown(s *scratchSet) bool {
	roles := 0
	for _, b := range s.cur {
		if b != nil {
			roles++
		}
	}
	return len(s.bufs) > roles
}
