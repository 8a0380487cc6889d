package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// condRef is a conditional layer in float64 on the host: its output for
// inputs x, parameters and one-hot labels y ([batch, classes]), and, for
// the upstream gradient gy, the input and parameter gradients.
type condRef func(x []float64, params map[string][]float64, y, gy []float64) (out, dx []float64, grads map[string][]float64)

// Tolerances of checkCond: |got - want| <= condTol*(1 + |want|) against the
// float64 reference (float32 sums of up to 4096 terms), and
// condFDTol*(1 + |fd|) against central differences of the device forward
// with step condFDStep (both layers are linear in every input and
// parameter, so the differences are exact up to float32 rounding of the
// loss, about 1e-6*|L|/step; a network around them adds O(step^2)).
const (
	condTol    = 1e-4
	condFDTol  = 1e-2
	condFDStep = 5e-2
)

// maxErr is the largest |got - want| / (1 + |want|).
func maxErr(want []float64, got []float32) float64 {
	m := 0.0
	for i := range want {
		m = math.Max(m, math.Abs(float64(got[i])-want[i])/(1+math.Abs(want[i])))
	}
	return m
}

// checkCond checks a conditional layer's recorded forward and backward
// passes against ref on random inputs and labels: with and without weight
// gradients (Pass.Grads nil), with and without an input gradient, with
// Pass.Accumulate adding to the gradients there, and against central
// differences of its own forward pass. A pass without labels, or with
// labels of the wrong batch, must fail the recording, not panic. With ref
// nil (a network around a conditional layer) only the differences are
// checked.
func checkCond(t *testing.T, l Layer, in []int, batch, classes int, ref condRef) {
	t.Helper()
	d := newTestDevice(t)
	l.SetName("m")
	out, params, stats, err := l.Declare(in)
	require.NoError(t, err)
	require.Empty(t, stats)
	rng := rand.New(rand.NewPCG(11, uint64(batch*classes)))
	pv := map[string][]float32{}
	l.Init(rng, pv, nil)
	// Away from the small initial scales, so every term is exercised.
	for _, p := range params {
		for i := range pv[p.Name] {
			pv[p.Name][i] += float32(0.3 * rng.NormFloat64())
		}
	}
	P, err := d.NewParamSet(params)
	require.NoError(t, err)
	t.Cleanup(P.Release)
	require.NoError(t, P.Set(pv))
	G, err := d.NewParamSet(params)
	require.NoError(t, err)
	t.Cleanup(G.Release)
	b, err := l.Bind(d, batch, Port{}, keeper(t))
	require.NoError(t, err)

	normal := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	yv := make([]float32, batch*classes)
	for n := range batch {
		yv[n*classes+rng.IntN(classes)] = 1
	}
	xv, gv := normal(batch*prod(in)), normal(batch*prod(out))
	x := tensorOf(t, d, xv, append([]int{batch}, in...)...)
	y := tensorOf(t, d, yv, batch, classes)
	dx := zeros(t, d, append([]int{batch}, in...)...)

	pv64 := map[string][]float64{}
	for name, v := range pv {
		pv64[name] = to64(v)
	}
	var wantOut, wantDx []float64
	var wantG map[string][]float64
	if ref != nil {
		wantOut, wantDx, wantG = ref(to64(xv), pv64, to64(yv), to64(gv))
	}

	pass := &Pass{Params: P, Grads: G, Train: true, Labels: y}
	forward := func() []float32 {
		run(t, d, func(r *Recorder) error { b.Forward(r, pass, x); return r.Err() })
		return download(t, b.Out().X)
	}
	backward := func(p *Pass, dx *Tensor) {
		require.NoError(t, b.Out().DX.Upload(gv))
		run(t, d, func(r *Recorder) error { b.Backward(r, p, x, dx); return r.Err() })
	}
	grads := func() map[string][]float32 {
		g, err := G.Get()
		require.NoError(t, err)
		return g
	}
	scaled := func(v []float64, s float64) []float64 {
		out := make([]float64, len(v))
		for i := range v {
			out[i] = s * v[i]
		}
		return out
	}
	checkGrads := func(what string, scale float64) {
		got := grads()
		for _, p := range params {
			assertClose(t, what+" "+p.Name, scaled(wantG[p.Name], scale), got[p.Name], condTol, condTol)
			t.Logf("%s %s: max error %.2g", what, p.Name, maxErr(scaled(wantG[p.Name], scale), got[p.Name]))
		}
	}

	gotOut := forward()
	backward(pass, dx)
	if ref != nil {
		assertClose(t, "forward", wantOut, gotOut, condTol, condTol)
		t.Logf("forward: max error %.2g", maxErr(wantOut, gotOut))
		assertClose(t, "dx", wantDx, download(t, dx), condTol, condTol)
		t.Logf("dx: max error %.2g", maxErr(wantDx, download(t, dx)))
		checkGrads("grads", 1)

		acc := *pass
		acc.Accumulate = true
		backward(&acc, dx)
		checkGrads("accumulated grads", 2)

		noGrads := *pass
		noGrads.Grads = nil
		dx2 := zeros(t, d, append([]int{batch}, in...)...)
		backward(&noGrads, dx2)
		assertClose(t, "dx without weight gradients", wantDx, download(t, dx2), condTol, condTol)
		checkGrads("grads left alone by a pass without Grads", 2)

		backward(pass, nil)
		checkGrads("grads without dx", 1)
	}

	// Central differences of the device forward, L = sum(out * gy).
	loss := func() float64 {
		var s float64
		for i, o := range forward() {
			s += float64(o) * float64(gv[i])
		}
		return s
	}
	worstFD := 0.0
	defer func() { t.Logf("finite differences: max error %.2g", worstFD) }()
	fd := func(what string, got float32, perturb func(delta float32)) {
		perturb(condFDStep)
		lp := loss()
		perturb(-2 * condFDStep)
		lm := loss()
		perturb(condFDStep)
		want := (lp - lm) / (2 * condFDStep)
		worstFD = math.Max(worstFD, math.Abs(want-float64(got))/(1+math.Abs(want)))
		require.InDelta(t, want, float64(got), condFDTol*(1+math.Abs(want)), "%s: finite difference %g, backward %g", what, want, got)
	}
	gotDx, gotG := download(t, dx), grads()
	for _, i := range sampleIdx(rng, len(xv), 6) {
		fd(fmt.Sprintf("dx[%d]", i), gotDx[i], func(delta float32) {
			xv[i] += delta
			require.NoError(t, x.Upload(xv))
		})
	}
	for _, p := range params {
		for _, i := range sampleIdx(rng, len(pv[p.Name]), 4) {
			fd(fmt.Sprintf("%s[%d]", p.Name, i), gotG[p.Name][i], func(delta float32) {
				pv[p.Name][i] += delta
				require.NoError(t, P.Set(pv))
			})
		}
	}

	// Labels missing or of another batch: a recording error, not a panic.
	wrong := zeros(t, d, batch+1, classes)
	for _, labels := range []*Tensor{nil, wrong} {
		bad := *pass
		bad.Labels = labels
		for _, rec := range []func(r *Recorder){
			func(r *Recorder) { b.Forward(r, &bad, x) },
			func(r *Recorder) { b.Backward(r, &bad, x, dx) },
		} {
			err := d.Run(func(r *Recorder) error { rec(r); return r.Err() })
			require.Error(t, err)
			if labels == nil {
				require.ErrorContains(t, err, "Pass.Labels")
			} else {
				require.ErrorContains(t, err, "want one-hot")
			}
		}
	}
}

