package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// A float64 reference of the DCGAN step, written directly from the maths
// (no shared code with the kernels), for the step test below.

// stage is one conv (or transposed conv), optional batch norm and an
// activation, read off a network's layers for the reference.
type stage struct {
	deconv         bool
	cin, cout      int
	k, s, p        int
	inHW, outHW    int
	bn             bool
	act            actKind
	weight, bnName string
}

type actKind int

const (
	actNone actKind = iota
	actReLU
	actLeaky
	actTanh
)

// stagesOf groups a DCGAN network's layers into stages.
func stagesOf(n *Net) []stage {
	var out []stage
	for _, l := range n.Body.(*Sequential).Layers {
		switch l := l.(type) {
		case *Conv2d:
			out = append(out, stage{deconv: l.Transposed, cin: l.In, cout: l.Out, k: l.K, s: l.S, p: l.P,
				inHW: l.inHW, outHW: l.outHW, weight: l.Name() + ".weight"})
		case *BatchNorm:
			out[len(out)-1].bn, out[len(out)-1].bnName = true, l.Name()
		case *Activation:
			out[len(out)-1].act = map[uint32]actKind{ewReLU: actReLU, ewLeakyReLU: actLeaky, ewTanh: actTanh}[l.op]
		default:
			panic("unexpected layer in a DCGAN")
		}
	}
	return out
}

// geomOf is the convolution a stage computes; a deconv is the backward-
// data pass of the conv from its output back to its input.
func geomOf(st stage, batch int) convShape {
	if st.deconv {
		return convShape{N: batch, Cin: st.cout, H: st.outHW, W: st.outHW, Cout: st.cin, KH: st.k, KW: st.k, S: st.s, P: st.p}
	}
	return convShape{N: batch, Cin: st.cin, H: st.inHW, W: st.inHW, Cout: st.cout, KH: st.k, KW: st.k, S: st.s, P: st.p}
}

type refLayer struct {
	in, a, b, h  []float64 // input, conv output, bn output, activated output
	mean, invstd []float64
}

type refNet struct {
	stages []stage
	params map[string][]float64
	stats  map[string][]float64
	layers []refLayer
	batch  int
}

func newRefNet(n *Net, params, stats map[string][]float32, batch int) *refNet {
	r := &refNet{stages: stagesOf(n), params: map[string][]float64{}, stats: map[string][]float64{}, batch: batch}
	for k, v := range params {
		r.params[k] = to64(v)
	}
	for k, v := range stats {
		r.stats[k] = to64(v)
	}
	return r
}

func (r *refNet) forward(x []float64) []float64 {
	r.layers = nil
	for _, st := range r.stages {
		g := geomOf(st, r.batch)
		w := r.params[st.weight]
		L := refLayer{in: x}
		if st.deconv {
			L.a = make([]float64, g.N*g.Cin*g.H*g.W)
			g.each(func(xi, wi, yi int) { L.a[xi] += x[yi] * w[wi] })
		} else {
			oh, ow := g.out()
			L.a = make([]float64, g.N*g.Cout*oh*ow)
			g.each(func(xi, wi, yi int) { L.a[yi] += x[xi] * w[wi] })
		}
		h := L.a
		if st.bn {
			C, HW := st.cout, st.outHW*st.outHW
			L.b, L.mean, L.invstd = make([]float64, len(h)), make([]float64, C), make([]float64, C)
			gam, bet := r.params[st.bnName+".weight"], r.params[st.bnName+".bias"]
			rm, rv := r.stats[st.bnName+".running_mean"], r.stats[st.bnName+".running_var"]
			cnt := float64(r.batch * HW)
			for c := 0; c < C; c++ {
				var s, ss float64
				for n := 0; n < r.batch; n++ {
					for i := 0; i < HW; i++ {
						s += h[(n*C+c)*HW+i]
					}
				}
				mean := s / cnt
				for n := 0; n < r.batch; n++ {
					for i := 0; i < HW; i++ {
						d := h[(n*C+c)*HW+i] - mean
						ss += d * d
					}
				}
				v := ss / cnt
				L.mean[c], L.invstd[c] = mean, 1/math.Sqrt(v+bnEps)
				for n := 0; n < r.batch; n++ {
					for i := 0; i < HW; i++ {
						j := (n*C+c)*HW + i
						L.b[j] = (h[j]-mean)*L.invstd[c]*gam[c] + bet[c]
					}
				}
				rm[c] = (1-bnMomentum)*rm[c] + bnMomentum*mean
				rv[c] = (1-bnMomentum)*rv[c] + bnMomentum*ss/(cnt-1)
			}
			h = L.b
		}
		L.h = make([]float64, len(h))
		for i, v := range h {
			switch st.act {
			case actReLU:
				v = math.Max(v, 0)
			case actLeaky:
				if v < 0 {
					v *= leakySlope
				}
			case actTanh:
				v = math.Tanh(v)
			}
			L.h[i] = v
		}
		r.layers = append(r.layers, L)
		x = L.h
	}
	return x
}

