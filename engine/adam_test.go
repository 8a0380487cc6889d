package engine

import (
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// adamGrad is a deterministic pseudo-random gradient in [-1, 1) for element
// i at step k (a cheap integer hash, so 10^8 of them take well under a
// second).
func adamGrad(i, k int) float32 {
	h := uint64(i)*0x9e3779b97f4a7c15 ^ uint64(k+1)*0xc2b2ae3d27d4eb4f
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return float32(h>>40)/(1<<23) - 1
}

// adamRef is one float64 step of torch.optim.Adam/AdamW at step t.
func adamRef(p, m, v []float64, g []float32, t int, o Adam) {
	lr, b1, b2, eps, wd := float64(o.LR)*o.Decay.factor(t), float64(o.Beta1), float64(o.Beta2), float64(o.Eps), float64(o.WeightDecay)
	bc1 := 1 - math.Pow(b1, float64(t))
	bc2 := 1 - math.Pow(b2, float64(t))
	for i := range p {
		gi := float64(g[i])
		if o.Decoupled {
			p[i] *= 1 - lr*wd
		} else {
			gi += wd * p[i]
		}
		m[i] = b1*m[i] + (1-b1)*gi
		v[i] = b2*v[i] + (1-b2)*gi*gi
		p[i] -= lr / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + eps)
	}
}

func TestAdam(t *testing.T) {
	d := newTestDevice(t)
	adamWD := DefaultAdam()
	adamWD.WeightDecay = 0.1
	adamW := DefaultAdam()
	adamW.WeightDecay, adamW.Decoupled = 0.01, true
	dcgan := DefaultAdam() // the DCGAN paper's settings
	dcgan.LR, dcgan.Beta1 = 2e-4, 0.5
	zeroBeta := DefaultAdam()
	zeroBeta.Beta1, zeroBeta.LR = 0, 1e-2
	decayed := DefaultAdam() // decays from step 30 to 80, then holds at a quarter
	decayed.Decay = LRDecay{Start: 30, End: 80, To: 0.25}
	decayedW := adamW // to zero at step 90: the last ten steps leave the weights alone
	decayedW.Decay = LRDecay{Start: 0, End: 90}
	const steps = 100
	for _, opt := range []struct {
		name string
		o    Adam
	}{{"adam", DefaultAdam()}, {"adam_wd", adamWD}, {"adamw", adamW}, {"dcgan", dcgan}, {"beta1_0", zeroBeta}, {"decay", decayed}, {"decay_adamw", decayedW}} {
		for _, n := range []int{1, 7, 1000003} {
			if n > 1000 && opt.name != "adam" && opt.name != "adam_wd" && opt.name != "adamw" {
				continue // the small lengths cover these; keep the suite quick
			}
			t.Run(opt.name+"/"+strconv.Itoa(n), func(t *testing.T) {
				rng := newRand(uint64(n))
				p0 := randSlice(rng, n)
				param, grad, m, v := tensorOf(t, d, p0, n), zeros(t, d, n), zeros(t, d, n), zeros(t, d, n)
				step, err := d.NewCounter()
				require.NoError(t, err)
				defer step.Release()
				r, err := d.Record()
				require.NoError(t, err)
				defer r.Release()
				require.NoError(t, r.Increment(step))
				require.NoError(t, r.AdamStep(param, grad, m, v, step, opt.o))

				p, mr, vr := to64(p0), make([]float64, n), make([]float64, n)
				g := make([]float32, n)
				for k := 1; k <= steps; k++ {
					for i := range g {
						g[i] = adamGrad(i, k)
					}
					require.NoError(t, grad.Upload(g))
					require.NoError(t, r.Submit())
					adamRef(p, mr, vr, g, k, opt.o)
				}
				c, err := step.Value()
				require.NoError(t, err)
				require.Equal(t, uint32(steps), c)
				// Each step moves a parameter by about lr; fp32 rounding over
				// 100 steps stays below 1e-6 absolute plus 1e-5 relative.
				assertClose(t, "param", p, download(t, param), 1e-5, 1e-6)
				assertClose(t, "m", mr, download(t, m), 1e-4, 1e-6)
				assertClose(t, "v", vr, download(t, v), 1e-4, 1e-7)
			})
		}
	}
}

func TestAdamBadInput(t *testing.T) {
	d := newTestDevice(t)
	p, g, m, v, short := zeros(t, d, 5), zeros(t, d, 5), zeros(t, d, 5), zeros(t, d, 5), zeros(t, d, 4)
	step, err := d.NewCounter()
	require.NoError(t, err)
	defer step.Release()
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	o := DefaultAdam()
	require.Error(t, r.AdamStep(nil, g, m, v, step, o), "nil param")
	require.Error(t, r.AdamStep(p, short, m, v, step, o), "grad length")
	require.Error(t, r.AdamStep(p, g, m, m, step, o), "m aliases v")
	require.Error(t, r.AdamStep(p, g, m, v, nil, o), "nil step")
	for _, bad := range []Adam{
		{LR: -1, Beta1: 0.9, Beta2: 0.999},
		{LR: 1e-3, Beta1: 1, Beta2: 0.999},
		{LR: 1e-3, Beta1: 0.9, Beta2: -0.1},
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: float32(math.NaN())},
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, WeightDecay: float32(math.Inf(1))},
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Decay: LRDecay{Start: 10, End: 10}},
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Decay: LRDecay{Start: -1, End: 10}},
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Decay: LRDecay{Start: 0, End: 10, To: 1.5}},
		{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Decay: LRDecay{To: 0.5}},
	} {
		require.Error(t, r.AdamStep(p, g, m, v, step, bad), "%+v", bad)
	}
	require.Error(t, r.Submit(), "sticky error")
}
