package toy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"vkgan/engine"
	"vkgan/internal/atomicfile"
	"vkgan/internal/dirlock"
	"vkgan/internal/mpi"
	"vkgan/vk"
)

// Mixture is a 2D mixture of equal-weight isotropic Gaussians.
type Mixture struct {
	Name    string
	Centers [][2]float64
	Std     float64
	// Extent is the half-width of the square the frames show.
	Extent float64
}

// Mixture names accepted by NewMixture.
const (
	MixRing8  = "ring8"
	MixGrid25 = "grid25"
	MixSpiral = "spiral"
)

// NewMixture returns a named mixture:
//
//	ring8:  8 modes at (cos 2 pi i/8, sin 2 pi i/8), std 0.01;
//	grid25: 25 modes at {-4,-2,0,2,4}^2, std 0.05;
//	spiral: 16 modes along an Archimedean spiral, mode i at radius
//	        0.3 + 1.7 i/15 and angle 3 pi i/15 (one and a half turns),
//	        std 0.02 (neighbours are at least 0.19 apart, over 9 std).
func NewMixture(name string) (Mixture, error) {
	switch name {
	case MixRing8:
		m := Mixture{Name: name, Std: 0.01, Extent: 1.5}
		for i := 0; i < 8; i++ {
			a := 2 * math.Pi * float64(i) / 8
			m.Centers = append(m.Centers, [2]float64{math.Cos(a), math.Sin(a)})
		}
		return m, nil
	case MixGrid25:
		m := Mixture{Name: name, Std: 0.05, Extent: 5.5}
		for j := -2; j <= 2; j++ {
			for i := -2; i <= 2; i++ {
				m.Centers = append(m.Centers, [2]float64{float64(2 * i), float64(2 * j)})
			}
		}
		return m, nil
	case MixSpiral:
		m := Mixture{Name: name, Std: 0.02, Extent: 2.3}
		for i := 0; i < 16; i++ {
			t := float64(i) / 15
			r, a := 0.3+1.7*t, 3*math.Pi*t
			m.Centers = append(m.Centers, [2]float64{r * math.Cos(a), r * math.Sin(a)})
		}
		return m, nil
	}
	return Mixture{}, fmt.Errorf("train: toy: unknown data %q (want ring8, grid25 or spiral)", name)
}

// Sample draws n points on the host (for drawing the collected data),
// never from mode holdout (-1: none).
func (m Mixture) Sample(rng *rand.Rand, n, holdout int) [][2]float64 {
	out := make([][2]float64, n)
	k := len(m.Centers)
	for i := range out {
		j := rng.IntN(k)
		for j == holdout {
			j = rng.IntN(k)
		}
		c := m.Centers[j]
		out[i] = [2]float64{c[0] + m.Std*rng.NormFloat64(), c[1] + m.Std*rng.NormFloat64()}
	}
	return out
}

// ModeStats is mode coverage as the mode-collapse papers measure it.
type ModeStats struct {
	Samples    int     // samples measured
	HighQual   int     // samples within 3 std of their nearest mode
	Modes      int     // modes nearest to at least one high-quality sample
	ModesTotal int     // modes of the mixture
	HQPercent  float64 // 100 * HighQual / Samples
	// ReverseKL is KL(q || u) = sum_k q_k log(K q_k) over modes with q_k >
	// 0, where q is the histogram of high-quality samples over their nearest
	// modes (normalised) and u is uniform over all K modes: 0 when every
	// mode gets the same share, log K when all land on one mode. NaN when
	// no sample is high quality.
	ReverseKL float64
	PerMode   []int // high-quality samples per mode
	// NearestPerMode counts every sample by its nearest mode, however far.
	NearestPerMode []int
}

