// Package eval scores a generator against a data set, or one image set
// against another: SWD (no weights needed), and KID and FID through the FID
// Inception when its weights are given. `vkgan eval`, `vkgan train
// -eval-every` and `vkgan sample -nearest` use it; the metrics themselves
// live in engine/quality.
package eval

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"vkgan/engine"
	"vkgan/engine/quality"
	"vkgan/internal/progress"
	"vkgan/internal/safetensors"
	"vkgan/train/data"
	"vkgan/train/rundir"
)

// The metrics, by the names flags and metrics.jsonl use.
const (
	SWD = "swd"
	KID = "kid"
	FID = "fid"
)

// ParseMetrics reads a -metrics list ("swd,kid,fid"); "" is the default:
// SWD, and KID and FID when withWeights.
func ParseMetrics(s string, withWeights bool) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		if withWeights {
			return []string{SWD, KID, FID}, nil
		}
		return []string{SWD}, nil
	}
	var out []string
	for _, m := range strings.Split(s, ",") {
		m = strings.ToLower(strings.TrimSpace(m))
		switch m {
		case SWD, KID, FID:
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		default:
			return nil, fmt.Errorf("eval: unknown metric %q: choose from swd, kid, fid", m)
		}
	}
	return out, nil
}

// Options configure an Evaluator.
type Options struct {
	Metrics []string // from ParseMetrics
	// Inception is the FID Inception weights file (needed by KID and FID).
	Inception string
	// N is the number of generated images a Generator call scores.
	N int
	// RefN is the most reference images used (all when the set is
	// smaller; 0 means N).
	RefN int
	// Seed picks the reference images, the generator's noise and the
	// metrics' random draws: the same seed gives the same numbers.
	Seed uint64
	// Batch is the number of images per Inception pass (0: 16).
	Batch int
	// CacheDir keeps the reference set's Inception features ("" = none).
	CacheDir string
	// Log receives progress; nil is silent.
	Log io.Writer
	// ClassLabels are the data's labels, for a conditional generator:
	// each sample takes the class of a training image drawn at random, so
	// the samples' classes follow the data's frequencies, as the reference
	// images' do. Nil: every class in turn.
	ClassLabels []int32
}

// Result is one evaluation. Absent metrics are nil.
type Result struct {
	N    int `json:"n"`
	RefN int `json:"ref_n"`
	// SWD is ProGAN's sliced Wasserstein distance (x1e3), averaged over the
	// pyramid levels in SWDLevels (keyed by the level's side).
	SWD       *float64           `json:"swd,omitempty"`
	SWDLevels map[string]float64 `json:"swd_levels,omitempty"`
	KID       *float64           `json:"kid,omitempty"`
	KIDStd    *float64           `json:"kid_std,omitempty"`
	FID       *float64           `json:"fid,omitempty"`
	FIDMode   string             `json:"fid_mode,omitempty"`
	// Seconds is the wall time of the evaluation.
	Seconds  float64  `json:"seconds"`
	Warnings []string `json:"warnings,omitempty"`
}

// Images is a set of NCHW float32 images in [-1, 1].
type Images struct {
	Pix            []float32
	N, C, Size     int
	Hash           string // identifies the set (for the feature cache); "" = do not cache
	SourceChannels int    // the channels of the data the set came from, for the cache key
}

// FromBytes converts n uint8 images (NCHW) to Images.
func FromBytes(pix []byte, n, channels, size int, hash string) Images {
	out := make([]float32, len(pix))
	for i, v := range pix {
		out[i] = float32(v)/127.5 - 1
	}
	return Images{Pix: out, N: n, C: channels, Size: size, Hash: hash}
}

// FromDataset is a data set as Images of the given channel count (see
// data.Dataset.PixelsAs).
func FromDataset(ds *data.Dataset, channels int) Images {
	return FromBytes(ds.PixelsAs(channels), ds.N, channels, ds.Size, fmt.Sprintf("%s/%dch", ds.Hash(), channels))
}

// pick returns at most k images of s, a seeded choice without replacement
// in the set's order, so a subset is reproducible.
func (s Images) pick(k int, seed uint64) Images {
	if k <= 0 || k >= s.N {
		return s
	}
	idx := rand.New(rand.NewPCG(seed, 0x7265662d70696b)).Perm(s.N)[:k]
	slices.Sort(idx)
	per := s.C * s.Size * s.Size
	out := s
	out.Pix = make([]float32, 0, k*per)
	for _, i := range idx {
		out.Pix = append(out.Pix, s.Pix[i*per:(i+1)*per]...)
	}
	out.N = k
	if s.Hash != "" {
		out.Hash = fmt.Sprintf("%s/pick-%d-of-%d-seed-%d", s.Hash, k, s.N, seed)
	}
	return out
}

