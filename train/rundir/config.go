package rundir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"vkgan/engine"
	"vkgan/internal/atomicfile"
)

// Defaults of a training run: those of the PyTorch DCGAN example
// (dcgan/main.py) where it has one.
const (
	DefaultData            = "emoji"
	DefaultSize            = 64
	DefaultBatch           = 64
	DefaultSteps           = 10000
	DefaultNZ              = 100
	DefaultNGF             = 64
	DefaultNDF             = 64
	DefaultChannels        = 3
	DefaultLR              = 2e-4
	DefaultBeta1           = 0.5
	DefaultBeta2           = 0.999
	DefaultDSteps          = 1
	DefaultLogEvery        = 50
	DefaultSampleEvery     = 500
	DefaultCheckpointEvery = 500
	DefaultClassDim        = 16
)

// Names of the files in a run directory.
const (
	ConfigFile   = "config.json"
	MetricsFile  = "metrics.jsonl"
	LossPlotFile = "losses.png"
	SamplesDir   = "samples"
)

// Config is a training run's configuration, saved as config.json in the run
// directory and inside checkpoints.
//
// A field tagged resume:"fixed" defines the model, the loss or the order of
// the data: a resumed run refuses a flag that changes it. The others (step
// count, learning rates, intervals, ...) may change on resume; each change
// is recorded in History. The flag of a field is its JSON name with "-" for
// "_".
//
// Zero is a meaningful value for Beta1, Beta2, LabelSmooth, EMA and Seed
// (Adam with beta1 = 0 is common in GAN work), so the zero Config is not the
// default one: start from DefaultConfig and change what differs. For the
// fields where zero is never valid (sizes, counts, learning rates, the
// intervals), WithDefaults fills zeros with the defaults. A config.json that
// omits a field gets that field's default; one that sets it to 0 gets 0.
type Config struct {
	// Data is a folder of images, or "emoji" for the fetched emoji set.
	Data string `json:"data" resume:"data"`
	// Category filters the emoji set by its emoji.json category; "" is all.
	Category string `json:"category,omitempty" resume:"fixed"`
	// Size is the side of the square images and of the model: 16, 32, 64,
	// 128 or 256 (engine.DCGANSizes).
	Size int `json:"size" resume:"fixed"`
	// Batch is the number of real (and of fake) images per step; 64.
	Batch int `json:"batch" resume:"fixed"`
	// Steps is the total number of G updates of the run, resumes included.
	Steps int `json:"steps"`
	// NZ is the length of G's latent vector; 100.
	NZ int `json:"nz" resume:"fixed"`
	// NGF and NDF are the base widths of G and D; 64 each.
	NGF int `json:"ngf" resume:"fixed"`
	NDF int `json:"ndf" resume:"fixed"`
	// Channels of the images: 3 (RGB), 1 (grey) or 4 (RGBA, premultiplied).
	Channels int `json:"channels" resume:"fixed"`
	// Seed drives weight init, the data order and the latent noise.
	Seed uint64 `json:"seed" resume:"fixed"`
	// LRD and LRG are Adam's learning rates for D and G; 2e-4 each.
	LRD float64 `json:"lr_d"`
	LRG float64 `json:"lr_g"`
	// Beta1 and Beta2 are Adam's moment decays for both nets; 0.5 and 0.999.
	Beta1 float64 `json:"beta1"`
	Beta2 float64 `json:"beta2"`
	// LabelSmooth is one-sided label smoothing: D's real target is
	// 1 - LabelSmooth. 0 is off.
	LabelSmooth float64 `json:"label_smooth" resume:"fixed"`
	// DSteps is the number of D updates per G update; 1.
	DSteps int `json:"d_steps" resume:"fixed"`
	// Loss is the adversarial loss: "bce" (the example's non-saturating
	// binary cross-entropy; "" means it), "hinge" or "ls" (least squares).
	Loss string `json:"loss,omitempty" resume:"fixed"`
	// DNorm is D's normalisation after its inner convolutions: "batch"
	// (the example's; "" means it) or "none".
	DNorm string `json:"d_norm,omitempty" resume:"fixed"`
	// SN and SNG put spectral norm on every convolution of D (of G).
	SN  bool `json:"sn,omitempty" resume:"fixed"`
	SNG bool `json:"sn_g,omitempty" resume:"fixed"`
	// R1 is the weight gamma of the R1 penalty on real images (0 is
	// off), taken every R1Every steps with gamma times R1Every.
	R1      float64 `json:"r1,omitempty" resume:"fixed"`
	R1Every int     `json:"r1_every,omitempty" resume:"fixed"`
	// Augment is DiffAugment's policy, a comma-separated subset of
	// "color,translation,cutout" ("" is off); Flip adds random
	// horizontal flips to it.
	Augment string `json:"augment,omitempty" resume:"fixed"`
	Flip    bool   `json:"flip,omitempty" resume:"fixed"`
	// Cond trains a class-conditional model: the classes are the
	// subfolders of Data, or the emoji categories. ClassDim is the size
	// of G's class embedding (16).
	Cond     bool `json:"cond,omitempty" resume:"fixed"`
	ClassDim int  `json:"class_dim,omitempty" resume:"fixed"`
	// Classes are the class names in label order, recorded when a
	// conditional run begins; a resume checks the data still has them.
	Classes []string `json:"classes,omitempty" resume:"-"`
	// InitG and InitD are safetensors files (PyTorch state_dict names)
	// a new run takes G's and D's starting weights from.
	InitG string `json:"init_g,omitempty" resume:"-"`
	InitD string `json:"init_d,omitempty" resume:"-"`
	// EMA is the decay of the moving average of G's weights used for
	// samples, e.g. 0.999. 0 is off (samples use G's weights as they are).
	EMA float64 `json:"ema"`
	// LogEvery, SampleEvery and CheckpointEvery are intervals in steps
	// between metrics lines, sample grids and checkpoints; 50, 500, 500.
	LogEvery        int `json:"log_every"`
	SampleEvery     int `json:"sample_every"`
	CheckpointEvery int `json:"checkpoint_every"`
	// EvalEvery is the interval in steps between image-quality
	// evaluations written to metrics.jsonl (see train/eval); 0 is off.
	EvalEvery int `json:"eval_every,omitempty"`
	// EvalN is the number of generated images each evaluation scores.
	EvalN int `json:"eval_n,omitempty"`
	// EvalMetrics lists the metrics ("swd,kid,fid"); "" is SWD, plus KID
	// and FID when Inception names the weights.
	EvalMetrics string `json:"eval_metrics,omitempty"`
	// Inception is the FID Inception weights file for KID and FID.
	Inception string `json:"inception,omitempty"`
	// Device picks the Vulkan device by index or name; "" is the best one.
	// Under mpirun, a comma-separated list is indexed by each rank's local
	// rank, and "" gives local rank i the device of index i.
	Device string `json:"device,omitempty"`
	// Ranks is the number of data-parallel ranks (mpirun -np) the run
	// trains on, recorded when it begins; 0 is one process. Batch is each
	// rank's share: a step sees Ranks*Batch images. A resume needs the
	// same number, since the data order follows the global batch.
	Ranks int `json:"ranks,omitempty" resume:"-"`
	// DataHash is the SHA-256 of the decoded data set (every image's pixels,
	// in order), recorded when the run begins: a resume checks that the
	// folder, even a moved one, still holds the same images.
	DataHash string `json:"data_hash,omitempty" resume:"-"`
	// History records each resume that changed a setting.
	History []ConfigChange `json:"history,omitempty" resume:"-"`
}