// MeasureModes computes ModeStats for samples (x, y pairs).
func (m Mixture) MeasureModes(samples []float32) ModeStats {
	k := len(m.Centers)
	s := ModeStats{Samples: len(samples) / 2, ModesTotal: k, PerMode: make([]int, k), NearestPerMode: make([]int, k)}
	lim := 3 * m.Std
	for i := 0; i+1 < len(samples); i += 2 {
		x, y := float64(samples[i]), float64(samples[i+1])
		best, bd := 0, math.Inf(1)
		for j, c := range m.Centers {
			if d := math.Hypot(x-c[0], y-c[1]); d < bd {
				best, bd = j, d
			}
		}
		s.NearestPerMode[best]++
		if bd <= lim {
			s.HighQual++
			s.PerMode[best]++
		}
	}
	kl := 0.0
	for _, c := range s.PerMode {
		if c > 0 {
			s.Modes++
			q := float64(c) / float64(s.HighQual)
			kl += q * math.Log(float64(k)*q)
		}
	}
	if s.HighQual == 0 {
		kl = math.NaN()
	}
	s.ReverseKL = kl
	if s.Samples > 0 {
		s.HQPercent = 100 * float64(s.HighQual) / float64(s.Samples)
	}
	return s
}

// Defaults of Config and Options.
const (
	defaultToySteps       = 25000 // both protocols' run length
	defaultToyNoiseUntil  = 0.5   // fraction of the steps
	defaultToyFrameEvery  = 500
	defaultToyLogEvery    = 1000
	defaultToyEvalSamples = 2500
	// maxToyBatch bounds -batch far above what the protocols use, so that
	// rounding it up to the pack cannot overflow.
	maxToyBatch = 1 << 20
)

// Protocols of the toy experiments.
const (
	ProtocolSmall = "small"
	ProtocolLarge = "large"
)

// Config is one toy run. Zero fields other than Holdout take the
// defaults noted; Validate names the flag of each setting that cannot work.
type Config struct {
	Data     string // ring8, grid25 or spiral
	Protocol string // small (default) or large
	Pack     int    // PacGAN's m (default 1)
	Steps    int    // default 25,000
	Seed     uint64
	Holdout  int // mode left out of the real data; -1 none
	Device   string
	// Learning-rate overrides; zero keeps the protocol's. They must be
	// positive and finite.
	LRD, LRG float64
	// Adam's betas for both nets, in [0, 1); nil keeps the protocol's
	// (beta1 = 0 is a setting of its own, common in GAN work).
	Beta1, Beta2 *float64
	Batch        int // zero keeps the protocol's batch; at most 1<<20
	// EMA, when positive, evaluates and draws an exponential moving average
	// of G's weights with this decay (e.g. 0.999).
	EMA float64
	// LRDecay, when positive, lowers both learning rates linearly to zero
	// over this last fraction of the steps (1: the whole run).
	LRDecay float64
	// Noise, when positive, is annealed instance noise: normal noise of
	// this std added to every point D sees, falling linearly to zero at
	// the fraction NoiseUntil of the steps (0: 0.5).
	Noise, NoiseUntil float64
	// DRS also evaluates G's samples filtered by D (discriminator rejection
	// sampling): toy.json's "drs". Training is unchanged.
	DRS bool
}

// Options say where a run's files go and how often. Zero counts take
// the defaults noted; negative ones are an error (Validate).
type Options struct {
	Out          string // directory for toy.json, frames/ and toy.gif
	FrameEvery   int    // steps between frames (0: 500); the first and last are always drawn
	LogEvery     int    // steps between log lines (0: 1000)
	EvalSamples  int    // samples for the metrics (0: 2,500)
	Log          io.Writer
	OnValidation func(string)
	// OnFrame, if set, receives each frame as it is drawn (vkgan toy -view
	// shows them in a window), with DRS the kept samples' picture last; it
	// must not keep img past the call.
	OnFrame func(img image.Image, step int)
	// Device, if set, is used instead of opening one (the window's: one
	// Vulkan instance per process, since vulkan-go's function pointers are
	// process-wide and a second instance without the window's extensions
	// would replace them).
	Device *engine.Device
	// World is the data-parallel job (mpi.Init); nil or one rank is one
	// process. With N ranks each trains on Batch/N points of every global
	// batch of Batch (the protocol's batch stays the global one, so N
	// ranks follow one process's run to fp32 summation error); rank 0
	// alone logs and writes the folder.
	World *mpi.World
}

