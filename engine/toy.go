package engine

import (
	"fmt"
	"math"
	"math/rand/v2"

	"vkgan/shaders"
)

// ToyAct is a toy MLP layer's nonlinearity.
type ToyAct int

const (
	ToyLinear ToyAct = iota // none (the output layers)
	ToyTanh
	ToyReLU
	ToyMaxout // max over Pieces linear pieces per unit
)

// ToyLayer is one fully connected layer: a matmul with bias to Out units
// (Out*Pieces columns for maxout), optional batch norm, then Act.
type ToyLayer struct {
	Out    int
	Act    ToyAct
	BN     bool
	Pieces int // maxout pieces per unit (ToyMaxout only)
}

// ToyNet is an MLP on vectors of In values.
type ToyNet struct {
	In     int
	Layers []ToyLayer
}

func (l ToyLayer) cols() int {
	if l.Act == ToyMaxout {
		return l.Out * l.Pieces
	}
	return l.Out
}

func (n ToyNet) validate(name string, in, out int) error {
	if n.In != in {
		return fmt.Errorf("engine: toy: %s takes %d inputs, want %d", name, n.In, in)
	}
	if len(n.Layers) == 0 || n.Layers[len(n.Layers)-1].Out != out {
		return fmt.Errorf("engine: toy: %s must end in a layer of %d outputs", name, out)
	}
	for i, l := range n.Layers {
		if l.Out < 1 || l.Act < ToyLinear || l.Act > ToyMaxout || (l.Act == ToyMaxout && l.Pieces < 1) {
			return fmt.Errorf("engine: toy: %s layer %d: bad layer %+v", name, i, l)
		}
	}
	if last := n.Layers[len(n.Layers)-1]; last.Act != ToyLinear || last.BN {
		return fmt.Errorf("engine: toy: %s: the last layer must be linear without batch norm", name)
	}
	return nil
}

func (n ToyNet) specs() (params, stats []ParamSpec) {
	in := n.In
	for i, l := range n.Layers {
		p := fmt.Sprintf("l%d.", i)
		params = append(params, ParamSpec{p + "weight", []int{in, l.cols()}}, ParamSpec{p + "bias", []int{l.cols()}})
		if l.BN {
			params = append(params, ParamSpec{p + "bn.weight", []int{l.Out}}, ParamSpec{p + "bn.bias", []int{l.Out}})
			stats = append(stats, ParamSpec{p + "bn.running_mean", []int{l.Out}}, ParamSpec{p + "bn.running_var", []int{l.Out}})
		}
		in = l.Out
	}
	return params, stats
}

// initToyNet draws PyTorch's nn.Linear initialisation: weight and bias
// uniform in +-1/sqrt(fan_in); batch norm gamma 1, beta 0, running var 1.
func initToyNet(n ToyNet, rng *rand.Rand) (params, stats map[string][]float32) {
	params, stats = map[string][]float32{}, map[string][]float32{}
	in := n.In
	for i, l := range n.Layers {
		p := fmt.Sprintf("l%d.", i)
		k := 1 / math.Sqrt(float64(in))
		u := func(m int) []float32 {
			v := make([]float32, m)
			for j := range v {
				v[j] = float32((rng.Float64()*2 - 1) * k)
			}
			return v
		}
		params[p+"weight"], params[p+"bias"] = u(in*l.cols()), u(l.cols())
		if l.BN {
			ones := make([]float32, l.Out)
			for j := range ones {
				ones[j] = 1
			}
			params[p+"bn.weight"], params[p+"bn.bias"] = ones, make([]float32, l.Out)
			stats[p+"bn.running_mean"], stats[p+"bn.running_var"] = make([]float32, l.Out), append([]float32(nil), ones...)
		}
		in = l.Out
	}
	return params, stats
}

// toyActs are one network's activations and backward buffers at one
// batch size. Per layer i: a = x W + b; bn = BN(a) (with BN); h = act(bn
// or a). da, dbn, dh are the gradients of a, bn, h.
type toyActs struct {
	a, bn, h, da, dbn, dh []*Tensor
	mean, invstd          []*Tensor
}

