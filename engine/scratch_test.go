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
		require.Len(t, r.work, 4, "scratch buffers for three pads and three packs")
	}
}
