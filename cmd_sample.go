package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"

	"vkgan/engine"
	"vkgan/train/grid"
	"vkgan/train/rundir"
	"vkgan/vk"
)

func sampleCmd(fs *flag.FlagSet) func() error {
	runDir := fs.String("run", "", "run directory (required)")
	n := fs.Int("n", rundir.SampleCount, "number of samples")
	seed := fs.Uint64("seed", 0, "noise seed (default: the run's seed, which reproduces its sample grids)")
	seedSet := false
	interp := fs.Bool("interp", false, "write a latent interpolation strip (spherical, between two random points) instead of a grid")
	ema := fs.Bool("ema", true, "use the averaged weights when the run keeps them")
	out := fs.String("out", "", "output PNG file (required)")
	device := fs.String("device", "", "Vulkan device index or name substring")
	return func() error {
		fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "seed" })
		if *runDir == "" || *out == "" {
			return errors.New("sample: -run DIR and -out FILE.png are required")
		}
		var errs []error
		if *n < 2 || *n > 1024 {
			errs = append(errs, fmt.Errorf("sample: -n %d must be in 2..1024 (batch norm needs at least 2 samples)", *n))
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
		if !seedSet {
			*seed = cfg.Seed
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
		if *interp {
			z = slerpStrip(*seed, *n, cfg.NZ)
		} else {
			z = rundir.FixedNoise(*seed, *n, cfg.NZ)
		}
		img, err := s.Sample(z)
		if err != nil {
			return err
		}
		if *interp {
			err = grid.WriteStrip(*out, img, *n, cfg.Channels, cfg.Size)
		} else {
			err = grid.Write(*out, img, *n, cfg.Channels, cfg.Size, gridCols(*n))
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %q: %d samples of step %d\n", *out, *n, info.Step)
		return nil
	}
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