func newToyActs(d *Device, n ToyNet, batch int, out *Tensor, keep func(*Tensor)) (*toyActs, error) {
	alloc := func(shape ...int) (*Tensor, error) {
		t, err := d.NewTensor(shape...)
		if err == nil {
			keep(t)
		}
		return t, err
	}
	A := &toyActs{}
	last := len(n.Layers) - 1
	for i, l := range n.Layers {
		var a, bn, h, da, dbn, dh, mean, inv *Tensor
		var err error
		if i == last && out != nil {
			a = out
		} else if a, err = alloc(batch, l.cols()); err != nil {
			return nil, err
		}
		if da, err = alloc(batch, l.cols()); err != nil {
			return nil, err
		}
		pre, dpre := a, da
		if l.BN {
			if bn, err = alloc(batch, l.Out); err != nil {
				return nil, err
			}
			if dbn, err = alloc(batch, l.Out); err != nil {
				return nil, err
			}
			if mean, err = alloc(l.Out); err != nil {
				return nil, err
			}
			if inv, err = alloc(l.Out); err != nil {
				return nil, err
			}
			pre, dpre = bn, dbn
		}
		if l.Act == ToyLinear {
			h, dh = pre, dpre
		} else {
			if h, err = alloc(batch, l.Out); err != nil {
				return nil, err
			}
			if dh, err = alloc(batch, l.Out); err != nil {
				return nil, err
			}
		}
		A.a, A.bn, A.h, A.da, A.dbn, A.dh = append(A.a, a), append(A.bn, bn), append(A.h, h), append(A.da, da), append(A.dbn, dbn), append(A.dh, dh)
		A.mean, A.invstd = append(A.mean, mean), append(A.invstd, inv)
	}
	return A, nil
}

func (A *toyActs) out() *Tensor { return A.h[len(A.h)-1] }

// toyForward records the network on x. With batch norm, statistics are the
// batch's; momentum 0 leaves the running estimates alone (sampling).
func toyForward(r *Recorder, n ToyNet, P, S *ParamSet, A *toyActs, x *Tensor, momentum float32) error {
	for i, l := range n.Layers {
		p := fmt.Sprintf("l%d.", i)
		r.Gemm(A.a[i], x, P.T(p+"weight"), false, false, 1, 0, P.T(p+"bias"))
		pre := A.a[i]
		if l.BN {
			r.BatchNormTrain(A.bn[i], A.a[i], P.T(p+"bn.weight"), P.T(p+"bn.bias"), S.T(p+"bn.running_mean"),
				S.T(p+"bn.running_var"), A.mean[i], A.invstd[i], momentum, bnEps)
			pre = A.bn[i]
		}
		switch l.Act {
		case ToyTanh:
			r.Tanh(A.h[i], pre)
		case ToyReLU:
			r.ReLU(A.h[i], pre)
		case ToyMaxout:
			r.Maxout(A.h[i], pre, l.Pieces)
		}
		x = A.h[i]
	}
	return r.Err()
}

// toyBackward records the backward pass from dh of the last layer (which
// the caller has filled). grads nil skips weight gradients; dx non-nil
// receives the gradient of the input.
func toyBackward(r *Recorder, n ToyNet, P, grads *ParamSet, A *toyActs, x, dx *Tensor) error {
	for i := len(n.Layers) - 1; i >= 0; i-- {
		l := n.Layers[i]
		p := fmt.Sprintf("l%d.", i)
		pre, dpre := A.a[i], A.da[i]
		if l.BN {
			pre, dpre = A.bn[i], A.dbn[i]
		}
		switch l.Act {
		case ToyTanh:
			r.TanhBackward(dpre, A.dh[i], A.h[i])
		case ToyReLU:
			r.ReLUBackward(dpre, A.dh[i], pre)
		case ToyMaxout:
			r.MaxoutBackward(dpre, A.dh[i], pre, l.Pieces)
		}
		if l.BN {
			var dg, db *Tensor
			if grads != nil {
				dg, db = grads.T(p+"bn.weight"), grads.T(p+"bn.bias")
			} else {
				// Only dx is wanted; gamma and beta gradients go to scratch.
				var err error
				if dg, err = r.workspace(l.Out); err != nil {
					return r.fail(err)
				}
				if db, err = r.workspace(l.Out); err != nil {
					return r.fail(err)
				}
			}
			r.BatchNormBackward(A.da[i], dg, db, A.dbn[i], A.a[i], P.T(p+"bn.weight"), A.mean[i], A.invstd[i])
		}
		in := x
		if i > 0 {
			in = A.h[i-1]
		}
		if grads != nil {
			r.Gemm(grads.T(p+"weight"), in, A.da[i], true, false, 1, 0, nil)
			r.BiasGrad(grads.T(p+"bias"), A.da[i])
		}
		if i > 0 {
			r.Gemm(A.dh[i-1], A.da[i], P.T(p+"weight"), false, true, 1, 0, nil)
		} else if dx != nil {
			r.Gemm(dx, A.da[i], P.T(p+"weight"), false, true, 1, 0, nil)
		}
	}
	return r.Err()
}