// mpiTimeout bounds a rank's wait in a collective: VKGAN_MPI_TIMEOUT (a
// Go duration; 5m by default), as for vkgan train.
func mpiTimeout() (time.Duration, error) {
	s := os.Getenv("VKGAN_MPI_TIMEOUT")
	if s == "" {
		return 5 * time.Minute, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("train: toy: VKGAN_MPI_TIMEOUT=%q: want a positive duration such as 5m", s)
	}
	return d, nil
}

// Result is toy.json.
type Result struct {
	Data     string  `json:"data"`
	Protocol string  `json:"protocol"`
	Pack     int     `json:"pack"`
	Seed     uint64  `json:"seed"`
	Steps    int     `json:"steps"`
	Batch    int     `json:"batch"`
	LRD      float64 `json:"lr_d"`
	LRG      float64 `json:"lr_g"`
	Beta1    float64 `json:"beta1"`
	Beta2    float64 `json:"beta2"`
	EMA      float64 `json:"ema"`                  // decay of the evaluated average of G's weights; 0 = G itself
	LRDecay  float64 `json:"lr_decay"`             // last fraction of the steps over which both learning rates fall to 0
	Noise    float64 `json:"instance_noise"`       // std of the instance noise at step 0
	NoiseEnd int     `json:"instance_noise_until"` // step at which it reaches 0
	// With an average: the same metrics for G's own (last) weights.
	RawModes          *int      `json:"raw_modes,omitempty"`
	RawHighQualityPct *float64  `json:"raw_high_quality_pct,omitempty"`
	Modes             int       `json:"modes"`
	ModesTotal        int       `json:"modes_total"`
	HighQualityPct    float64   `json:"high_quality_pct"`
	ReverseKL         *float64  `json:"reverse_kl"` // null when no sample is high quality
	EvalSamples       int       `json:"eval_samples"`
	PerMode           []int     `json:"hq_per_mode"`
	Holdout           int       `json:"holdout"`
	HoldoutHQ         int       `json:"holdout_hq_samples"`      // samples within 3 std of the held-out mode
	HoldoutNearest    int       `json:"holdout_nearest_samples"` // samples whose nearest mode is the held-out one
	LossD             float64   `json:"loss_d"`
	LossG             float64   `json:"loss_g"`
	MsPerStep         float64   `json:"ms_per_step"`
	TrainSeconds      float64   `json:"train_seconds"`
	Device            string    `json:"device"`
	FramesWritten     int       `json:"frames"`
	EarlyFrame        string    `json:"early_frame,omitempty"`
	LateFrame         string    `json:"late_frame,omitempty"`
	AnimatedGIF       string    `json:"gif,omitempty"`
	ModesTimeline     []int     `json:"modes_timeline,omitempty"`
	TimelineSteps     []int     `json:"timeline_steps,omitempty"`
	HQTimeline        []float64 `json:"hq_timeline,omitempty"`
	DRS               *DRS      `json:"drs,omitempty"`
}

