package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"vkgan/engine"
	"vkgan/engine/quality"
	"vkgan/internal/progress"
	"vkgan/train/data"
	"vkgan/train/eval"
	"vkgan/train/grid"
	"vkgan/train/rundir"
	"vkgan/vk"
)

// RunOptions are how a training run is started, beside its
// rundir.Config.
type RunOptions struct {
	Out    string // the run directory
	Resume bool   // continue the run in Out from its checkpoint
	Steps  int    // with Resume: a new total step count, above the run's step (0 keeps the saved one)
	// Flags names the Config settings given on the command line, by
	// flag name (lr-d, size, ...): on Resume those are checked against
	// the run (see rundir.Config) and applied; the others come from the
	// run.
	Flags map[string]bool
	Log   io.Writer // progress and messages (nil: os.Stderr)
	// DataRoot is where `vkgan data emoji` puts the emoji set
	// (default data/emoji, or VKGAN_DATA).
	DataRoot string
	// OnStep, if set, is called after every step on the training goroutine
	// (the viewer uses it to draw from G's live weights), and once with a
	// nil GAN before the GAN is released: it must stop using it by then.
	OnStep func(gan *engine.GAN, step int)
	// Device, if set, is used instead of opening one (and not closed): the
	// viewer's device, when training runs inside its window.
	Device *engine.Device
	// OnValidation receives Vulkan validation messages (with VKGAN_VALIDATE=1);
	// nil prints them to stderr. Tests turn them into failures.
	OnValidation func(string)
}

// newEvaluator prepares -eval-every's evaluator against the training data,
// or returns nil when evaluation is off. Missing Inception weights leave
// SWD alone, with a note, unless KID or FID were asked for by name.
func newEvaluator(dev *engine.Device, ds *data.Dataset, cfg rundir.Config, log io.Writer) (*eval.Evaluator, error) {
	if cfg.EvalEvery == 0 {
		return nil, nil
	}
	weights := quality.InceptionPath(cfg.Inception)
	ms, err := eval.ParseMetrics(cfg.EvalMetrics, weights != "")
	if err != nil {
		return nil, fmt.Errorf("train: -eval-metrics: %w", err)
	}
	if weights == "" && cfg.EvalMetrics == "" {
		fmt.Fprintf(log, "train: -eval-every measures SWD only: %v\n", quality.ErrNoInception)
	}
	opt := eval.Options{Metrics: ms, Inception: weights, N: cfg.EvalN, Seed: cfg.Seed, ClassLabels: ds.Labels}
	if cache, err := os.UserCacheDir(); err == nil {
		opt.CacheDir = filepath.Join(cache, "vkgan", "features")
	}
	ev, err := eval.New(dev, eval.FromDataset(ds, cfg.Channels), opt)
	if err != nil {
		return nil, fmt.Errorf("train: -eval-every: %w", err)
	}
	return ev, nil
}

// LoadData decodes the configured data set (fetching the emoji set first
// if needed), using the user cache directory for decoded pixels.
func LoadData(cfg rundir.Config, dataRoot string, log io.Writer) (*data.Dataset, error) {
	opt := data.LoadOptions{Size: cfg.Size, Progress: log, Alpha: cfg.Channels == 4, Labels: cfg.Cond}
	if cache, err := os.UserCacheDir(); err == nil {
		opt.CacheDir = filepath.Join(cache, "vkgan", "data")
	}
	ds, err := data.Open(cfg.Data, cfg.Category, dataRoot).Load(opt)
	if err != nil {
		return nil, err
	}
	if ds.Skipped > 0 {
		examples := make([]string, len(ds.SkippedExamples))
		for i, e := range ds.SkippedExamples {
			examples[i] = fmt.Sprintf("%q", e)
		}
		fmt.Fprintf(log, "train: skipped %d files that did not decode, e.g. %s\n", ds.Skipped, strings.Join(examples, ", "))
	}
	if cfg.Cond {
		counts := ds.ClassCounts()
		parts := make([]string, len(ds.Classes))
		for i, c := range ds.Classes {
			parts[i] = fmt.Sprintf("%s %d", c, counts[i])
		}
		fmt.Fprintf(log, "train: %d classes: %s\n", len(ds.Classes), strings.Join(parts, ", "))
	}
	return ds, nil
}

