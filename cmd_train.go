package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"vkgan/engine"
	"vkgan/internal/mpi"
	"vkgan/train"
	"vkgan/train/rundir"
	"vkgan/viewer"
	"vkgan/vk"
)

func trainCmd(fs *flag.FlagSet) func() error {
	def := rundir.DefaultConfig()
	c := def
	fs.StringVar(&c.Data, "data", def.Data, `folder of images (searched recursively), or "emoji"`)
	fs.StringVar(&c.Category, "category", "", "with -data emoji: only this emoji.json category or subcategory (e.g. animal-mammal)")
	fs.IntVar(&c.Size, "size", def.Size, "image and model size: 16, 32, 64, 128 or 256")
	fs.IntVar(&c.Batch, "batch", def.Batch, "images per batch")
	steps := fs.Int("steps", 0, fmt.Sprintf("total steps of the run (default %d; with -resume, a new total)", def.Steps))
	fs.IntVar(&c.NZ, "nz", def.NZ, "latent vector length")
	fs.IntVar(&c.NGF, "ngf", def.NGF, "generator width")
	fs.IntVar(&c.NDF, "ndf", def.NDF, "discriminator width")
	fs.IntVar(&c.Channels, "channels", def.Channels, "image channels: 3 (RGB), 1 (grey) or 4 (RGBA: transparency kept)")
	fs.Uint64Var(&c.Seed, "seed", def.Seed, "seed for weights, data order and noise")
	fs.Float64Var(&c.LRD, "lr-d", def.LRD, "Adam learning rate of D")
	fs.Float64Var(&c.LRG, "lr-g", def.LRG, "Adam learning rate of G")
	fs.Float64Var(&c.Beta1, "beta1", def.Beta1, "Adam beta1 (both nets)")
	fs.Float64Var(&c.Beta2, "beta2", def.Beta2, "Adam beta2 (both nets)")
	fs.Float64Var(&c.LabelSmooth, "label-smooth", def.LabelSmooth, "one-sided label smoothing: D's real target is 1 - this")
	fs.IntVar(&c.DSteps, "d-steps", def.DSteps, "D updates per G update")
	fs.StringVar(&c.Loss, "loss", "bce", "adversarial loss: bce (the example's), hinge or ls (least squares)")
	fs.StringVar(&c.DNorm, "d-norm", "batch", "D's normalisation after its inner convolutions: batch (the example's) or none")
	fs.BoolVar(&c.SN, "sn", false, "spectral norm on every convolution of D (torch.nn.utils.spectral_norm; usually with -d-norm none)")
	fs.BoolVar(&c.SNG, "sn-g", false, "spectral norm on every convolution of G")
	fs.Float64Var(&c.R1, "r1", 0, "R1 penalty weight gamma on real images, e.g. 0.1 (0 = off; needs -d-norm none)")
	fs.IntVar(&c.R1Every, "r1-every", 1, "take the R1 penalty every this many steps, weighted by gamma times this (lazy regularisation)")
	fs.StringVar(&c.Augment, "augment", "", "DiffAugment policy for every batch D sees: a comma-separated subset of color,translation,cutout")
	fs.BoolVar(&c.Flip, "flip", false, "random horizontal flips of every batch D sees (differentiable, like -augment)")
	fs.BoolVar(&c.Cond, "cond", false, "class-conditional model: the classes are -data's subfolders, or the emoji categories")
	fs.IntVar(&c.ClassDim, "class-dim", def.ClassDim, "with -cond: size of G's class embedding")
	fs.StringVar(&c.InitG, "init-g", "", "start a new run with G's weights from this safetensors file (PyTorch state_dict names)")
	fs.StringVar(&c.InitD, "init-d", "", "start a new run with D's weights from this safetensors file")
	fs.Float64Var(&c.EMA, "ema", def.EMA, "decay of an average of G's weights used for samples (e.g. 0.999; 0 = off)")
	fs.IntVar(&c.LogEvery, "log-every", def.LogEvery, "steps between metrics lines")
	fs.IntVar(&c.SampleEvery, "sample-every", def.SampleEvery, "steps between sample grids")
	fs.IntVar(&c.CheckpointEvery, "checkpoint-every", def.CheckpointEvery, "steps between checkpoints")
	fs.IntVar(&c.EvalEvery, "eval-every", 0, "steps between image-quality evaluations in metrics.jsonl and losses.png (0 = off)")
	fs.IntVar(&c.EvalN, "eval-n", 500, "images each evaluation samples from G")
	fs.StringVar(&c.EvalMetrics, "eval-metrics", "", "metrics of -eval-every: swd,kid,fid (default: swd, and kid,fid with Inception weights)")
	fs.StringVar(&c.Inception, "inception", "", "FID Inception weights for KID and FID (default $VKGAN_INCEPTION)")
	fs.StringVar(&c.Device, "device", "", "Vulkan device index or name substring (default: VKGAN_DEVICE, else the best)")
	out := fs.String("out", "runs/dcgan", "run directory (samples, metrics, plot, checkpoints)")
	resume := fs.String("resume", "", "continue the run in this directory from its last checkpoint")
	view := fs.Bool("view", false, "open a window showing G's samples from its live weights as it trains (closing it stops training with a checkpoint)")
	demo := fs.Bool("demo", false, "the demo: emoji, with a model sized for the device (CPU: 32x32, width 32; GPU: the example's 64x64)")
	maxTime := fs.Duration("max-time", 0, "stop (with a checkpoint) after this long, e.g. 10m; 0 = no limit")
	tune := fs.Bool("tune", false, "first tune the GEMM shapes of the model that the device's tuning table lacks (see vkgan tune)")
	return func() error {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		var errs []error
		if set["steps"] && *steps < 1 {
			errs = append(errs, fmt.Errorf("train: -steps %d must be at least 1", *steps))
		}
		if *maxTime < 0 {
			errs = append(errs, fmt.Errorf("train: -max-time %v must be positive (0: no limit)", *maxTime))
		}
		if *resume != "" {
			if set["out"] && filepath.Clean(*out) != filepath.Clean(*resume) {
				errs = append(errs, fmt.Errorf("train: -out %q with -resume %q: a resumed run stays in its directory; give it once, with -resume", *out, *resume))
			}
			if *demo {
				errs = append(errs, errors.New("train: -demo starts a new run; continue a demo run with -resume alone"))
			}
			for _, f := range []string{"init-g", "init-d"} {
				if set[f] {
					errs = append(errs, fmt.Errorf("train: -%s starts a new run from weights; a resumed run continues from its checkpoint", f))
				}
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if *demo {
			if err := demoConfig(&c, set); err != nil {
				return err
			}
		}
		opt := train.RunOptions{Out: *out, Log: stderr}
		if *resume != "" {
			delete(set, "steps") // a new total: opt.Steps
			opt.Out, opt.Resume, opt.Steps, opt.Flags = *resume, true, *steps, set
		} else if set["steps"] {
			c.Steps = *steps
		}
		ctx, stop := interruptContext("writing a checkpoint")
		defer stop()
		if *maxTime > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *maxTime)
			defer cancel()
		}
		w, err := mpiWorld()
		if err != nil {
			return err
		}
		if w.Size() > 1 {
			if *view {
				return errors.New("train: -view draws one process's training; it does not run under mpirun")
			}
			opt.World = w
			if *tune {
				fmt.Fprintln(stderr, "train: -tune is not applied under mpirun (each rank opens its own device); run vkgan tune on each node first")
			}
			return parallelResult(w, train.Run(ctx, c, opt))
		}
		if !*view {
			// The device is opened here, not by Run, to load its tuning
			// table before the step is recorded.
			dev, tc, err := trainDevice(c, opt, set)
			if err != nil {
				return err
			}
			if dev == nil {
				return train.Run(ctx, c, opt)
			}
			after := trainTuning(dev, tc, *tune)
			opt.Device = dev
			err = train.Run(ctx, c, opt)
			after()
			if cerr := dev.Close(); err == nil {
				err = cerr
			}
			return err
		}
		// The window owns the device and the main thread; training runs
		// beside it and stops (with a checkpoint) when the window closes.
		wcfg := c
		if opt.Resume {
			// Flags that would change the model are refused by Run.
			saved, err := rundir.ReadRunConfig(opt.Out, func(string) {})
			if err != nil {
				return fmt.Errorf("train: -resume %q: %w", opt.Out, err)
			}
			wcfg = saved
		}
		_, err = viewer.Run(viewer.Options{RunDir: opt.Out, Config: &wcfg, Device: c.Device, Context: ctx,
			Train: func(wctx context.Context, dev *engine.Device, live func(*engine.GAN, int)) error {
				// Training stops on Ctrl-C (ctx) or when the window closes (wctx).
				both, cancel := context.WithCancel(ctx)
				defer cancel()
				defer context.AfterFunc(wctx, cancel)()
				after := trainTuning(dev, &wcfg, *tune)
				defer after()
				opt.Device, opt.OnStep = dev, live
				return train.Run(both, c, opt)
			}})
		return err
	}
}

