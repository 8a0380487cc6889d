package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"vkgan/engine"
	"vkgan/engine/quality"
	"vkgan/train"
	"vkgan/train/data"
	"vkgan/train/eval"
	"vkgan/train/rundir"
	"vkgan/vk"
)

func evalCmd(fs *flag.FlagSet) func() error {
	runDir := fs.String("run", "", "run directory whose generator is scored")
	dataFlag := fs.String("data", "", "the data to compare with: a folder or emoji (default: the run's); with -ref, the images to score")
	refDir := fs.String("ref", "", "score the folder -data against this folder instead of a run (pytorch-fid's two-path mode)")
	size := fs.Int("size", 64, "with -ref: image side both folders are loaded at (images of this size are used as they are)")
	n := fs.Int("n", 1000, "images sampled from the generator (FID needs more than 2048 to be comparable with published numbers)")
	refN := fs.Int("ref-n", 10000, "at most this many data images (all when fewer)")
	metrics := fs.String("metrics", "", "metrics: swd,kid,fid (default: swd, and kid,fid when Inception weights are given)")
	inception := fs.String("inception", "", "FID Inception weights: pytorch-fid's pt_inception-2015-12-05-6726825d.pth or a safetensors copy (default $"+quality.InceptionEnv+")")
	ema := fs.Bool("ema", true, "score the averaged weights when the run keeps them")
	seed := fs.Uint64("seed", 0, "seed of the noise, the data subset and the metrics' random draws")
	batch := fs.Int("batch", 16, "images per Inception pass")
	asJSON := fs.Bool("json", false, "print one JSON object instead of a table")
	device := fs.String("device", "", "Vulkan device index or name substring")
	tune := fs.Bool("tune", false, "first tune the GEMM shapes the device's tuning table lacks (see vkgan tune)")
	return func() error {
		if (*runDir == "") == (*refDir == "") {
			return errors.New("eval: give -run DIR (score a run's generator) or -data A -ref B (compare two folders)")
		}
		var errs []error
		if *n < 2 {
			errs = append(errs, fmt.Errorf("eval: -n %d must be at least 2", *n))
		}
		if *refN < 2 {
			errs = append(errs, fmt.Errorf("eval: -ref-n %d must be at least 2", *refN))
		}
		if *batch < 1 || *batch > 256 {
			errs = append(errs, fmt.Errorf("eval: -batch %d must be in 1..256", *batch))
		}
		if *size < 1 || *size > 4096 {
			errs = append(errs, fmt.Errorf("eval: -size %d must be in 1..4096", *size))
		}
		weights := quality.InceptionPath(*inception)
		ms, err := eval.ParseMetrics(*metrics, weights != "")
		errs = append(errs, err)
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if weights == "" && *metrics == "" {
			fmt.Fprintf(stderr, "eval: SWD only: %v\n", quality.ErrNoInception)
		}
		opt := eval.Options{Metrics: ms, Inception: weights, N: *n, RefN: *refN, Seed: *seed, Batch: *batch, Log: stderr}
		if cache, err := os.UserCacheDir(); err == nil {
			opt.CacheDir = filepath.Join(cache, "vkgan", "features")
		}
		dev, err := engine.Open(vk.Options{Device: *device})
		if err != nil {
			return err
		}
		defer dev.Close()
		tuned := useTuning("eval", dev, *tune, stderr)
		var (
			res  eval.Result
			head string
		)
		if *refDir != "" {
			res, head, err = evalFolders(dev, *dataFlag, *refDir, *size, opt)
		} else {
			res, head, err = evalRun(dev, *runDir, *dataFlag, *ema, opt)
		}
		if err != nil {
			return err
		}
		tuned(true)
		return printEval(res, head, *asJSON)
	}
}