// embedRef is ClassEmbedding: out = [z, Y E], dz = gy[:, :nz],
// dE = Y^T gy[:, nz:].
func embedRef(nz, dim, classes int) condRef {
	return func(x []float64, params map[string][]float64, y, gy []float64) ([]float64, []float64, map[string][]float64) {
		e := params["m.weight"]
		batch := len(y) / classes
		w := nz + dim
		out, dx, de := make([]float64, batch*w), make([]float64, batch*nz), make([]float64, classes*dim)
		for n := range batch {
			for j := range nz {
				out[n*w+j] = x[n*nz+j]
				dx[n*nz+j] = gy[n*w+j]
			}
			for k := range classes {
				for j := range dim {
					out[n*w+nz+j] += y[n*classes+k] * e[k*dim+j]
					de[k*dim+j] += y[n*classes+k] * gy[n*w+nz+j]
				}
			}
		}
		return out, dx, map[string][]float64{"m.weight": de}
	}
}

func TestClassEmbedding(t *testing.T) {
	for _, c := range []struct {
		name                    string
		nz, dim, classes, batch int
		spatial                 bool
	}{
		{"odd [nz]", 7, 5, 3, 5, false},
		{"odd [nz,1,1]", 3, 9, 4, 7, true},
		{"one class, one dimension", 1, 1, 1, 2, true},
		{"DCGAN nz 100, 16 dims, 9 classes, batch 64", 100, 16, 9, 64, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := []int{c.nz}
			if c.spatial {
				in = []int{c.nz, 1, 1}
			}
			checkCond(t, ClassEmbedding(c.classes, c.dim), in, c.batch, c.classes, embedRef(c.nz, c.dim, c.classes))
		})
	}
}

