package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/engine"
	"vkgan/internal/safetensors"
	"vkgan/internal/testimg"
	"vkgan/vk"
)

// requireDevice skips without a Vulkan device unless VKGAN_REQUIRE_DEVICE=1.
func requireDevice(t *testing.T) {
	t.Helper()
	d, err := engine.Open(vk.Options{OnMessage: func(m string) { t.Errorf("validation: %s", m) }})
	if err != nil {
		if os.Getenv("VKGAN_REQUIRE_DEVICE") == "1" {
			t.Fatalf("no Vulkan device and VKGAN_REQUIRE_DEVICE=1: %v", err)
		}
		t.Skipf("no Vulkan device: %v", err)
	}
	require.NoError(t, d.Close())
}

// imageFolder writes n small random PNGs.
func imageFolder(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	require.NoError(t, testimg.WritePNGs(dir, n, 40, 36, func(i int, img *image.RGBA) {
		c := color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
		for y := 0; y < 36; y++ {
			for x := 0; x < 40; x++ {
				if (x-20)*(x-20)+(y-18)*(y-18) < 100+i*10 {
					img.Set(x, y, c)
				} else {
					img.Set(x, y, color.White)
				}
			}
		}
	}))
	return dir
}

func tinyConfig(data string) Config {
	c := DefaultConfig()
	c.Data, c.Size, c.NGF, c.NDF, c.NZ, c.Batch = data, 32, 4, 4, 8, 4
	c.Steps, c.LogEvery, c.SampleEvery, c.CheckpointEvery, c.Seed = 6, 1, 3, 3, 9
	c.EMA = 0.9
	return c
}

// quiet is RunOptions that keep the log out of the test output and fail
// the test on any validation message.
func quiet(t *testing.T) RunOptions {
	return RunOptions{Log: &bytes.Buffer{}, OnValidation: func(m string) { t.Errorf("validation: %s", m) }}
}

func TestResumeMatchesUninterrupted(t *testing.T) {
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := tinyConfig(imageFolder(t, 10))
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")

	optA := quiet(t)
	optA.Out = a
	require.NoError(t, Run(context.Background(), cfg, optA))

	half := cfg
	half.Steps = 3
	optB := quiet(t)
	optB.Out = b
	require.NoError(t, Run(context.Background(), half, optB))
	info, err := ReadCheckpointInfo(b)
	require.NoError(t, err)
	require.Equal(t, 3, info.Step)
	optB.Resume, optB.Steps = true, 6
	require.NoError(t, Run(context.Background(), Config{}, optB))

	// Every tensor, bit for bit (the files' metadata differ: the resumed
	// run's configuration records the resume).
	requireSameState(t, filepath.Join(a, CheckpointsDir, "step_0000006"), filepath.Join(b, CheckpointsDir, "step_0000006"))
	ma, err := ReadMetrics(filepath.Join(a, MetricsFile))
	require.NoError(t, err)
	mb, err := ReadMetrics(filepath.Join(b, MetricsFile))
	require.NoError(t, err)
	require.Len(t, mb, len(ma))
	for i := range ma {
		require.Equal(t, ma[i].Step, mb[i].Step)
		require.Equal(t, ma[i].LossD, mb[i].LossD, "step %d", ma[i].Step)
		require.Equal(t, ma[i].LossG, mb[i].LossG, "step %d", ma[i].Step)
	}
	// A second run into the same directory must not clobber it.
	err = Run(context.Background(), cfg, optA)
	require.ErrorContains(t, err, "-resume")
}

