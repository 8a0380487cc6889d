package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkLayer checks a layer's recorded backward pass against central
// finite differences of its own recorded forward pass, for the loss
// L = sum(y * g) with a random upstream gradient g: the input gradient and
// every parameter's gradient, at sampled entries, in training mode (batch
// statistics, running ones left alone). It also checks that a second
// backward pass with Pass.Accumulate adds the same gradients again. A new
// layer's test is one call of it.
func checkLayer(t *testing.T, l Layer, in []int, batch int) {
	t.Helper()
	d := newTestDevice(t)
	l.SetName("m")
	out, params, stats, err := l.Declare(in)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, uint64(len(params))))
	pv, sv := map[string][]float32{}, map[string][]float32{}
	l.Init(rng, pv, sv)
	for _, p := range params { // away from the initial values' symmetries (unit gammas, zero biases)
		for i := range pv[p.Name] {
			pv[p.Name][i] += float32(0.3 * rng.NormFloat64())
		}
	}
	set := func(specs []ParamSpec, vals map[string][]float32) *ParamSet {
		if len(specs) == 0 {
			return nil
		}
		ps, err := d.NewParamSet(specs)
		require.NoError(t, err)
		t.Cleanup(ps.Release)
		if vals != nil {
			require.NoError(t, ps.Set(vals))
		} else {
			require.NoError(t, ps.Flat.Upload(make([]float32, ps.Flat.Len())))
		}
		return ps
	}
	P, S, G := set(params, pv), set(stats, sv), set(params, nil)
	b, err := l.Bind(d, batch, Port{}, keeper(t))
	require.NoError(t, err)

	normal := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	xv := normal(batch * prod(in))
	gv := normal(batch * prod(out))
	x := tensorOf(t, d, xv, append([]int{batch}, in...)...)
	dx := zeros(t, d, append([]int{batch}, in...)...)
	pass := &Pass{Params: P, Stats: S, Grads: G, Train: true}
	loss := func() float64 {
		run(t, d, func(r *Recorder) error { b.Forward(r, pass, x); return r.Err() })
		var s float64
		for i, y := range download(t, b.Out().X) {
			s += float64(y) * float64(gv[i])
		}
		return s
	}
	loss()
	require.NoError(t, b.Out().DX.Upload(gv))
	run(t, d, func(r *Recorder) error { b.Backward(r, pass, x, dx); return r.Err() })
	gotDx := download(t, dx)
	var gotG map[string][]float32
	if G != nil {
		if gotG, err = G.Get(); err != nil {
			t.Fatal(err)
		}
	}

	// Central differences; a point where the one-sided slopes disagree sits
	// on a kink (ReLU at 0, a maxout tie) and is skipped.
	const h = 1e-2
	skipped, checked := 0, 0
	fd := func(perturb func(delta float32)) (float64, bool) {
		l0 := loss()
		perturb(h)
		lp := loss()
		perturb(-2 * h)
		lm := loss()
		perturb(h)
		right, left := (lp-l0)/h, (l0-lm)/h
		if math.Abs(right-left) > 0.05*(1+math.Abs(right)) {
			return 0, false
		}
		return (lp - lm) / (2 * h), true
	}
	compare := func(what string, want float64, got float32) {
		checked++
		require.InDelta(t, want, float64(got), 1e-2*(1+math.Abs(want)), "%s: finite difference %g, backward %g", what, want, got)
	}
	for _, i := range sampleIdx(rng, len(xv), 6) {
		want, ok := fd(func(delta float32) {
			xv[i] += delta
			require.NoError(t, x.Upload(xv))
		})
		if !ok {
			skipped++
			continue
		}
		compare(fmt.Sprintf("dx[%d]", i), want, gotDx[i])
	}
	for _, p := range params {
		for _, i := range sampleIdx(rng, len(pv[p.Name]), 4) {
			want, ok := fd(func(delta float32) {
				pv[p.Name][i] += delta
				require.NoError(t, P.Set(pv))
			})
			if !ok {
				skipped++
				continue
			}
			compare(fmt.Sprintf("%s[%d]", p.Name, i), want, gotG[p.Name][i])
		}
	}
	require.LessOrEqual(t, skipped, checked/4+1, "too many kinks: %d of %d points skipped", skipped, skipped+checked)

	// Accumulate adds the same gradients to those already there.
	if G != nil {
		loss()
		// An in-place activation's backward overwrote the upstream gradient
		// in the buffer it shares with the layer before it.
		require.NoError(t, b.Out().DX.Upload(gv))
		acc := *pass
		acc.Accumulate = true
		run(t, d, func(r *Recorder) error { b.Backward(r, &acc, x, dx); return r.Err() })
		twice, err := G.Get()
		require.NoError(t, err)
		for name, g := range gotG {
			for i := range g {
				require.InDelta(t, 2*g[i], twice[name][i], 1e-4*(1+math.Abs(float64(g[i]))), "%s[%d] after an accumulating backward", name, i)
			}
		}
	}
}

