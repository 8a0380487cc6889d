package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// GANConfig configures a GAN training step.
type GANConfig struct {
	Model DCGAN
	Batch int
	Seed  uint64 // data order and noise: (Seed, step counter) reproduce a batch
	// Optimizers for D and G (the example: lr 2e-4, betas 0.5, 0.999).
	AdamD, AdamG Adam
	// RealLabel is D's target for real images (1; less for one-sided label
	// smoothing). Fake images have target 0; G's target is 1.
	RealLabel float32
	// DSteps is the number of D updates per G update (1 in the example).
	DSteps int
	// EMA, when positive, keeps an exponential moving average of G's
	// weights with this decay, for samples.
	EMA float32
	// Profile records a timestamp after every dispatch of the step (see
	// StepProfile); it costs a little time per dispatch.
	Profile bool
}

// Metrics are a step's losses and mean discriminator outputs, as the
// PyTorch example prints them.
type Metrics struct {
	LossD, LossG float64
	DX           float64 // mean D(x) on the real batch
	DGZ1, DGZ2   float64 // mean D(G(z)) before and after D's update
}

// metric slots in GAN.metrics, each ViewAlign apart so each is a view.
const (
	mLossDReal = iota
	mLossDFake
	mLossG
	mDX
	mDGZ1
	mDGZ2
	numMetrics
)

// GAN owns both networks' parameters, optimizer state, activations and the
// recorded training step. Everything lives on the device; Step submits one
// command buffer and waits.
type GAN struct {
	d        *Device
	cfg      GANConfig
	G, D     *Net
	GP, DP   *ParamSet // weights
	GS, DS   *ParamSet // batch-norm running statistics
	GGrad    *ParamSet // gradients of the last step
	DGrad    *ParamSet
	GM, GV   *ParamSet // Adam moments
	DM, DV   *ParamSet
	GEMA     *ParamSet // nil without EMA
	GCounter *Tensor   // G's Adam step
	DCounter *Tensor   // D's Adam step = batches drawn so far
	data     *DeviceData
	z, real  *Tensor
	gBound   Bound // G's activations at the batch size
	dBound   Bound
	loss     Loss
	metrics  *Tensor
	mviews   []*Tensor
	step     *Recorder
	owned    []*Tensor
}