func TestCheckpointRoundTripExact(t *testing.T) {
	requireDevice(t)
	dev, err := engine.Open(vk.Options{OnMessage: func(m string) { t.Errorf("validation: %s", m) }})
	require.NoError(t, err)
	defer dev.Close()
	cfg := tinyConfig("unused")
	pix := make([]byte, 8*3*32*32)
	for i := range pix {
		pix[i] = byte(i * 7)
	}
	data, err := dev.UploadData(pix, 8, 3, 32)
	require.NoError(t, err)
	defer data.Release()
	g1, err := dev.NewGAN(cfg.GANConfig(), data)
	require.NoError(t, err)
	defer g1.Release()
	require.NoError(t, g1.Init(3))
	for i := 0; i < 2; i++ {
		require.NoError(t, g1.Step())
	}
	dir := t.TempDir()
	require.NoError(t, SaveCheckpoint(dir, g1, cfg, 2, 1.5))
	g2, err := dev.NewGAN(cfg.GANConfig(), data)
	require.NoError(t, err)
	defer g2.Release()
	info, err := LoadCheckpoint(dir, g2, cfg)
	require.NoError(t, err)
	require.Equal(t, 2, info.Step)
	require.Equal(t, 1.5, info.Elapsed)
	for _, p := range [][2]*engine.ParamSet{{g1.G.Params, g2.G.Params}, {g1.G.Stats, g2.G.Stats}, {g1.D.Params, g2.D.Params}, {g1.D.Stats, g2.D.Stats},
		{g1.G.M, g2.G.M}, {g1.G.V, g2.G.V}, {g1.D.M, g2.D.M}, {g1.D.V, g2.D.V}, {g1.G.EMA, g2.G.EMA}} {
		a, err := p[0].Flat.Bytes()
		require.NoError(t, err)
		b, err := p[1].Flat.Bytes()
		require.NoError(t, err)
		require.True(t, bytes.Equal(a, b), "state differs after a round trip")
	}
	for _, c := range [][2]*engine.Tensor{{g1.G.Counter, g2.G.Counter}, {g1.D.Counter, g2.D.Counter}} {
		a, _ := c[0].CounterValue()
		b, _ := c[1].CounterValue()
		require.Equal(t, a, b)
	}
	// The user-facing files carry PyTorch's state_dict names and dtypes.
	ts, _, err := safetensors.ReadFile(filepath.Join(dir, GFile))
	require.NoError(t, err)
	names := map[string]safetensors.DType{}
	for _, t := range ts {
		names[t.Name] = t.DType
	}
	require.Equal(t, safetensors.F32, names["main.0.weight"])
	require.Equal(t, safetensors.F32, names["main.1.running_var"])
	require.Equal(t, safetensors.I64, names["main.1.num_batches_tracked"])

	// Damaged checkpoints are refused with the file named.
	gpath := filepath.Join(dir, CheckpointsDir, "step_0000002", GFile)
	raw, err := os.ReadFile(gpath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(gpath, raw[:len(raw)-5], 0o644))
	_, err = LoadCheckpoint(dir, g2, cfg)
	var fe *safetensors.FormatError
	require.True(t, errors.As(err, &fe), "got %v", err)
	require.ErrorContains(t, err, gpath)
}

func TestInterruptWritesCheckpoint(t *testing.T) {
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := tinyConfig(imageFolder(t, 6))
	cfg.Steps, cfg.CheckpointEvery = 100, 50
	ctx, cancel := context.WithCancel(context.Background())
	opt := quiet(t)
	opt.Out = t.TempDir()
	opt.OnStep = func(_ *engine.GAN, step int) {
		if step == 2 {
			cancel() // what the first Ctrl-C does
		}
	}
	require.NoError(t, Run(ctx, cfg, opt))
	info, err := ReadCheckpointInfo(opt.Out)
	require.NoError(t, err)
	require.Equal(t, 2, info.Step)
	require.FileExists(t, filepath.Join(opt.Out, GFile))
	require.FileExists(t, filepath.Join(opt.Out, LossPlotFile))
}

