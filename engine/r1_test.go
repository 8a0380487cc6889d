package engine

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// A float64 reference of R1's penalty, written from its definition: D's
// forward, its input gradient g from a top gradient of ones, and
// P = gamma/2 * mean_i ||g_i||^2. Spectral norm divides the weight by
// u^T W v with u and v fixed (their values after the device's forward).

type r1RefLayer struct {
	l      Layer // *Conv2d, *Linear, *Activation or *Flatten
	weight string
	sn     *snRefGeom
	u, v   []float64
}

type r1Ref struct {
	layers []r1RefLayer
	batch  int
	gamma  float64
}

func newR1Ref(t *testing.T, n *Net, stats map[string][]float32, batch int, gamma float64) *r1Ref {
	ref := &r1Ref{batch: batch, gamma: gamma}
	for _, l := range n.Body.(*Sequential).Layers {
		switch l := l.(type) {
		case *spectralNorm:
			g := snRefGeomOf(l.inner)
			ref.layers = append(ref.layers, r1RefLayer{l: l.inner, weight: l.origName(), sn: &g,
				u: to64(stats[l.uName()]), v: to64(stats[l.vName()])})
		case *Conv2d, *Linear:
			ref.layers = append(ref.layers, r1RefLayer{l: l, weight: l.Name() + ".weight"})
		case *Activation, *Flatten:
			ref.layers = append(ref.layers, r1RefLayer{l: l})
		default:
			t.Fatalf("no reference for %T", l)
		}
	}
	return ref
}

// penalty is P and g for the input x and the parameters ps.
func (ref *r1Ref) penalty(ps map[string][]float64, x []float64) (float64, []float64) {
	ins := [][]float64{}
	weights := make([][]float64, len(ref.layers))
	h := x
	for i, rl := range ref.layers {
		ins = append(ins, h)
		var out []float64
		switch l := rl.l.(type) {
		case *Conv2d, *Linear:
			w := ps[rl.weight]
			if rl.sn != nil {
				sigma := snRefSigma(*rl.sn, w, rl.u, rl.v)
				ws := make([]float64, len(w))
				for j := range w {
					ws[j] = w[j] / sigma
				}
				w = ws
			}
			weights[i] = w
			outN := 0
			snInnerEach(l, ref.batch)(func(_, _, yi int) { outN = max(outN, yi+1) })
			out = make([]float64, outN)
			snInnerEach(l, ref.batch)(func(xi, wi, yi int) { out[yi] += h[xi] * w[wi] })
			if lin, ok := l.(*Linear); ok {
				b := ps[lin.Name()+".bias"]
				for j := range out {
					out[j] += b[j%lin.Out]
				}
			}
		case *Activation:
			out = make([]float64, len(h))
			for j, v := range h {
				out[j] = v
				if v <= 0 {
					out[j] = float64(l.slope) * v
				}
			}
		case *Flatten:
			out = h
		}
		h = out
	}
	dy := make([]float64, len(h))
	for j := range dy {
		dy[j] = 1
	}
	for i := len(ref.layers) - 1; i >= 0; i-- {
		in := ins[i]
		dx := make([]float64, len(in))
		switch l := ref.layers[i].l.(type) {
		case *Conv2d, *Linear:
			w := weights[i]
			snInnerEach(l, ref.batch)(func(xi, wi, yi int) { dx[xi] += dy[yi] * w[wi] })
		case *Activation:
			for j, v := range in {
				dx[j] = dy[j]
				if v <= 0 {
					dx[j] *= float64(l.slope)
				}
			}
		case *Flatten:
			copy(dx, dy)
		}
		dy = dx
	}
	var ss float64
	for _, v := range dy {
		ss += v * v
	}
	return ref.gamma / 2 * ss / float64(ref.batch), dy
}

var r1Cases = []struct {
	name string
	body func(sn func(Layer) Layer) Layer
	in   []int
}{
	{"conv-leaky-conv", func(sn func(Layer) Layer) Layer {
		return NewSequential(sn(NewConv2d(3, 5, 4, 2, 1, 0.3)), LeakyReLU(0.2), sn(NewConv2d(5, 1, 4, 1, 0, 0.3)))
	}, []int{3, 8, 8}},
	{"mlp", func(sn func(Layer) Layer) Layer {
		return NewSequential(sn(NewLinear(6, 9)), LeakyReLU(0.2), sn(NewLinear(9, 1)))
	}, []int{6}},
	{"conv-relu-flatten-linear", func(sn func(Layer) Layer) Layer {
		return NewSequential(sn(NewConv2d(2, 4, 4, 2, 1, 0.3)), ReLU(), NewFlatten(), sn(NewLinear(36, 1)))
	}, []int{2, 6, 6}},
}

