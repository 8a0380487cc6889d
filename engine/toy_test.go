package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// A float64 reference MLP (no shared code with the kernels) for the toy
// step test: tanh, ReLU and maxout layers without batch norm.
type refMLP struct {
	net    ToyNet
	names  []string // each layer's Linear module, e.g. "0"
	p      map[string][]float64
	x      []float64   // input [n, in]
	a, h   [][]float64 // per layer: pre-activation [n, cols], output [n, out]
	n      int
	widths []int // input width of each layer
}

func (m *refMLP) forward(x []float64, n int) []float64 {
	m.x, m.n, m.a, m.h, m.widths = x, n, nil, nil, nil
	in := m.net.In
	for i, l := range m.net.Layers {
		w, b := m.p[m.names[i]+".weight"], m.p[m.names[i]+".bias"] // w is [cols, in]
		cols := l.cols()
		a := make([]float64, n*cols)
		for r := 0; r < n; r++ {
			for c := 0; c < cols; c++ {
				s := b[c]
				for k := 0; k < in; k++ {
					s += x[r*in+k] * w[c*in+k]
				}
				a[r*cols+c] = s
			}
		}
		h := make([]float64, n*l.Out)
		for r := 0; r < n; r++ {
			for u := 0; u < l.Out; u++ {
				switch l.Act {
				case ToyLinear:
					h[r*l.Out+u] = a[r*cols+u]
				case ToyTanh:
					h[r*l.Out+u] = math.Tanh(a[r*cols+u])
				case ToyReLU:
					h[r*l.Out+u] = math.Max(a[r*cols+u], 0)
				case ToyMaxout:
					v := math.Inf(-1)
					for j := 0; j < l.Pieces; j++ {
						v = math.Max(v, a[r*cols+u*l.Pieces+j])
					}
					h[r*l.Out+u] = v
				}
			}
		}
		m.widths = append(m.widths, in)
		m.a, m.h = append(m.a, a), append(m.h, h)
		x, in = h, l.Out
	}
	return x
}

// backward returns parameter gradients and the input gradient for dout.
func (m *refMLP) backward(dout []float64) (map[string][]float64, []float64) {
	grads := map[string][]float64{}
	dh := dout
	for i := len(m.net.Layers) - 1; i >= 0; i-- {
		l := m.net.Layers[i]
		cols, in, n := l.cols(), m.widths[i], m.n
		a := m.a[i]
		da := make([]float64, n*cols)
		for r := 0; r < n; r++ {
			for u := 0; u < l.Out; u++ {
				g := dh[r*l.Out+u]
				switch l.Act {
				case ToyLinear:
					da[r*cols+u] = g
				case ToyTanh:
					t := math.Tanh(a[r*cols+u])
					da[r*cols+u] = g * (1 - t*t)
				case ToyReLU:
					if a[r*cols+u] > 0 {
						da[r*cols+u] = g
					}
				case ToyMaxout:
					arg := 0
					for j := 1; j < l.Pieces; j++ {
						if a[r*cols+u*l.Pieces+j] > a[r*cols+u*l.Pieces+arg] {
							arg = j
						}
					}
					da[r*cols+u*l.Pieces+arg] = g
				}
			}
		}
		xin := m.x
		if i > 0 {
			xin = m.h[i-1]
		}
		w := m.p[m.names[i]+".weight"]
		dw, db, dx := make([]float64, in*cols), make([]float64, cols), make([]float64, n*in)
		for r := 0; r < n; r++ {
			for c := 0; c < cols; c++ {
				g := da[r*cols+c]
				db[c] += g
				for k := 0; k < in; k++ {
					dw[c*in+k] += xin[r*in+k] * g
					dx[r*in+k] += g * w[c*in+k]
				}
			}
		}
		grads[m.names[i]+".weight"], grads[m.names[i]+".bias"] = dw, db
		dh = dx
	}
	return grads, dh
}