// rgb returns the images as 3 channels for the Inception network: grey
// repeated, RGBA (premultiplied) composited over white.
func (s Images) rgb() []float32 {
	if s.C == 3 {
		return s.Pix
	}
	plane := s.Size * s.Size
	out := make([]float32, s.N*3*plane)
	for i := range s.N {
		src := s.Pix[i*s.C*plane:]
		dst := out[i*3*plane:]
		for p := range plane {
			for c := range 3 {
				v := src[min(c, s.C-1)*plane+p]
				if s.C == 4 {
					// Over white: c + 1 - a in [0, 1] is v + 1 - a in [-1, 1].
					v = min(v+1-src[3*plane+p], 1)
				}
				dst[c*plane+p] = v
			}
		}
	}
	return out
}

// Summary is r in one short line, for a progress bar's status.
func Summary(r Result) string {
	var parts []string
	if r.SWD != nil {
		parts = append(parts, fmt.Sprintf("SWD %.2f", *r.SWD))
	}
	if r.KID != nil {
		parts = append(parts, fmt.Sprintf("KID %.4f", *r.KID))
	}
	if r.FID != nil {
		parts = append(parts, fmt.Sprintf("FID %.1f", *r.FID))
	}
	return strings.Join(parts, "  ")
}

// Evaluator compares image sets with a reference set, computing the
// reference side (its Inception features) once.
type Evaluator struct {
	d        *engine.Device
	opt      Options
	ref      Images
	weights  *quality.InceptionWeights
	inc      *quality.Inception
	refFeats []float32
}

// New prepares an evaluator against ref on device d. KID and FID in
// opt.Metrics need opt.Inception: without it they are an error saying
// where to get the file.
func New(d *engine.Device, ref Images, opt Options) (*Evaluator, error) {
	if ref.N < 2 {
		return nil, fmt.Errorf("eval: the reference set has %d images; at least 2 are needed", ref.N)
	}
	if opt.N < 2 {
		return nil, fmt.Errorf("eval: -n %d: at least 2 images are needed", opt.N)
	}
	if opt.Batch <= 0 {
		opt.Batch = 16
	}
	if opt.RefN <= 0 {
		opt.RefN = opt.N
	}
	e := &Evaluator{d: d, opt: opt, ref: ref.pick(opt.RefN, opt.Seed)}
	if e.needsInception() {
		w, err := quality.LoadInceptionWeights(opt.Inception)
		if err != nil {
			return nil, err
		}
		e.weights = w
		if e.inc, err = quality.NewInception(d, w, ref.Size, opt.Batch); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *Evaluator) needsInception() bool {
	return slices.Contains(e.opt.Metrics, KID) || slices.Contains(e.opt.Metrics, FID)
}

// Release frees the Inception network. Safe on nil.
func (e *Evaluator) Release() {
	if e != nil {
		e.inc.Release()
	}
}

// RefN is the number of reference images used.
func (e *Evaluator) RefN() int { return e.ref.N }

// features computes (or reads from the cache) the Inception features of s.
func (e *Evaluator) features(s Images, what string) ([]float32, error) {
	var cache string
	if s.Hash != "" && e.opt.CacheDir != "" {
		k := quality.Key{DataHash: s.Hash, Size: s.N, Mode: fmt.Sprintf("%s/%dx%dx%d", quality.FIDMode, s.C, s.Size, s.Size), WeightsHash: e.weights.SHA256}
		cache = filepath.Join(e.opt.CacheDir, strings.Replace(k.Filename(), "fidstats", "features", 1))
		if f, err := readFeatures(cache, k); err == nil {
			return f, nil
		}
		feats, err := e.computeFeatures(s, what)
		if err != nil {
			return nil, err
		}
		if err := writeFeatures(cache, k, feats, s.N); err != nil && e.opt.Log != nil {
			fmt.Fprintf(e.opt.Log, "eval: features not cached: %v\n", err)
		}
		return feats, nil
	}
	return e.computeFeatures(s, what)
}

func (e *Evaluator) computeFeatures(s Images, what string) ([]float32, error) {
	bar := progress.New(e.opt.Log, "eval: Inception features of "+what, s.N)
	defer bar.Done()
	return e.inc.Features(s.rgb(), s.N, func(done int) { bar.Set(done, "") })
}

func readFeatures(path string, k quality.Key) ([]float32, error) {
	ts, meta, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := k.Check(meta); err != nil {
		return nil, err
	}
	if len(ts) != 1 || ts[0].Name != "features" || !slices.Equal(ts[0].Shape, []int{k.Size, engine.InceptionFeatures}) {
		return nil, fmt.Errorf("eval: %q does not hold %d feature vectors", path, k.Size)
	}
	return ts[0].F32, nil
}

func writeFeatures(path string, k quality.Key, feats []float32, n int) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	t := safetensors.Tensor{Name: "features", DType: safetensors.F32, Shape: []int{n, engine.InceptionFeatures}, F32: feats}
	return safetensors.WriteFile(path, []safetensors.Tensor{t}, k.Meta())
}