// NewGAN allocates everything and records the step. data may be nil for a
// GAN used only to sample.
func (d *Device) NewGAN(cfg GANConfig, data *DeviceData) (g *GAN, err error) {
	if err := cfg.Model.Validate(); err != nil {
		return nil, err
	}
	if cfg.Batch < 2 {
		return nil, fmt.Errorf("engine: gan: batch %d must be at least 2 (batch norm needs a batch)", cfg.Batch)
	}
	if cfg.DSteps < 1 {
		cfg.DSteps = 1
	}
	if data != nil && (data.Size != cfg.Model.Size || data.Channels != cfg.Model.Channels) {
		return nil, fmt.Errorf("engine: gan: data set has %dx%dx%d images, the model makes %dx%dx%d",
			data.Channels, data.Size, data.Size, cfg.Model.Channels, cfg.Model.Size, cfg.Model.Size)
	}
	g = &GAN{d: d, cfg: cfg, data: data, loss: BCELoss{RealLabel: cfg.RealLabel}}
	if g.loss == (BCELoss{}) {
		g.loss = BCELoss{RealLabel: 1}
	}
	if g.G, err = cfg.Model.Generator(); err != nil {
		return nil, err
	}
	if g.D, err = cfg.Model.Discriminator(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			g.Release()
			g = nil
		}
	}()
	sets := []struct {
		p     **ParamSet
		specs []ParamSpec
	}{
		{&g.GP, g.G.Params}, {&g.GGrad, g.G.Params}, {&g.GM, g.G.Params}, {&g.GV, g.G.Params}, {&g.GS, g.G.Stats},
		{&g.DP, g.D.Params}, {&g.DGrad, g.D.Params}, {&g.DM, g.D.Params}, {&g.DV, g.D.Params}, {&g.DS, g.D.Stats},
	}
	if cfg.EMA > 0 {
		sets = append(sets, struct {
			p     **ParamSet
			specs []ParamSpec
		}{&g.GEMA, g.G.Params})
	}
	for _, s := range sets {
		if *s.p, err = d.NewParamSet(s.specs); err != nil {
			return nil, fmt.Errorf("engine: gan: %w", err)
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
	if g.GCounter, err = alloc(1); err != nil {
		return nil, err
	}
	if g.DCounter, err = alloc(1); err != nil {
		return nil, err
	}
	if g.z, err = alloc(append([]int{cfg.Batch}, g.G.In...)...); err != nil {
		return nil, err
	}
	if g.real, err = alloc(append([]int{cfg.Batch}, g.D.In...)...); err != nil {
		return nil, err
	}
	if g.metrics, err = alloc(numMetrics * ViewAlign); err != nil {
		return nil, err
	}
	for i := 0; i < numMetrics; i++ {
		v, err := g.metrics.View(i*ViewAlign, 1)
		if err != nil {
			return nil, err
		}
		g.mviews = append(g.mviews, v)
	}
	if g.gBound, err = g.G.Bind(d, cfg.Batch, keep); err != nil {
		return nil, fmt.Errorf("engine: gan: %w", err)
	}
	if g.dBound, err = g.D.Bind(d, cfg.Batch, keep); err != nil {
		return nil, fmt.Errorf("engine: gan: %w", err)
	}
	if data != nil {
		if err = g.record(); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Init sets fresh weights from seed (the example's initialisation) and
// zeroes optimizer state and counters.
func (g *GAN) Init(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	gp, gs := g.G.Init(rng)
	dp, ds := g.D.Init(rng)
	return initState([]*ParamSet{g.GP, g.GS, g.DP, g.DS, g.GEMA}, []map[string][]float32{gp, gs, dp, ds, gp},
		[]*ParamSet{g.GM, g.GV, g.DM, g.DV, g.GGrad, g.DGrad}, g.GCounter, g.DCounter)
}

// record builds the step, as PyTorch's dcgan/main.py runs it:
//
//	for each of DSteps: draw a real batch and z; fake = G(z) (batch-norm
//	statistics of this pass); D on real and on fake detached, each with
//	its loss term, gradients summed; Adam on D.
//	Then D on the same fake with D's new weights, G's loss term, backward
//	through D into G; Adam on G; update the EMA.
//
// The recording reads only device state, so it is replayed unchanged.
// Errors are the recorder's sticky one, checked once at the end.
func (g *GAN) record() error {
	r, err := g.d.Record()
	if err != nil {
		return err
	}
	if g.cfg.Profile {
		r.EnableProfile()
	}
	g.step = r
	c := g.cfg
	m := g.mviews
	fake, dfake := g.gBound.Out().X, g.gBound.Out().DX
	logits, dlogits := g.dBound.Out().X, g.dBound.Out().DX
	gTrain := &Pass{Params: g.GP, Stats: g.GS, Grads: g.GGrad, Train: true, Momentum: bnMomentum}
	dTrain := &Pass{Params: g.DP, Stats: g.DS, Grads: g.DGrad, Train: true, Momentum: bnMomentum}
	dAdd := *dTrain
	dAdd.Accumulate = true
	dThrough := *dTrain // into G: no weight gradients for D
	dThrough.Grads = nil
	for it := 0; it < c.DSteps; it++ {
		r.Increment(g.DCounter)
		r.GatherBatch(g.real, g.data, g.DCounter, c.Seed)
		r.RandNormal(g.z, c.Seed^0xa5a5a5a5deadbeef, g.DCounter, 0, 1)
		g.gBound.Forward(r, gTrain, g.z)
		g.dBound.Forward(r, dTrain, g.real)
		g.loss.Record(r, TermReal, logits, dlogits, m[mLossDReal], m[mDX])
		g.dBound.Backward(r, dTrain, g.real, nil)
		g.dBound.Forward(r, dTrain, fake)
		g.loss.Record(r, TermFake, logits, dlogits, m[mLossDFake], m[mDGZ1])
		g.dBound.Backward(r, &dAdd, fake, nil)
		r.AdamStep(g.DP.Flat, g.DGrad.Flat, g.DM.Flat, g.DV.Flat, g.DCounter, c.AdamD)
	}
	g.dBound.Forward(r, dTrain, fake)
	g.loss.Record(r, TermGen, logits, dlogits, m[mLossG], m[mDGZ2])
	g.dBound.Backward(r, &dThrough, fake, dfake)
	g.gBound.Backward(r, gTrain, g.z, nil)
	r.Increment(g.GCounter)
	r.AdamStep(g.GP.Flat, g.GGrad.Flat, g.GM.Flat, g.GV.Flat, g.GCounter, c.AdamG)
	if g.GEMA != nil {
		r.Scale(g.GEMA.Flat, c.EMA)
		r.Axpy(g.GEMA.Flat, g.GP.Flat, 1-c.EMA)
	}
	if err := r.Err(); err != nil {
		return fmt.Errorf("engine: gan: recording the step: %w", err)
	}
	return nil
}

// Step runs one recorded training step and waits for it.
func (g *GAN) Step() error {
	if g.step == nil {
		return fmt.Errorf("engine: gan: no training step (no data set)")
	}
	return g.step.Submit()
}

// StepProfile returns GPU milliseconds per kernel of the last step (with
// GANConfig.Profile).
func (g *GAN) StepProfile() (map[string]float64, error) { return g.step.Profile() }

// ReadMetrics reads the last step's metrics: the only host-device
// transfer of a training run between checkpoints.
func (g *GAN) ReadMetrics() (Metrics, error) {
	v, err := g.metrics.Download()
	if err != nil {
		return Metrics{}, err
	}
	at := func(i int) float64 { return float64(v[i*ViewAlign]) }
	return Metrics{LossD: at(mLossDReal) + at(mLossDFake), LossG: at(mLossG), DX: at(mDX), DGZ1: at(mDGZ1), DGZ2: at(mDGZ2)}, nil
}

// Finite reports whether metrics hold only finite numbers.
func (m Metrics) Finite() bool {
	for _, v := range []float64{m.LossD, m.LossG, m.DX, m.DGZ1, m.DGZ2} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// Config returns the GAN's configuration.
func (g *GAN) Config() GANConfig { return g.cfg }

// Release frees everything the GAN owns (not the data set).
func (g *GAN) Release() {
	if g == nil {
		return
	}
	g.step.Release()
	g.step = nil
	for _, ps := range []*ParamSet{g.GP, g.DP, g.GS, g.DS, g.GGrad, g.DGrad, g.GM, g.GV, g.DM, g.DV, g.GEMA} {
		ps.Release()
	}
	for _, t := range g.owned {
		t.Release()
	}
	g.owned = nil
}

// RealBatch is the real batch the last step drew (for checks and tests).
func (g *GAN) RealBatch() *Tensor { return g.real }

// Noise is the latent batch the last step drew.
func (g *GAN) Noise() *Tensor { return g.z }