// ToyConfig configures a GAN on a 2D Gaussian mixture.
type ToyConfig struct {
	G ToyNet // G.In is the latent size; G ends in 2 outputs
	D ToyNet // D.In is 2*Pack; D ends in 1 logit
	// Batch is the number of real (and of fake) points per step, a
	// multiple of 32 and of Pack.
	Batch int
	// Pack is PacGAN's m: D sees m points concatenated (0 means 1).
	Pack    int
	Centers []float32 // mixture means, [K*2]
	Std     float32   // every component's standard deviation
	Holdout int       // a mode never drawn as real data; -1 for none
	Seed    uint64
	AdamD   Adam
	AdamG   Adam
	// EMA, when positive, keeps an exponential moving average of G's
	// weights with this decay; Sample draws from the average.
	EMA float32
	// InstanceNoise, when positive, adds normal noise of this std to every
	// point D sees (real and fake, in both halves of the step), falling
	// linearly to zero at step NoiseUntil.
	InstanceNoise float32
	NoiseUntil    int
	// Profile records a timestamp per dispatch (see StepProfile).
	Profile bool
}

// ToyGAN trains G and D on the mixture. One recorded command buffer holds
// the whole step: the real batch and the noise come from kernels keyed by
// (seed, device counter), so the host only submits and waits.
type ToyGAN struct {
	d          *Device
	cfg        ToyConfig
	GP, GS     *ParamSet
	GGrad      *ParamSet
	GM, GV     *ParamSet
	GEMA       *ParamSet // nil without ToyConfig.EMA
	DP, DS     *ParamSet
	DGrad      *ParamSet
	DM, DV     *ParamSet
	Counter    *Tensor // steps taken (Adam's t for both nets)
	centers    *Tensor
	z          *Tensor // [B, nz]
	xd         *Tensor // [2B, 2]: real then fake points
	real, fake *Tensor // views of xd, [B, 2]
	dfake      *Tensor // [B, 2]
	targets    *Tensor // [2B/m]: 1 for real, 0 for fake
	gA         *toyActs
	dA, dAG    *toyActs // D at 2B/m rows (D step) and B/m rows (G step)
	metrics    *Tensor
	mviews     []*Tensor
	step       *Recorder
	owned      []*Tensor

	sampleN    int
	sampleRaw  bool // Sample uses G's own weights even when an average is kept
	sampleRec  *Recorder
	sampleZ    *Tensor
	sampleOut  *Tensor
	fieldN     int
	fieldRec   *Recorder
	fieldIn    *Tensor
	fieldOut   *Tensor // sigmoid of fieldLogit
	fieldLogit *Tensor
	evalOwned  []*Tensor
}

const (
	tmLossD = iota // mean BCE over real and fake (x2 = the sum of the two means)
	tmLossG
	tmDReal // mean D(x) (sigmoid) over real and fake rows: see ReadLosses
	numToyMetrics
)