// backward returns weight gradients and the input gradient for dOut.
func (r *refNet) backward(dOut []float64) (map[string][]float64, []float64) {
	grads := map[string][]float64{}
	dh := dOut
	for li := len(r.stages) - 1; li >= 0; li-- {
		st, L := r.stages[li], r.layers[li]
		g := geomOf(st, r.batch)
		d := make([]float64, len(dh))
		for i, v := range dh {
			switch st.act {
			case actReLU:
				if L.h[i] <= 0 {
					v = 0
				}
			case actLeaky:
				if L.h[i] < 0 {
					v *= leakySlope
				}
			case actTanh:
				v *= 1 - L.h[i]*L.h[i]
			}
			d[i] = v
		}
		if st.bn {
			C, HW := st.cout, st.outHW*st.outHW
			gam := r.params[st.bnName+".weight"]
			dg, db, da := make([]float64, C), make([]float64, C), make([]float64, len(d))
			cnt := float64(r.batch * HW)
			for c := 0; c < C; c++ {
				var sd, sdx float64
				for n := 0; n < r.batch; n++ {
					for i := 0; i < HW; i++ {
						j := (n*C+c)*HW + i
						xh := (L.a[j] - L.mean[c]) * L.invstd[c]
						sd += d[j]
						sdx += d[j] * xh
					}
				}
				dg[c], db[c] = sdx, sd
				for n := 0; n < r.batch; n++ {
					for i := 0; i < HW; i++ {
						j := (n*C+c)*HW + i
						xh := (L.a[j] - L.mean[c]) * L.invstd[c]
						da[j] = gam[c] * L.invstd[c] / cnt * (cnt*d[j] - sd - xh*sdx)
					}
				}
			}
			grads[st.bnName+".weight"], grads[st.bnName+".bias"] = dg, db
			d = da
		}
		w := r.params[st.weight]
		dw := make([]float64, len(w))
		din := make([]float64, len(L.in))
		if st.deconv {
			g.each(func(xi, wi, yi int) { dw[wi] += L.in[yi] * d[xi]; din[yi] += d[xi] * w[wi] })
		} else {
			g.each(func(xi, wi, yi int) { dw[wi] += L.in[xi] * d[yi]; din[xi] += d[yi] * w[wi] })
		}
		grads[st.weight] = dw
		dh = din
	}
	return grads, dh
}

// bce returns the mean BCE-with-logits loss, mean sigmoid and dloss/dlogit.
func bce(logits []float64, t float64) (loss, meanP float64, dl []float64) {
	dl = make([]float64, len(logits))
	for i, x := range logits {
		p := 1 / (1 + math.Exp(-x))
		loss += math.Max(x, 0) - x*t + math.Log1p(math.Exp(-math.Abs(x)))
		meanP += p
		dl[i] = (p - t) / float64(len(logits))
	}
	n := float64(len(logits))
	return loss / n, meanP / n, dl
}

func refAdam(p, g, m, v []float64, t int, o Adam) {
	b1, b2 := float64(o.Beta1), float64(o.Beta2)
	for i := range p {
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		mh := m[i] / (1 - math.Pow(b1, float64(t)))
		vh := v[i] / (1 - math.Pow(b2, float64(t)))
		p[i] -= float64(o.LR) * mh / (math.Sqrt(vh) + float64(o.Eps))
	}
}

func addInto(dst map[string][]float64, src map[string][]float64) {
	for k, v := range src {
		if dst[k] == nil {
			dst[k] = make([]float64, len(v))
		}
		for i := range v {
			dst[k][i] += v[i]
		}
	}
}

func paramsOf(t *testing.T, ps *ParamSet) map[string][]float32 {
	t.Helper()
	v, err := ps.Get()
	require.NoError(t, err)
	return v
}