// memoryHint turns out-of-memory and too-large-buffer errors into advice
// naming the flags that size the model.
func memoryHint(err error, cfg rundir.Config) error {
	switch {
	case errors.Is(err, vk.ErrOutOfDeviceMemory):
		return fmt.Errorf("%w\ntrain: the device ran out of memory: lower -batch (now %d) or -ngf/-ndf (now %d/%d)", err, cfg.Batch, cfg.NGF, cfg.NDF)
	case errors.Is(err, vk.ErrTooLarge):
		return fmt.Errorf("%w\ntrain: one of the model's buffers is larger than the device allows: lower -ngf/-ndf (now %d/%d), -batch (now %d) or -size (now %d)", err, cfg.NGF, cfg.NDF, cfg.Batch, cfg.Size)
	}
	return err
}

// Run trains until cfg.Steps or until ctx is cancelled (Ctrl-C), in which
// case it finishes the current step, writes a checkpoint and returns nil.
//
// It holds the run directory's lock throughout. A new run needs an empty
// directory; a resume checks the whole run (configuration, checkpoint,
// flags, data) before it writes anything.
func Run(ctx context.Context, cfg rundir.Config, opt RunOptions) (err error) {
	log := opt.Log
	if log == nil {
		log = os.Stderr
	}
	warn := func(msg string) { fmt.Fprintf(log, "train: warning: %s\n", msg) }
	out := opt.Out
	if out == "" {
		return errors.New("train: no run directory (-out)")
	}
	if !opt.Resume {
		if err := cfg.Validate(); err != nil {
			return err
		}
		// Someone else's folder is refused before the lock puts its file
		// there; a run's state is checked under the lock.
		if err := rundir.CheckNew(out); errors.Is(err, rundir.ErrNotRunDir) {
			return err
		}
	}
	lock, err := rundir.Lock(out)
	if err != nil {
		return err
	}
	defer lock.Release()
	var plan *rundir.Resume
	start, elapsed0 := 0, 0.0
	if opt.Resume {
		set := maps.Clone(opt.Flags)
		if set == nil {
			set = map[string]bool{}
		}
		if plan, err = rundir.PlanResume(out, cfg, set, opt.Steps, warn); err != nil {
			return err
		}
		if plan.NothingNew {
			// A kill while the last checkpoint was copied to the run root
			// can leave those copies one checkpoint behind.
			if err := rundir.RefreshRootCopies(out, plan.Checkpoint.Dir); err != nil {
				return err
			}
			fmt.Fprintf(log, "train: %q is at step %d of %d already; nothing to do (give -steps above %d to train on)\n", out, plan.Checkpoint.Step, plan.Config.Steps, plan.Checkpoint.Step)
			return nil
		}
		cfg, start, elapsed0 = plan.Config, plan.Checkpoint.Step, plan.Elapsed
		if err := cfg.Validate(); err != nil {
			return err
		}
	} else if err := rundir.CheckNew(out); err != nil {
		return err
	}

	ds, err := LoadData(cfg, opt.DataRoot, log)
	if err != nil {
		return err
	}
	if plan != nil {
		if err := plan.CheckData(ds.Hash(), ds.N, out); err != nil {
			return err
		}
		cfg = plan.Config
		if cfg.Cond && !slices.Equal(cfg.Classes, ds.Classes) {
			return fmt.Errorf("train: the run was trained on the classes %q; %q now has %q: restore them to continue %q", cfg.Classes, cfg.Data, ds.Classes, out)
		}
	} else {
		cfg.DataHash = ds.Hash()
		if cfg.Cond {
			cfg.Classes = ds.Classes
		}
	}
	dev := opt.Device
	if dev == nil {
		if dev, err = engine.Open(vk.Options{Device: cfg.Device, OnMessage: opt.OnValidation}); err != nil {
			return err
		}
		defer func() {
			if cerr := dev.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
	}
	info := dev.Info()
	fmt.Fprintf(log, "train: %d images of %dx%d on %s (%s)\n", ds.N, cfg.Size, cfg.Size, info.Name, info.Type)
	images, err := dev.UploadData(ds.PixelsAs(cfg.Channels), ds.N, cfg.Channels, cfg.Size)
	if err != nil {
		return memoryHint(err, cfg)
	}
	defer images.Release()
	if cfg.Cond {
		if err := images.SetLabels(ds.Labels, len(ds.Classes)); err != nil {
			return err
		}
	}
	gan, err := dev.NewGAN(cfg.GANConfig(), images)
	if err != nil {
		return memoryHint(err, cfg)
	}
	defer gan.Release()
	step := start
	if opt.OnStep != nil {
		defer func() { opt.OnStep(nil, step) }() // runs before gan.Release
	}
	began := time.Now()
	elapsed := func() float64 { return elapsed0 + time.Since(began).Seconds() }
	// Only now, with the device state ready, does the run directory change.
	if plan != nil {
		if err := plan.Checkpoint.Apply(gan); err != nil {
			return err
		}
		if err := plan.Commit(out, warn); err != nil {
			return err
		}
		fmt.Fprintf(log, "train: resuming %s at step %d of %d\n", out, start, cfg.Steps)
	} else {
		if err := gan.Init(cfg.Seed); err != nil {
			return err
		}
		var initErrs []error
		for _, in := range []struct {
			path string
			ns   *engine.NetState
		}{{cfg.InitG, gan.G}, {cfg.InitD, gan.D}} {
			if in.path == "" {
				continue
			}
			if err := rundir.InitNet(in.path, in.ns); err != nil {
				initErrs = append(initErrs, err)
				continue
			}
			fmt.Fprintf(log, "train: %s starts from %s\n", in.ns.Net.Name, in.path)
		}
		if err := errors.Join(initErrs...); err != nil {
			return err
		}
		if err := cfg.Save(filepath.Join(out, rundir.ConfigFile)); err != nil {
			return err
		}
		// The step-0 checkpoint makes the directory a run at once: a kill
		// before the first interval's checkpoint can still be resumed.
		if err := rundir.SaveCheckpoint(out, gan, cfg, 0, 0); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(out, rundir.SamplesDir), 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	sampler, err := gan.NewSampler(rundir.SampleCount, true, true)
	if err != nil {
		return memoryHint(err, cfg)
	}
	defer sampler.Release()
	fixed := rundir.FixedNoise(cfg.Seed, rundir.SampleCount, cfg.NZ)
	mlog, err := rundir.OpenMetricsLog(filepath.Join(out, rundir.MetricsFile))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := mlog.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()

	ev, err := newEvaluator(dev, ds, cfg, log)
	if err != nil {
		return err
	}
	defer ev.Release()

	writeSamples := func(step int) error {
		img, err := sampler.Sample(fixed)
		if err != nil {
			return err
		}
		return grid.Write(rundir.SamplePath(out, step), img, rundir.SampleCount, cfg.Channels, cfg.Size, rundir.SampleCols)
	}
	lastGood := start
	checkpoint := func(step int) error {
		// Never replace a good checkpoint with diverged weights.
		m, err := gan.ReadMetrics()
		if err != nil {
			return err
		}
		if step > start && !m.Finite() {
			return fmt.Errorf("%w at or before step %d (%+v); the last good checkpoint (step %d) is kept", rundir.ErrNonFinite, step, m, lastGood)
		}
		if err := rundir.SaveCheckpoint(out, gan, cfg, step, elapsed()); err != nil {
			return err
		}
		lastGood = step
		return nil
	}

	bar := progress.New(log, "train", cfg.Steps)
	bar.Set(start, "")
	lastLog, lastLogTime := start, time.Now()
	status := ""     // the last logged losses, shown until the next log line
	evalStatus := "" // the last evaluation's numbers, shown until the next
	for step < cfg.Steps {
		if ctx.Err() != nil {
			break
		}
		if err := gan.Step(); err != nil {
			bar.Done()
			return memoryHint(fmt.Errorf("train: step %d: %w", step+1, err), cfg)
		}
		step++
		if opt.OnStep != nil {
			opt.OnStep(gan, step)
		}
		evalNow := ev != nil && step%cfg.EvalEvery == 0
		if step%cfg.LogEvery == 0 || step == cfg.Steps || evalNow {
			m, err := gan.ReadMetrics()
			if err != nil {
				return err
			}
			if !m.Finite() {
				bar.Done()
				return fmt.Errorf("%w at step %d (loss_d %g, loss_g %g); the last good checkpoint (step %d) is kept in %s", rundir.ErrNonFinite, step, m.LossD, m.LossG, lastGood, out)
			}
			now := time.Now()
			ips := float64((step-lastLog)*cfg.Batch*cfg.DSteps) / now.Sub(lastLogTime).Seconds()
			lastLog, lastLogTime = step, now
			rec := rundir.Metric{Step: step, Epoch: float64(step*cfg.Batch*cfg.DSteps) / float64(ds.N), LossD: m.LossD, LossG: m.LossG,
				DX: m.DX, DGZ1: m.DGZ1, DGZ2: m.DGZ2, ImagesPerSec: ips, Elapsed: elapsed()}
			if cfg.R1 > 0 {
				rec.R1 = &m.R1
			}

			status = fmt.Sprintf("%.0f img/s  loss_d %.3f  loss_g %.3f  D(x) %.2f  D(G(z)) %.2f/%.2f", ips, m.LossD, m.LossG, m.DX, m.DGZ1, m.DGZ2)
			if evalNow {
				res, _, err := ev.Generator(gan, cfg.NZ, cfg.EMA > 0)
				if err != nil {
					bar.Done()
					return fmt.Errorf("train: evaluation at step %d: %w", step, err)
				}
				rec.SWD, rec.KID, rec.KIDStd, rec.FID = res.SWD, res.KID, res.KIDStd, res.FID
				evalStatus = eval.Summary(res)
			}
			if evalStatus != "" {
				status += "  " + evalStatus
			}
			if err := mlog.Append(rec); err != nil {
				return err
			}
		}
		bar.Set(step, status)
		if step%cfg.SampleEvery == 0 {
			if err := writeSamples(step); err != nil {
				return err
			}
		}
		if step%cfg.CheckpointEvery == 0 && step < cfg.Steps {
			if err := checkpoint(step); err != nil {
				bar.Done()
				return err
			}
		}
	}
	bar.Done()
	interrupted := step < cfg.Steps
	if step > lastGood {
		if err := checkpoint(step); err != nil {
			return err
		}
	}
	if step%cfg.SampleEvery != 0 {
		if err := writeSamples(step); err != nil {
			return err
		}
	}
	if ms, err := rundir.ReadMetrics(filepath.Join(out, rundir.MetricsFile)); err == nil && len(ms) > 0 {
		if err := PlotLosses(filepath.Join(out, rundir.LossPlotFile), ms); err != nil {
			fmt.Fprintf(log, "train: loss plot: %v\n", err)
		}
	}
	if interrupted {
		fmt.Fprintf(log, "train: interrupted at step %d; checkpoint written. Continue with: vkgan train -resume %s\n", step, out)
	} else {
		fmt.Fprintf(log, "train: done, %d steps in %s\n", step, time.Duration(elapsed()*float64(time.Second)).Round(time.Second))
	}
	fmt.Fprintf(log, "train: samples: %s\ntrain: losses:  %s\ntrain: weights: %s, %s\n",
		rundir.SamplePath(out, step), filepath.Join(out, rundir.LossPlotFile), filepath.Join(out, rundir.GFile), filepath.Join(out, rundir.DFile))
	return nil
}