// NewToyGAN allocates both networks and records the step.
func (d *Device) NewToyGAN(cfg ToyConfig) (g *ToyGAN, err error) {
	if cfg.Pack == 0 {
		cfg.Pack = 1
	}
	m := cfg.Pack
	k := len(cfg.Centers) / 2
	switch {
	case cfg.Batch < 32 || cfg.Batch%32 != 0 || cfg.Batch%m != 0 || m < 1:
		return nil, fmt.Errorf("engine: toy: batch %d must be a positive multiple of 32 and of the pack %d", cfg.Batch, m)
	case k < 1 || len(cfg.Centers)%2 != 0:
		return nil, fmt.Errorf("engine: toy: %d centre coordinates, want pairs", len(cfg.Centers))
	case cfg.Holdout < -1 || cfg.Holdout >= k || (cfg.Holdout >= 0 && k < 2):
		return nil, fmt.Errorf("engine: toy: holdout %d must be -1 or a mode in [0, %d) with another mode left", cfg.Holdout, k)
	case !(cfg.Std >= 0) || math.IsInf(float64(cfg.Std), 0):
		return nil, fmt.Errorf("engine: toy: std %g must be finite and >= 0", cfg.Std)
	}
	if err := cfg.G.validate("G", cfg.G.In, 2); err != nil {
		return nil, err
	}
	if err := cfg.D.validate("D", 2*m, 1); err != nil {
		return nil, err
	}
	if err := cfg.AdamD.validate(); err != nil {
		return nil, fmt.Errorf("engine: toy: Adam of D: %w", err)
	}
	if err := cfg.AdamG.validate(); err != nil {
		return nil, fmt.Errorf("engine: toy: Adam of G: %w", err)
	}
	g = &ToyGAN{d: d, cfg: cfg}
	defer func() {
		if err != nil {
			g.Release()
			g = nil
		}
	}()
	gp, gs := cfg.G.specs()
	dp, ds := cfg.D.specs()
	for _, s := range []struct {
		p     **ParamSet
		specs []ParamSpec
	}{{&g.GP, gp}, {&g.GGrad, gp}, {&g.GM, gp}, {&g.GV, gp}, {&g.GS, gs},
		{&g.DP, dp}, {&g.DGrad, dp}, {&g.DM, dp}, {&g.DV, dp}, {&g.DS, ds}, {&g.GEMA, emaSpecs(cfg, gp)}} {
		if len(s.specs) == 0 {
			continue
		}
		if *s.p, err = d.NewParamSet(s.specs); err != nil {
			return nil, fmt.Errorf("engine: toy: %w", err)
		}
	}
	keep := func(t *Tensor) { g.owned = append(g.owned, t) }
	alloc := func(shape ...int) (*Tensor, error) {
		t, err := d.NewTensor(shape...)
		if err == nil {
			keep(t)
		}
		return t, err
	}
	B := cfg.Batch
	if g.Counter, err = alloc(1); err != nil {
		return nil, err
	}
	if g.centers, err = alloc(len(cfg.Centers)); err != nil {
		return nil, err
	}
	if err = g.centers.Upload(cfg.Centers); err != nil {
		return nil, err
	}
	if g.z, err = alloc(B, cfg.G.In); err != nil {
		return nil, err
	}
	if g.xd, err = alloc(2*B, 2); err != nil {
		return nil, err
	}
	if g.real, err = g.xd.View(0, B, 2); err != nil {
		return nil, err
	}
	if g.fake, err = g.xd.View(2*B, B, 2); err != nil {
		return nil, err
	}
	if g.dfake, err = alloc(B, 2); err != nil {
		return nil, err
	}
	if g.targets, err = alloc(2 * B / m); err != nil {
		return nil, err
	}
	t := make([]float32, 2*B/m)
	for i := 0; i < B/m; i++ {
		t[i] = 1
	}
	if err = g.targets.Upload(t); err != nil {
		return nil, err
	}
	if g.metrics, err = alloc(numToyMetrics * ViewAlign); err != nil {
		return nil, err
	}
	for i := 0; i < numToyMetrics; i++ {
		v, err := g.metrics.View(i*ViewAlign, 1)
		if err != nil {
			return nil, err
		}
		g.mviews = append(g.mviews, v)
	}
	if g.gA, err = newToyActs(d, cfg.G, B, g.fake, keep); err != nil {
		return nil, err
	}
	if g.dA, err = newToyActs(d, cfg.D, 2*B/m, nil, keep); err != nil {
		return nil, err
	}
	if g.dAG, err = newToyActs(d, cfg.D, B/m, nil, keep); err != nil {
		return nil, err
	}
	if err = g.record(); err != nil {
		return nil, err
	}
	return g, nil
}

