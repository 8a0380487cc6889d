package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/draw"

	"vkgan/engine"
	"vkgan/train/toy"
	"vkgan/viewer"
)

// toyCmd is `vkgan toy`: a GAN on a 2D mixture, drawn as the talk draws it.
func toyCmd(fs *flag.FlagSet) func() error {
	var c toy.Config
	var opt toy.Options
	fs.StringVar(&c.Data, "data", toy.MixRing8, "mixture: ring8, grid25 or spiral")
	fs.StringVar(&c.Protocol, "protocol", toy.ProtocolSmall, "networks and optimizer: small (2x128 tanh MLPs, batch 512) or large (4x400 BN-ReLU G, 3 maxout layers D, batch 100)")
	fs.IntVar(&c.Pack, "pack", 1, "PacGAN packing: D sees this many samples at once")
	fs.IntVar(&c.Steps, "steps", 25000, "training steps")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed for weights, data and noise")
	fs.IntVar(&c.Holdout, "holdout", -1, "leave this mode out of the real data (-1: none)")
	fs.Float64Var(&c.LRD, "lr-d", 0, "override D's Adam learning rate (0: the protocol's)")
	fs.Float64Var(&c.LRG, "lr-g", 0, "override G's Adam learning rate (0: the protocol's)")
	beta1 := fs.Float64("beta1", 0, "Adam beta1 of both nets, in [0, 1) (default: the protocol's, 0.5 small, 0.8 large)")
	beta2 := fs.Float64("beta2", 0, "Adam beta2 of both nets, in [0, 1) (default: the protocol's, 0.999)")
	fs.IntVar(&c.Batch, "batch", 0, "override the batch size (0: the protocol's)")
	fs.Float64Var(&c.EMA, "ema", 0, "evaluate and draw an average of G's weights with this decay (e.g. 0.999; 0: off)")
	fs.Float64Var(&c.LRDecay, "lr-decay", 0, "lower both learning rates linearly to zero over this last fraction of the steps (e.g. 0.5; 0: constant)")
	fs.Float64Var(&c.Noise, "noise", 0, "annealed instance noise: std of normal noise added to every point D sees (0: none)")
	fs.Float64Var(&c.NoiseUntil, "noise-until", 0.5, "fraction of the steps at which the instance noise has fallen to zero")
	fs.BoolVar(&c.DRS, "drs", false, "also measure G's samples filtered by D (discriminator rejection sampling; needs -pack 1)")
	fs.StringVar(&c.Device, "device", "", "Vulkan device index or name substring (default: VKGAN_DEVICE, else the best)")
	fs.StringVar(&opt.Out, "out", "runs/toy", "directory for toy.json, frames/ and toy.gif")
	fs.IntVar(&opt.FrameEvery, "frame-every", 500, "steps between frames")
	fs.IntVar(&opt.LogEvery, "log-every", 1000, "steps between log lines")
	view := fs.Bool("view", false, "also show the frames in a window as it trains (closing it stops training)")
	return func() error {
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "beta1":
				c.Beta1 = beta1
			case "beta2":
				c.Beta2 = beta2
			}
		})
		// Every bad flag at once, and before a window opens.
		if err := errors.Join(c.Validate(), opt.Validate()); err != nil {
			return err
		}
		w, err := mpiWorld()
		if err != nil {
			return err
		}
		opt.Log = stderr
		ctx, stop := interruptContext("writing toy.json and the GIF")
		defer stop()
		var res *toy.Result
		if w.Size() > 1 {
			if *view {
				return errors.New("toy: -view draws one process's training; it does not run under mpirun")
			}
			opt.World = w
			res, err = toy.Run(ctx, c, opt)
			// An interrupted run still has its result: every rank stopped
			// after the same step.
			runErr := err
			if res != nil || w.Rank() != 0 && errors.Is(err, context.Canceled) {
				runErr = nil
			}
			if perr := parallelResult(w, runErr); perr != nil {
				return perr
			}
			if w.Rank() != 0 {
				return nil // rank 0 reports the run
			}
		} else if *view {
			err = viewer.ShowImages(viewer.ImageOptions{
				Title: fmt.Sprintf("vkgan toy %s seed %d", c.Data, c.Seed), Device: c.Device, Context: ctx,
				NoDisplayHint: fmt.Sprintf("run vkgan toy without -view: the frames and toy.gif are written to %q", opt.Out),
				Work: func(wctx context.Context, dev *engine.Device, show func(image.Image)) error {
					o := opt
					o.Device = dev
					o.OnFrame = func(img image.Image, _ int) { show(cloneImage(img)) }
					var rerr error
					res, rerr = toy.Run(wctx, c, o)
					return rerr
				}})
			if res == nil && err == nil {
				return nil // the window closed before training began
			}
		} else {
			res, err = toy.Run(ctx, c, opt)
		}
		if err != nil && res == nil {
			return err
		}
		kl := "n/a"
		if res.ReverseKL != nil {
			kl = fmt.Sprintf("%.4f", *res.ReverseKL)
		}
		fmt.Fprintf(stdout, "%s seed %d: %d/%d modes, %.1f%% high quality, reverse KL %s, %.2f ms/step; %s\n",
			res.Data, res.Seed, res.Modes, res.ModesTotal, res.HighQualityPct, kl, res.MsPerStep, opt.Out)
		if d := res.DRS; d != nil {
			fmt.Fprintf(stdout, "with rejection sampling (%.1f%% of %d accepted): %d/%d modes, %.1f%% high quality\n", d.AcceptPct, d.Candidates, d.Modes, res.ModesTotal, d.HighQualityPct)
		}
		if res.Holdout >= 0 {
			fmt.Fprintf(stdout, "held-out mode %d: %d of %d samples within 3 std, %d nearest to it\n", res.Holdout, res.HoldoutHQ, res.EvalSamples, res.HoldoutNearest)
		}
		return err
	}
}

// cloneImage copies img: the window keeps the picture after the frame hook
// returns.
func cloneImage(img image.Image) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(b)
	draw.Draw(out, b, img, b.Min, draw.Src)
	return out
}