// TestR1 checks P and the weight gradient R1 adds against central
// differences of the float64 reference of P (for spectral norm with u, v
// fixed at their post-iteration values), for plain layers and for
// spectral norm on every weighted one: Grads are pre-filled, and must come
// back as what they held plus the penalty's gradient (biases unchanged).
func TestR1(t *testing.T) {
	d := newTestDevice(t)
	const batch, gamma = 3, 2.5
	for ci, c := range r1Cases {
		for _, withSN := range []bool{false, true} {
			name := c.name
			wrap := func(l Layer) Layer { return l }
			if withSN {
				name, wrap = name+" spectral norm", SpectralNorm
			}
			t.Run(name, func(t *testing.T) {
				n, err := NewNet("D", "main", c.body(wrap), c.in)
				require.NoError(t, err)
				rng := newRand(uint64(40 + ci))
				pv, sv := n.Init(rng)
				set := func(specs []ParamSpec, vals map[string][]float32) *ParamSet {
					if len(specs) == 0 {
						return nil
					}
					ps, err := d.NewParamSet(specs)
					require.NoError(t, err)
					t.Cleanup(ps.Release)
					require.NoError(t, ps.Set(vals))
					return ps
				}
				prefill := map[string][]float32{}
				for _, p := range n.Params {
					prefill[p.Name] = randSlice(rng, prod(p.Shape))
				}
				P, S, G := set(n.Params, pv), set(n.Stats, sv), set(n.Params, prefill)
				keep := keeper(t)
				b, err := n.Bind(d, batch, keep)
				require.NoError(t, err)
				q, err := NewR1(d, n, b, batch, keep)
				require.NoError(t, err)
				xv := randSlice(rng, batch*prod(c.in))
				x := tensorOf(t, d, xv, append([]int{batch}, c.in...)...)
				penalty := zeros(t, d, 1)
				// Accumulate false: R1 adds whatever the pass says.
				pass := &Pass{Params: P, Stats: S, Grads: G, Train: true, Momentum: bnMomentum}
				run(t, d, func(r *Recorder) error {
					b.Forward(r, pass, x)
					q.Record(r, pass, x, gamma, penalty)
					return r.Err()
				})
				got, err := G.Get()
				require.NoError(t, err)
				var stats map[string][]float32
				if S != nil {
					stats, err = S.Get()
					require.NoError(t, err)
				}

				ref := newR1Ref(t, n, stats, batch, gamma)
				ps := map[string][]float64{}
				for k, v := range pv {
					ps[k] = to64(v)
				}
				want, _ := ref.penalty(ps, to64(xv))
				gotP := download(t, penalty)[0]
				require.InDelta(t, want, gotP, 1e-5*want, "P")

				// Central differences of P at every parameter entry; an
				// entry whose one-sided slopes disagree sits on a kink of
				// the activations and is skipped.
				var gScale float64
				for _, p := range n.Params {
					for i, v := range got[p.Name] {
						gScale = max(gScale, math.Abs(float64(v-prefill[p.Name][i])))
					}
				}
				var worst float64
				checked, skipped := 0, 0
				for _, p := range n.Params {
					w := ps[p.Name]
					for i := range w {
						h := 1e-4 * max(math.Abs(w[i]), 0.1)
						w0 := w[i]
						l0, _ := ref.penalty(ps, to64(xv))
						w[i] = w0 + h
						lp, _ := ref.penalty(ps, to64(xv))
						w[i] = w0 - h
						lm, _ := ref.penalty(ps, to64(xv))
						w[i] = w0
						right, left := (lp-l0)/h, (l0-lm)/h
						if math.Abs(right-left) > 1e-3*(math.Abs(right)+gScale) {
							skipped++
							continue
						}
						checked++
						fd := (lp - lm) / (2 * h)
						added := float64(got[p.Name][i]) - float64(prefill[p.Name][i])
						diff := math.Abs(added - fd)
						worst = max(worst, diff/gScale)
						require.LessOrEqual(t, diff, 1e-3*math.Abs(fd)+1e-4*gScale+1e-6,
							"%s[%d]: added %g, finite difference %g", p.Name, i, added, fd)
					}
				}
				require.LessOrEqual(t, skipped, checked/20, "too many kinks: %d of %d skipped", skipped, skipped+checked)
				t.Logf("P %.6g (rel error %.2g); dP/dW max error %.2g relative to max |dP/dW| %.3g; %d entries, %d on kinks",
					gotP, math.Abs(float64(gotP)-want)/want, worst, gScale, checked, skipped)

				// Without Grads: the penalty alone, Grads untouched. An
				// evaluation forward keeps spectral norm's u and v, so P is
				// the same.
				evalPass := &Pass{Params: P, Stats: S}
				run(t, d, func(r *Recorder) error {
					b.Forward(r, evalPass, x)
					q.Record(r, evalPass, x, gamma, penalty)
					return r.Err()
				})
				require.InDelta(t, want, download(t, penalty)[0], 1e-5*want, "P without Grads")
				again, err := G.Get()
				require.NoError(t, err)
				require.Equal(t, got, again, "Grads changed by a penalty without them")
			})
		}
	}
}

// TestR1Refuses checks that NewR1 names the module it cannot
// differentiate and says why.
func TestR1Refuses(t *testing.T) {
	d := newTestDevice(t)
	for _, c := range []struct {
		name string
		body Layer
		in   []int
		want []string
	}{
		{"batch norm", NewSequential(NewConv2d(3, 4, 4, 2, 1, 0.02), NewBatchNorm(4, 0.02), LeakyReLU(0.2), NewConv2d(4, 1, 4, 1, 0, 0.02)),
			[]int{3, 8, 8}, []string{"main.1", "batch norm", "-d-norm none"}},
		{"tanh", NewSequential(NewLinear(4, 3), Tanh(), NewLinear(3, 1)), []int{4}, []string{"main.1", "tanh", "double backward"}},
		{"sigmoid", NewSequential(NewLinear(4, 3), Sigmoid(), NewLinear(3, 1)), []int{4}, []string{"main.1", "sigmoid"}},
		{"maxout", NewSequential(NewLinear(4, 6), NewMaxout(3, 2), NewLinear(3, 1)), []int{4}, []string{"main.1", "no tangent support"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, err := NewNet("D", "main", c.body, c.in)
			require.NoError(t, err)
			keep := keeper(t)
			b, err := n.Bind(d, 2, keep)
			require.NoError(t, err)
			_, err = NewR1(d, n, b, 2, keep)
			require.Error(t, err)
			for _, w := range c.want {
				require.ErrorContains(t, err, w, fmt.Sprint(err))
			}
		})
	}
}