func TestLayers(t *testing.T) {
	for _, c := range []struct {
		name  string
		layer func() Layer
		in    []int
		batch int
	}{
		{"conv2d", func() Layer { return NewConv2d(3, 4, 4, 2, 1, 0.3) }, []int{3, 6, 6}, 2},
		{"conv2d 4x4 to 1x1", func() Layer { return NewConv2d(5, 1, 4, 1, 0, 0.3) }, []int{5, 4, 4}, 3},
		{"conv transpose", func() Layer { return ConvTranspose2d(4, 3, 4, 2, 1, 0.3) }, []int{4, 3, 3}, 2},
		{"conv transpose from 1x1", func() Layer { return ConvTranspose2d(6, 2, 4, 1, 0, 0.3) }, []int{6, 1, 1}, 2},
		{"linear", func() Layer { return NewLinear(7, 5) }, []int{7}, 3},
		{"batch norm 2d", func() Layer { return NewBatchNorm(3, 0.02) }, []int{3, 4, 4}, 4},
		{"batch norm 1d", func() Layer { return NewBatchNorm(5, 0) }, []int{5}, 6},
		{"relu", func() Layer { return ReLU() }, []int{3, 5}, 2},
		{"leaky relu", func() Layer { return LeakyReLU(0.2) }, []int{17}, 2},
		{"tanh", func() Layer { return Tanh() }, []int{9}, 3},
		{"sigmoid", func() Layer { return Sigmoid() }, []int{2, 3, 3}, 2},
		{"maxout", func() Layer { return NewMaxout(4, 3) }, []int{12}, 3},
		{"sequential (in-place activations)", func() Layer {
			return NewSequential(NewLinear(6, 8), NewBatchNorm(8, 0), ReLU(), NewLinear(8, 6), NewMaxout(2, 3), Tanh())
		}, []int{6}, 5},
		{"flatten between a convolution and a linear layer", func() Layer {
			return NewSequential(NewConv2d(2, 3, 4, 2, 1, 0.3), NewFlatten(), NewLinear(12, 2))
		}, []int{2, 4, 4}, 3},
		{"linear layers and the activations between them (fused epilogues)", func() Layer {
			return NewSequential(NewLinear(6, 8), Tanh(), NewLinear(8, 8), Sigmoid(), NewLinear(8, 5), LeakyReLU(0.2))
		}, []int{6}, 5},
		{"batch norm and relu on odd planes (fused)", func() Layer { return NewSequential(NewBatchNorm(3, 0.02), ReLU()) }, []int{3, 3, 3}, 4},
		{"batch norm and leaky relu on even planes (fused)", func() Layer { return NewSequential(NewBatchNorm(3, 0.02), LeakyReLU(0.2)) }, []int{3, 4, 4}, 4},
		{"sequential of convolutions", func() Layer {
			return NewSequential(NewConv2d(2, 4, 4, 2, 1, 0.3), NewBatchNorm(4, 0.02), LeakyReLU(0.2), NewConv2d(4, 1, 4, 1, 0, 0.3))
		}, []int{2, 8, 8}, 3},
	} {
		t.Run(c.name, func(t *testing.T) { checkLayer(t, c.layer(), c.in, c.batch) })
	}
}

func TestSequentialNames(t *testing.T) {
	n, err := NewNet("G", "main", NewSequential(NewLinear(3, 4), NewBatchNorm(4, 0.02), ReLU(),
		NewSequential(NewLinear(4, 2), Tanh())), []int{3})
	require.NoError(t, err)
	var names []string
	for _, p := range append(n.Params, n.Stats...) {
		names = append(names, p.Name)
	}
	require.Equal(t, []string{"main.0.weight", "main.0.bias", "main.1.weight", "main.1.bias", "main.3.0.weight", "main.3.0.bias",
		"main.1.running_mean", "main.1.running_var"}, names)
	require.Equal(t, []string{"main.1"}, n.BatchNorms())
}

func TestLayerShapeErrors(t *testing.T) {
	for _, c := range []struct {
		layer Layer
		in    []int
		want  string
	}{
		{NewConv2d(3, 4, 4, 2, 1, 0), []int{2, 8, 8}, "want [3 H H]"},
		{NewConv2d(3, 4, 4, 1, 0, 0), []int{3, 2, 2}, "too small"},
		{NewLinear(4, 2), []int{5}, "want [4]"},
		{NewBatchNorm(4, 0), []int{3, 2, 2}, "4 channels"},
		{NewMaxout(4, 3), []int{11}, "want [12]"},
	} {
		c.layer.SetName("m")
		_, _, _, err := c.layer.Declare(c.in)
		require.ErrorContains(t, err, c.want)
	}
}
