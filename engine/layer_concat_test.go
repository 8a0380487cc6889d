package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// A small Inception-style block: names follow the parts' attributes, the
// branches land in their channel slices, and a nested concat (the E
// block's split branch) writes into its parent's buffer.
func TestConcatBlock(t *testing.T) {
	d := newTestDevice(t)
	const eps = 1e-3
	unit := func(attr string, in, out, k, p int) Part {
		return Part{attr, NewBasicConv2d(in, out, k, k, 1, 1, p, p, eps)}
	}
	block := NewConcat(
		NewChain(unit("b1", 3, 2, 1, 0)),
		NewChain(unit("b2_1", 3, 4, 1, 0), Part{"", NewConcat(
			NewChain(unit("b2_2a", 4, 1, 3, 1)),
			NewChain(unit("b2_2b", 4, 2, 1, 0)),
		)}),
		NewChain(Part{"", MaxPool2d(3, 1, 1)}),
	)
	net, err := NewNet("T", "", NewChain(Part{"Mixed", block}), []int{3, 5, 5})
	require.NoError(t, err)
	require.Equal(t, []int{2 + 3 + 3, 5, 5}, net.Out)
	var names []string
	for _, p := range net.Params {
		names = append(names, p.Name)
	}
	require.Equal(t, []string{
		"Mixed.b1.conv.weight", "Mixed.b1.bn.weight", "Mixed.b1.bn.bias",
		"Mixed.b2_1.conv.weight", "Mixed.b2_1.bn.weight", "Mixed.b2_1.bn.bias",
		"Mixed.b2_2a.conv.weight", "Mixed.b2_2a.bn.weight", "Mixed.b2_2a.bn.bias",
		"Mixed.b2_2b.conv.weight", "Mixed.b2_2b.bn.weight", "Mixed.b2_2b.bn.bias",
	}, names)

	rng := newRand(4)
	params, stats := net.Init(newRand(5))
	for _, m := range []map[string][]float32{params, stats} {
		for k, v := range m {
			for i := range v {
				if k[len(k)-3:] == "var" {
					v[i] = float32(0.5 + rng.Float64())
				} else {
					v[i] = float32(rng.Float64() - 0.5)
				}
			}
		}
	}
	const n = 2
	xv := randSlice(rng, n*3*5*5)

	// The float64 reference, unit by unit, with refFused's channel slices.
	unitRef := func(name string, in []float32, cin, cout, k, p, c0, ctot int, into []float64) []float64 {
		c := fusedCase{n, cin, 5, 5, cout, k, k, 1, 1, p, p, c0, ctot, true, true}
		prev := make([]float32, len(into))
		for i, v := range into {
			prev[i] = float32(v)
		}
		return refFused(c, in, params[name+".conv.weight"], params[name+".bn.weight"], params[name+".bn.bias"],
			stats[name+".bn.running_mean"], stats[name+".bn.running_var"], prev, eps)
	}
	f32 := func(v []float64) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out
	}
	want := make([]float64, n*8*25)
	want = unitRef("Mixed.b1", xv, 3, 2, 1, 0, 0, 8, want)
	mid := f32(unitRef("Mixed.b2_1", xv, 3, 4, 1, 0, 0, 4, make([]float64, n*4*25)))
	want = unitRef("Mixed.b2_2a", mid, 4, 1, 3, 1, 2, 8, want)
	want = unitRef("Mixed.b2_2b", mid, 4, 2, 1, 0, 3, 8, want)
	for b := range n {
		for c := range 3 {
			for y := range 5 {
				for x := range 5 {
					m := math.Inf(-1)
					for dy := -1; dy <= 1; dy++ {
						for dx := -1; dx <= 1; dx++ {
							if yy, xx := y+dy, x+dx; yy >= 0 && yy < 5 && xx >= 0 && xx < 5 {
								m = max(m, float64(xv[((b*3+c)*5+yy)*5+xx]))
							}
						}
					}
					want[((b*8+5+c)*5+y)*5+x] = m
				}
			}
		}
	}

	ps, err := d.NewParamSet(net.Params)
	require.NoError(t, err)
	defer ps.Release()
	ss, err := d.NewParamSet(net.Stats)
	require.NoError(t, err)
	defer ss.Release()
	require.NoError(t, ps.Set(params))
	require.NoError(t, ss.Set(stats))
	b, err := net.Bind(d, n, keeper(t))
	require.NoError(t, err)
	x := tensorOf(t, d, xv, n, 3, 5, 5)
	run(t, d, func(r *Recorder) error {
		b.Forward(r, &Pass{Params: ps, Stats: ss}, x)
		return r.Err()
	})
	assertClose(t, "block", want, download(t, b.Out().X), gemmRtol, gemmAtol)

	// Forward only: a backward pass is an error, not a wrong gradient.
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	b.Backward(r, &Pass{Params: ps, Stats: ss}, x, nil)
	require.ErrorContains(t, r.Err(), "no backward pass")
	r2, err := d.Record()
	require.NoError(t, err)
	defer r2.Release()
	b.Forward(r2, &Pass{Params: ps, Stats: ss, Train: true}, x)
	require.ErrorContains(t, r2.Err(), "inference mode only")
}
