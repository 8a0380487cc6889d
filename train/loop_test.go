package train_test

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/engine"
	"vkgan/engine/quality"
	"vkgan/internal/safetensors"
	"vkgan/train"
	"vkgan/train/internal/traintest"
	"vkgan/train/rundir"
	"vkgan/vk"
)

func TestResumeMatchesUninterrupted(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	requireResumeMatches(t, traintest.TinyConfig(traintest.ImageFolder(t, 10)))
}

// Every recipe on at once, and a conditional model: resume stays bit-exact
// (lazy R1 picks its steps from the checkpoint's counter; DiffAugment and
// the fake labels draw from the step counter).
func TestRecipesResumeMatchesUninterrupted(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 10))
	cfg.Loss, cfg.DNorm, cfg.SN, cfg.SNG, cfg.R1, cfg.R1Every = "hinge", "none", true, true, 0.5, 2
	cfg.Augment, cfg.Flip = "color,translation,cutout", true
	t.Run("hinge sn r1 diffaugment", func(t *testing.T) { requireResumeMatches(t, cfg) })

	cond := traintest.TinyConfig(classFolder(t, "cats", "dogs", "owls"))
	cond.Loss, cond.Cond, cond.ClassDim = "ls", true, 3
	t.Run("conditional", func(t *testing.T) { requireResumeMatches(t, cond) })
}

// classFolder writes a folder with one subfolder of 4 images per class.
func classFolder(t *testing.T, classes ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, c := range classes {
		require.NoError(t, os.Rename(traintest.ImageFolder(t, 4), filepath.Join(dir, c)))
	}
	return dir
}

// requireResumeMatches trains cfg for 6 steps in one go and in two runs
// of 3 with a resume between, and requires the same state bit for bit.
func requireResumeMatches(t *testing.T, cfg rundir.Config) {
	t.Helper()
	cfg.Steps = 6
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")

	optA := traintest.Quiet(t)
	optA.Out = a
	require.NoError(t, train.Run(context.Background(), cfg, optA))

	half := cfg
	half.Steps = 3
	optB := traintest.Quiet(t)
	optB.Out = b
	require.NoError(t, train.Run(context.Background(), half, optB))
	info, err := rundir.ReadCheckpointInfo(b)
	require.NoError(t, err)
	require.Equal(t, 3, info.Step)
	optB.Resume, optB.Steps = true, 6
	require.NoError(t, train.Run(context.Background(), rundir.Config{}, optB))

	// Every tensor, bit for bit (the files' metadata differ: the resumed
	// run's configuration records the resume).
	traintest.RequireSameState(t, filepath.Join(a, rundir.CheckpointsDir, "step_0000006"), filepath.Join(b, rundir.CheckpointsDir, "step_0000006"))
	ma, err := rundir.ReadMetrics(filepath.Join(a, rundir.MetricsFile))
	require.NoError(t, err)
	mb, err := rundir.ReadMetrics(filepath.Join(b, rundir.MetricsFile))
	require.NoError(t, err)
	require.Len(t, mb, len(ma))
	for i := range ma {
		require.Equal(t, ma[i].Step, mb[i].Step)
		require.Equal(t, ma[i].LossD, mb[i].LossD, "step %d", ma[i].Step)
		require.Equal(t, ma[i].LossG, mb[i].LossG, "step %d", ma[i].Step)
	}
	// A second run into the same directory must not clobber it.
	err = train.Run(context.Background(), cfg, optA)
	require.ErrorContains(t, err, "-resume")
}

func TestInterruptWritesCheckpoint(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 6))
	cfg.Steps, cfg.CheckpointEvery = 100, 50
	ctx, cancel := context.WithCancel(context.Background())
	opt := traintest.Quiet(t)
	opt.Out = t.TempDir()
	opt.OnStep = func(_ *engine.GAN, step int) {
		if step == 2 {
			cancel() // what the first Ctrl-C does
		}
	}
	require.NoError(t, train.Run(ctx, cfg, opt))
	info, err := rundir.ReadCheckpointInfo(opt.Out)
	require.NoError(t, err)
	require.Equal(t, 2, info.Step)
	require.FileExists(t, filepath.Join(opt.Out, rundir.GFile))
	require.FileExists(t, filepath.Join(opt.Out, rundir.LossPlotFile))
}

func TestNonFiniteKeepsLastGoodCheckpoint(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 6))
	cfg.Steps, cfg.CheckpointEvery, cfg.LogEvery = 10, 1, 1
	opt := traintest.Quiet(t)
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
	err := train.Run(context.Background(), cfg, opt)
	require.ErrorIs(t, err, rundir.ErrNonFinite)
	require.ErrorContains(t, err, "step 2")
	info, ierr := rundir.ReadCheckpointInfo(opt.Out)
	require.NoError(t, ierr)
	require.Equal(t, 1, info.Step, "the last good checkpoint stays current")
}

