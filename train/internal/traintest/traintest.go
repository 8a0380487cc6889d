// Package traintest holds what the tests of train and train/rundir share:
// a check for a Vulkan device, a folder of small images, the
// configuration of a tiny run, runs trained and resumed with their log
// kept out of the test output, and checks on a run's state and metrics.
package traintest

import (
	"bytes"
	"context"
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
	"vkgan/train"
	"vkgan/train/rundir"
	"vkgan/vk"
)

// RequireDevice skips without a Vulkan device unless VKGAN_REQUIRE_DEVICE=1.
func RequireDevice(t *testing.T) {
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

// ImageFolder writes n small random PNGs.
func ImageFolder(t *testing.T, n int) string {
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

// TinyConfig is a run of a 32x32 DCGAN of width 4 on data, six steps,
// logging every step and checkpointing every third.
func TinyConfig(data string) rundir.Config {
	c := rundir.DefaultConfig()
	c.Data, c.Size, c.NGF, c.NDF, c.NZ, c.Batch = data, 32, 4, 4, 8, 4
	c.Steps, c.LogEvery, c.SampleEvery, c.CheckpointEvery, c.Seed = 6, 1, 3, 3, 9
	c.EMA = 0.9
	return c
}

// Quiet is RunOptions that keep the log out of the test output and fail
// the test on any validation message.
func Quiet(t *testing.T) train.RunOptions {
	return train.RunOptions{Log: &bytes.Buffer{}, OnValidation: func(m string) { t.Errorf("validation: %s", m) }}
}

// TrainTo runs a new tiny run to steps in a fresh directory.
func TrainTo(t *testing.T, cfg rundir.Config, steps int) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	cfg.Steps = steps
	opt := Quiet(t)
	opt.Out = out
	require.NoError(t, train.Run(context.Background(), cfg, opt))
	return out
}

// Resume continues the run in out to steps total, with the flags named in
// flags taken from given; it returns the log.
func Resume(t *testing.T, out string, steps int, given rundir.Config, flags ...string) (string, error) {
	t.Helper()
	var log bytes.Buffer
	opt := train.RunOptions{Out: out, Resume: true, Steps: steps, Log: &log, Flags: map[string]bool{},
		OnValidation: func(m string) { t.Errorf("validation: %s", m) }}
	for _, f := range flags {
		opt.Flags[f] = true
	}
	err := train.Run(context.Background(), given, opt)
	return log.String(), err
}

// tensorsOf reads a safetensors file's tensors (not its metadata, which
// records the configuration and so a resume's history).
func tensorsOf(t *testing.T, path string) []safetensors.Tensor {
	t.Helper()
	ts, _, err := safetensors.ReadFile(path)
	require.NoError(t, err)
	return ts
}

// RequireSameState checks that two checkpoints hold the same state, bit
// for bit.
func RequireSameState(t *testing.T, a, b string) {
	t.Helper()
	for _, f := range []string{rundir.GFile, rundir.DFile, rundir.GEMAFile, rundir.OptimFile} {
		ta, tb := tensorsOf(t, filepath.Join(a, f)), tensorsOf(t, filepath.Join(b, f))
		require.Equal(t, len(ta), len(tb), f)
		for i := range ta {
			require.Equal(t, ta[i].Name, tb[i].Name)
			require.Equal(t, ta[i].Shape, tb[i].Shape)
			require.Equal(t, ta[i].I64, tb[i].I64, "%s %s", f, ta[i].Name)
			require.Equal(t, len(ta[i].F32), len(tb[i].F32))
			for j := range ta[i].F32 {
				if math.Float32bits(ta[i].F32[j]) != math.Float32bits(tb[i].F32[j]) {
					t.Fatalf("%s %s[%d]: %g in %s, %g in %s", f, ta[i].Name, j, ta[i].F32[j], a, tb[i].F32[j], b)
				}
			}
		}
	}
}

// RequireMetricSteps checks that metrics.jsonl parses and logs each of
// steps 1..n exactly once, in order.
func RequireMetricSteps(t *testing.T, out string, n int) {
	t.Helper()
	ms, err := rundir.ReadMetrics(filepath.Join(out, rundir.MetricsFile))
	require.NoError(t, err)
	var want []int
	for s := 1; s <= n; s++ {
		want = append(want, s)
	}
	require.Equal(t, want, Steps(ms))
}

// Steps lists the steps of logged metrics, in order.
func Steps(ms []rundir.Metric) []int {
	var s []int
	for _, m := range ms {
		s = append(s, m.Step)
	}
	return s
}