// TestGANStepMatchesReference runs one step of a narrow DCGAN (ngf = ndf =
// 4, batch 2, both sizes) and checks losses, D outputs, every gradient,
// the running statistics and the Adam update against the float64
// reference, then d loss_G / d (a few G weights) by central differences.
func TestGANStepMatchesReference(t *testing.T) {
	d := newTestDevice(t)
	for _, size := range []int{32, 64} {
		t.Run(map[int]string{32: "32x32", 64: "64x64"}[size], func(t *testing.T) {
			model := DCGAN{Size: size, NZ: 5, NGF: 4, NDF: 4, Channels: 3}
			const batch = 2
			data, err := d.UploadData(randomData(uint64(size), 5, 3, size), 5, 3, size)
			require.NoError(t, err)
			defer data.Release()
			ad := DefaultAdam()
			ad.LR, ad.Beta1 = 2e-4, 0.5
			gan, err := d.NewGAN(GANConfig{Model: model, Batch: batch, Seed: 3, AdamD: ad, AdamG: ad, RealLabel: 0.9}, data)
			require.NoError(t, err)
			defer gan.Release()
			require.NoError(t, gan.Init(11))
			gp0, gs0, dp0, ds0 := paramsOf(t, gan.G.Params), paramsOf(t, gan.G.Stats), paramsOf(t, gan.D.Params), paramsOf(t, gan.D.Stats)
			require.NoError(t, gan.Step())
			met, err := gan.ReadMetrics()
			require.NoError(t, err)
			z, real := to64(download(t, gan.z)), to64(download(t, gan.real))

			G := newRefNet(gan.G.Net, gp0, gs0, batch)
			D := newRefNet(gan.D.Net, dp0, ds0, batch)
			fake := G.forward(z)
			lossReal, dx, dlr := bce(D.forward(real), 0.9)
			dGrad, _ := D.backward(dlr)
			lossFake, dgz1, dlf := bce(D.forward(fake), 0)
			gf, _ := D.backward(dlf)
			addInto(dGrad, gf)
			dm, dv := map[string][]float64{}, map[string][]float64{}
			for k, p := range D.params {
				dm[k], dv[k] = make([]float64, len(p)), make([]float64, len(p))
				refAdam(p, dGrad[k], dm[k], dv[k], 1, ad)
			}
			lossG, dgz2, dlg := bce(D.forward(fake), 1)
			_, dfake := D.backward(dlg)
			gGrad, _ := G.backward(dfake)

			const tol = 2e-4
			require.InDelta(t, lossReal+lossFake, met.LossD, tol*(1+lossReal+lossFake))
			require.InDelta(t, lossG, met.LossG, tol*(1+lossG))
			require.InDelta(t, dx, met.DX, tol)
			require.InDelta(t, dgz1, met.DGZ1, tol)
			require.InDelta(t, dgz2, met.DGZ2, tol)
			checkSet := func(what string, want map[string][]float64, got map[string][]float32, rtol, atolFrac float64) {
				for k, w := range want {
					scale := 0.0
					for _, v := range w {
						scale = math.Max(scale, math.Abs(v))
					}
					assertClose(t, what+" "+k, w, got[k], rtol, atolFrac*scale+1e-9)
				}
			}
			checkSet("D grad", dGrad, paramsOf(t, gan.D.Grads), 2e-3, 2e-3)
			checkSet("G grad", gGrad, paramsOf(t, gan.G.Grads), 2e-3, 2e-3)
			checkSet("D stats", D.stats, paramsOf(t, gan.D.Stats), 1e-4, 1e-5)
			checkSet("G stats", G.stats, paramsOf(t, gan.G.Stats), 1e-4, 1e-5)
			// The first Adam step moves each weight by lr*sign(grad) (less for
			// tiny gradients): compare within a fraction of lr.
			gotDP := paramsOf(t, gan.D.Params)
			for k, w := range D.params {
				assertClose(t, "D weights "+k, w, gotDP[k], 0, 0.05*float64(ad.LR))
			}

			// d loss_G / d w_G by central differences through the updated D.
			lossGOf := func() float64 {
				Gc := newRefNet(gan.G.Net, nil, gs0, batch)
				Gc.params = G.params
				Dc := newRefNet(gan.D.Net, nil, ds0, batch)
				Dc.params = D.params
				l, _, _ := bce(Dc.forward(Gc.forward(z)), 1)
				return l
			}
			gotG := paramsOf(t, gan.G.Grads)
			rng := newRand(uint64(size))
			stg := stagesOf(gan.G.Net)
			for _, name := range []string{stg[0].weight, stg[1].bnName + ".weight", stg[len(stg)-1].weight} {
				w := G.params[name]
				for _, i := range sampleIdx(rng, len(w), 3) {
					const h = 1e-6 // small: ReLU kinks near a pre-activation of 0 spoil larger steps
					old := w[i]
					w[i] = old + h
					lp := lossGOf()
					w[i] = old - h
					lm := lossGOf()
					w[i] = old
					fd := (lp - lm) / (2 * h)
					require.InDelta(t, fd, float64(gotG[name][i]), 1e-4+2e-2*math.Abs(fd), "d lossG / d %s[%d]", name, i)
				}
			}
		})
	}
}