// mixSample records out = n points of the mixture from (seed, counter).
func (r *Recorder) mixSample(out, centers, counter *Tensor, holdout int, std float32, seed uint64) error {
	if out == nil || centers == nil || counter == nil || len(out.shape) != 2 || out.shape[1] != 2 {
		return r.fail(fmt.Errorf("engine: toy mixture: want out [N,2], centres and a counter"))
	}
	push := shaders.ToyMixPush{
		N: uint32(out.shape[0]), K: uint32(centers.n / 2), Holdout: int32(holdout), Stdev: std,
		SeedLo: uint32(seed), SeedHi: uint32(seed >> 32),
	}
	return dispatch(r, shaders.ToyMix, nil, r.ewGroups(out.shape[0]), push, out, centers, counter)
}

// MixSample records out ([N,2]) = N points of the mixture with the given
// centres ([K*2]) and std, excluding mode holdout (-1: none), from (seed,
// the value of counter): the toy's real-data kernel.
func (r *Recorder) MixSample(out, centers, counter *Tensor, holdout int, std float32, seed uint64) error {
	if holdout < -1 || (centers != nil && holdout >= centers.n/2) {
		return r.fail(fmt.Errorf("engine: toy mixture: holdout %d out of range", holdout))
	}
	return r.mixSample(out, centers, counter, holdout, std, seed)
}

const (
	toyDataSeed     = 0x6d69787475726573
	toyNoiseSeed    = 0x6e6f697365736565
	toyEvalSeed     = 0x6576616c75617465
	toyInstanceSeed = 0x696e7374616e6365
)

// record builds the step:
//
//	t++; draw B real points and B latents; fake = G(z); with instance
//	noise, add it to the real and fake points;
//	D on [real; fake] (one pass of 2B/m packed rows): loss = mean BCE with
//	targets 1 and 0, scaled by 2 so each half is a mean as in PyTorch's two
//	calls; backward into D's gradients; Adam on D.
//	D (updated) on fake, target 1 (the non-saturating loss), backward into
//	the fake points, then through G; Adam on G.
func (g *ToyGAN) record() error {
	r, err := g.d.Record()
	if err != nil {
		return err
	}
	if g.cfg.Profile {
		r.EnableProfile()
	}
	g.step = r
	c := g.cfg
	m := c.Pack
	B := c.Batch
	r.Increment(g.Counter)
	r.mixSample(g.real, g.centers, g.Counter, c.Holdout, c.Std, c.Seed^toyDataSeed)
	r.RandNormal(g.z, c.Seed^toyNoiseSeed, g.Counter, 0, 1)
	if err := toyForward(r, c.G, g.GP, g.GS, g.gA, g.z, bnMomentum); err != nil {
		return err
	}
	if c.InstanceNoise > 0 {
		// fake is a view of xd, so the G half below sees the same noisy points.
		r.AddAnnealedNoise(g.xd, c.Seed^toyInstanceSeed, g.Counter, c.InstanceNoise, c.NoiseUntil)
	}
	xp, err := g.xd.Reshape(2*B/m, 2*m)
	if err != nil {
		return err
	}
	if err := toyForward(r, c.D, g.DP, g.DS, g.dA, xp, bnMomentum); err != nil {
		return err
	}
	logits := g.dA.out()
	r.BCEWithLogits(g.mviews[tmLossD], logits, g.targets)
	r.BCEWithLogitsBackward(g.dA.dh[len(g.dA.dh)-1], logits, g.targets, 2)
	if err := toyBackward(r, c.D, g.DP, g.DGrad, g.dA, xp, nil); err != nil {
		return err
	}
	r.AdamStep(g.DP.Flat, g.DGrad.Flat, g.DM.Flat, g.DV.Flat, g.Counter, c.AdamD)

	fp, err := g.fake.Reshape(B/m, 2*m)
	if err != nil {
		return err
	}
	dfp, err := g.dfake.Reshape(B/m, 2*m)
	if err != nil {
		return err
	}
	if err := toyForward(r, c.D, g.DP, g.DS, g.dAG, fp, bnMomentum); err != nil {
		return err
	}
	logits = g.dAG.out()
	r.BCEWithLogitsConst(g.mviews[tmLossG], logits, 1)
	r.BCEWithLogitsConstBackward(g.dAG.dh[len(g.dAG.dh)-1], logits, 1, 1)
	if err := toyBackward(r, c.D, g.DP, nil, g.dAG, fp, dfp); err != nil {
		return err
	}
	gl := len(c.G.Layers) - 1
	// The fake points are G's last pre-activation output, so their gradient
	// is that layer's dh; copy by axpy into a zeroed buffer would cost two
	// dispatches, so the D backward above wrote dfake and G starts from it.
	g.gA.dh[gl] = g.dfake
	g.gA.da[gl] = g.dfake
	if err := toyBackward(r, c.G, g.GP, g.GGrad, g.gA, g.z, nil); err != nil {
		return err
	}
	r.AdamStep(g.GP.Flat, g.GGrad.Flat, g.GM.Flat, g.GV.Flat, g.Counter, c.AdamG)
	if g.GEMA != nil {
		r.Scale(g.GEMA.Flat, c.EMA)
		r.Axpy(g.GEMA.Flat, g.GP.Flat, 1-c.EMA)
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("engine: toy: recording the step: %w", err)
	}
	return nil
}

