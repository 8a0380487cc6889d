package engine

import (
	"fmt"
	"math"

	"vkgan/shaders"
)

// Adam defaults, as in torch.optim.Adam.
const (
	AdamDefaultLR          = 1e-3
	AdamDefaultBeta1       = 0.9
	AdamDefaultBeta2       = 0.999
	AdamDefaultEps         = 1e-8
	AdamDefaultWeightDecay = 0
)

// Adam holds the Adam optimizer's hyper-parameters. Zero is meaningful for
// several fields (Beta1 = 0 is legitimate), so start from DefaultAdam.
type Adam struct {
	LR          float32 // learning rate, >= 0 (default 1e-3)
	Beta1       float32 // first-moment decay in [0, 1) (default 0.9)
	Beta2       float32 // second-moment decay in [0, 1) (default 0.999)
	Eps         float32 // denominator term, >= 0 (default 1e-8)
	WeightDecay float32 // >= 0 (default 0)
	// Decoupled selects AdamW: param *= 1 - LR*WeightDecay before the
	// update, instead of Adam's L2 term WeightDecay*param added to the
	// gradient.
	Decoupled bool
	// Decay, when Decay.End > 0, lowers the learning rate linearly with
	// the step counter t: LR up to t = Start, LR*To from t = End on.
	Decay LRDecay
}

// LRDecay is a linear learning-rate decay over the steps (Start, End]; the
// zero value is no decay. It is evaluated on the device from the step
// counter, so a replayed recording follows it.
type LRDecay struct {
	Start, End int     // 0 <= Start < End; End = 0 turns the decay off
	To         float32 // final fraction of LR, in [0, 1]
}

// factor is the multiplier on LR at step t, as the shader computes it.
func (s LRDecay) factor(t int) float64 {
	if s.End == 0 || t <= s.Start {
		return 1
	}
	f := min(float64(t-s.Start)/float64(s.End-s.Start), 1)
	return 1 - f*(1-float64(s.To))
}

// DefaultAdam returns PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps
// 1e-8, no weight decay, not decoupled.
func DefaultAdam() Adam {
	return Adam{LR: AdamDefaultLR, Beta1: AdamDefaultBeta1, Beta2: AdamDefaultBeta2, Eps: AdamDefaultEps, WeightDecay: AdamDefaultWeightDecay}
}

func (o Adam) validate() error {
	ok := func(v float32) bool { return v >= 0 && !math.IsInf(float64(v), 1) } // false for NaN
	switch {
	case !ok(o.LR):
		return fmt.Errorf("learning rate %g must be finite and >= 0", o.LR)
	case !(o.Beta1 >= 0 && o.Beta1 < 1), !(o.Beta2 >= 0 && o.Beta2 < 1):
		return fmt.Errorf("betas (%g, %g) must be in [0, 1)", o.Beta1, o.Beta2)
	case !ok(o.Eps):
		return fmt.Errorf("eps %g must be finite and >= 0", o.Eps)
	case !ok(o.WeightDecay):
		return fmt.Errorf("weight decay %g must be finite and >= 0", o.WeightDecay)
	case o.Decay != LRDecay{} && !(o.Decay.Start >= 0 && o.Decay.End > o.Decay.Start && o.Decay.End <= math.MaxUint32):
		return fmt.Errorf("learning-rate decay over steps (%d, %d] must have 0 <= start < end", o.Decay.Start, o.Decay.End)
	case !(o.Decay.To >= 0 && o.Decay.To <= 1):
		return fmt.Errorf("learning-rate decay target %g must be in [0, 1]", o.Decay.To)
	}
	return nil
}

// logBeta is log(beta) in float64 for the shader's bias corrections; a
// large negative number stands in for log(0) so that beta^t = 0.
func logBeta(beta float32) float32 {
	if beta == 0 {
		return -1e30
	}
	return float32(math.Log(float64(beta)))
}

// AdamStep records one Adam (or AdamW, opt.Decoupled) step over the flat
// buffers param, grad and the moments m and v, all of one length, with the
// semantics of torch.optim.Adam/AdamW. step is a Counter
// holding the step number t >= 1, used for the bias corrections 1 - beta^t:
// record r.Increment(step) before AdamStep, so that a recording replayed N
// times makes N correct steps (a counter of 0 is treated as 1). m and v
// start at zero for a fresh optimizer.
func (r *Recorder) AdamStep(param, grad, m, v *Tensor, step *Counter, opt Adam) error {
	const op = "adam"
	ts := []*Tensor{param, grad, m, v}
	names := []string{"param", "grad", "m", "v"}
	for i, t := range ts {
		if t == nil {
			return r.fail(fmt.Errorf("engine: %s: %s is nil", op, names[i]))
		}
		if t.n != param.n {
			return r.fail(fmt.Errorf("engine: %s: %s has %d elements, param has %d", op, names[i], t.n, param.n))
		}
		for j := 0; j < i; j++ {
			if ts[j].shares(t) {
				return r.fail(fmt.Errorf("engine: %s: %s and %s share storage", op, names[j], names[i]))
			}
		}
	}
	if step.tensor() == nil {
		return r.fail(fmt.Errorf("engine: %s: nil step counter", op))
	}
	if err := opt.validate(); err != nil {
		return r.fail(fmt.Errorf("engine: %s: %w", op, err))
	}
	// About 8 elements (two vec4s) per invocation: the step and bias
	// corrections are computed once per invocation, not once per element.
	groups := r.gridGroups((param.n+7)/8, 256)
	push := shaders.AdamPush{
		N: uint32(param.n), Lr: opt.LR, Beta1: opt.Beta1, Beta2: opt.Beta2, Eps: opt.Eps,
		Wd: opt.WeightDecay, Decoupled: b2u(opt.Decoupled),
		LogBeta1: logBeta(opt.Beta1), LogBeta2: logBeta(opt.Beta2),
		DecayStart: uint32(opt.Decay.Start), DecayEnd: uint32(opt.Decay.End), DecayTo: opt.Decay.To,
	}
	return dispatch(r, shaders.Adam, nil, groups, push, param, grad, m, v, step.t)
}