// projRef is Projection over a final layer that is one dot product per
// image (a convolution whose kernel covers its input, or Linear(C, 1)):
// out[n] = w . h[n] (+ b) + sum_c (Y E)[n,c] sum_s h[n,c,s].
func projRef(c, s, classes int, bias bool) condRef {
	return func(x []float64, params map[string][]float64, y, gy []float64) ([]float64, []float64, map[string][]float64) {
		w, e := params["m.weight"], params["embed.weight"]
		batch := len(y) / classes
		f := c * s
		out, dx := make([]float64, batch), make([]float64, batch*f)
		dw, de := make([]float64, f), make([]float64, classes*c)
		db := 0.0
		for n := range batch {
			h := x[n*f : (n+1)*f]
			for i := range f {
				out[n] += w[i] * h[i]
				dw[i] += gy[n] * h[i]
			}
			if bias {
				out[n] += params["m.bias"][0]
				db += gy[n]
			}
			for ch := range c {
				ye, pooled := 0.0, 0.0
				for k := range classes {
					ye += y[n*classes+k] * e[k*c+ch]
				}
				for j := range s {
					pooled += h[ch*s+j]
				}
				out[n] += ye * pooled
				for j := range s {
					dx[n*f+ch*s+j] = gy[n] * (w[ch*s+j] + ye)
				}
				for k := range classes {
					de[k*c+ch] += y[n*classes+k] * gy[n] * pooled
				}
			}
		}
		grads := map[string][]float64{"m.weight": dw, "embed.weight": de}
		if bias {
			grads["m.bias"] = []float64{db}
		}
		return out, dx, grads
	}
}

func TestProjection(t *testing.T) {
	for _, c := range []struct {
		name           string
		final          func() Layer
		in             []int
		classes, batch int
		bias           bool
	}{
		{"odd: conv 3x3 on [5,3,3]", func() Layer { return NewConv2d(5, 1, 3, 1, 0, 0.02) }, []int{5, 3, 3}, 3, 7, false},
		{"odd: linear on [11]", func() Layer { return NewLinear(11, 1) }, []int{11}, 4, 5, true},
		{"one class", func() Layer { return NewConv2d(2, 1, 2, 1, 0, 0.02) }, []int{2, 2, 2}, 1, 3, false},
		{"more channels than a workgroup has lanes", func() Layer { return NewConv2d(67, 1, 1, 1, 0, 0.02) }, []int{67, 1, 1}, 2, 3, false},
		{"DCGAN: conv 4x4 on [256,4,4], 9 classes, batch 64", func() Layer { return NewConv2d(256, 1, 4, 1, 0, 0.02) }, []int{256, 4, 4}, 9, 64, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := prod(c.in[1:])
			checkCond(t, Projection(c.final(), c.classes, "embed.weight"), c.in, c.batch, c.classes, projRef(c.in[0], s, c.classes, c.bias))
		})
	}
}