// Init sets fresh weights from seed and zeroes optimizer state and the
// step counter.
func (g *ToyGAN) Init(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	gp, gs := initToyNet(g.cfg.G, rng)
	dp, ds := initToyNet(g.cfg.D, rng)
	return initState([]*ParamSet{g.GP, g.GS, g.DP, g.DS, g.GEMA}, []map[string][]float32{gp, gs, dp, ds, gp},
		[]*ParamSet{g.GM, g.GV, g.DM, g.DV, g.GGrad, g.DGrad}, g.Counter)
}

// Step runs one recorded training step and waits for it.
func (g *ToyGAN) Step() error { return g.step.Submit() }

// StepProfile is GPU milliseconds per kernel for the last step; it needs
// ToyConfig.Profile.
func (g *ToyGAN) StepProfile() (map[string]float64, error) { return g.step.Profile() }

// ToyLosses are the last step's losses: D's is the sum of the mean BCE on
// real and on fake points, G's the non-saturating loss.
type ToyLosses struct{ D, G float64 }

// ReadLosses downloads the last step's losses (a host sync; call it when
// logging).
func (g *ToyGAN) ReadLosses() (ToyLosses, error) {
	v, err := g.metrics.Download()
	if err != nil {
		return ToyLosses{}, err
	}
	return ToyLosses{D: 2 * float64(v[tmLossD*ViewAlign]), G: float64(v[tmLossG*ViewAlign])}, nil
}

// Sample returns G's outputs ([n*2], x then y) for n latents drawn from
// the fixed evaluation seed, so successive calls show the same z moving.
// Batch norm uses this batch's statistics and leaves the running ones.
func (g *ToyGAN) Sample(n int) ([]float32, error) {
	if n < 1 {
		return nil, fmt.Errorf("engine: toy: sample count %d must be positive", n)
	}
	if g.sampleN != n {
		g.sampleRec.Release()
		g.sampleRec, g.sampleN = nil, 0
		keep := func(t *Tensor) { g.evalOwned = append(g.evalOwned, t) }
		z, err := g.d.NewTensor(n, g.cfg.G.In)
		if err != nil {
			return nil, err
		}
		keep(z)
		out, err := g.d.NewTensor(n, 2)
		if err != nil {
			return nil, err
		}
		keep(out)
		A, err := newToyActs(g.d, g.cfg.G, n, out, keep)
		if err != nil {
			return nil, err
		}
		zero, err := g.d.NewCounter()
		if err != nil {
			return nil, err
		}
		keep(zero)
		r, err := g.d.Record()
		if err != nil {
			return nil, err
		}
		r.RandNormal(z, g.cfg.Seed^toyEvalSeed, zero, 0, 1)
		weights := g.GP
		if g.GEMA != nil && !g.sampleRaw {
			weights = g.GEMA
		}
		if err := toyForward(r, g.cfg.G, weights, g.GS, A, z, 0); err != nil {
			r.Release()
			return nil, err
		}
		g.sampleRec, g.sampleN, g.sampleZ, g.sampleOut = r, n, z, out
	}
	if err := g.sampleRec.Submit(); err != nil {
		return nil, err
	}
	return g.sampleOut.Download()
}