// ConfigChange is one resume that changed settings: at which step, when,
// and each changed setting's old and new value by its flag's name.
type ConfigChange struct {
	Step int            `json:"step"`
	Time string         `json:"time"` // RFC 3339, UTC
	Was  map[string]any `json:"was"`
	Set  map[string]any `json:"set"`
}

// DefaultConfig returns the configuration of a run with every default.
func DefaultConfig() Config {
	return Config{
		Data:            DefaultData,
		Size:            DefaultSize,
		Batch:           DefaultBatch,
		Steps:           DefaultSteps,
		NZ:              DefaultNZ,
		NGF:             DefaultNGF,
		NDF:             DefaultNDF,
		Channels:        DefaultChannels,
		LRD:             DefaultLR,
		LRG:             DefaultLR,
		Beta1:           DefaultBeta1,
		Beta2:           DefaultBeta2,
		DSteps:          DefaultDSteps,
		LogEvery:        DefaultLogEvery,
		SampleEvery:     DefaultSampleEvery,
		CheckpointEvery: DefaultCheckpointEvery,
		ClassDim:        DefaultClassDim,
	}
}

// WithDefaults returns c with its zero fields set to their defaults, for the
// fields where zero is never a valid setting. Beta1, Beta2, LabelSmooth, EMA
// and Seed are kept as they are.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	setStr := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setFloat := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	setStr(&c.Data, d.Data)
	setInt(&c.Size, d.Size)
	setInt(&c.Batch, d.Batch)
	setInt(&c.Steps, d.Steps)
	setInt(&c.NZ, d.NZ)
	setInt(&c.NGF, d.NGF)
	setInt(&c.NDF, d.NDF)
	setInt(&c.Channels, d.Channels)
	setFloat(&c.LRD, d.LRD)
	setFloat(&c.LRG, d.LRG)
	setInt(&c.DSteps, d.DSteps)
	setInt(&c.LogEvery, d.LogEvery)
	setInt(&c.SampleEvery, d.SampleEvery)
	setInt(&c.CheckpointEvery, d.CheckpointEvery)
	setInt(&c.ClassDim, d.ClassDim)
	return c
}