// evalRun scores a run's generator against its data (or -data).
func evalRun(dev *engine.Device, runDir, dataFlag string, ema bool, opt eval.Options) (eval.Result, string, error) {
	warn := func(msg string) { fmt.Fprintf(stderr, "eval: warning: %s\n", msg) }
	cfg, err := rundir.ReadRunConfig(runDir, warn)
	if errors.Is(err, os.ErrNotExist) {
		return eval.Result{}, "", fmt.Errorf("eval: -run %q holds no %s; give the directory of a vkgan train run", runDir, rundir.ConfigFile)
	}
	if err != nil {
		return eval.Result{}, "", fmt.Errorf("eval: %w", err)
	}
	if dataFlag != "" {
		cfg.Data = dataFlag
	}
	ds, err := train.LoadData(cfg, "", stderr)
	if err != nil {
		return eval.Result{}, "", err
	}
	opt.ClassLabels = ds.Labels
	ev, err := eval.New(dev, eval.FromDataset(ds, cfg.Channels), opt)
	if err != nil {
		return eval.Result{}, "", err
	}
	defer ev.Release()
	gan, err := dev.NewGAN(cfg.GANConfig(), nil)
	if err != nil {
		return eval.Result{}, "", err
	}
	defer gan.Release()
	info, err := rundir.LoadGenerator(runDir, gan, ema, warn)
	if err != nil {
		return eval.Result{}, "", fmt.Errorf("eval: %w", err)
	}
	// LoadGenerator put the average (when asked for and kept) into G's
	// own weights: sample those.
	res, _, err := ev.Generator(gan, cfg.NZ, false)
	which := "G"
	if ema && cfg.EMA > 0 {
		which = "G's average"
	}
	head := fmt.Sprintf("%d samples of %s at step %d of %q against %d images of %s", res.N, which, info.Step, runDir, res.RefN, cfg.Data)
	return res, head, err
}

// evalFolders scores the images in a against those in b.
func evalFolders(dev *engine.Device, a, b string, size int, opt eval.Options) (eval.Result, string, error) {
	if a == "" {
		return eval.Result{}, "", errors.New("eval: -ref needs -data DIR, the folder of images to score")
	}
	load := func(dir string) (eval.Images, error) {
		ds, err := data.LoadDir(dir, data.LoadOptions{Size: size, Progress: stderr})
		if err != nil {
			return eval.Images{}, err
		}
		return eval.FromDataset(ds, 3), nil
	}
	ia, err := load(a)
	if err != nil {
		return eval.Result{}, "", err
	}
	ib, err := load(b)
	if err != nil {
		return eval.Result{}, "", err
	}
	opt.N = ia.N
	opt.RefN = max(opt.RefN, ib.N)
	ev, err := eval.New(dev, ib, opt)
	if err != nil {
		return eval.Result{}, "", err
	}
	defer ev.Release()
	res, err := ev.Compare(ia)
	return res, fmt.Sprintf("%d images of %q against %d of %q, at %dx%d", res.N, a, res.RefN, b, size, size), err
}

// printEval writes the result as a table, or one JSON object.
func printEval(r eval.Result, head string, asJSON bool) error {
	for _, w := range r.Warnings {
		fmt.Fprintf(stderr, "eval: warning: %s\n", w)
	}
	if asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	fmt.Fprintf(stdout, "vkgan eval: %s\n", head)
	if r.SWD != nil {
		sides := make([]int, 0, len(r.SWDLevels))
		for k := range r.SWDLevels {
			s, _ := strconv.Atoi(k)
			sides = append(sides, s)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(sides)))
		levels := ""
		for _, s := range sides {
			levels += fmt.Sprintf("  %d: %.2f", s, r.SWDLevels[strconv.Itoa(s)])
		}
		fmt.Fprintf(stdout, "  SWD x1e3  %8.2f   (per level%s)\n", *r.SWD, levels)
	}
	if r.KID != nil {
		fmt.Fprintf(stdout, "  KID       %8.4f   (std %.4f over subsets)\n", *r.KID, *r.KIDStd)
	}
	if r.FID != nil {
		fmt.Fprintf(stdout, "  FID       %8.2f   (%s)\n", *r.FID, r.FIDMode)
	}
	fmt.Fprintf(stdout, "  took %.1f s\n", r.Seconds)
	return nil
}
