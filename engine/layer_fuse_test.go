package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBNActFusion checks that a batch norm followed by an in-place ReLU or
// LeakyReLU, which bind as one fused pair of kernels, gives bit for bit
// what the two layers give in their own kernels: the output in training
// and inference mode, the running statistics, the input gradient and the
// parameter gradients. The shapes take each batch-norm kernel variant: a
// lane per channel ([N,C]), odd planes (one float per load) and even ones
// (float pairs).
func TestBNActFusion(t *testing.T) {
	d := newTestDevice(t)
	for _, c := range []struct {
		name string
		act  func() *Activation
		in   []int
	}{
		{"1d relu", ReLU, []int{5}},
		{"odd planes leaky relu", func() *Activation { return LeakyReLU(0.2) }, []int{3, 3, 3}},
		{"even planes relu", ReLU, []int{4, 4, 6}},
		{"even planes leaky relu", func() *Activation { return LeakyReLU(0.2) }, []int{4, 4, 6}},
	} {
		t.Run(c.name, func(t *testing.T) {
			const batch = 6
			// Half the pre-activations negative, so the mask matters.
			fused := bnActRun(t, d, c.act(), c.in, batch, false)
			separate := bnActRun(t, d, c.act(), c.in, batch, true)
			for name, want := range separate {
				require.Equal(t, want, fused[name], "%s differs between the fused and separate kernels", name)
			}
		})
	}
}

// bnActRun binds Sequential(BatchNorm, act), records a training forward,
// backward and inference forward, and returns every result by name. It
// fails unless the pair fused exactly when noFusion is false.
func bnActRun(t *testing.T, d *Device, act *Activation, in []int, batch int, noFusion bool) map[string][]float32 {
	t.Helper()
	forceNoBNActFusion = noFusion
	defer func() { forceNoBNActFusion = false }()
	l := NewSequential(NewBatchNorm(in[0], 0.5), act)
	l.SetName("m")
	_, params, stats, err := l.Declare(in)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(11, 12))
	pv, sv := map[string][]float32{}, map[string][]float32{}
	l.Init(rng, pv, sv)
	for i := range pv["m.0.bias"] {
		pv["m.0.bias"][i] = float32(0.3 * rng.NormFloat64())
	}
	set := func(specs []ParamSpec, vals map[string][]float32) *ParamSet {
		ps, err := d.NewParamSet(specs)
		require.NoError(t, err)
		t.Cleanup(ps.Release)
		require.NoError(t, ps.Set(vals))
		return ps
	}
	zero := map[string][]float32{}
	for _, p := range params {
		zero[p.Name] = make([]float32, prod(p.Shape))
	}
	P, S, G := set(params, pv), set(stats, sv), set(params, zero)
	b, err := l.Bind(d, batch, Port{}, keeper(t))
	require.NoError(t, err)
	bs := b.(*boundSequential)
	require.Equal(t, !noFusion, bs.layers[1].(*boundAct).fused, "activation fused")
	require.Equal(t, !noFusion, bs.layers[0].(*boundBN).fused != nil, "batch norm fusing")

	shape := append([]int{batch}, in...)
	n := prod(shape)
	x := tensorOf(t, d, randSlice(rng, n), shape...)
	dx := zeros(t, d, shape...)
	train := &Pass{Params: P, Stats: S, Grads: G, Train: true, Momentum: 0.1}
	out := map[string][]float32{}
	run(t, d, func(r *Recorder) error { b.Forward(r, train, x); return r.Err() })
	out["y"] = download(t, b.Out().X)
	require.NoError(t, b.Out().DX.Upload(randSlice(rng, n)))
	run(t, d, func(r *Recorder) error { b.Backward(r, train, x, dx); return r.Err() })
	out["dx"] = download(t, dx)
	grads, err := G.Get()
	require.NoError(t, err)
	st, err := S.Get()
	require.NoError(t, err)
	for name, v := range grads {
		out["grad "+name] = v
	}
	for name, v := range st {
		out[name] = v
	}
	run(t, d, func(r *Recorder) error { b.Forward(r, &Pass{Params: P, Stats: S}, x); return r.Err() })
	out["inference y"] = download(t, b.Out().X)
	return out
}