// Validate reports every setting that cannot work, each naming the flag to
// change, joined into one error; nil if the config is usable.
func (c *Config) Validate() error {
	var errs []error
	bad := func(flag string, v any, why string) {
		errs = append(errs, fmt.Errorf("train: -%s %v: %s", flag, v, why))
	}
	atLeast := func(flag string, v, min int) {
		if v < min {
			bad(flag, v, fmt.Sprintf("must be at least %d", min))
		}
	}
	// !(x >= lo && x < hi) also catches NaN.
	inRange := func(flag string, v, lo, hi float64, why string) {
		if !(v >= lo && v < hi) {
			bad(flag, v, why)
		}
	}

	if c.Data == "" {
		errs = append(errs, errors.New(`train: -data is empty: give a folder of images or "emoji"`))
	}
	if c.Category != "" && c.Data != "emoji" {
		bad("category", c.Category, fmt.Sprintf(`needs -data emoji, not %q`, c.Data))
	}
	if !slices.Contains(engine.DCGANSizes, c.Size) {
		bad("size", c.Size, fmt.Sprintf("must be one of %v", engine.DCGANSizes))
	}
	// Batch norm over one sample has zero variance: D and G learn nothing.
	atLeast("batch", c.Batch, 2)
	atLeast("steps", c.Steps, 1)
	atLeast("nz", c.NZ, 1)
	atLeast("ngf", c.NGF, 1)
	atLeast("ndf", c.NDF, 1)
	if c.Channels != 1 && c.Channels != 3 && c.Channels != 4 {
		bad("channels", c.Channels, "must be 1 (grey), 3 (RGB) or 4 (RGBA)")
	}
	for _, lr := range []struct {
		flag string
		v    float64
	}{{"lr-d", c.LRD}, {"lr-g", c.LRG}} {
		if !(lr.v > 0) || math.IsInf(lr.v, 1) {
			bad(lr.flag, lr.v, "must be a positive number, e.g. 2e-4")
		}
	}
	inRange("beta1", c.Beta1, 0, 1, "must be in [0, 1), e.g. 0.5")
	inRange("beta2", c.Beta2, 0, 1, "must be in [0, 1), e.g. 0.999")
	inRange("label-smooth", c.LabelSmooth, 0, 0.5, "must be in [0, 0.5): the real target is 1 - label-smooth; 0 is off")
	atLeast("d-steps", c.DSteps, 1)
	inRange("ema", c.EMA, 0, 1, "must be in [0, 1), e.g. 0.999; 0 is off")
	atLeast("log-every", c.LogEvery, 1)
	atLeast("sample-every", c.SampleEvery, 1)
	atLeast("checkpoint-every", c.CheckpointEvery, 1)
	if !slices.Contains(engine.LossNames, cmpOr(c.Loss, "bce")) {
		bad("loss", c.Loss, fmt.Sprintf("must be one of %v", engine.LossNames))
	}
	if c.LabelSmooth != 0 && cmpOr(c.Loss, "bce") != "bce" {
		bad("label-smooth", c.LabelSmooth, "is a target of the bce loss; the "+c.Loss+" loss has none")
	}
	if c.DNorm != "" && c.DNorm != "batch" && c.DNorm != "none" {
		bad("d-norm", c.DNorm, "must be batch or none")
	}
	if !(c.R1 >= 0) || math.IsInf(c.R1, 1) {
		bad("r1", c.R1, "must be a non-negative number, e.g. 0.1 (0 is off)")
	}
	atLeast("r1-every", c.R1Every, 0)
	if c.R1 > 0 && c.DNorm != "none" {
		bad("r1", c.R1, "needs D without batch norm, whose batch statistics make the penalty depend on the whole batch: add -d-norm none")
	}
	if c.R1 > 0 && c.Cond {
		bad("r1", c.R1, "is not supported with -cond yet (the projection has no double-backward)")
	}
	if _, err := engine.ParseAugment(c.Augment, c.Flip); err != nil {
		bad("augment", c.Augment, err.Error())
	}
	if c.Cond {
		atLeast("class-dim", c.ClassDim, 1)
	}
	atLeast("eval-every", c.EvalEvery, 0)
	if c.EvalEvery > 0 {
		atLeast("eval-n", c.EvalN, 2)
	}
	return errors.Join(errs...)
}

