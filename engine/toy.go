package engine

import (
	"fmt"
	"math"

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
		if l.Out < 1 || l.Act < ToyLinear || l.Act > ToyMaxout || (l.Act == ToyMaxout && (l.Pieces < 1 || l.BN)) {
			return fmt.Errorf("engine: toy: %s layer %d: bad layer %+v", name, i, l)
		}
	}
	if last := n.Layers[len(n.Layers)-1]; last.Act != ToyLinear || last.BN {
		return fmt.Errorf("engine: toy: %s: the last layer must be linear without batch norm", name)
	}
	return nil
}

// Build returns the MLP as layers: per ToyLayer a Linear (to Out*Pieces
// units for maxout), then batch norm, then the activation, named as an
// nn.Sequential names them ("0.weight", "1.running_mean", ...).
func (n ToyNet) Build(name string) (*Net, error) {
	var layers []Layer
	in := n.In
	for _, l := range n.Layers {
		layers = append(layers, NewLinear(in, l.cols()))
		if l.BN {
			layers = append(layers, NewBatchNorm(l.Out, 0))
		}
		switch l.Act {
		case ToyTanh:
			layers = append(layers, Tanh())
		case ToyReLU:
			layers = append(layers, ReLU())
		case ToyMaxout:
			layers = append(layers, NewMaxout(l.Out, l.Pieces))
		}
		in = l.Out
	}
	return NewNet(name, "", NewSequential(layers...), []int{n.In})
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
	// Shard makes the toy one rank of data-parallel training; Batch is
	// then the rank's share (see engine.Shard). The zero value is one
	// process.
	Shard Shard
}

// ToyGAN trains G and D on the mixture: the GAN step with the toy's
// networks, its mixture as the real data, D's update in one joint pass
// (PacGAN's code does so) and one step counter's worth of noise. The host
// only submits and waits.
type ToyGAN struct {
	*GAN
	cfg     ToyConfig
	centers *Tensor

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

// mixture is the toy's real data: points of a Gaussian mixture.
type mixture struct {
	centers *Tensor
	holdout int
	std     float32
}

func (m mixture) RecordBatch(r *Recorder, out *Tensor, counter *Counter, seed uint64, rows Rows) error {
	return r.mixSample(out, m.centers, counter, m.holdout, m.std, seed^toyDataSeed, rows)
}

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
	gNet, err := cfg.G.Build("G")
	if err != nil {
		return nil, err
	}
	dNet, err := cfg.D.Build("D")
	if err != nil {
		return nil, err
	}
	g = &ToyGAN{cfg: cfg}
	defer func() {
		if err != nil {
			g.Release()
			g = nil
		}
	}()
	if g.centers, err = d.NewTensor(len(cfg.Centers)); err != nil {
		return nil, err
	}
	g.evalOwned = append(g.evalOwned, g.centers)
	if err = g.centers.Upload(cfg.Centers); err != nil {
		return nil, err
	}
	g.GAN, err = d.newGAN(GANConfig{G: gNet, D: dNet, Batch: cfg.Batch, Seed: cfg.Seed, AdamD: cfg.AdamD, AdamG: cfg.AdamG,
		EMA: cfg.EMA, JointD: true, Pack: m, InstanceNoise: cfg.InstanceNoise, NoiseUntil: cfg.NoiseUntil,
		Profile: cfg.Profile, Shard: cfg.Shard, noiseSeed: toyNoiseSeed}, mixture{g.centers, cfg.Holdout, cfg.Std})
	if err != nil {
		return nil, fmt.Errorf("engine: toy: %w", err)
	}
	return g, nil
}

// mixSample records out = n points of the mixture from (seed, counter).
func (r *Recorder) mixSample(out, centers *Tensor, counter *Counter, holdout int, std float32, seed uint64, rows Rows) error {
	if out == nil || centers == nil || counter.tensor() == nil || len(out.shape) != 2 || out.shape[1] != 2 {
		return r.fail(fmt.Errorf("engine: toy mixture: want out [N,2], centres and a counter"))
	}
	_, offset, err := rows.push("toy mixture", out.shape[0])
	if err != nil {
		return r.fail(err)
	}
	push := shaders.ToyMixPush{
		N: uint32(out.shape[0]), K: uint32(centers.n / 2), Holdout: int32(holdout), Stdev: std,
		SeedLo: uint32(seed), SeedHi: uint32(seed >> 32), Offset: offset,
	}
	return dispatch(r, shaders.ToyMix, nil, r.ewGroups(out.shape[0]), push, out, centers, counter.t)
}

// MixSample records out ([N,2]) = N points of the mixture with the given
// centres ([K*2]) and std, excluding mode holdout (-1: none), from (seed,
// the value of counter): the toy's real-data kernel.
func (r *Recorder) MixSample(out, centers *Tensor, counter *Counter, holdout int, std float32, seed uint64) error {
	if holdout < -1 || (centers != nil && holdout >= centers.n/2) {
		return r.fail(fmt.Errorf("engine: toy mixture: holdout %d out of range", holdout))
	}
	return r.mixSample(out, centers, counter, holdout, std, seed, Rows{})
}

const (
	toyDataSeed     = 0x6d69787475726573
	toyNoiseSeed    = 0x6e6f697365736565
	toyEvalSeed     = 0x6576616c75617465
	toyInstanceSeed = 0x696e7374616e6365
)

// ToyLosses are the last step's losses: D's is the sum of the mean BCE on
// real and on fake points, G's the non-saturating loss.
type ToyLosses struct{ D, G float64 }

// ReadLosses downloads the last step's losses (a host sync; call it when
// logging).
func (g *ToyGAN) ReadLosses() (ToyLosses, error) {
	m, err := g.ReadMetrics()
	if err != nil {
		return ToyLosses{}, err
	}
	return ToyLosses{D: m.LossD, G: m.LossG}, nil
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
		gb, err := g.G.Net.bindForward(g.d, n, out, keep)
		if err != nil {
			return nil, err
		}
		zero, err := g.d.NewCounter()
		if err != nil {
			return nil, err
		}
		keep(zero.t)
		r, err := g.d.Record()
		if err != nil {
			return nil, err
		}
		r.RandNormal(z, g.cfg.Seed^toyEvalSeed, zero, 0, 1)
		weights := g.G.Params
		if g.G.EMA != nil && !g.sampleRaw {
			weights = g.G.EMA
		}
		gb.Forward(r, &Pass{Params: weights, Stats: g.G.Stats, Train: true}, z)
		if err := r.Err(); err != nil {
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
		db, err := g.D.Net.bindForward(g.d, P, nil, keep)
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
		db.Forward(r, &Pass{Params: g.D.Params, Stats: g.D.Stats, Train: true}, in)
		r.Sigmoid(prob, db.Out().X)
		if err := r.Err(); err != nil {
			r.Release()
			return err
		}
		g.fieldRec, g.fieldN, g.fieldIn, g.fieldOut, g.fieldLogit = r, P, in, prob, db.Out().X
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
	g.GAN.Release()
	g.sampleRec.Release()
	g.fieldRec.Release()
	g.sampleRec, g.fieldRec = nil, nil
	for _, t := range g.evalOwned {
		t.Release()
	}
	g.evalOwned = nil
}
