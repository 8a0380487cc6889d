package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"vkgan/train"
)

func trainCmd(fs *flag.FlagSet) func() error {
	def := train.DefaultConfig()
	c := def
	fs.StringVar(&c.Data, "data", def.Data, `folder of images (searched recursively), or "emoji"`)
	fs.StringVar(&c.Category, "category", "", "with -data emoji: only this emoji.json category or subcategory (e.g. animal-mammal)")
	fs.IntVar(&c.Size, "size", def.Size, "image and model size: 32 or 64")
	fs.IntVar(&c.Batch, "batch", def.Batch, "images per batch")
	steps := fs.Int("steps", 0, fmt.Sprintf("total steps of the run (default %d; with -resume, a new total)", def.Steps))
	fs.IntVar(&c.NZ, "nz", def.NZ, "latent vector length")
	fs.IntVar(&c.NGF, "ngf", def.NGF, "generator width")
	fs.IntVar(&c.NDF, "ndf", def.NDF, "discriminator width")
	fs.IntVar(&c.Channels, "channels", def.Channels, "image channels: 3 (RGB) or 1 (grey)")
	fs.Uint64Var(&c.Seed, "seed", def.Seed, "seed for weights, data order and noise")
	fs.Float64Var(&c.LRD, "lr-d", def.LRD, "Adam learning rate of D")
	fs.Float64Var(&c.LRG, "lr-g", def.LRG, "Adam learning rate of G")
	fs.Float64Var(&c.Beta1, "beta1", def.Beta1, "Adam beta1 (both nets)")
	fs.Float64Var(&c.Beta2, "beta2", def.Beta2, "Adam beta2 (both nets)")
	fs.Float64Var(&c.LabelSmooth, "label-smooth", def.LabelSmooth, "one-sided label smoothing: D's real target is 1 - this")
	fs.IntVar(&c.DSteps, "d-steps", def.DSteps, "D updates per G update")
	fs.Float64Var(&c.EMA, "ema", def.EMA, "decay of an average of G's weights used for samples (e.g. 0.999; 0 = off)")
	fs.IntVar(&c.LogEvery, "log-every", def.LogEvery, "steps between metrics lines")
	fs.IntVar(&c.SampleEvery, "sample-every", def.SampleEvery, "steps between sample grids")
	fs.IntVar(&c.CheckpointEvery, "checkpoint-every", def.CheckpointEvery, "steps between checkpoints")
	fs.StringVar(&c.Device, "device", "", "Vulkan device index or name substring (default: VKGAN_DEVICE, else the best)")
	out := fs.String("out", "runs/dcgan", "run directory (samples, metrics, plot, checkpoints)")
	resume := fs.String("resume", "", "continue the run in this directory from its last checkpoint")
	view := fs.Bool("view", false, "open a window showing G's samples as it trains")
	return func() error {
		if *view {
			return errors.New("train: -view is not available yet; samples are written to the run directory's samples/ folder")
		}
		opt := train.RunOptions{Out: *out}
		if *resume != "" {
			opt.Out, opt.Resume, opt.Steps = *resume, true, *steps
		} else if *steps > 0 {
			c.Steps = *steps
		}
		ctx, stop := interruptContext()
		defer stop()
		return train.Run(ctx, c, opt)
	}
}

// interruptContext is cancelled by the first Ctrl-C (or SIGTERM), so the
// run finishes its step and writes a checkpoint; a second one exits at
// once.
func interruptContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sig:
		case <-ctx.Done():
			return
		}
		fmt.Fprintln(os.Stderr, "\nvkgan: interrupted: finishing this step and writing a checkpoint (Ctrl-C again to quit at once)")
		cancel()
		<-sig
		fmt.Fprintln(os.Stderr, "vkgan: quit without a checkpoint")
		os.Exit(130)
	}()
	return ctx, func() { signal.Stop(sig); cancel() }
}
