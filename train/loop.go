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
	"vkgan/internal/mpi"
	"vkgan/internal/progress"
	"vkgan/internal/rss"
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
	// World is the data-parallel job (mpi.Init); nil or a world of one
	// rank is one process. With several ranks each trains on its shard of
	// every global batch of Size*Batch images and averages gradients with
	// the others; rank 0 alone writes the run directory and logs, the
	// others print nothing (their errors come back from Run).
	World *mpi.World
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
	j, err := newJob(opt.World)
	if err != nil {
		return err
	}
	ranks, lead := j.ranks(), j.lead()
	if ranks > 1 && (opt.Device != nil || opt.OnStep != nil) {
		return errors.New("train: -view draws one process's training; it does not run under mpirun")
	}
	if !lead {
		log = io.Discard
	}
	warn := func(msg string) { fmt.Fprintf(log, "train: warning: %s\n", msg) }
	out := opt.Out
	if out == "" {
		return errors.New("train: no run directory (-out)")
	}
	if !lead {
		return follow(ctx, j, opt, log)
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
			if ranks > 1 {
				return j.share(&startMsg{Nothing: true})
			}
			return nil
		}
		if was := max(plan.Config.Ranks, 1); was != ranks {
			return fmt.Errorf("train: %q was trained on %d ranks (a global batch of %d images); it resumes on %d only: the data order and the batch follow the number of ranks (run it with mpirun -np %d, or start a new run)",
				out, was, was*plan.Config.Batch, was, was)
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
		if ranks > 1 {
			cfg.Ranks = ranks
		}
	}
	if ranks > 1 {
		if err := j.share(&startMsg{Config: cfg, Step: start, Elapsed: elapsed0}); err != nil {
			return err
		}
		fmt.Fprintf(log, "train: %d ranks of %d images each: a global batch of %d\n", ranks, cfg.Batch, ranks*cfg.Batch)
	}
	dev, _, gan, release, err := j.open(cfg, ds, opt, log)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := release(); err == nil && rerr != nil {
			err = rerr
		}
	}()
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
	if ranks > 1 {
		if err := gan.SyncState(j.bcast); err != nil {
			return err
		}
	}
	return loop(ctx, j, cfg, opt, log, dev, ds, gan, start, elapsed0)
}

