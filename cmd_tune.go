package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"vkgan/engine"
	"vkgan/train"
	"vkgan/train/rundir"
	"vkgan/train/toy"
	"vkgan/vk"
)

// tuneRepeat is the timed runs per finalist of an implicit tuning (-tune
// on train, bench and eval): fewer than vkgan tune's default, since it
// delays the command the user asked for.
const tuneRepeat = 3

// recheckRounds is the interleaved rounds of vkgan tune's second timing
// of a gain above 10%.
const recheckRounds = 3

// tuneCmd is `vkgan tune`: time every GEMM variant on the shapes the
// chosen models record and store the winners for this device.
func tuneCmd(fs *flag.FlagSet) func() error {
	device := fs.String("device", "", "device index or name substring (default $VKGAN_DEVICE, else the best device)")
	model := fs.String("model", "dcgan", "models whose GEMM shapes are tuned: dcgan, toy (both protocols) or all")
	sizes := fs.String("size", "32,64", "with dcgan: comma-separated image sizes (16, 32, 64, 128, 256)")
	batch := fs.Int("batch", rundir.DefaultBatch, "with dcgan: batch size (the toy protocols keep theirs)")
	width := fs.Int("width", rundir.DefaultNGF, "with dcgan: generator and discriminator width (-ngf, -ndf of train)")
	repeat := fs.Int("repeat", 5, "timed runs of each finalist after the screening; the median is compared")
	near := fs.Bool("near", false, "time only the variants one setting away from the default (quicker: fewer pipelines to compile)")
	return func() error {
		var errs []error
		if *model != "dcgan" && *model != "toy" && *model != "all" {
			errs = append(errs, fmt.Errorf("tune: -model %q: want dcgan, toy or all", *model))
		}
		var sz []int
		for _, f := range strings.Split(*sizes, ",") {
			s, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || (s != 16 && s != 32 && s != 64 && s != 128 && s != 256) {
				errs = append(errs, fmt.Errorf("tune: -size %q: %q is not one of 16, 32, 64, 128, 256", *sizes, f))
				continue
			}
			sz = append(sz, s)
		}
		if *batch < 2 {
			errs = append(errs, fmt.Errorf("tune: -batch %d must be at least 2", *batch))
		}
		if *width < 1 {
			errs = append(errs, fmt.Errorf("tune: -width %d must be at least 1", *width))
		}
		if *repeat < 1 {
			errs = append(errs, fmt.Errorf("tune: -repeat %d must be at least 1", *repeat))
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		dev, err := engine.Open(vk.Options{Device: *device})
		if err != nil {
			return deviceError(err)
		}
		defer dev.Close()
		info := dev.Info()
		path, err := dev.TuningPath()
		if err != nil {
			return err
		}
		table, warn := dev.LoadTuning(path)
		if warn != "" {
			fmt.Fprintf(stderr, "tune: warning: %s\n", warn)
		}
		fmt.Fprintf(stdout, "device: %s (%s, driver %s %s)\n", info.Name, info.Type, info.DriverName, info.DriverInfo)

		var shapes []engine.GemmShape
		seen := map[string]bool{}
		add := func(what string, ss []engine.GemmShape, err error) error {
			if err != nil {
				return fmt.Errorf("tune: %s: %w", what, err)
			}
			n := 0
			for _, s := range ss {
				if !seen[s.Key()] {
					seen[s.Key()], n = true, n+1
					shapes = append(shapes, s)
				}
			}
			fmt.Fprintf(stderr, "tune: %s records %d GEMM shapes (%d new)\n", what, len(ss), n)
			return nil
		}
		if *model != "toy" {
			for _, s := range sz {
				c := rundir.DefaultConfig()
				c.Size, c.Batch, c.NGF, c.NDF = s, *batch, *width, *width
				ss, err := captureDCGAN(dev, c)
				if err := add(fmt.Sprintf("dcgan %dx%d batch %d width %d", s, s, *batch, *width), ss, err); err != nil {
					return err
				}
			}
		}
		if *model != "dcgan" {
			for _, p := range []string{toy.ProtocolSmall, toy.ProtocolLarge} {
				ss, err := captureToy(dev, p)
				if err := add("toy "+p, ss, err); err != nil {
					return err
				}
			}
		}
		fmt.Fprintf(stdout, "every variant timed once, then the default and the %d fastest %d times each (median); table %s\n\n", engine.TuneFinalists, *repeat, path)
		const row = "%-62s %-22s %9s %-22s %9s %7s %7s\n"
		fmt.Fprintf(stdout, row, "shape", "default", "ms", "best", "ms", "speedup", "recheck")
		start := time.Now()
		var sumDef, sumBest float64
		for i, s := range shapes {
			cands := dev.GemmCandidates(s)
			if *near {
				cands = dev.NearCandidates(s)
			}
			fmt.Fprintf(stderr, "tune: [%d/%d] %s: %d variants\n", i+1, len(shapes), s, len(cands))
			res, err := dev.TuneGemm(s, cands, *repeat)
			if err != nil {
				fmt.Fprintf(stdout, "%-62s error: %v\n", s, err)
				continue
			}
			table.Set(res)
			if err := table.Save(path); err != nil {
				return err
			}
			sumDef += res.DefaultMs
			sumBest += res.BestMs
			best := res.Best.String()
			if res.Best == res.Default {
				best = "(default)"
			}
			// A gain above 10% is timed again, default and winner
			// interleaved over recheckRounds rounds, before anyone believes
			// it: a busy machine can flatter one variant's median.
			recheck := "-"
			if res.Speedup() > 1.1 {
				if ms, err := dev.TimeGemm(s, []engine.GemmVariant{res.Default, res.Best}, recheckRounds); err == nil && ms[1] > 0 {
					recheck = fmt.Sprintf("%.2fx", ms[0]/ms[1])
				}
			}
			fmt.Fprintf(stdout, row, s, res.Default, fmt.Sprintf("%.3f", res.DefaultMs), best, fmt.Sprintf("%.3f", res.BestMs), fmt.Sprintf("%.2fx", res.Speedup()), recheck)
		}
		if sumBest > 0 {
			fmt.Fprintf(stdout, row, "total", "", fmt.Sprintf("%.3f", sumDef), "", fmt.Sprintf("%.3f", sumBest), fmt.Sprintf("%.2fx", sumDef/sumBest), "")
		}
		fmt.Fprintf(stdout, "\n%d shapes tuned in %s; %s holds %d\n", len(shapes), time.Since(start).Round(time.Second), path, table.Len())
		return nil
	}
}

// captureDCGAN returns the GEMM shapes of c's training step and sample
// grid, as train records them, on random images.
func captureDCGAN(dev *engine.Device, c rundir.Config) ([]engine.GemmShape, error) {
	n := c.Batch
	pix := make([]byte, n*c.Channels*c.Size*c.Size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range pix {
		pix[i] = byte(rng.IntN(256))
	}
	data, err := dev.UploadData(pix, n, c.Channels, c.Size)
	if err != nil {
		return nil, err
	}
	defer data.Release()
	return dev.CaptureGemms(func() error {
		gan, err := dev.NewGAN(c.GANConfig(), data)
		if err != nil {
			return err
		}
		defer gan.Release()
		s, err := gan.NewSampler(rundir.SampleCount, true, true)
		if err != nil {
			return err
		}
		s.Release()
		return nil
	})
}

// captureToy returns the GEMM shapes of a toy protocol's step.
func captureToy(dev *engine.Device, protocol string) ([]engine.GemmShape, error) {
	e, _, err := toy.EngineConfig(toy.Config{Data: toy.MixRing8, Protocol: protocol, Holdout: -1})
	if err != nil {
		return nil, err
	}
	return dev.CaptureGemms(func() error {
		g, err := dev.NewToyGAN(e)
		if err != nil {
			return err
		}
		g.Release()
		return nil
	})
}

// useTuning loads dev's tuning table, if there is one, into dev for a
// command (train, bench, eval), saying so in one line on log. With tune,
// igemm also tunes every shape the table lacks when it is first recorded,
// saving the table after each; the returned func then prints a one-line
// summary of what was tuned since its last call (with always, also when
// nothing was). A stale or corrupt table, or one that cannot be saved, is
// a warning: tuning only changes speed.
func useTuning(cmd string, dev *engine.Device, tune bool, log io.Writer) (summary func(always bool)) {
	none := func(bool) {}
	path, err := dev.TuningPath()
	if err != nil {
		fmt.Fprintf(log, "%s: warning: no tuning table: %v\n", cmd, err)
		return none
	}
	table, warn := dev.LoadTuning(path)
	if warn != "" {
		fmt.Fprintf(log, "%s: warning: %s\n", cmd, warn)
	}
	if n := table.Len(); n > 0 {
		fmt.Fprintf(log, "%s: GEMM tuning table for %s: %d shapes (%s)\n", cmd, dev.Info().Name, n, path)
	}
	if table.Len() == 0 && !tune {
		return none
	}
	dev.SetTuning(table)
	if !tune {
		return none
	}
	var (
		tuned, failed int
		gain          float64 // default ms - best ms, summed
		took          time.Duration
		saveErr       error
	)
	dev.AutoTune(tuneRepeat, func(r engine.TuneResult, err error) {
		took += r.Took
		if err != nil {
			failed++
			return
		}
		tuned++
		gain += r.DefaultMs - r.BestMs
		if err := table.Save(path); err != nil && saveErr == nil {
			saveErr = err
		}
	})
	return func(always bool) {
		if saveErr != nil {
			fmt.Fprintf(log, "%s: warning: %v\n", cmd, saveErr)
			saveErr = nil
		}
		switch {
		case tuned+failed > 0:
			msg := ""
			if failed > 0 {
				msg = fmt.Sprintf(", %d failed (heuristics used)", failed)
			}
			fmt.Fprintf(log, "%s: -tune: tuned %d new GEMM shapes in %s, %.1f ms faster per pass in all%s; table %s holds %d\n",
				cmd, tuned, took.Round(time.Second), gain, msg, path, table.Len())
		case always:
			fmt.Fprintf(log, "%s: -tune: every GEMM shape was already in the table (%d shapes)\n", cmd, table.Len())
		}
		tuned, failed, gain, took = 0, 0, 0, 0
	}
}

// trainDevice opens the device vkgan train would (c's, or on resume the
// run's unless -device was given), for trainTuning to load its tuning
// table into, and returns the run's config. It returns no device when
// the config is bad or the resumed run cannot be read: Run then reports
// why, as it did before it was handed a device.
func trainDevice(c rundir.Config, opt train.RunOptions, set map[string]bool) (*engine.Device, *rundir.Config, error) {
	if opt.Resume {
		saved, err := rundir.ReadRunConfig(opt.Out, func(string) {})
		if err != nil {
			return nil, nil, nil
		}
		if set["device"] {
			saved.Device = c.Device
		}
		c = saved
	} else if c.Validate() != nil {
		return nil, nil, nil
	}
	dev, err := engine.Open(vk.Options{Device: c.Device, OnMessage: opt.OnValidation})
	if err != nil {
		return nil, nil, deviceError(err)
	}
	return dev, &c, nil
}

// trainTuning loads dev's tuning table for vkgan train. With tune it
// first tunes the shapes of c's training step and sample grid the table
// lacks (on random images of c's size) and prints one summary line; any
// shape recorded later that the table lacks (a conditional model's, whose
// classes come from the data) is tuned when first recorded, and
// the returned func, called when training ends, reports those if any.
func trainTuning(dev *engine.Device, c *rundir.Config, tune bool) (after func()) {
	summary := useTuning("train", dev, tune, stderr)
	after = func() { summary(false) }
	if !tune || c.Cond || c.Validate() != nil {
		return after
	}
	if _, err := captureDCGAN(dev, *c); err != nil {
		fmt.Fprintf(stderr, "train: warning: -tune: %v (shapes are tuned as they are recorded)\n", err)
		return after
	}
	summary(true)
	return after
}
