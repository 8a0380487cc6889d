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
	P, S, G := paramSets(t, d, params, stats, pv, sv)
	b, err := l.Bind(d, batch, Port{}, keeper(t))
	require.NoError(t, err)
	bs := b.(*boundSequential)
	require.Equal(t, !noFusion, bs.layers[1].(*boundAct).fusedFwd, "activation fused")
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

// TestLinearActFusion checks that linear layers with in-place activations
// between them, whose GEMM epilogues do the activations' forward and
// backward work, give bit for bit what separate kernels give: output,
// input gradient and parameter gradients. The activation after a batch
// norm stays the batch norm's (ReLU), and one without a linear layer after
// it keeps its own backward (the last).
func TestLinearActFusion(t *testing.T) {
	d := newTestDevice(t)
	layers := func() Layer {
		return NewSequential(NewLinear(6, 8), Tanh(), NewLinear(8, 12), LeakyReLU(0.2), NewLinear(12, 8), NewBatchNorm(8, 0.1), ReLU(),
			NewLinear(8, 4), Sigmoid(), NewLinear(4, 5), Tanh())
	}
	fused := linearActRun(t, d, layers(), false)
	separate := linearActRun(t, d, layers(), true)
	for name, want := range separate {
		require.Equal(t, want, fused[name], "%s differs between the fused and separate kernels", name)
	}
}

// linearActRun binds l for batch 7, records a training forward and
// backward and returns every result by name, after checking which
// activations fused (none with noFusion).
func linearActRun(t *testing.T, d *Device, l Layer, noFusion bool) map[string][]float32 {
	t.Helper()
	forceNoLinearActFusion = noFusion
	defer func() { forceNoLinearActFusion = false }()
	l.SetName("m")
	in := []int{6}
	_, params, stats, err := l.Declare(in)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(13, 14))
	pv, sv := map[string][]float32{}, map[string][]float32{}
	l.Init(rng, pv, sv)
	P, S, G := paramSets(t, d, params, stats, pv, sv)
	const batch = 7
	b, err := l.Bind(d, batch, Port{}, keeper(t))
	require.NoError(t, err)
	bs := b.(*boundSequential)
	// Forward: the activations after linear layers (1, 3, 8, 10); the
	// one after the batch norm is the batch norm's. Backward: those with
	// a linear layer after them (1, 3, 8).
	for i, want := range map[int][2]bool{1: {true, true}, 3: {true, true}, 6: {true, true}, 8: {true, true}, 10: {true, false}} {
		a := bs.layers[i].(*boundAct)
		if i != 6 && noFusion {
			want = [2]bool{}
		}
		require.Equal(t, want, [2]bool{a.fusedFwd, a.fusedBwd}, "layer %d fused (forward, backward)", i)
	}
	x := tensorOf(t, d, randSlice(rng, batch*in[0]), batch, in[0])
	dx := zeros(t, d, batch, in[0])
	train := &Pass{Params: P, Stats: S, Grads: G, Train: true, Momentum: 0.1}
	out := map[string][]float32{}
	run(t, d, func(r *Recorder) error { b.Forward(r, train, x); return r.Err() })
	out["y"] = download(t, b.Out().X)
	require.NoError(t, b.Out().DX.Upload(randSlice(rng, b.Out().DX.Len())))
	run(t, d, func(r *Recorder) error { b.Backward(r, train, x, dx); return r.Err() })
	out["dx"] = download(t, dx)
	grads, err := G.Get()
	require.NoError(t, err)
	for name, v := range grads {
		out["grad "+name] = v
	}
	return out
}

// paramSets uploads a layer's parameters and statistics and a zeroed set
// for its gradients.
func paramSets(t *testing.T, d *Device, params, stats []ParamSpec, pv, sv map[string][]float32) (P, S, G *ParamSet) {
	t.Helper()
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
	return set(params, pv), set(stats, sv), set(params, zero)
}