func TestRunBadData(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	empty := t.TempDir()
	opt := traintest.Quiet(t)
	opt.Out = t.TempDir()
	err := train.Run(context.Background(), traintest.TinyConfig(empty), opt)
	require.Error(t, err)
	require.ErrorContains(t, err, "no")
	bad := traintest.TinyConfig(empty)
	bad.Size = 48
	require.ErrorContains(t, train.Run(context.Background(), bad, opt), "-size 48")
}

// TestModelTooLargeSaysWhichFlag: a model whose buffers exceed the device's
// limits fails naming the flags to lower, and leaves no config.json (the
// folder stays free for the next try).
func TestModelTooLargeSaysWhichFlag(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 4))
	cfg.Size, cfg.NGF = 64, 16384 // G's second convolution alone has 8.6e10 weights
	opt := traintest.Quiet(t)
	opt.Out = filepath.Join(t.TempDir(), "run")
	err := train.Run(context.Background(), cfg, opt)
	require.Error(t, err)
	require.ErrorContains(t, err, "-ngf/-ndf (now 16384/4)")
	require.NoFileExists(t, filepath.Join(opt.Out, rundir.ConfigFile))
	cfg.NGF = 4
	require.NoError(t, train.Run(context.Background(), cfg, opt), "the folder is free for the next try")
}

// TestAnyImageSize trains, checkpoints, resumes and samples the smallest
// and the largest DCGANs (narrow, so the test stays quick).
func TestAnyImageSize(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := traintest.ImageFolder(t, 4)
	for _, size := range []int{16, 128, 256} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			cfg := traintest.TinyConfig(data)
			cfg.Size, cfg.NGF, cfg.NDF, cfg.NZ, cfg.Batch = size, 2, 2, 4, 2
			cfg.CheckpointEvery, cfg.SampleEvery = 2, 2
			out := traintest.TrainTo(t, cfg, 2)
			_, err := traintest.Resume(t, out, 3, rundir.Config{})
			require.NoError(t, err)
			traintest.RequireMetricSteps(t, out, 3)

			dev, err := engine.Open(vk.Options{OnMessage: func(m string) { t.Errorf("validation: %s", m) }})
			require.NoError(t, err)
			defer dev.Close()
			saved, err := rundir.ReadRunConfig(out, func(m string) { t.Errorf("warning: %s", m) })
			require.NoError(t, err)
			gan, err := dev.NewGAN(saved.GANConfig(), nil)
			require.NoError(t, err)
			defer gan.Release()
			info, err := rundir.LoadGenerator(out, gan, true, func(m string) { t.Errorf("warning: %s", m) })
			require.NoError(t, err)
			require.Equal(t, 3, info.Step)
			s, err := gan.NewSampler(4, false, true)
			require.NoError(t, err)
			defer s.Release()
			img, err := s.Sample(rundir.FixedNoise(1, 4, cfg.NZ))
			require.NoError(t, err)
			require.Len(t, img, 4*3*size*size)
			for _, v := range img {
				require.True(t, v >= -1 && v <= 1, "tanh output %g", v)
			}
			require.FileExists(t, rundir.SamplePath(out, 2))
		})
	}
}

// TestModelTooLargeForMemory: a model whose activations cannot fit in the
// device's memory is refused before anything is allocated, naming the
// flags to lower.
func TestModelTooLargeForMemory(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 4))
	// 256x256 with G's last layers 64 and 128 channels wide: tens of MiB
	// of activations per image, terabytes at this batch.
	cfg.Size, cfg.NGF, cfg.NDF, cfg.Batch = 256, 64, 64, 1<<20
	opt := traintest.Quiet(t)
	opt.Out = filepath.Join(t.TempDir(), "run")
	err := train.Run(context.Background(), cfg, opt)
	require.ErrorIs(t, err, vk.ErrOutOfDeviceMemory)
	require.ErrorContains(t, err, "GiB, the device has")
	require.ErrorContains(t, err, "lower -batch (now 1048576)")
	require.NoFileExists(t, filepath.Join(opt.Out, rundir.ConfigFile))
}

// TestGrayscaleRun trains on a folder of grayscale images with -channels 1:
// the model is one channel deep and the sample grids are grayscale PNGs.
func TestGrayscaleRun(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := pngFolder(t, func(i int) image.Image {
		img := image.NewGray(image.Rect(0, 0, 24, 24))
		for p := range img.Pix {
			img.Pix[p] = uint8(11*i + 7*p)
		}
		return img
	})
	cfg := traintest.TinyConfig(data)
	cfg.Channels, cfg.SampleEvery = 1, 2
	out := traintest.TrainTo(t, cfg, 2)
	img := readSample(t, out, 2)
	_, gray := img.(*image.Gray)
	require.True(t, gray, "a -channels 1 run's samples are grayscale, got %T", img)
	ts, _, err := safetensors.ReadFile(filepath.Join(out, rundir.GFile))
	require.NoError(t, err)
	require.Equal(t, []int{4, 1, 4, 4}, ts[len(ts)-1].Shape, "G's last layer makes one channel")
}