// Compare scores the images s against the reference set.
func (e *Evaluator) Compare(s Images) (Result, error) {
	start := time.Now()
	res := Result{N: s.N, RefN: e.ref.N}
	if s.C != e.ref.C || s.Size != e.ref.Size {
		return res, fmt.Errorf("eval: images of %dx%dx%d against a reference of %dx%dx%d", s.C, s.Size, s.Size, e.ref.C, e.ref.Size, e.ref.Size)
	}
	if s.N < 2 {
		return res, fmt.Errorf("eval: %d images: at least 2 are needed", s.N)
	}
	if slices.Contains(e.opt.Metrics, SWD) {
		if err := e.swd(s, &res); err != nil {
			return res, err
		}
	}
	if e.needsInception() {
		if err := e.inceptionMetrics(s, &res); err != nil {
			return res, err
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

func (e *Evaluator) swd(s Images, res *Result) error {
	if s.Size < quality.SWDMinSide {
		res.Warnings = append(res.Warnings, fmt.Sprintf("SWD needs images of at least %dx%d; these are %dx%d", quality.SWDMinSide, quality.SWDMinSide, s.Size, s.Size))
		return nil
	}
	opt := quality.DefaultSWD()
	opt.Seed = e.opt.Seed
	var bar *progress.Bar // made at the first report, which gives the total
	opt.Progress = func(done, total int) {
		if bar == nil {
			bar = progress.New(e.opt.Log, "eval: SWD projections", total)
		}
		bar.Set(done, "")
	}
	r, err := quality.SWD(e.d, s.Pix, []int{s.N, s.C, s.Size, s.Size}, e.ref.Pix, []int{e.ref.N, e.ref.C, e.ref.Size, e.ref.Size}, &opt)
	if bar != nil {
		bar.Done()
	}
	if err != nil {
		return err
	}
	res.SWD = &r.Mean
	res.SWDLevels = map[string]float64{}
	for i, side := range r.Levels {
		res.SWDLevels[strconv.Itoa(side)] = r.PerLevel[i]
	}
	return nil
}

func (e *Evaluator) inceptionMetrics(s Images, res *Result) error {
	if e.refFeats == nil {
		f, err := e.features(e.ref, "the data")
		if err != nil {
			return err
		}
		e.refFeats = f
	}
	feats, err := e.features(s, "the samples")
	if err != nil {
		return err
	}
	dim := engine.InceptionFeatures
	if slices.Contains(e.opt.Metrics, KID) {
		opt := quality.DefaultKID()
		opt.Seed = e.opt.Seed
		k, err := quality.KID(feats, e.refFeats, dim, &opt)
		if err != nil {
			return err
		}
		res.KID, res.KIDStd = &k.Mean, &k.Std
		if k.Warning != "" {
			res.Warnings = append(res.Warnings, k.Warning)
		}
	}
	if slices.Contains(e.opt.Metrics, FID) {
		a, err := quality.ComputeStats(feats, dim)
		if err != nil {
			return err
		}
		b, err := quality.ComputeStats(e.refFeats, dim)
		if err != nil {
			return err
		}
		f, err := quality.FID(a, b)
		if err != nil {
			return err
		}
		res.FID = &f.FID
		if f.Warning != "" {
			res.Warnings = append(res.Warnings, f.Warning)
		}
	}
	res.FIDMode = quality.FIDMode
	return nil
}

// Generator samples opt.N images from gan's generator (its weight average
// when ema and the run keeps one) with noise drawn from opt.Seed, and
// scores them. G runs as the run's sample grids show it: in batches of 64
// with batch statistics. Sampling reads G's weights and statistics and
// changes nothing, so evaluating during training leaves the trajectory as
// it is. The samples are returned too.
func (e *Evaluator) Generator(gan *engine.GAN, nz int, ema bool) (Result, []float32, error) {
	n := e.opt.N
	batch := max(min(n, 64), 2)
	s, err := gan.NewSampler(batch, ema, true)
	if err != nil {
		return Result{}, nil, err
	}
	defer s.Release()
	batches := (n + batch - 1) / batch
	// Whole batches of noise: a padded last batch would skew its statistics.
	z := rundir.FixedNoise(e.opt.Seed^0x6576616c, batches*batch, nz)
	per := e.ref.C * e.ref.Size * e.ref.Size
	pix := make([]float32, 0, n*per)
	classRNG := rand.New(rand.NewPCG(e.opt.Seed, 0x636c61737365730a))
	for b := range batches {
		if s.Classes() > 0 && len(e.opt.ClassLabels) > 0 {
			classes := make([]int, batch)
			for i := range classes {
				classes[i] = int(e.opt.ClassLabels[classRNG.IntN(len(e.opt.ClassLabels))])
			}
			if err := s.SetClasses(classes); err != nil {
				return Result{}, nil, err
			}
		}
		out, err := s.Sample(z[b*batch*nz : (b+1)*batch*nz])
		if err != nil {
			return Result{}, nil, err
		}
		if len(out) != batch*per {
			return Result{}, nil, fmt.Errorf("eval: the generator makes %d values per batch of %d, the data %dx%dx%d images", len(out), batch, e.ref.C, e.ref.Size, e.ref.Size)
		}
		k := min(batch, n-b*batch)
		pix = append(pix, out[:k*per]...)
	}
	r, err := e.Compare(Images{Pix: pix, N: n, C: e.ref.C, Size: e.ref.Size})
	return r, pix, err
}