func TestNonFiniteKeepsLastGoodCheckpoint(t *testing.T) {
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := tinyConfig(imageFolder(t, 6))
	cfg.Steps, cfg.CheckpointEvery, cfg.LogEvery = 10, 1, 1
	opt := quiet(t)
	opt.Out = t.TempDir()
	opt.OnStep = func(g *engine.GAN, step int) {
		if g != nil && step == 2 { // poison D: the next losses are NaN
			n := g.D.Params.Flat.Len()
			bad := make([]float32, n)
			for i := range bad {
				bad[i] = float32(math.NaN())
			}
			require.NoError(t, g.D.Params.Flat.Upload(bad))
		}
	}
	err := Run(context.Background(), cfg, opt)
	require.ErrorIs(t, err, ErrNonFinite)
	require.ErrorContains(t, err, "step 2")
	info, ierr := ReadCheckpointInfo(opt.Out)
	require.NoError(t, ierr)
	require.Equal(t, 1, info.Step, "the last good checkpoint stays current")
}

func TestRunBadData(t *testing.T) {
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	empty := t.TempDir()
	opt := quiet(t)
	opt.Out = t.TempDir()
	err := Run(context.Background(), tinyConfig(empty), opt)
	require.Error(t, err)
	require.ErrorContains(t, err, "no")
	bad := tinyConfig(empty)
	bad.Size = 48
	require.ErrorContains(t, Run(context.Background(), bad, opt), "-size 48")
}

// TestModelTooLargeSaysWhichFlag: a model whose buffers exceed the device's
// limits fails naming the flags to lower, and leaves no config.json (the
// folder stays free for the next try).
func TestModelTooLargeSaysWhichFlag(t *testing.T) {
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := tinyConfig(imageFolder(t, 4))
	cfg.Size, cfg.NGF = 64, 16384 // G's second convolution alone has 8.6e10 weights
	opt := quiet(t)
	opt.Out = filepath.Join(t.TempDir(), "run")
	err := Run(context.Background(), cfg, opt)
	require.Error(t, err)
	require.ErrorContains(t, err, "lower -ngf/-ndf (now 16384/4)")
	require.NoFileExists(t, filepath.Join(opt.Out, ConfigFile))
	cfg.NGF = 4
	require.NoError(t, Run(context.Background(), cfg, opt), "the folder is free for the next try")
}

// TestAnyImageSize trains, checkpoints, resumes and samples the smallest
// and the largest DCGANs (narrow, so the test stays quick).
func TestAnyImageSize(t *testing.T) {
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := imageFolder(t, 4)
	for _, size := range []int{16, 128, 256} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			cfg := tinyConfig(data)
			cfg.Size, cfg.NGF, cfg.NDF, cfg.NZ, cfg.Batch = size, 2, 2, 4, 2
			cfg.CheckpointEvery, cfg.SampleEvery = 2, 2
			out := trainTo(t, cfg, 2)
			_, err := resume(t, out, 3, Config{})
			require.NoError(t, err)
			requireMetricSteps(t, out, 3)

			dev, err := engine.Open(vk.Options{OnMessage: func(m string) { t.Errorf("validation: %s", m) }})
			require.NoError(t, err)
			defer dev.Close()
			saved, err := ReadRunConfig(out, func(m string) { t.Errorf("warning: %s", m) })
			require.NoError(t, err)
			gan, err := dev.NewGAN(saved.GANConfig(), nil)
			require.NoError(t, err)
			defer gan.Release()
			info, err := LoadGenerator(out, gan, true, func(m string) { t.Errorf("warning: %s", m) })
			require.NoError(t, err)
			require.Equal(t, 3, info.Step)
			s, err := gan.NewSampler(4, false, true)
			require.NoError(t, err)
			defer s.Release()
			img, err := s.Sample(FixedNoise(1, 4, cfg.NZ))
			require.NoError(t, err)
			require.Len(t, img, 4*3*size*size)
			for _, v := range img {
				require.True(t, v >= -1 && v <= 1, "tanh output %g", v)
			}
			require.FileExists(t, SamplePath(out, 2))
		})
	}
}