// mpiWorld joins the MPI job once per process (tests run many commands
// in one): a single-process world without mpirun or without the mpi build.
var mpiWorld = sync.OnceValues(func() (*mpi.World, error) {
	w, err := mpi.Init()
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return w, nil
})

// parallelResult ends a rank of an MPI job. An error every rank shares
// (non-finite losses: the ranks average them, so all stop at the same
// step) is printed by rank 0 alone and the job ends normally; any other
// is this rank's own (a lost device, a full disk, a timeout waiting for
// a dead rank), which the others cannot see: it ends every rank at once
// (MPI_Abort) with one line, the last good checkpoint kept.
func parallelResult(w *mpi.World, err error) error {
	if err == nil || errors.Is(err, rundir.ErrNonFinite) {
		if ferr := w.Finalize(); err == nil {
			err = ferr
		}
		if err != nil && w.Rank() != 0 {
			return errQuiet
		}
		return err
	}
	w.Abort(1, "vkgan: "+err.Error())
	return err // not reached
}

// demoConfig sizes the demo for the device: a CPU device (lavapipe) gets
// a 32x32 model of width 32 trained on the smileys (about 340 round faces,
// which it learns within ten minutes on two cores; the whole set of 7,572
// mixed emoji needs many more steps than that); a GPU gets the example's
// 64x64 model at full width on the whole set. Flags given explicitly win.
func demoConfig(c *rundir.Config, set map[string]bool) error {
	infos, err := vk.Devices()
	if err == nil && len(infos) == 0 {
		err = vk.ErrNoDevice
	}
	if err != nil {
		return deviceError(err)
	}
	sel := c.Device
	if sel == "" {
		sel = os.Getenv("VKGAN_DEVICE")
	}
	i, err := vk.DefaultIndex(infos, sel)
	if err != nil {
		return err
	}
	d := rundir.DefaultConfig()
	d.Data, d.Size, d.NGF, d.NDF, d.Steps, d.EMA = "emoji", 64, 64, 64, 5000, 0.999
	d.SampleEvery, d.CheckpointEvery, d.LogEvery = 250, 500, 25
	if infos[i].Type == vk.CPU {
		d.Size, d.NGF, d.NDF, d.Steps, d.EMA = 32, 32, 32, demoCPUSteps, 0.995
		d.Category = demoCPUCategory
	}
	for name, apply := range map[string]func(){
		"data": func() { c.Data = d.Data }, "size": func() { c.Size = d.Size }, "ngf": func() { c.NGF = d.NGF },
		"category": func() {
			if !set["data"] {
				c.Category = d.Category
			}
		},
		"ndf": func() { c.NDF = d.NDF }, "steps": func() { c.Steps = d.Steps }, "ema": func() { c.EMA = d.EMA },
		"sample-every": func() { c.SampleEvery = d.SampleEvery }, "checkpoint-every": func() { c.CheckpointEvery = d.CheckpointEvery },
		"log-every": func() { c.LogEvery = d.LogEvery },
	} {
		if !set[name] {
			apply()
		}
	}
	what := c.Data
	if c.Category != "" {
		what += " (" + c.Category + ")"
	}
	fmt.Fprintf(stderr, "demo: %s (%s): %dx%d DCGAN, width %d, %d steps on %s\n", infos[i].Name, infos[i].Type, c.Size, c.Size, c.NGF, c.Steps, what)
	return nil
}