// EngineConfig turns a run's configuration into the engine's, with the
// protocol's networks and optimizers:
//
//	small: G z(256, N(0,1)) -> 128 tanh -> 128 tanh -> 2; D 2m -> 128 tanh
//	       -> 128 tanh -> 1; batch 512; Adam D lr 1e-4, G lr 1e-3, betas
//	       (0.5, 0.999).
//	large: G z(256) -> 4 x (400, batch norm, ReLU) -> 2; D 2m -> 3 x
//	       maxout(200 units, 5 pieces) -> 1; batch 100 (rounded up to a
//	       multiple of 32 and of m: 128 at m <= 2... see DefaultToyBatch);
//	       Adam lr 1e-4 for both, betas (0.8, 0.999).
func EngineConfig(c Config) (engine.ToyConfig, Mixture, error) {
	mix, _ := NewMixture(c.Data) // Validate reports an unknown name
	if err := c.Validate(); err != nil {
		return engine.ToyConfig{}, mix, err
	}
	m := cmp.Or(c.Pack, 1)
	ad, ag := engine.DefaultAdam(), engine.DefaultAdam()
	var e engine.ToyConfig
	switch cmp.Or(c.Protocol, ProtocolSmall) {
	case ProtocolSmall:
		e.G = engine.ToyNet{In: 256, Layers: []engine.ToyLayer{{Out: 128, Act: engine.ToyTanh}, {Out: 128, Act: engine.ToyTanh}, {Out: 2}}}
		e.D = engine.ToyNet{In: 2 * m, Layers: []engine.ToyLayer{{Out: 128, Act: engine.ToyTanh}, {Out: 128, Act: engine.ToyTanh}, {Out: 1}}}
		e.Batch = 512
		ad.LR, ag.LR = 1e-4, 1e-3
		ad.Beta1, ag.Beta1 = 0.5, 0.5
	case ProtocolLarge:
		var gl []engine.ToyLayer
		for i := 0; i < 4; i++ {
			gl = append(gl, engine.ToyLayer{Out: 400, Act: engine.ToyReLU, BN: true})
		}
		e.G = engine.ToyNet{In: 256, Layers: append(gl, engine.ToyLayer{Out: 2})}
		var dl []engine.ToyLayer
		for i := 0; i < 3; i++ {
			dl = append(dl, engine.ToyLayer{Out: 200, Act: engine.ToyMaxout, Pieces: 5})
		}
		e.D = engine.ToyNet{In: 2 * m, Layers: append(dl, engine.ToyLayer{Out: 1})}
		e.Batch = 100
		ad.LR, ag.LR = 1e-4, 1e-4
		ad.Beta1, ag.Beta1 = 0.8, 0.8
	}
	if c.Batch > 0 {
		e.Batch = c.Batch
	}
	// The engine wants a multiple of 32 (aligned views) and of m.
	unit := 32 * m / gcd(32, m)
	e.Batch = (e.Batch + unit - 1) / unit * unit
	// Validate leaves zero (the protocol's) or a value in range.
	if c.LRD != 0 {
		ad.LR = float32(c.LRD)
	}
	if c.LRG != 0 {
		ag.LR = float32(c.LRG)
	}
	if c.Beta1 != nil {
		ad.Beta1, ag.Beta1 = float32(*c.Beta1), float32(*c.Beta1)
	}
	if c.Beta2 != nil {
		ad.Beta2, ag.Beta2 = float32(*c.Beta2), float32(*c.Beta2)
	}
	e.EMA = float32(c.EMA)
	steps := cmp.Or(c.Steps, defaultToySteps)
	if c.LRDecay > 0 {
		// At least the last step decays, however short the run.
		start := min(steps-int(math.Round(c.LRDecay*float64(steps))), steps-1)
		ad.Decay = engine.LRDecay{Start: start, End: steps}
		ag.Decay = ad.Decay
	}
	if c.Noise > 0 {
		until := cmp.Or(c.NoiseUntil, defaultToyNoiseUntil)
		e.InstanceNoise = float32(c.Noise)
		e.NoiseUntil = max(1, int(math.Round(until*float64(steps))))
	}
	e.Pack, e.Std, e.Holdout, e.Seed, e.AdamD, e.AdamG = m, float32(mix.Std), c.Holdout, c.Seed, ad, ag
	for _, p := range mix.Centers {
		e.Centers = append(e.Centers, float32(p[0]), float32(p[1]))
	}
	return e, mix, nil
}

