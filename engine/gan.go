package engine

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"vkgan/vk"
)

// GANConfig configures a GAN training step.
type GANConfig struct {
	// Model is a DCGAN's shape, used when G and D are nil.
	Model DCGAN
	// G and D are any other model's networks (the toy's MLPs).
	G, D *Net
	// Loss is the adversarial loss; nil is BCELoss{RealLabel}.
	Loss  Loss
	Batch int
	Seed  uint64 // data order and noise: (Seed, step counter) reproduce a batch
	// Optimizers for D and G (the example: lr 2e-4, betas 0.5, 0.999).
	AdamD, AdamG Adam
	// RealLabel is BCE's target for real images (1; less for one-sided
	// label smoothing), when Loss is nil.
	RealLabel float32
	// DSteps is the number of D updates per G update (1 in the example).
	DSteps int
	// EMA, when positive, keeps an exponential moving average of G's
	// weights with this decay, for samples.
	EMA float32
	// JointD runs D's update on real and fake samples in one pass, with
	// the loss of both terms at once, instead of one pass each (PacGAN's
	// toy code does this). D may not have batch norm then: it would mix
	// the two batches' statistics. G's last layer writes into the second
	// half of D's input, so it must be one that can (Linear).
	JointD bool
	// Pack is PacGAN's m: D sees Pack samples concatenated (0 means 1);
	// it needs JointD.
	Pack int
	// InstanceNoise, when positive, adds normal noise of this std to every
	// sample D sees (real and fake, in both halves of the step), falling
	// linearly to zero at step NoiseUntil; it needs JointD.
	InstanceNoise float32
	NoiseUntil    int
	// Augment is DiffAugment's policy (Zhao et al. 2020): every batch D
	// sees, real or fake, in D's update and in G's, is augmented with
	// parameters drawn afresh for each, and G's gradient flows back
	// through the augmentation. The zero value is off.
	Augment Augment
	// R1 is the weight gamma of StyleGAN2's R1 penalty, gamma/2 times the
	// mean squared norm of D's gradient on the real images it sees; 0 is
	// off. With R1Every k > 1 the penalty is taken on every k-th step only,
	// with weight gamma*k (lazy regularisation), and added to that step's
	// D update (StyleGAN2 takes a separate Adam step for it instead).
	R1      float32
	R1Every int
	// Profile records a timestamp after every dispatch of the step (see
	// StepProfile); it costs a little time per dispatch.
	Profile bool
	// Shard makes the GAN one rank of data-parallel training (see Shard);
	// the zero value is one process. Batch is then the rank's share.
	Shard Shard
	// noiseSeed is xored into Seed for the latent noise (a DCGAN's
	// constant unless a model sets its own).
	noiseSeed uint64
}

// dcganNoiseSeed keys a DCGAN's latent noise.
const dcganNoiseSeed = 0xa5a5a5a5deadbeef

// Metrics are a step's losses and mean discriminator outputs, as the
// PyTorch example prints them.
type Metrics struct {
	LossD, LossG float64
	DX           float64 // mean D(x) on the real batch (NaN with JointD: not measured)
	DGZ1, DGZ2   float64 // mean D(G(z)) before and after D's update (NaN with JointD)
	// R1 is the last R1 penalty taken, gamma/2 * mean ||grad_x D(x)||^2
	// with the configured gamma (0 when R1 is off).
	R1 float64
}

// metric slots in GAN.metrics, each ViewAlign apart so each is a view.
const (
	mLossDReal = iota // with JointD: the joint loss, the mean of both terms
	mLossDFake
	mLossG
	mDX
	mDGZ1
	mDGZ2
	mR1
	numMetrics
)

// NetState is one network and its state on the device, each part a table
// keyed by the state_dict names of Net.Params (Stats for Stats).
type NetState struct {
	Net                 *Net
	Params, Grads, M, V *ParamSet
	Stats               *ParamSet // running statistics; nil when the net has none
	EMA                 *ParamSet // an average of Params (G, with GANConfig.EMA), else nil
	Counter             *Counter  // Adam's step t
	adam                Adam
}

