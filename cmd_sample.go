package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"vkgan/engine"
	"vkgan/engine/quality"
	"vkgan/train"
	"vkgan/train/data"
	"vkgan/train/eval"
	"vkgan/train/grid"
	"vkgan/train/rundir"
	"vkgan/vk"
)

// Defaults of -nearest: fewer rows than a grid has samples, since each row
// is 1+k images wide.
const (
	nearestN = 8
	nearestK = 5
)

func sampleCmd(fs *flag.FlagSet) func() error {
	runDir := fs.String("run", "", "run directory (required)")
	n := fs.Int("n", rundir.SampleCount, "number of samples")
	seed := fs.Uint64("seed", 0, "noise seed (default: the run's seed, which reproduces its sample grids)")
	interp := fs.Bool("interp", false, "write a latent interpolation strip (spherical, between two random points) instead of a grid")
	ema := fs.Bool("ema", true, "use the averaged weights when the run keeps them")
	nearest := fs.Bool("nearest", false, fmt.Sprintf("draw each sample in a row beside its -k nearest training images, to see whether G copies its data (-n defaults to %d)", nearestN))
	k := fs.Int("k", nearestK, fmt.Sprintf("with -nearest: training images beside each sample (1..%d)", eval.MaxNearestK))
	inception := fs.String("inception", "", "with -nearest: measure distance between FID Inception features, from this weights file (default $"+quality.InceptionEnv+"; pixels when neither is set)")
	class := fs.String("class", "", "a conditional run: draw this class, or all: one row per class, -n samples each, the same noise in every row")
	out := fs.String("out", "", "output PNG file (required)")
	device := fs.String("device", "", "Vulkan device index or name substring")
	return func() error {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if *runDir == "" || *out == "" {
			return errors.New("sample: -run DIR and -out FILE.png are required")
		}
		if *nearest && !set["n"] {
			*n = nearestN
		}
		var errs []error
		if *n < 2 || *n > 1024 {
			errs = append(errs, fmt.Errorf("sample: -n %d must be in 2..1024 (batch norm needs at least 2 samples)", *n))
		}
		if *nearest && *interp {
			errs = append(errs, errors.New("sample: -nearest and -interp draw different pictures; give one"))
		}
		if *nearest && (*k < 1 || *k > eval.MaxNearestK) {
			errs = append(errs, fmt.Errorf("sample: -k %d must be in 1..%d", *k, eval.MaxNearestK))
		}
		for _, f := range []string{"k", "inception"} {
			if set[f] && !*nearest {
				errs = append(errs, fmt.Errorf("sample: -%s is for -nearest; add -nearest or drop -%s", f, f))
			}
		}
		errs = append(errs, checkOutFile("sample", "out", *out))
		if err := errors.Join(errs...); err != nil {
			return err
		}
		warn := func(msg string) { fmt.Fprintf(stderr, "sample: warning: %s\n", msg) }
		cfg, err := rundir.ReadRunConfig(*runDir, warn)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sample: -run %q holds no %s; give the directory of a vkgan train run", *runDir, rundir.ConfigFile)
		}
		if err != nil {
			return fmt.Errorf("sample: %w", err)
		}
		if !set["seed"] {
			*seed = cfg.Seed
		}
		classes, cols, err := sampleClasses(cfg, *class, n, *nearest || *interp)
		if err != nil {
			return err
		}
		// The data and weights before the device and G: a set too small
		// for -k or a missing file is found without waiting for them.
		var ds *data.Dataset
		weights := quality.InceptionPath(*inception)
		if *nearest {
			if weights != "" {
				if _, err := os.Stat(weights); err != nil {
					return fmt.Errorf("sample: Inception weights (-inception or $%s): %w", quality.InceptionEnv, err)
				}
			}
			if ds, err = train.LoadData(cfg, "", stderr); err != nil {
				return fmt.Errorf("sample: the run's data: %w", err)
			}
			if ds.N < *k {
				return fmt.Errorf("sample: -k %d but the run's data %q holds only %d images; lower -k", *k, cfg.Data, ds.N)
			}
		}
		dev, err := engine.Open(vk.Options{Device: *device})
		if err != nil {
			return err
		}
		defer dev.Close()
		gan, err := dev.NewGAN(cfg.GANConfig(), nil)
		if err != nil {
			return err
		}
		defer gan.Release()
		info, err := rundir.LoadGenerator(*runDir, gan, *ema, warn)
		if err != nil {
			return fmt.Errorf("sample: %w", err)
		}
		s, err := gan.NewSampler(*n, false, true)
		if err != nil {
			return err
		}
		defer s.Release()
		var z []float32
		switch {
		case *interp:
			z = slerpStrip(*seed, *n, cfg.NZ)
		case *class == "all":
			row := rundir.FixedNoise(*seed, cols, cfg.NZ)
			for range len(cfg.Classes) {
				z = append(z, row...)
			}
		default:
			z = rundir.FixedNoise(*seed, *n, cfg.NZ)
		}
		if classes != nil {
			if err := s.SetClasses(classes); err != nil {
				return err
			}
		}
		img, err := s.Sample(z)
		if err != nil {
			return err
		}
		switch {
		case *nearest:
			samples := eval.Images{Pix: img, N: *n, C: cfg.Channels, Size: cfg.Size}
			return writeNearest(dev, samples, ds, *k, weights, *out, info.Step)
		case *interp:
			err = grid.WriteStrip(*out, img, *n, cfg.Channels, cfg.Size)
		default:
			if cols == 0 {
				cols = gridCols(*n)
			}
			err = grid.Write(*out, img, *n, cfg.Channels, cfg.Size, cols)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %q: %d samples of step %d\n", *out, *n, info.Step)
		return nil
	}
}