// TestConditionalNets puts the layers where the conditional DCGAN will:
// ClassEmbedding first in G, Projection over D's last convolution after
// an in-place activation. The state keeps nn.Sequential's names (the
// embedding is a module of its own, E of the projection has the name it
// is given), and the whole network's gradients match finite differences.
func TestConditionalNets(t *testing.T) {
	g := NewSequential(ClassEmbedding(3, 4), ConvTranspose2d(5+4, 2, 4, 1, 0, 0.3), Tanh())
	gNet, err := NewNet("G", "main", g, []int{5, 1, 1})
	require.NoError(t, err)
	require.Equal(t, []ParamSpec{{"main.0.weight", []int{3, 4}}, {"main.1.weight", []int{9, 2, 4, 4}}}, gNet.Params)
	require.Equal(t, []int{2, 4, 4}, gNet.Out)

	dl := NewSequential(NewConv2d(2, 6, 4, 2, 1, 0.3), Tanh(), Projection(NewConv2d(6, 1, 4, 1, 0, 0.3), 3, "embed.weight"))
	dNet, err := NewNet("D", "main", dl, []int{2, 8, 8})
	require.NoError(t, err)
	require.Equal(t, []ParamSpec{{"main.0.weight", []int{6, 2, 4, 4}}, {"main.2.weight", []int{1, 6, 4, 4}}, {"embed.weight", []int{3, 6}}}, dNet.Params)
	require.Equal(t, []int{1, 1, 1}, dNet.Out)
	require.Equal(t, 2*float64(6*4*4*2*4*4)+2*float64(6*4*4), dNet.FLOPs(), "the wrapped convolution still counts")

	t.Run("G", func(t *testing.T) {
		checkCond(t, NewSequential(ClassEmbedding(3, 4), ConvTranspose2d(5+4, 2, 4, 1, 0, 0.3), Tanh()), []int{5, 1, 1}, 6, 3, nil)
	})
	t.Run("D", func(t *testing.T) {
		checkCond(t, NewSequential(NewConv2d(2, 6, 4, 2, 1, 0.3), Tanh(), Projection(NewConv2d(6, 1, 4, 1, 0, 0.3), 3, "embed.weight")), []int{2, 8, 8}, 5, 3, nil)
	})
}

// TestConditionalInit checks the initial scales: nn.Embedding's N(0, 1)
// for ClassEmbedding; for Projection, the final layer's weight std over
// sqrt(spatial positions) (see Projection), or InitStd when set.
func TestConditionalInit(t *testing.T) {
	std := func(v []float32) float64 {
		var s, s2 float64
		for _, x := range v {
			s += float64(x)
			s2 += float64(x) * float64(x)
		}
		m := s / float64(len(v))
		return math.Sqrt(s2/float64(len(v)) - m*m)
	}
	for _, c := range []struct {
		name  string
		layer Layer
		in    []int
		param string
		want  float64
	}{
		{"embedding", ClassEmbedding(50, 64), []int{100, 1, 1}, "m.weight", 1},
		{"projection over the DCGAN's conv", Projection(NewConv2d(256, 1, 4, 1, 0, 0.02), 40, "e"), []int{256, 4, 4}, "e", 0.02 / 4},
		{"projection over a linear layer", Projection(NewLinear(300, 1), 40, "e"), []int{300}, "e", 1 / math.Sqrt(900)},
		{"projection with its own std", &ClassProjection{Final: NewLinear(300, 1), Classes: 40, EmbedName: "e", InitStd: 0.5}, []int{300}, "e", 0.5},
	} {
		c.layer.SetName("m")
		_, params, _, err := c.layer.Declare(c.in)
		require.NoError(t, err, c.name)
		vals := map[string][]float32{}
		c.layer.Init(rand.New(rand.NewPCG(1, 2)), vals, nil)
		for _, p := range params {
			require.Len(t, vals[p.Name], prod(p.Shape), "%s: %s", c.name, p.Name)
		}
		require.InEpsilon(t, c.want, std(vals[c.param]), 0.05, c.name)
	}
}

func TestConditionalDeclareErrors(t *testing.T) {
	for _, c := range []struct {
		layer Layer
		in    []int
		want  string
	}{
		{ClassEmbedding(3, 4), []int{5, 2, 2}, "want [nz] or [nz 1 1]"},
		{ClassEmbedding(0, 4), []int{5}, "0 classes"},
		{Projection(NewConv2d(4, 2, 4, 1, 0, 0.02), 3, "e"), []int{4, 4, 4}, "one logit per image"},
		{Projection(NewConv2d(4, 1, 4, 1, 0, 0.02), 3, ""), []int{4, 4, 4}, "embedding \"\""},
		{Projection(NewConv2d(4, 1, 4, 1, 0, 0.02), 3, "m.weight"), []int{4, 4, 4}, "own parameter"},
		{Projection(NewConv2d(4, 1, 4, 1, 0, 0.02), 3, "e"), []int{3, 4, 4}, "want [4 H H]"},
	} {
		c.layer.SetName("m")
		_, _, _, err := c.layer.Declare(c.in)
		require.ErrorContains(t, err, c.want)
	}
}