// demoCPUSteps fits the CPU demo's training into about nine minutes on a
// 2-core machine (about 3 steps/s).
const demoCPUSteps = 1400

// demoCPUCategory is the emoji.json category the CPU demo learns.
const demoCPUCategory = "Smileys & Emotion"

// interruptContext is cancelled by the first SIGINT (Ctrl-C) or SIGTERM,
// so the run finishes its step and then does what (a checkpoint; the toy's
// final metrics) and exits 0. Only a second signal more than a second
// after the first, or SIGQUIT, quits at once: timeout(1) and some service
// managers signal the process and then its whole group, two signals at one
// moment that must still leave a checkpoint.
func interruptContext(what string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 4)
	stopped := make(chan struct{})
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
	go func() {
		var first time.Time
		for {
			select {
			case s := <-sig:
				if s == syscall.SIGQUIT {
					fmt.Fprintln(os.Stderr, "\nvkgan: SIGQUIT: quit at once")
					os.Exit(131)
				}
				if first.IsZero() {
					first = time.Now()
					fmt.Fprintf(os.Stderr, "\nvkgan: interrupted: finishing this step and %s (Ctrl-C again to quit at once)\n", what)
					cancel()
				} else if time.Since(first) > time.Second {
					fmt.Fprintln(os.Stderr, "vkgan: quit at once")
					os.Exit(130)
				}
			case <-stopped:
				return
			}
		}
	}()
	return ctx, func() { signal.Stop(sig); close(stopped); cancel() }
}