// writeNearest writes the rows of -nearest: each sample, then its k
// nearest images of ds, by L2 between Inception features when weights is
// not "", else between pixels. It reports the space and the distances.
func writeNearest(dev *engine.Device, samples eval.Images, ds *data.Dataset, k int, weights, out string, step int) error {
	if weights == "" {
		fmt.Fprintf(stderr, "sample: nearest by pixels; for Inception features give -inception FILE (or set %s): %s\n", quality.InceptionEnv, quality.InceptionURL)
	}
	set := eval.FromDataset(ds, samples.C)
	opt := eval.NearestOptions{K: k, Inception: weights, Log: stderr}
	if cache, err := os.UserCacheDir(); err == nil {
		opt.CacheDir = filepath.Join(cache, "vkgan", "features") // vkgan eval's
	}
	res, err := eval.FindNearest(dev, samples, set, opt)
	if err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	rows, err := eval.NearestRows(samples, set, res.Index)
	if err != nil {
		return fmt.Errorf("sample: %w", err)
	}
	if err := grid.Write(out, rows.Pix, rows.N, rows.C, rows.Size, 1+k); err != nil {
		return err
	}
	space := fmt.Sprintf("pixel space (%dx%dx%d, in [-1, 1])", samples.C, samples.Size, samples.Size)
	if res.Space == eval.InceptionSpace {
		space = fmt.Sprintf("Inception feature space (%d pool features)", engine.InceptionFeatures)
	}
	fmt.Fprintf(stdout, "wrote %q: %d samples of step %d, each beside its %d nearest of %d training images by L2 distance in %s\n",
		out, samples.N, step, k, ds.N, space)
	for i, row := range res.Index {
		cells := make([]string, len(row))
		for r, j := range row {
			name := fmt.Sprintf("#%d", j) // a set without file names
			if len(ds.Files) == ds.N {
				name = fmt.Sprintf("%q", ds.Files[j])
			}
			cells[r] = fmt.Sprintf("%.4g %s", res.Dist[i][r], name)
		}
		fmt.Fprintf(stdout, "  row %d: %s\n", i+1, strings.Join(cells, ", "))
	}
	return nil
}

// gridCols is the column count of a near-square grid.
func gridCols(n int) int {
	c := int(math.Ceil(math.Sqrt(float64(n))))
	return max(c, 1)
}

// slerpStrip interpolates n latent vectors along the great circle between
// two random points, which keeps them at the norm a Gaussian sample has.
func slerpStrip(seed uint64, n, nz int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0xbb67ae8584caa73b))
	a, b := make([]float64, nz), make([]float64, nz)
	var dot, na, nb float64
	for i := range a {
		a[i], b[i] = rng.NormFloat64(), rng.NormFloat64()
		dot, na, nb = dot+a[i]*b[i], na+a[i]*a[i], nb+b[i]*b[i]
	}
	omega := math.Acos(math.Max(-1, math.Min(1, dot/math.Sqrt(na*nb))))
	z := make([]float32, n*nz)
	for k := 0; k < n; k++ {
		t := float64(k) / float64(max(n-1, 1))
		wa, wb := 1-t, t
		if s := math.Sin(omega); s > 1e-6 {
			wa, wb = math.Sin((1-t)*omega)/s, math.Sin(t*omega)/s
		}
		for i := 0; i < nz; i++ {
			z[k*nz+i] = float32(wa*a[i] + wb*b[i])
		}
	}
	return z
}

// sampleClasses resolves -class for a run: the class of each sample
// (nil: the sampler's default, every class in turn) and, for "all", the
// grid's columns, with *n raised from per class to the total.
func sampleClasses(cfg rundir.Config, class string, n *int, otherPicture bool) (classes []int, cols int, err error) {
	if class == "" {
		return nil, 0, nil
	}
	if !cfg.Cond {
		return nil, 0, fmt.Errorf("sample: -class %q: the run is not conditional (train with -cond)", class)
	}
	if class == "all" {
		if otherPicture {
			return nil, 0, errors.New("sample: -class all draws a grid of rows; not with -nearest or -interp")
		}
		k := len(cfg.Classes)
		if *n*k > 1024 {
			return nil, 0, fmt.Errorf("sample: -class all draws %d classes of -n %d: at most 1024 samples; lower -n", k, *n)
		}
		cols = *n
		for c := range k {
			for range cols {
				classes = append(classes, c)
			}
		}
		*n = cols * k
		return classes, cols, nil
	}
	c := slices.Index(cfg.Classes, class)
	if c < 0 {
		return nil, 0, fmt.Errorf("sample: -class %q is not one of the run's classes: all, %s", class, strings.Join(cfg.Classes, ", "))
	}
	classes = make([]int, *n)
	for i := range classes {
		classes[i] = c
	}
	return classes, 0, nil
}