// TestRGBARun trains on transparent images with -channels 4: the data keep
// their alpha, the model is four channels deep and the sample grids are
// PNGs with an alpha channel; a resume keeps the channel count.
func TestRGBARun(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := pngFolder(t, func(i int) image.Image {
		img := image.NewNRGBA(image.Rect(0, 0, 24, 24))
		for p := 0; p < len(img.Pix); p += 4 {
			img.Pix[p], img.Pix[p+1], img.Pix[p+2] = uint8(40*i), uint8(p), 200
			img.Pix[p+3] = uint8(p * 3) // a ramp of transparency
		}
		return img
	})
	cfg := traintest.TinyConfig(data)
	cfg.Channels, cfg.SampleEvery = 4, 2
	out := traintest.TrainTo(t, cfg, 2)
	img := readSample(t, out, 2)
	_, nrgba := img.(*image.NRGBA)
	require.True(t, nrgba, "a -channels 4 run's samples keep alpha, got %T", img)
	ts, _, err := safetensors.ReadFile(filepath.Join(out, rundir.GFile))
	require.NoError(t, err)
	require.Equal(t, []int{4, 4, 4, 4}, ts[len(ts)-1].Shape, "G's last layer makes four channels")
	log, err := traintest.Resume(t, out, 3, cfg)
	require.NoError(t, err, log)
	traintest.RequireMetricSteps(t, out, 3)
}

// TestEvalKeepsTrajectory trains with -eval-every and without: the
// evaluation lines land in metrics.jsonl at their steps and the weights,
// statistics and optimiser state are bit-identical, through a resume too.
func TestEvalKeepsTrajectory(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(quality.InceptionEnv, "")
	data := traintest.ImageFolder(t, 8)
	plain := traintest.TrainTo(t, traintest.TinyConfig(data), 6)

	cfg := traintest.TinyConfig(data)
	cfg.EvalEvery, cfg.EvalN = 2, 8
	evaluated := traintest.TrainTo(t, cfg, 4)
	log, err := traintest.Resume(t, evaluated, 6, cfg)
	require.NoError(t, err, log)
	traintest.RequireSameState(t, filepath.Join(plain, rundir.CheckpointsDir, "step_0000006"), filepath.Join(evaluated, rundir.CheckpointsDir, "step_0000006"))

	ms, err := rundir.ReadMetrics(filepath.Join(evaluated, rundir.MetricsFile))
	require.NoError(t, err)
	var at []int
	for _, m := range ms {
		if m.Evaluated() {
			at = append(at, m.Step)
			require.NotNil(t, m.SWD)
			require.Greater(t, *m.SWD, 0.0)
			require.Nil(t, m.FID, "no Inception weights: SWD only")
		}
	}
	require.Equal(t, []int{2, 4, 6}, at)
}

// pngFolder writes four images made by img as PNGs into a new folder.
func pngFolder(t *testing.T, img func(i int) image.Image) string {
	t.Helper()
	dir := t.TempDir()
	for i := range 4 {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.png", i)))
		require.NoError(t, err)
		require.NoError(t, png.Encode(f, img(i)))
		require.NoError(t, f.Close())
	}
	return dir
}

// readSample decodes a run's sample grid of a step.
func readSample(t *testing.T, out string, step int) image.Image {
	t.Helper()
	f, err := os.Open(rundir.SamplePath(out, step))
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	return img
}

// -init-g and -init-d start a new run from another run's weights; a file
// of another model is refused with each mismatch named.
func TestInitFromWeights(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 10))
	a := traintest.TrainTo(t, cfg, 3)

	b := filepath.Join(t.TempDir(), "b")
	init := cfg
	init.Steps, init.InitG, init.InitD = 1, filepath.Join(a, "G.safetensors"), filepath.Join(a, "D.safetensors")
	opt := traintest.Quiet(t)
	opt.Out = b
	require.NoError(t, train.Run(context.Background(), init, opt))
	for _, net := range []string{"G", "D"} {
		want, _, err := safetensors.ReadFile(filepath.Join(a, net+".safetensors"))
		require.NoError(t, err)
		got, _, err := safetensors.ReadFile(filepath.Join(b, rundir.CheckpointsDir, "step_0000000", net+".safetensors"))
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for i := range want {
			require.Equal(t, want[i].Name, got[i].Name)
			if !strings.HasSuffix(want[i].Name, ".num_batches_tracked") { // a new run counts from 0
				require.True(t, slices.Equal(want[i].F32, got[i].F32), "%s %s at step 0 of the new run", net, want[i].Name)
			}
		}
	}

	wider := init
	wider.NGF, wider.NDF = 8, 8
	opt.Out = filepath.Join(t.TempDir(), "c")
	err := train.Run(context.Background(), wider, opt)
	require.ErrorContains(t, err, `tensor main.0.weight is [8 16 4 4], the model's is [8 32 4 4]`)
	require.ErrorContains(t, err, "-init-d")
}