// linearNames lists the Linear modules of a toy network, one per ToyLayer.
func linearNames(t *testing.T, n ToyNet) []string {
	t.Helper()
	net, err := n.Build("net")
	require.NoError(t, err)
	var names []string
	walk(net.Body, func(l Layer) {
		if _, ok := l.(*Linear); ok {
			names = append(names, l.Name())
		}
	})
	require.Len(t, names, len(n.Layers))
	return names
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

func to64Map(m map[string][]float32) map[string][]float64 {
	out := map[string][]float64{}
	for k, v := range m {
		out[k] = to64(v)
	}
	return out
}

// TestToyStepReference runs one recorded step and checks D's gradients, and
// G's gradients through the Adam-updated D, against the float64 reference
// computed from the same real batch, latents and initial weights.
func TestToyStepReference(t *testing.T) {
	d := newTestDevice(t)
	relu := smallToy(8, 16, 32, 2)
	relu.G.Layers[0].Act, relu.G.Layers[1].Act = ToyReLU, ToyReLU
	relu.D.Layers[0] = ToyLayer{Out: 6, Act: ToyMaxout, Pieces: 3}
	relu.D.Layers[1] = ToyLayer{Out: 5, Act: ToyMaxout, Pieces: 2}
	for name, cfg := range map[string]ToyConfig{"tanh": smallToy(8, 16, 32, 1), "relu-maxout-pack2": relu} {
		t.Run(name, func(t *testing.T) {
			g, err := d.NewToyGAN(cfg)
			require.NoError(t, err)
			defer g.Release()
			require.NoError(t, g.Init(3))
			gp0, err := g.G.Params.Get()
			require.NoError(t, err)
			dp0, err := g.D.Params.Get()
			require.NoError(t, err)
			require.NoError(t, g.Step())
			real := to64(download(t, g.RealBatch()))
			z := to64(download(t, g.Noise()))
			B, m := cfg.Batch, cfg.Pack

			G := &refMLP{net: cfg.G, names: linearNames(t, cfg.G), p: to64Map(gp0)}
			D := &refMLP{net: cfg.D, names: linearNames(t, cfg.D), p: to64Map(dp0)}
			fake := G.forward(z, B)
			xd := append(append([]float64(nil), real...), fake...)
			rows := 2 * B / m
			logits := D.forward(xd, rows)
			dl := make([]float64, rows)
			lossD := 0.0
			for i, l := range logits {
				tgt := 0.0
				if i < rows/2 {
					tgt = 1
				}
				dl[i] = 2 * (sigmoid(l) - tgt) / float64(rows)
				lossD += 2 * (math.Max(l, 0) - l*tgt + math.Log1p(math.Exp(-math.Abs(l)))) / float64(rows)
			}
			dgrad, _ := D.backward(dl)
			gotD, err := g.D.Grads.Get()
			require.NoError(t, err)
			for k, want := range dgrad {
				assertClose(t, "D grad "+k, want, gotD[k], 1e-3, 1e-4*maxAbs(want)+1e-7)
			}
			// Adam at t = 1: the bias-corrected step is lr*g/(|g|+eps).
			gotDP, err := g.D.Params.Get()
			require.NoError(t, err)
			adamFirstStep(t, "D", D.p, dgrad, gotDP, cfg.AdamD)
			fl := D.forward(fake, B/m)
			dfl := make([]float64, B/m)
			for i, l := range fl {
				dfl[i] = (sigmoid(l) - 1) / float64(B/m)
			}
			_, dfake := D.backward(dfl)
			G.forward(z, B)
			ggrad, _ := G.backward(dfake)
			gotG, err := g.G.Grads.Get()
			require.NoError(t, err)
			for k, want := range ggrad {
				assertClose(t, "G grad "+k, want, gotG[k], 2e-3, 2e-3*maxAbs(want)+1e-7)
			}
			gotGP, err := g.G.Params.Get()
			require.NoError(t, err)
			adamFirstStep(t, "G", G.p, ggrad, gotGP, cfg.AdamG)
			l, err := g.ReadLosses()
			require.NoError(t, err)
			require.InDelta(t, lossD, l.D, 1e-4)
		})
	}
}

// adamFirstStep applies Adam's first step, lr*g/(|g|+eps), to the
// reference weights p and checks the device's updated weights got.
func adamFirstStep(t *testing.T, net string, p, grads map[string][]float64, got map[string][]float32, opt Adam) {
	t.Helper()
	for k, gr := range grads {
		for i := range gr {
			p[k][i] -= float64(opt.LR) * gr[i] / (math.Abs(gr[i]) + float64(opt.Eps))
			// A gradient near zero may take either sign in float32.
			if math.Abs(gr[i]) > 1e-2*maxAbs(gr) {
				require.InDelta(t, p[k][i], got[k][i], 1e-6, "%s %s[%d] after Adam", net, k, i)
			}
		}
	}
}

// TestToyMixSample checks the device sampler: every point within 6 std of
// a mode, each mode's share and spread as expected, the held-out mode never
// drawn, and the next counter value giving a different batch.
func TestToyMixSample(t *testing.T) {
	d := newTestDevice(t)
	const n, k = 16000, 8
	centers := ringCenters(k, 1)
	ct := tensorOf(t, d, centers, k*2)
	counter := newCounterT(t, d, 0)
	for _, holdout := range []int{-1, 3} {
		out := zeros(t, d, n, 2)
		out2 := zeros(t, d, n, 2)
		run(t, d, func(r *Recorder) error {
			r.MixSample(out, ct, counter, holdout, 0.01, 42)
			r.Increment(counter)
			r.MixSample(out2, ct, counter, holdout, 0.01, 42)
			return r.Err()
		})
		v, v2 := download(t, out), download(t, out2)
		require.NotEqual(t, v[:8], v2[:8])
		count := make([]int, k)
		sum2 := make([]float64, k)
		for i := 0; i < n; i++ {
			best, bd := 0, math.Inf(1)
			for j := 0; j < k; j++ {
				if dd := math.Hypot(float64(v[2*i]-centers[2*j]), float64(v[2*i+1]-centers[2*j+1])); dd < bd {
					best, bd = j, dd
				}
			}
			require.Less(t, bd, 0.06, "point %d", i)
			count[best]++
			sum2[best] += bd * bd
		}
		live := k
		if holdout >= 0 {
			require.Zero(t, count[holdout])
			live--
		}
		for j := 0; j < k; j++ {
			if j == holdout {
				continue
			}
			want := float64(n) / float64(live)
			require.InDelta(t, want, float64(count[j]), 5*math.Sqrt(want), "mode %d", j)
			// E|p-c|^2 = 2 std^2 for an isotropic Gaussian.
			require.InDelta(t, 2e-4, sum2[j]/float64(count[j]), 2e-5, "mode %d spread", j)
		}
	}
}

func TestToyConfigErrors(t *testing.T) {
	d := newTestDevice(t)
	for name, mut := range map[string]func(*ToyConfig){
		"batch":   func(c *ToyConfig) { c.Batch = 48 },
		"holdout": func(c *ToyConfig) { c.Holdout = 8 },
		"pack":    func(c *ToyConfig) { c.Pack = 3 },
		"out":     func(c *ToyConfig) { c.G.Layers[2].Out = 3 },
		"adam":    func(c *ToyConfig) { c.AdamD.Beta1 = 1 },
	} {
		c := smallToy(8, 16, 64, 1)
		mut(&c)
		_, err := d.NewToyGAN(c)
		require.Error(t, err, name)
	}
}

// D's field and logits at arbitrary points match the float64 reference;
// with packing each point fills every slot of D's input.
func TestToyFieldLogits(t *testing.T) {
	d := newTestDevice(t)
	for _, pack := range []int{1, 2} {
		cfg := smallToy(8, 16, 32, pack)
		g, err := d.NewToyGAN(cfg)
		require.NoError(t, err)
		defer g.Release()
		require.NoError(t, g.Init(5))
		dp, err := g.D.Params.Get()
		require.NoError(t, err)
		const P = 37
		pts := make([]float32, 2*P)
		packed := make([]float64, 0, 2*P*pack)
		for i := 0; i < P; i++ {
			pts[2*i], pts[2*i+1] = float32(i%7)/3-1, float32(i%5)/2-1
			for j := 0; j < pack; j++ {
				packed = append(packed, float64(pts[2*i]), float64(pts[2*i+1]))
			}
		}
		want := (&refMLP{net: cfg.D, names: linearNames(t, cfg.D), p: to64Map(dp)}).forward(packed, P)
		logits, err := g.Logits(pts)
		require.NoError(t, err)
		field, err := g.Field(pts)
		require.NoError(t, err)
		require.Len(t, logits, P)
		for i := range P {
			require.InDelta(t, want[i], logits[i], 1e-4, "pack %d point %d", pack, i)
			require.InDelta(t, sigmoid(want[i]), field[i], 1e-5, "pack %d point %d", pack, i)
		}
		_, err = g.Logits(pts[:3])
		require.ErrorContains(t, err, "point pairs")
		_, err = g.Field(nil)
		require.ErrorContains(t, err, "point pairs")
	}
}