func (d *Device) newNetState(n *Net, adam Adam, ema bool, keep func(*Tensor)) (*NetState, error) {
	s := &NetState{Net: n, adam: adam}
	sets := []struct {
		p     **ParamSet
		specs []ParamSpec
	}{{&s.Params, n.Params}, {&s.Grads, n.Params}, {&s.M, n.Params}, {&s.V, n.Params}, {&s.Stats, n.Stats}}
	if ema {
		sets = append(sets, struct {
			p     **ParamSet
			specs []ParamSpec
		}{&s.EMA, n.Params})
	}
	for _, ps := range sets {
		if len(ps.specs) == 0 {
			continue
		}
		var err error
		if *ps.p, err = d.NewParamSet(ps.specs); err != nil {
			s.release()
			return nil, fmt.Errorf("engine: %s: %w", n.Name, err)
		}
	}
	var err error
	if s.Counter, err = d.NewCounter(); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

func (s *NetState) release() {
	if s == nil {
		return
	}
	for _, ps := range []*ParamSet{s.Params, s.Grads, s.M, s.V, s.Stats, s.EMA} {
		ps.Release()
	}
	s.Counter.Release()
}

// RealSource records a batch of real samples into out from (seed, the
// value of counter): a data set on the device, or a distribution. out
// holds rows of a global batch (the zero Rows: all of it).
type RealSource interface {
	RecordBatch(r *Recorder, out *Tensor, counter *Counter, seed uint64, rows Rows) error
}

var _ RealSource = (*DeviceData)(nil)

// RecordBatch gathers a random batch of the data set's images.
func (dd *DeviceData) RecordBatch(r *Recorder, out *Tensor, counter *Counter, seed uint64, rows Rows) error {
	return r.GatherBatchRows(out, dd, counter, seed, rows)
}

// LabelSource is a RealSource with class labels, for conditional models:
// it records the one-hot labels of the real batch RecordBatch draws for
// the same counter and seed, and labels for the fake batch.
type LabelSource interface {
	RealSource
	Classes() int
	RecordLabels(r *Recorder, real, fake *Tensor, counter *Counter, seed uint64, rows Rows) error
}

var _ LabelSource = (*DeviceData)(nil)

// RecordLabels records the real batch's labels and, for the fake batch,
// the labels of images drawn at random: fake classes follow the data's
// class frequencies, as the real batches' do.
func (dd *DeviceData) RecordLabels(r *Recorder, real, fake *Tensor, counter *Counter, seed uint64, rows Rows) error {
	if err := r.gatherLabels(real, dd, counter, seed, rows); err != nil {
		return err
	}
	return r.drawLabels(fake, dd, counter, seed^fakeLabelSeed, rows)
}

// fakeLabelSeed keys the fake batch's labels.
const fakeLabelSeed = 0x3c6ef372fe94f82b

// augmentSeed keys DiffAugment's parameters; the three augmented batches
// of a step are streams 0 (real), 1 (fake, D's update), 2 (fake, G's).
const augmentSeed = 0x6a09e667f3bcc908

// GAN owns both networks' state, the activations and the recorded training
// step, for any G, D, Loss and real-data source. Everything lives on the
// device; Step submits one command buffer and waits (one per segment,
// with the gradients averaged between them, for a rank of several: see
// Shard).
type GAN struct {
	d       *Device
	cfg     GANConfig
	G, D    *NetState
	loss    Loss
	source  RealSource
	z, real *Tensor
	fake    *Tensor // G's output
	xd      *Tensor // with JointD: [real; fake], D's joint input
	gBound  Bound   // G's activations at the batch size
	dBound  Bound   // D's for its update (2*Batch/Pack rows with JointD)
	dGBound Bound   // D's for G's update (the same as dBound without JointD)
	metrics *Tensor
	mviews  []*Tensor
	step    *stepRec
	// With R1 every k > 1 steps: stepR1 is the step with the penalty,
	// step the one without.
	stepR1 *stepRec
	// scratch holds the step recordings' scratch buffers.
	scratch *scratchSet
	r1      *R1
	// r1Count is G's step counter as the host last knew it (steps -1:
	// unknown) and the counter's Set count then, for lazy R1.
	r1Count struct {
		steps int64
		sets  uint64
	}
	// With Augment: D's augmented inputs, the gradient at G's augmented
	// batch, and each batch's augmentation parameters.
	augReal, augFake, dAug *Tensor
	augP                   [3]*Tensor
	realLabels, fakeLabels *Tensor // one-hot, with a conditional model
	owned                  []*Tensor
	reduceTime             time.Duration // see ReduceTime
}

// NewGAN allocates a DCGAN (cfg.Model) or cfg's G and D and records the
// step. data may be nil for a GAN used only to sample.
func (d *Device) NewGAN(cfg GANConfig, data *DeviceData) (*GAN, error) {
	if cfg.G == nil && cfg.D == nil {
		if data != nil && (data.Size != cfg.Model.Size || data.Channels != cfg.Model.Channels) {
			return nil, fmt.Errorf("engine: gan: data set has %dx%dx%d images, the model makes %dx%dx%d",
				data.Channels, data.Size, data.Size, cfg.Model.Channels, cfg.Model.Size, cfg.Model.Size)
		}
		var err error
		if cfg.G, err = cfg.Model.Generator(); err != nil {
			return nil, err
		}
		if cfg.D, err = cfg.Model.Discriminator(); err != nil {
			return nil, err
		}
	}
	if data == nil { // a nil *DeviceData in the interface would not be a nil source
		return d.newGAN(cfg, nil)
	}
	return d.newGAN(cfg, data)
}

func (d *Device) newGAN(cfg GANConfig, source RealSource) (g *GAN, err error) {
	if cfg.G == nil || cfg.D == nil {
		return nil, fmt.Errorf("engine: gan: needs both networks")
	}
	if cfg.Batch < 2 {
		return nil, fmt.Errorf("engine: gan: batch %d must be at least 2 (batch norm needs a batch)", cfg.Batch)
	}
	cfg.DSteps = max(cfg.DSteps, 1)
	cfg.Pack = max(cfg.Pack, 1)
	if cfg.noiseSeed == 0 {
		cfg.noiseSeed = dcganNoiseSeed
	}
	m, B := cfg.Pack, cfg.Batch
	sample := prod(cfg.G.Out)
	switch {
	case !cfg.JointD && (m > 1 || cfg.InstanceNoise > 0):
		return nil, fmt.Errorf("engine: gan: packing and instance noise need JointD")
	case cfg.JointD && len(cfg.D.BatchNorms()) > 0:
		return nil, fmt.Errorf("engine: gan: JointD with batch norm in D would mix the real and fake batches' statistics")
	case cfg.JointD && (cfg.Augment.Enabled() || cfg.R1 != 0):
		return nil, fmt.Errorf("engine: gan: DiffAugment and R1 work on separate real and fake passes, not with JointD")
	case !(cfg.R1 >= 0) || math.IsInf(float64(cfg.R1), 0) || cfg.R1Every < 0:
		return nil, fmt.Errorf("engine: gan: R1 weight %g and interval %d must be finite and non-negative", cfg.R1, cfg.R1Every)
	case B%m != 0:
		return nil, fmt.Errorf("engine: gan: batch %d must be a multiple of the pack %d", B, m)
	case cfg.Shard.ranks() > 1 && cfg.Augment.Enabled():
		// augment_draw.comp draws per-row parameters without a row offset
		// yet: every rank would reuse rank 0's, unlike one process.
		return nil, fmt.Errorf("engine: gan: DiffAugment's parameters are not sharded across ranks yet: train augmented runs (-augment, -flip) as one process")
	case prod(cfg.D.In) != m*sample || (m == 1 && !cfg.JointD && !slices.Equal(cfg.D.In, cfg.G.Out)):
		return nil, fmt.Errorf("engine: gan: D takes %v, G makes %v (pack %d)", cfg.D.In, cfg.G.Out, m)
	}
	if need, have := memoryNeed(cfg), d.info.Limits.DeviceLocalBytes; have > 0 && need > have {
		return nil, fmt.Errorf("engine: gan: the networks' state and activations need about %.1f GiB, the device has %.1f GiB: %w",
			float64(need)/(1<<30), float64(have)/(1<<30), vk.ErrOutOfDeviceMemory)
	}
	if err := cfg.Shard.validate(); err != nil {
		return nil, err
	}
	cfg.R1Every = max(cfg.R1Every, 1)
	g = &GAN{d: d, cfg: cfg, source: source, loss: cfg.Loss}
	g.r1Count.steps = -1
	if g.loss == nil {
		g.loss = BCELoss{RealLabel: cmp.Or(cfg.RealLabel, 1)}
	}
	defer func() {
		if err != nil {
			g.Release()
			g = nil
		}
	}()
	keep := func(t *Tensor) { g.owned = append(g.owned, t) }
	if g.G, err = d.newNetState(cfg.G, cfg.AdamG, cfg.EMA > 0, keep); err != nil {
		return nil, err
	}
	if g.D, err = d.newNetState(cfg.D, cfg.AdamD, false, keep); err != nil {
		return nil, err
	}
	if g.z, err = alloc(d, keep, append([]int{B}, cfg.G.In...)...); err != nil {
		return nil, err
	}
	if g.metrics, err = alloc(d, keep, numMetrics*ViewAlign); err != nil {
		return nil, err
	}
	for i := 0; i < numMetrics; i++ {
		v, err := g.metrics.View(i*ViewAlign, 1)
		if err != nil {
			return nil, err
		}
		g.mviews = append(g.mviews, v)
	}
	// G and D take their layers' output gradients from two shared
	// buffers (see gradPool), except a D that R1 differentiates.
	var gGrads, dGrads *gradPool
	if !forceOwnGradients {
		bufs, err := newGradBuffers(d, gradBufferFloats(cfg), keep)
		if err != nil {
			return nil, err
		}
		gGrads = &gradPool{bufs: bufs}
		if cfg.R1 == 0 {
			dGrads = &gradPool{bufs: bufs}
		}
	}
	if cfg.JointD {
		if g.xd, err = alloc(d, keep, append([]int{2 * B}, cfg.G.Out...)...); err != nil {
			return nil, err
		}
		if g.real, err = g.xd.View(0, append([]int{B}, cfg.G.Out...)...); err != nil {
			return nil, err
		}
		if g.fake, err = g.xd.View(B*sample, append([]int{B}, cfg.G.Out...)...); err != nil {
			return nil, err
		}
		if g.gBound, err = cfg.G.bindPooled(d, B, g.fake, gGrads, keep); err != nil {
			return nil, err
		}
		if g.dBound, err = cfg.D.bindPooled(d, 2*B/m, nil, dGrads, keep); err != nil {
			return nil, err
		}
		if g.dGBound, err = cfg.D.bindPooled(d, B/m, nil, dGrads.withInput(g.gBound.Out().DX), keep); err != nil {
			return nil, err
		}
	} else {
		if g.real, err = alloc(d, keep, append([]int{B}, cfg.D.In...)...); err != nil {
			return nil, err
		}
		if g.gBound, err = cfg.G.bindPooled(d, B, nil, gGrads, keep); err != nil {
			return nil, err
		}
		g.fake = g.gBound.Out().X
		if g.dBound, err = cfg.D.bindPooled(d, B, nil, dGrads.withInput(g.gBound.Out().DX), keep); err != nil {
			return nil, err
		}
		g.dGBound = g.dBound
	}
	if cfg.Augment.Enabled() {
		shape := append([]int{B}, cfg.D.In...)
		for _, t := range []**Tensor{&g.augReal, &g.augFake, &g.dAug} {
			if *t, err = alloc(d, keep, shape...); err != nil {
				return nil, err
			}
		}
		for i := range g.augP {
			if g.augP[i], err = alloc(d, keep, B, AugmentParams); err != nil {
				return nil, err
			}
		}
	}
	if cfg.R1 > 0 {
		if g.r1, err = NewR1(d, cfg.D, g.dBound, B, keep); err != nil {
			return nil, err
		}
	}
	if k := conditionalClasses(cfg); k > 0 {
		if ls, ok := source.(LabelSource); source != nil && (!ok || ls.Classes() != k) {
			return nil, fmt.Errorf("engine: gan: the model is conditional on %d classes; the data set has labels of %d", k, sourceClasses(source))
		}
		if g.realLabels, err = alloc(d, keep, B, k); err != nil {
			return nil, err
		}
		if g.fakeLabels, err = alloc(d, keep, B, k); err != nil {
			return nil, err
		}
	}
	if source != nil {
		// The step's segments and the R1 step run one at a time, so they
		// share their scratch buffers, sized once the step is known.
		g.scratch = newScratchSet(d)
		if err := recordPlanned(g.scratch, g.recordSteps, g.releaseSteps); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// recordSteps records the step and, with lazy R1, the step with R1.
func (g *GAN) recordSteps() (err error) {
	if g.step, err = g.record(g.cfg.R1 > 0 && g.cfg.R1Every == 1); err != nil {
		return err
	}
	if g.cfg.R1 > 0 && g.cfg.R1Every > 1 {
		g.stepR1, err = g.record(true)
	}
	return err
}

func (g *GAN) releaseSteps() {
	g.step.release()
	g.stepR1.release()
	g.step, g.stepR1 = nil, nil
}

// classLayer is a layer that takes class labels (a conditional model's
// embedding or projection).
type classLayer interface{ classCount() int }

// conditionalClasses is the number of classes cfg's networks are
// conditional on, 0 for unconditional ones.
func conditionalClasses(cfg GANConfig) int {
	k := 0
	for _, n := range []*Net{cfg.G, cfg.D} {
		walk(n.Body, func(l Layer) {
			if c, ok := l.(classLayer); ok {
				k = c.classCount()
			}
		})
	}
	return k
}

// sourceClasses is the number of classes source has labels of.
func sourceClasses(source RealSource) int {
	if ls, ok := source.(LabelSource); ok {
		return ls.Classes()
	}
	return 0
}

// memoryNeed is about the bytes a GAN allocates, counted from the
// networks' declarations before anything is allocated: each network's
// parameters four times (weights, gradients, Adam's two moments), the
// average and the statistics, and every layer's output at the batch size
// (D's twice with JointD) with the gradients: two shared buffers of the
// largest, or one per layer where R1 reads them. Recording workspace
// (padding, loss scratch) comes on top.
func memoryNeed(cfg GANConfig) uint64 {
	var floats uint64
	state := func(n *Net, ema bool) {
		p := uint64(0)
		for _, s := range n.Params {
			p += uint64(prod(s.Shape))
		}
		sets := uint64(4)
		if ema {
			sets++
		}
		floats += sets * p
		for _, s := range n.Stats {
			floats += uint64(prod(s.Shape))
		}
	}
	// Outputs, and gradients where a layer has its own (see gradPool).
	acts := func(n *Net, batch int, ownGrads bool) {
		leafOutputs(n.Body, n.In, func(l Layer, out []int) {
			switch l.(type) {
			case *Activation, *Flatten: // in place, or views
			default:
				floats += uint64(batch) * uint64(prod(out)) * uint64(1+b2u(ownGrads))
			}
		})
	}
	if !forceOwnGradients {
		floats += 2 * uint64(gradBufferFloats(cfg))
	}
	dOwn := forceOwnGradients || cfg.R1 > 0
	// Spectral norm keeps W_sn and a scratch gradient per bound layer.
	snWeights := func(n *Net, binds uint64) {
		for _, p := range n.Params {
			if strings.HasSuffix(p.Name, ".weight_orig") {
				floats += 2 * binds * uint64(prod(p.Shape))
			}
		}
	}
	state(cfg.G, cfg.EMA > 0)
	state(cfg.D, false)
	acts(cfg.G, cfg.Batch, forceOwnGradients)
	acts(cfg.D, cfg.Batch, dOwn)
	snWeights(cfg.G, 1)
	snWeights(cfg.D, 1)
	if cfg.JointD {
		acts(cfg.D, 2*cfg.Batch, dOwn)
		snWeights(cfg.D, 1)
	}
	if cfg.R1 > 0 {
		acts(cfg.D, cfg.Batch, true) // the tangents, about one more set of D's activations
	}
	if cfg.Augment.Enabled() {
		floats += 3 * uint64(cfg.Batch) * uint64(prod(cfg.D.In))
	}
	return 4 * floats
}

// leafOutputs calls fn with every leaf layer under l and its output shape
// for inputs of shape in, and returns l's output shape.
func leafOutputs(l Layer, in []int, fn func(Layer, []int)) []int {
	if s, ok := l.(*Sequential); ok {
		for _, c := range s.Layers {
			in = leafOutputs(c, in, fn)
		}
		return in
	}
	out, _, _, err := l.Declare(in) // declared before: the same shapes again
	if err != nil {
		return in
	}
	fn(l, out)
	return out
}

// Init sets fresh weights from seed (each model's initialisation: the
// example's for a DCGAN) and zeroes optimizer state and counters.
func (g *GAN) Init(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	gp, gs := g.G.Net.Init(rng)
	dp, ds := g.D.Net.Init(rng)
	return initState([]*ParamSet{g.G.Params, g.G.Stats, g.D.Params, g.D.Stats, g.G.EMA}, []map[string][]float32{gp, gs, dp, ds, gp},
		[]*ParamSet{g.G.M, g.G.V, g.D.M, g.D.V, g.G.Grads, g.D.Grads}, g.G.Counter, g.D.Counter)
}

// record builds the step, as PyTorch's dcgan/main.py runs it:
//
//	for each of DSteps: draw a real batch and z; fake = G(z) (batch-norm
//	statistics of this pass); D on real and on fake detached, each with
//	its loss term, gradients summed; Adam on D.
//	Then D on the same fake with D's new weights, G's loss term, backward
//	through D into G; Adam on G; update the EMA.
//
// With JointD, D's update is one pass over [real; fake] (packed) with both
// terms' loss at once. With Augment, D sees augmented batches; withR1
// adds the R1 penalty's gradient on the real batch to the first D update.
// The recording reads only device state, so it is replayed unchanged.
// Errors are the recorder's sticky one, checked once at the end.
func (g *GAN) record(withR1 bool) (*stepRec, error) {
	st := &stepRec{}
	r, err := g.d.recordWith(g.scratch)
	if err != nil {
		return nil, err
	}
	if g.cfg.Profile {
		r.EnableProfile()
	}
	c := g.cfg
	m, B := c.Pack, c.Batch
	ranks := c.Shard.ranks()
	rows := c.Shard.rows(B)
	sample := prod(c.G.Out)
	// cut ends the segment before the Adam update of grads, with ranks:
	// the segment ends by copying grads into a host-visible staging
	// buffer, Step averages it there over the ranks, and the next segment
	// begins by copying it back.
	cut := func(grads *Tensor) {
		if ranks == 1 || r.Err() != nil {
			return
		}
		bytes := int64(4 * grads.n)
		stage, err := g.d.vk.NewHostBuffer(bytes)
		if err != nil {
			r.fail(fmt.Errorf("engine: gan: gradient staging: %w", err))
			return
		}
		// The backward pass's last dispatch ended with a barrier that
		// covers transfers; the copy back needs one before Adam reads.
		r.r.Copy(stage, 0, grads.buf, 0, bytes)
		next, err := g.d.recordWith(g.scratch)
		if err != nil {
			stage.Release()
			r.fail(err)
			return
		}
		if c.Profile {
			next.EnableProfile()
		}
		next.r.Copy(grads.buf, 0, stage, 0, bytes)
		next.r.Barrier()
		st.segs, st.grads, st.stage = append(st.segs, r), append(st.grads, grads), append(st.stage, stage)
		for _, seg := range []*Recorder{r, next} {
			if err := seg.r.Err(); err != nil {
				seg.fail(fmt.Errorf("engine: gan: gradient copies: %w", err))
			}
		}
		r = next
	}
	mv := g.mviews
	gTrain := &Pass{Params: g.G.Params, Stats: g.G.Stats, Grads: g.G.Grads, Train: true, Momentum: bnMomentum, Labels: g.fakeLabels}
	dReal := &Pass{Params: g.D.Params, Stats: g.D.Stats, Grads: g.D.Grads, Train: true, Momentum: bnMomentum, Labels: g.realLabels}
	dFake := *dReal
	dFake.Accumulate, dFake.Labels = true, g.fakeLabels
	dThrough := dFake // into G: no weight gradients for D
	dThrough.Grads, dThrough.Accumulate = nil, false
	// D's inputs: one sample each, or Pack concatenated.
	packed := func(t *Tensor, rows int) *Tensor {
		if m == 1 && !c.JointD {
			return t
		}
		v, err := t.Reshape(append([]int{rows}, c.D.In...)...)
		if err != nil {
			r.fail(err)
		}
		return v
	}
	// augment returns D's view of batch x: x itself, or x augmented with
	// the parameters of stream.
	augment := func(x, out *Tensor, stream uint32) *Tensor {
		if !c.Augment.Enabled() {
			return x
		}
		r.AugmentDraw(g.augP[stream], c.Augment, c.D.In[1], c.D.In[2], c.Seed^augmentSeed, g.D.Counter, stream)
		r.Augment(out, x, g.augP[stream], c.Augment)
		return out
	}
	fakeD, dfakeD := packed(g.fake, B/m), packed(g.gBound.Out().DX, B/m)
	for it := 0; it < c.DSteps; it++ {
		r.Increment(g.D.Counter)
		if err := g.source.RecordBatch(r, g.real, g.D.Counter, c.Seed, rows); err != nil {
			st.release()
			r.Release()
			return nil, err
		}
		if g.realLabels != nil {
			if err := g.source.(LabelSource).RecordLabels(r, g.realLabels, g.fakeLabels, g.D.Counter, c.Seed, rows); err != nil {
				st.release()
				r.Release()
				return nil, err
			}
		}
		// The rank's rows of the global batch's latents, z being [B, ...].
		r.RandNormalAt(g.z, c.Seed^c.noiseSeed, g.D.Counter, rows.Offset*g.z.n/B, 0, 1)
		g.gBound.Forward(r, gTrain, g.z)
		logits, dlogits := g.dBound.Out().X, g.dBound.Out().DX
		if c.JointD {
			if c.InstanceNoise > 0 {
				// fake is a view of xd, so G's half of the step sees the same noisy samples.
				if ranks == 1 {
					r.AddAnnealedNoise(g.xd, c.Seed^toyInstanceSeed, g.D.Counter, c.InstanceNoise, c.NoiseUntil)
				} else {
					// The global xd is [real of all ranks; fake of all ranks]:
					// this rank's rows of each half.
					r.addAnnealedNoise(g.real, c.Seed^toyInstanceSeed, g.D.Counter, rows.Offset*sample, c.InstanceNoise, c.NoiseUntil)
					r.addAnnealedNoise(g.fake, c.Seed^toyInstanceSeed, g.D.Counter, (rows.Global+rows.Offset)*sample, c.InstanceNoise, c.NoiseUntil)
				}
			}
			xd := packed(g.xd, 2*B/m)
			g.dBound.Forward(r, dReal, xd)
			g.loss.RecordJoint(r, logits, dlogits, B/m, mv[mLossDReal])
			g.dBound.Backward(r, dReal, xd, nil)
		} else {
			realD := augment(g.real, g.augReal, 0)
			g.dBound.Forward(r, dReal, realD)
			g.loss.Record(r, TermReal, logits, dlogits, mv[mLossDReal], mv[mDX])
			g.dBound.Backward(r, dReal, realD, nil)
			if withR1 && it == 0 {
				g.r1.Record(r, dReal, realD, c.R1*float32(c.R1Every), mv[mR1])
			}
			fakeIn := augment(g.fake, g.augFake, 1)
			g.dBound.Forward(r, &dFake, fakeIn)
			g.loss.Record(r, TermFake, logits, dlogits, mv[mLossDFake], mv[mDGZ1])
			g.dBound.Backward(r, &dFake, fakeIn, nil)
		}
		cut(g.D.Grads.Flat)
		r.AdamStep(g.D.Params.Flat, g.D.Grads.Flat, g.D.M.Flat, g.D.V.Flat, g.D.Counter, c.AdamD)
	}
	gIn, dgIn := fakeD, dfakeD
	if c.Augment.Enabled() {
		gIn, dgIn = augment(g.fake, g.augFake, 2), g.dAug
	}
	g.dGBound.Forward(r, &dThrough, gIn)
	meanD := mv[mDGZ2]
	if c.JointD {
		meanD = nil // the joint step measures no D outputs: two dispatches saved
	}
	g.loss.Record(r, TermGen, g.dGBound.Out().X, g.dGBound.Out().DX, mv[mLossG], meanD)
	g.dGBound.Backward(r, &dThrough, gIn, dgIn)
	if c.Augment.Enabled() {
		r.AugmentBackward(dfakeD, g.dAug, g.augP[2], c.Augment)
	}
	g.gBound.Backward(r, gTrain, g.z, nil)
	cut(g.G.Grads.Flat)
	r.Increment(g.G.Counter)
	r.AdamStep(g.G.Params.Flat, g.G.Grads.Flat, g.G.M.Flat, g.G.V.Flat, g.G.Counter, c.AdamG)
	if g.G.EMA != nil {
		r.Scale(g.G.EMA.Flat, c.EMA)
		r.Axpy(g.G.EMA.Flat, g.G.Params.Flat, 1-c.EMA)
	}
	st.segs = append(st.segs, r)
	for _, seg := range st.segs {
		err := seg.Err()
		if err == nil && ranks > 1 {
			// Ended here, not at the first submit: ranks simulated in one
			// process submit from several goroutines, and ending a command
			// buffer uses its pool, which Vulkan does not synchronise.
			err = seg.r.End()
		}
		if err != nil {
			st.release()
			return nil, fmt.Errorf("engine: gan: recording the step: %w", err)
		}
	}
	return st, nil
}

// Step runs one recorded training step and waits for it. With lazy R1,
// the steps whose number is a multiple of R1Every take the penalty.
func (g *GAN) Step() error {
	if g.step == nil {
		return fmt.Errorf("engine: gan: no training step (no data set)")
	}
	rec, next := g.step, int64(-1)
	if g.stepR1 != nil {
		// G's counter is the number of steps run. It is read from the
		// device only after the host set it (Init, a checkpoint), not on
		// every step: a download would be a second sync per step.
		if g.r1Count.sets != g.G.Counter.sets || g.r1Count.steps < 0 {
			t, err := g.G.Counter.Value()
			if err != nil {
				return err
			}
			g.r1Count.steps, g.r1Count.sets = int64(t), g.G.Counter.sets
		}
		if (g.r1Count.steps+1)%int64(g.cfg.R1Every) == 0 {
			rec = g.stepR1
		}
		next, g.r1Count.steps = g.r1Count.steps+1, -1 // unknown should the step fail
	}
	if err := rec.run(g.cfg.Shard, &g.reduceTime); err != nil {
		return err
	}
	if next >= 0 {
		g.r1Count.steps = next
	}
	return nil
}

// StepProfile returns GPU milliseconds per kernel of the last step (with
// GANConfig.Profile).
func (g *GAN) StepProfile() (map[string]float64, error) {
	if g.step == nil {
		return nil, fmt.Errorf("engine: gan: no training step (no data set)")
	}
	return g.step.profile()
}

// ReadMetrics reads the last step's metrics: the only host-device
// transfer of a training run between checkpoints. With ranks, they are
// averaged over them (every rank must call it at the same step).
func (g *GAN) ReadMetrics() (Metrics, error) {
	v, err := g.metrics.Download()
	if err != nil {
		return Metrics{}, err
	}
	if sh := g.cfg.Shard; sh.ranks() > 1 {
		vals := make([]float32, numMetrics)
		for i := range vals {
			vals[i] = v[i*ViewAlign]
		}
		if err := sh.Reduce(vals); err != nil {
			return Metrics{}, fmt.Errorf("engine: gan: averaging metrics over %d ranks: %w", sh.Size, err)
		}
		scaleMean(vals, sh.ranks())
		for i, x := range vals {
			v[i*ViewAlign] = x
		}
	}
	at := func(i int) float64 { return float64(v[i*ViewAlign]) }
	if g.cfg.JointD {
		// The joint loss is the mean over both halves: twice it is the sum
		// of the two terms' means, as the separate passes report.
		return Metrics{LossD: 2 * at(mLossDReal), LossG: at(mLossG), DX: math.NaN(), DGZ1: math.NaN(), DGZ2: math.NaN()}, nil
	}
	r1 := 0.0
	if g.cfg.R1 > 0 {
		r1 = at(mR1) / float64(g.cfg.R1Every) // recorded with gamma*k
	}
	return Metrics{LossD: at(mLossDReal) + at(mLossDFake), LossG: at(mLossG), DX: at(mDX), DGZ1: at(mDGZ1), DGZ2: at(mDGZ2), R1: r1}, nil
}

// Finite reports whether metrics hold only finite numbers.
func (m Metrics) Finite() bool {
	for _, v := range []float64{m.LossD, m.LossG, m.DX, m.DGZ1, m.DGZ2, m.R1} {
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
	g.releaseSteps()
	g.scratch.release() // after the recordings that use it
	g.G.release()
	g.D.release()
	for _, t := range g.owned {
		t.Release()
	}
	g.owned = nil
}

// RealBatch is the real batch the last step drew (for checks and tests).
func (g *GAN) RealBatch() *Tensor { return g.real }

// AugmentParams are the DiffAugment parameters of the last step's three
// augmented batches (real, fake in D's update, fake in G's), nil when the
// GAN does not augment.
func (g *GAN) AugmentParams() []*Tensor {
	if g.augP[0] == nil {
		return nil
	}
	return g.augP[:]
}

// Labels are the one-hot labels of the last step's real and fake
// batches, nil for an unconditional GAN.
func (g *GAN) Labels() (real, fake *Tensor) { return g.realLabels, g.fakeLabels }

// Noise is the latent batch the last step drew.
func (g *GAN) Noise() *Tensor { return g.z }
