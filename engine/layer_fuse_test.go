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
	// Forward: the activations after linear layers (1, 3, 8, 10); the
	// one after the batch norm is the batch norm's. Backward: those with
	// a linear layer after them (1, 3, 8).
	want := map[int][2]bool{1: {true, true}, 3: {true, true}, 6: {true, true}, 8: {true, true}, 10: {true, false}}
	fused := actFusionRun(t, d, layers(), []int{6}, &forceNoLinearActFusion, false, want)
	separate := actFusionRun(t, d, layers(), []int{6}, &forceNoLinearActFusion, true, want)
	for name, want := range separate {
		require.Equal(t, want, fused[name], "%s differs between the fused and separate kernels", name)
	}
}

// Convolutions do the in-place activations' work as linear layers do, in
// every path their forward and backward-data take: padded and general
// forwards, packed backward-data with and without quad loads, transposed
// convolutions both ways, a kernel covering its input (a plain GEMM), and
// inside spectral norm.
func TestConvActFusion(t *testing.T) {
	d := newTestDevice(t)
	layers := func() Layer {
		return NewSequential(
			NewConv2d(3, 4, 4, 2, 1, 0.2), LeakyReLU(0.2), // [4,8,8]
			NewConv2d(4, 6, 4, 2, 1, 0.2), Tanh(), // [6,4,4]
			ConvTranspose2d(6, 4, 4, 2, 1, 0.2), NewBatchNorm(4, 0.1), ReLU(), // [4,8,8]
			ConvTranspose2d(4, 5, 4, 2, 1, 0.2), Sigmoid(), // [5,16,16]
			NewConv2d(5, 3, 3, 1, 1, 0.2), LeakyReLU(0.1), // [3,16,16]
			SpectralNorm(NewConv2d(3, 2, 16, 1, 0, 0.2)), Tanh()) // [2,1,1]
	}
	// Forward: every activation after a convolution; the one after the
	// batch norm is the batch norm's. Backward: all but the last.
	want := map[int][2]bool{1: {true, true}, 3: {true, true}, 6: {true, true}, 8: {true, true}, 10: {true, true}, 12: {true, false}}
	fused := actFusionRun(t, d, layers(), []int{3, 16, 16}, &forceNoConvActFusion, false, want)
	separate := actFusionRun(t, d, layers(), []int{3, 16, 16}, &forceNoConvActFusion, true, want)
	// The packed backward-data (CPU devices) runs the derivative as a pass
	// of its own unless forced into its epilogue.
	forceFusedPackedDerivative = true
	inEpilogue := actFusionRun(t, d, layers(), []int{3, 16, 16}, &forceNoConvActFusion, false, want)
	forceFusedPackedDerivative = false
	for name, want := range separate {
		require.Equal(t, want, fused[name], "%s differs between the fused and separate kernels", name)
		require.Equal(t, want, inEpilogue[name], "%s differs with the derivative in the packed backward-data's epilogue", name)
	}
}

// actFusionRun binds l for batch 7 with the fusion switch *force set to
// noFusion, records a training forward and backward and returns every
// result by name, after checking which activations fused (want; only the
// batch norm's, index 6, with noFusion).
func actFusionRun(t *testing.T, d *Device, l Layer, in []int, force *bool, noFusion bool, want map[int][2]bool) map[string][]float32 {
	t.Helper()
	*force = noFusion
	defer func() { *force = false }()
	l.SetName("m")
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
	for i, w := range want {
		a := bs.layers[i].(*boundAct)
		if i != 6 && noFusion {
			w = [2]bool{}
		}
		require.Equal(t, w, [2]bool{a.fusedFwd, a.fusedBwd}, "layer %d fused (forward, backward)", i)
	}
	shape := append([]int{batch}, in...)
	x := tensorOf(t, d, randSlice(rng, prod(shape)), shape...)
	dx := zeros(t, d, shape...)
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