// loop trains gan from step start to cfg.Steps, on every rank; rank 0
// alone writes samples, metrics and checkpoints. Every collective (the
// step's all-reduces, the metrics, the statistics, the stop) is reached
// by every rank at the same step, so all branches that lead to one depend
// only on the step and on values every rank shares.
func loop(ctx context.Context, j *job, cfg rundir.Config, opt RunOptions, log io.Writer, dev *engine.Device, ds *data.Dataset, gan *engine.GAN, start int, elapsed0 float64) (err error) {
	ranks, lead, out := j.ranks(), j.lead(), opt.Out
	step := start
	if opt.OnStep != nil {
		defer func() { opt.OnStep(nil, step) }() // runs before gan.Release
	}
	began := time.Now()
	elapsed := func() float64 { return elapsed0 + time.Since(began).Seconds() }
	var (
		sampler *engine.Sampler
		fixed   []float32
		mlog    *rundir.MetricsLog
		ev      *eval.Evaluator
	)
	if lead {
		if err := os.MkdirAll(filepath.Join(out, rundir.SamplesDir), 0o755); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if sampler, err = gan.NewSampler(rundir.SampleCount, true, true); err != nil {
			return memoryHint(err, cfg)
		}
		defer sampler.Release()
		fixed = rundir.FixedNoise(cfg.Seed, rundir.SampleCount, cfg.NZ)
		if mlog, err = rundir.OpenMetricsLog(filepath.Join(out, rundir.MetricsFile)); err != nil {
			return err
		}
		defer func() {
			if cerr := mlog.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
		if ev, err = newEvaluator(dev, ds, cfg, log); err != nil {
			return err
		}
		defer ev.Release()
	}

	writeSamples := func(step int) error {
		if !lead {
			return nil
		}
		img, err := sampler.Sample(fixed)
		if err != nil {
			return err
		}
		return grid.Write(rundir.SamplePath(out, step), img, rundir.SampleCount, cfg.Channels, cfg.Size, rundir.SampleCols)
	}
	lastGood := start
	checkpoint := func(step int) error {
		// Never replace a good checkpoint with diverged weights. The
		// metrics are the ranks' mean: every rank decides alike.
		m, err := gan.ReadMetrics()
		if err != nil {
			return err
		}
		if step > start && !m.Finite() {
			return fmt.Errorf("%w at or before step %d (%+v); the last good checkpoint (step %d) is kept", rundir.ErrNonFinite, step, m, lastGood)
		}
		if err := gan.AverageStats(); err != nil {
			return err
		}
		if lead {
			if err := rundir.SaveCheckpoint(out, gan, cfg, step, elapsed()); err != nil {
				return err
			}
		}
		lastGood = step
		return nil
	}

	// A step's images over all ranks.
	global := cfg.Batch * cfg.DSteps * ranks
	bar := progress.New(log, "train", cfg.Steps)
	bar.Set(start, "")
	lastLog, lastLogTime := start, time.Now()
	status := ""     // the last logged losses, shown until the next log line
	evalStatus := "" // the last evaluation's numbers, shown until the next
	loopStart := time.Now()
	for step < cfg.Steps {
		stop := ctx.Err() != nil
		if ranks > 1 {
			if stop, err = j.anyStop(stop); err != nil {
				bar.Done()
				return err
			}
		}
		if stop {
			break
		}
		if err := gan.Step(); err != nil {
			bar.Done()
			return memoryHint(fmt.Errorf("train: step %d: %w", step+1, err), cfg)
		}
		step++
		j.testStop(step)
		if ranks > 1 && j.check {
			if err := j.checkSame(gan, step); err != nil {
				bar.Done()
				return err
			}
		}
		if opt.OnStep != nil {
			opt.OnStep(gan, step)
		}
		evalNow := cfg.EvalEvery > 0 && step%cfg.EvalEvery == 0
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
			ips := float64((step-lastLog)*global) / now.Sub(lastLogTime).Seconds()
			lastLog, lastLogTime = step, now
			rec := rundir.Metric{Step: step, Epoch: float64(step*global) / float64(ds.N), LossD: m.LossD, LossG: m.LossG,
				DX: m.DX, DGZ1: m.DGZ1, DGZ2: m.DGZ2, ImagesPerSec: ips, Elapsed: elapsed()}
			if cfg.R1 > 0 {
				rec.R1 = &m.R1
			}

			status = fmt.Sprintf("%.0f img/s  loss_d %.3f  loss_g %.3f  D(x) %.2f  D(G(z)) %.2f/%.2f", ips, m.LossD, m.LossG, m.DX, m.DGZ1, m.DGZ2)
			if evalNow && ev != nil {
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
			if lead {
				if err := mlog.Append(rec); err != nil {
					return err
				}
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
	trained := time.Since(loopStart)
	interrupted := step < cfg.Steps
	if step > lastGood {
		if err := checkpoint(step); err != nil {
			return err
		}
	}
	if !lead {
		return nil
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
	if n := step - start; ranks > 1 && n > 0 {
		// Measured on rank 0, per step and as a share of it: the time in
		// MPI's all-reduces (gradients and logged metrics), and the host's
		// whole work between the step's segments (MPI and the scaling).
		ms := func(d time.Duration) float64 { return d.Seconds() * 1e3 / float64(n) }
		stepMs := ms(trained)
		fmt.Fprintf(log, "train: all-reduce on %d ranks: %d bytes per step, %.2f ms per step in MPI (%.1f%% of %.2f ms a step); the host's gradient averaging between segments %.2f ms (%.1f%%)\n",
			ranks, j.reduceBytes/int64(n), ms(j.reduceTime), 100*ms(j.reduceTime)/stepMs, stepMs, ms(gan.ReduceTime()), 100*ms(gan.ReduceTime())/stepMs)
		if j.check {
			fmt.Fprintf(log, "train: %s: every rank's weights equal rank 0's after each of %d steps\n", CheckEnv, n)
		}
	}
	mem := dev.MemoryStats()
	fmt.Fprintf(log, "train: memory: %s of device memory held at the peak (%d allocations) for %s of tensors and buffers; peak RSS %s\n",
		mib(mem.PeakHeld), mem.PeakAllocations, mib(mem.PeakRequested), mib(rss.Peak()))
	if interrupted {
		fmt.Fprintf(log, "train: interrupted at step %d; checkpoint written. Continue with: vkgan train -resume %s\n", step, out)
	} else {
		fmt.Fprintf(log, "train: done, %d steps in %s\n", step, time.Duration(elapsed()*float64(time.Second)).Round(time.Second))
	}
	fmt.Fprintf(log, "train: samples: %s\ntrain: losses:  %s\ntrain: weights: %s, %s\n",
		rundir.SamplePath(out, step), filepath.Join(out, rundir.LossPlotFile), filepath.Join(out, rundir.GFile), filepath.Join(out, rundir.DFile))
	return nil
}

// open opens this rank's device (or takes opt.Device), uploads the data
// set and allocates the GAN, a rank of the job's; release frees them in
// reverse order and reports the device's Close.
func (j *job) open(cfg rundir.Config, ds *data.Dataset, opt RunOptions, log io.Writer) (dev *engine.Device, images *engine.DeviceData, gan *engine.GAN, release func() error, err error) {
	// Local, not the named results: an error return zeroes those before
	// the deferred undo runs.
	var undo []func() error
	undoAll := func() error {
		var errs []error
		for i := len(undo) - 1; i >= 0; i-- {
			errs = append(errs, undo[i]())
		}
		undo = nil
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			_ = undoAll()
		}
	}()
	dev = opt.Device
	if dev == nil {
		sel := cfg.Device
		if j.ranks() > 1 {
			infos, _ := vk.Devices() // none: Open says so
			if sel, err = j.deviceFor(cfg.Device, len(infos)); err != nil {
				return nil, nil, nil, nil, err
			}
		}
		if dev, err = engine.Open(vk.Options{Device: sel, OnMessage: opt.OnValidation}); err != nil {
			return nil, nil, nil, nil, err
		}
		undo = append(undo, dev.Close)
	}
	info := dev.Info()
	fmt.Fprintf(log, "train: %d images of %dx%d on %s (%s)\n", ds.N, cfg.Size, cfg.Size, info.Name, info.Type)
	if images, err = dev.UploadData(ds.PixelsAs(cfg.Channels), ds.N, cfg.Channels, cfg.Size); err != nil {
		return nil, nil, nil, nil, memoryHint(err, cfg)
	}
	dd := images
	undo = append(undo, func() error { dd.Release(); return nil })
	if cfg.Cond {
		if err = images.SetLabels(ds.Labels, len(ds.Classes)); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	gc := cfg.GANConfig()
	gc.Shard = j.shard()
	if gan, err = dev.NewGAN(gc, images); err != nil {
		return nil, nil, nil, nil, memoryHint(err, cfg)
	}
	undo = append(undo, func() error { gan.Release(); return nil })
	return dev, images, gan, undoAll, nil
}

// follow is a rank other than 0: it takes rank 0's setup, loads the same
// data (after rank 0, which may have had to fetch or decode it first, so
// the ranks do not race on the caches), starts from rank 0's state and
// trains its shard.
func follow(ctx context.Context, j *job, opt RunOptions, log io.Writer) (err error) {
	var s startMsg
	if err := j.share(&s); err != nil {
		return err
	}
	if s.Nothing {
		return nil
	}
	cfg := s.Config
	ds, err := LoadData(cfg, opt.DataRoot, log)
	if err != nil {
		return err
	}
	if h := ds.Hash(); h != cfg.DataHash {
		return fmt.Errorf("train: rank %d: the images in %q differ from rank 0's (%d images; hash %.12s, rank 0's %.12s): every rank needs the same data", j.rank(), cfg.Data, ds.N, h, cfg.DataHash)
	}
	if cfg.Cond && !slices.Equal(cfg.Classes, ds.Classes) {
		return fmt.Errorf("train: rank %d: %q has the classes %q, rank 0's %q", j.rank(), cfg.Data, ds.Classes, cfg.Classes)
	}
	dev, _, gan, release, err := j.open(cfg, ds, opt, log)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := release(); err == nil && rerr != nil {
			err = rerr
		}
	}()
	if err := gan.Init(cfg.Seed); err != nil {
		return err
	}
	if err := gan.SyncState(j.bcast); err != nil {
		return err
	}
	return loop(ctx, j, cfg, opt, log, dev, ds, gan, s.Step, s.Elapsed)
}

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