// SampleRaw makes Sample use G's own weights (raw) or, when the GAN keeps
// one, their average (the default).
func (g *ToyGAN) SampleRaw(raw bool) {
	if raw != g.sampleRaw {
		g.sampleRaw = raw
		g.sampleN = 0 // re-record with the other weights
	}
}

// Field returns D's probability of "real" (sigmoid of the logit) at each
// point of pts ([P*2]); with packing each point fills all Pack slots.
func (g *ToyGAN) Field(pts []float32) ([]float32, error) {
	if err := g.runField(pts); err != nil {
		return nil, err
	}
	return g.fieldOut.Download()
}

// Logits returns D's logit at each point of pts ([P*2]), as Field does its
// probability. Rejection sampling needs the logit itself: float32's
// sigmoid rounds to 1 from a logit of about 17 on.
func (g *ToyGAN) Logits(pts []float32) ([]float32, error) {
	if err := g.runField(pts); err != nil {
		return nil, err
	}
	return g.fieldLogit.Download()
}

// runField runs D's forward pass on pts, recording it again only when the
// point count changes.
func (g *ToyGAN) runField(pts []float32) error {
	P := len(pts) / 2
	if P < 1 || len(pts)%2 != 0 {
		return fmt.Errorf("engine: toy: field needs point pairs, got %d values", len(pts))
	}
	m := g.cfg.Pack
	if g.fieldN != P {
		g.fieldRec.Release()
		g.fieldRec, g.fieldN = nil, 0
		keep := func(t *Tensor) { g.evalOwned = append(g.evalOwned, t) }
		in, err := g.d.NewTensor(P, 2*m)
		if err != nil {
			return err
		}
		keep(in)
		A, err := newToyActs(g.d, g.cfg.D, P, nil, keep)
		if err != nil {
			return err
		}
		prob, err := g.d.NewTensor(P, 1)
		if err != nil {
			return err
		}
		keep(prob)
		r, err := g.d.Record()
		if err != nil {
			return err
		}
		toyForward(r, g.cfg.D, g.DP, g.DS, A, in, 0)
		r.Sigmoid(prob, A.out())
		if err := r.Err(); err != nil {
			r.Release()
			return err
		}
		g.fieldRec, g.fieldN, g.fieldIn, g.fieldOut, g.fieldLogit = r, P, in, prob, A.out()
	}
	packed := make([]float32, 0, P*2*m)
	for i := 0; i < P; i++ {
		for j := 0; j < m; j++ {
			packed = append(packed, pts[2*i], pts[2*i+1])
		}
	}
	if err := g.fieldIn.Upload(packed); err != nil {
		return err
	}
	return g.fieldRec.Submit()
}

// RealBatch is the last step's real points ([B,2]), for tests.
func (g *ToyGAN) RealBatch() *Tensor { return g.real }

// Noise is the last step's latents.
func (g *ToyGAN) Noise() *Tensor { return g.z }

// Config returns the configuration.
func (g *ToyGAN) Config() ToyConfig { return g.cfg }

// Release frees everything the toy GAN owns.
func (g *ToyGAN) Release() {
	if g == nil {
		return
	}
	g.step.Release()
	g.sampleRec.Release()
	g.fieldRec.Release()
	g.step, g.sampleRec, g.fieldRec = nil, nil, nil
	for _, ps := range []*ParamSet{g.GP, g.GS, g.GGrad, g.GM, g.GV, g.GEMA, g.DP, g.DS, g.DGrad, g.DM, g.DV} {
		ps.Release()
	}
	for _, t := range append(g.owned, g.evalOwned...) {
		t.Release()
	}
	g.owned, g.evalOwned = nil, nil
}

// emaSpecs is G's layout when the config keeps an average, else nothing.
func emaSpecs(cfg ToyConfig, gp []ParamSpec) []ParamSpec {
	if cfg.EMA > 0 {
		return gp
	}
	return nil
}