// Validate reports every setting that cannot work, each naming its flag of
// vkgan toy and the value given, joined into one error; nil if c is usable.
// NaN is never in range, and zero is only accepted where it means a default.
func (c Config) Validate() error {
	var errs []error
	bad := func(flag string, v any, why string) {
		errs = append(errs, fmt.Errorf("train: toy: -%s %v %s", flag, v, why))
	}
	// !(lo <= x && x < hi) also catches NaN.
	notIn := func(v, lo, hi float64) bool { return !(lo <= v && v < hi) }
	mix, err := NewMixture(c.Data)
	if err != nil {
		errs = append(errs, err)
	}
	if c.Protocol != "" && c.Protocol != ProtocolSmall && c.Protocol != ProtocolLarge {
		errs = append(errs, fmt.Errorf("train: toy: unknown protocol %q (want small or large)", c.Protocol))
	}
	if c.Pack < 0 || c.Pack > 16 {
		bad("pack", c.Pack, "must be in 1..16")
	}
	if c.Steps < 0 {
		bad("steps", c.Steps, "must be positive")
	}
	if err == nil && (c.Holdout < -1 || c.Holdout >= len(mix.Centers)) {
		bad("holdout", c.Holdout, fmt.Sprintf("must be -1 (none) or a mode in 0..%d", len(mix.Centers)-1))
	}
	for _, lr := range []struct {
		flag string
		v    float64
	}{{"lr-d", c.LRD}, {"lr-g", c.LRG}} {
		if notIn(lr.v, 0, math.Inf(1)) {
			bad(lr.flag, lr.v, "must be a positive number (0: the protocol's)")
		}
	}
	for _, b := range []struct {
		flag string
		v    *float64
	}{{"beta1", c.Beta1}, {"beta2", c.Beta2}} {
		if b.v != nil && notIn(*b.v, 0, 1) {
			bad(b.flag, *b.v, "must be in [0, 1)")
		}
	}
	if c.Batch < 0 || c.Batch > maxToyBatch {
		bad("batch", c.Batch, fmt.Sprintf("must be in 1..%d (0: the protocol's)", maxToyBatch))
	}
	if notIn(c.EMA, 0, 1) {
		bad("ema", c.EMA, "must be in [0, 1) (0: off)")
	}
	if !(c.LRDecay >= 0 && c.LRDecay <= 1) {
		bad("lr-decay", c.LRDecay, "must be a fraction of the steps in [0, 1] (0: constant rates)")
	}
	if notIn(c.Noise, 0, 100) {
		bad("noise", c.Noise, "must be in [0, 100) (0: none)")
	}
	if !(c.NoiseUntil >= 0 && c.NoiseUntil <= 1) {
		bad("noise-until", c.NoiseUntil, fmt.Sprintf("must be a fraction of the steps in (0, 1] (0: %g)", defaultToyNoiseUntil))
	}
	if c.DRS && c.Pack > 1 {
		// A packed D scores m points at once, not one point's density ratio.
		errs = append(errs, fmt.Errorf("train: toy: -drs needs -pack 1, not %d", c.Pack))
	}
	return errors.Join(errs...)
}