// ParseConfig decodes a config from JSON. Fields the JSON omits get their
// defaults; unknown fields are an error (a typo in a hand-edited file should
// not be silently ignored). The result is validated.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("train: config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, errors.New("train: config: unexpected data after the JSON object")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadConfig reads and validates a config.json written by Save.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("train: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Save writes c as indented JSON to path, atomically: a crash leaves either
// the old file or the new one.
func (c Config) Save(path string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		// Only non-finite floats can fail here; Validate rejects them.
		return fmt.Errorf("train: config: %w", err)
	}
	data = append(data, '\n')
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// GANConfig maps a run's Config to the engine's. Its settings have been
// validated; a conditional model's class count is len(c.Classes).
func (c Config) GANConfig() engine.GANConfig {
	adam := func(lr float64) engine.Adam {
		a := engine.DefaultAdam()
		a.LR, a.Beta1, a.Beta2 = float32(lr), float32(c.Beta1), float32(c.Beta2)
		return a
	}
	model := engine.DCGAN{Size: c.Size, NZ: c.NZ, NGF: c.NGF, NDF: c.NDF, Channels: c.Channels,
		NoDNorm: c.DNorm == "none", SN: c.SN, SNG: c.SNG}
	if c.Cond {
		model.Classes, model.ClassDim = len(c.Classes), c.ClassDim
	}
	realLabel := float32(1 - c.LabelSmooth)
	loss, _ := engine.ParseLoss(cmpOr(c.Loss, "bce"), realLabel)
	augment, _ := engine.ParseAugment(c.Augment, c.Flip)
	return engine.GANConfig{
		Model:     model,
		Loss:      loss,
		Augment:   augment,
		R1:        float32(c.R1),
		R1Every:   c.R1Every,
		Batch:     c.Batch,
		Seed:      c.Seed,
		AdamD:     adam(c.LRD),
		AdamG:     adam(c.LRG),
		RealLabel: realLabel,
		DSteps:    c.DSteps,
		EMA:       float32(c.EMA),
	}
}