// Validate reports every count that cannot work, each naming its flag of
// vkgan toy, joined into one error; nil if opt is usable.
func (opt Options) Validate() error {
	var errs []error
	for _, f := range []struct {
		flag   string
		v, def int
	}{{"-frame-every", opt.FrameEvery, defaultToyFrameEvery}, {"-log-every", opt.LogEvery, defaultToyLogEvery},
		{"EvalSamples", opt.EvalSamples, defaultToyEvalSamples}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("train: toy: %s %d must be positive (0: %d)", f.flag, f.v, f.def))
		}
	}
	return errors.Join(errs...)
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Run trains a toy GAN, writing frames, an animated GIF and toy.json
// into opt.Out. It stops early (with files written) when ctx is done.
func Run(ctx context.Context, c Config, opt Options) (*Result, error) {
	ec, mix, err := EngineConfig(c)
	if err := errors.Join(err, opt.Validate()); err != nil {
		return nil, err
	}
	c.Steps = cmp.Or(c.Steps, defaultToySteps)
	opt.FrameEvery = cmp.Or(opt.FrameEvery, defaultToyFrameEvery)
	opt.LogEvery = cmp.Or(opt.LogEvery, defaultToyLogEvery)
	opt.EvalSamples = cmp.Or(opt.EvalSamples, defaultToyEvalSamples)
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	if c.Protocol == "" {
		c.Protocol = ProtocolSmall
	}
	w := opt.World
	ranks, lead := 1, true
	var timeout time.Duration
	if w != nil && w.Size() > 1 {
		if opt.Device != nil || opt.OnFrame != nil {
			return nil, errors.New("train: toy: -view draws one process's training; it does not run under mpirun")
		}
		ranks, lead = w.Size(), w.Rank() == 0
		if ec.Batch%ranks != 0 || (ec.Batch/ranks)%32 != 0 || (ec.Batch/ranks)%ec.Pack != 0 {
			return nil, fmt.Errorf("train: toy: -batch %d does not split into %d ranks' shares that are multiples of 32 and of the pack %d", ec.Batch, ranks, ec.Pack)
		}
		if timeout, err = mpiTimeout(); err != nil {
			return nil, err
		}
		ec.Batch /= ranks
		ec.Shard = engine.Shard{Rank: w.Rank(), Size: ranks, Reduce: func(buf []float32) error { return w.AllreduceSum(buf, timeout) }}
		if !lead {
			opt.Log = io.Discard
		}
	}
	framesDir := filepath.Join(opt.Out, "frames")
	if lead {
		// One toy run writes a folder at a time; the lock goes with the process.
		lock, err := dirlock.Acquire(opt.Out)
		if err != nil {
			return nil, fmt.Errorf("train: toy: %w", err)
		}
		defer lock.Release()
		if err := os.MkdirAll(framesDir, 0o755); err != nil {
			return nil, fmt.Errorf("train: toy: %w", err)
		}
	}
	dev := opt.Device
	if dev == nil {
		if dev, err = engine.Open(vk.Options{Device: c.Device, OnMessage: opt.OnValidation}); err != nil {
			return nil, err
		}
		defer dev.Close()
	}
	g, err := dev.NewToyGAN(ec)
	if err != nil {
		return nil, err
	}
	defer g.Release()
	if err := g.Init(c.Seed); err != nil {
		return nil, err
	}
	if ranks > 1 {
		// Init is deterministic, but rank 0's state is the run's: broadcast it.
		if err := g.SyncState(func(buf []float32) error { return w.BcastFloat32(buf, 0, timeout) }); err != nil {
			return nil, err
		}
	}
	res := &Result{Data: mix.Name, Protocol: c.Protocol, Pack: ec.Pack, Seed: c.Seed, Batch: ec.Batch * ranks,
		LRD: f32(ec.AdamD.LR), LRG: f32(ec.AdamG.LR), Beta1: f32(ec.AdamD.Beta1), Beta2: f32(ec.AdamD.Beta2), EMA: f32(ec.EMA), LRDecay: c.LRDecay, Noise: f32(ec.InstanceNoise), NoiseEnd: ec.NoiseUntil,
		Holdout: c.Holdout, Device: dev.Info().Name, EvalSamples: opt.EvalSamples}
	drawer := newToyDrawer(mix, c.Holdout, c.Seed)
	var gifFrames []*toyFrame
	frame := func(step int) error {
		if !lead {
			return nil
		}
		s, err := g.Sample(opt.EvalSamples)
		if err != nil {
			return err
		}
		field, err := g.Field(drawer.gridPoints())
		if err != nil {
			return err
		}
		st := mix.MeasureModes(s)
		res.TimelineSteps = append(res.TimelineSteps, step)
		res.ModesTimeline = append(res.ModesTimeline, st.Modes)
		res.HQTimeline = append(res.HQTimeline, round2(st.HQPercent))
		fmt.Fprintf(opt.Log, "toy %s seed %d: step %d: %d/%d modes, %.1f%% high quality\n", mix.Name, c.Seed, step, st.Modes, st.ModesTotal, st.HQPercent)
		img := drawer.draw(field, s)
		if opt.OnFrame != nil {
			opt.OnFrame(img, step)
		}
		name := filepath.Join(framesDir, fmt.Sprintf("step-%06d.png", step))
		if err := writePNG(name, img); err != nil {
			return err
		}
		res.FramesWritten++
		if res.EarlyFrame == "" {
			res.EarlyFrame = name
		}
		res.LateFrame = name
		gifFrames = append(gifFrames, &toyFrame{img: img})
		return nil
	}
	if err := frame(0); err != nil {
		return nil, err
	}
	start := time.Now()
	var trainTime time.Duration
	step := 0
	for step < c.Steps {
		stop := ctx.Err() != nil
		if ranks > 1 {
			// Every rank stops after the same step, whichever was interrupted.
			v := []float32{0}
			if stop {
				v[0] = 1
			}
			if err := w.AllreduceSum(v, timeout); err != nil {
				return nil, fmt.Errorf("train: toy: agreeing on a stop: %w", err)
			}
			stop = v[0] > 0
		}
		if stop {
			break
		}
		t0 := time.Now()
		if err := g.Step(); err != nil {
			return nil, err
		}
		trainTime += time.Since(t0)
		step++
		if step%opt.LogEvery == 0 || step == c.Steps {
			l, err := g.ReadLosses()
			if err != nil {
				return nil, err
			}
			if math.IsNaN(l.D) || math.IsNaN(l.G) || math.IsInf(l.D, 0) || math.IsInf(l.G, 0) {
				return nil, fmt.Errorf("train: toy: step %d: losses are not finite (D %g, G %g)", step, l.D, l.G)
			}
			res.LossD, res.LossG = l.D, l.G
			fmt.Fprintf(opt.Log, "toy %s seed %d: step %d/%d  loss D %.4f  G %.4f  %.2f ms/step  (%s)\n", mix.Name, c.Seed, step, c.Steps,
				l.D, l.G, float64(trainTime.Microseconds())/1e3/float64(step), time.Since(start).Round(time.Second))
		}
		if step%opt.FrameEvery == 0 && step != c.Steps {
			if err := frame(step); err != nil {
				return nil, err
			}
		}
	}
	if err := frame(step); err != nil {
		return nil, err
	}
	if !lead {
		return nil, ctx.Err() // the others' result is rank 0's
	}
	res.Steps = step
	if step > 0 {
		res.MsPerStep = round2(float64(trainTime.Microseconds()) / 1e3 / float64(step))
	}
	res.TrainSeconds = round2(trainTime.Seconds())
	s, err := g.Sample(opt.EvalSamples)
	if err != nil {
		return nil, err
	}
	if err := writeSamplesCSV(filepath.Join(opt.Out, "samples.csv"), s); err != nil {
		return nil, err
	}
	st := mix.MeasureModes(s)
	res.Modes, res.ModesTotal, res.HighQualityPct, res.PerMode = st.Modes, st.ModesTotal, round2(st.HQPercent), st.PerMode
	if !math.IsNaN(st.ReverseKL) {
		kl := math.Round(st.ReverseKL*1e4) / 1e4
		res.ReverseKL = &kl
	}
	if c.Holdout >= 0 {
		res.HoldoutHQ, res.HoldoutNearest = st.PerMode[c.Holdout], st.NearestPerMode[c.Holdout]
	}
	if c.EMA > 0 {
		g.SampleRaw(true)
		raw, err := g.Sample(opt.EvalSamples)
		if err != nil {
			return nil, err
		}
		rst := mix.MeasureModes(raw)
		pct := round2(rst.HQPercent)
		res.RawModes, res.RawHighQualityPct = &rst.Modes, &pct
		g.SampleRaw(false)
	}
	if c.DRS {
		d, kept, img, err := evalDRS(g, mix, drawer, c.Seed, opt.EvalSamples, opt.Out)
		if err != nil {
			return nil, err
		}
		if opt.OnFrame != nil {
			opt.OnFrame(img, step) // the window ends on the kept samples
		}
		if err := writeSamplesCSV(filepath.Join(opt.Out, "samples_drs.csv"), kept); err != nil {
			return nil, err
		}
		res.DRS = d
	}
	gifName := filepath.Join(opt.Out, "toy.gif")
	if err := writeToyGIF(gifName, gifFrames); err != nil {
		return nil, err
	}
	res.AnimatedGIF = gifName
	if msgs := dev.ValidationMessages(); len(msgs) > 0 {
		return nil, fmt.Errorf("train: toy: validation layer: %s", msgs[0])
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(opt.Out, "toy.json"), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, ctx.Err()
}

// writeSamplesCSV writes the evaluated samples (x,y per line) for plots
// and for checking the metrics elsewhere.
func writeSamplesCSV(name string, xy []float32) error {
	var b strings.Builder
	b.WriteString("x,y\n")
	for i := 0; i+1 < len(xy); i += 2 {
		fmt.Fprintf(&b, "%g,%g\n", xy[i], xy[i+1])
	}
	if err := atomicfile.WriteFile(name, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("train: toy: %w", err)
	}
	return nil
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// f32 widens v to the float64 with the same shortest decimal form, so
// toy.json shows 0.0001, not 0.00009999999747378752.
func f32(v float32) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', -1, 32), 64)
	return f
}
