package rundir_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/engine"
	"vkgan/internal/atomicfile"
	"vkgan/internal/dirlock"
	"vkgan/internal/safetensors"
	"vkgan/train"
	"vkgan/train/internal/traintest"
	"vkgan/train/rundir"
)

// snapshot lists every file under dir with its size and modification
// time, but the lock file, which each writer stamps with its pid.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Name() == dirlock.FileName {
			return nil
		}
		m[p] = fmt.Sprintf("%d %v %d", fi.Size(), fi.Mode(), fi.ModTime().UnixNano())
		return nil
	}))
	return m
}

func TestTwoTrainersOneDir(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 6))
	cfg.Steps = 4
	out := filepath.Join(t.TempDir(), "run")

	second := make(chan error, 1)
	optA := traintest.Quiet(t)
	optA.Out = out
	optA.OnStep = func(_ *engine.GAN, step int) {
		if step != 2 {
			return
		}
		// A holds the lock mid-run: a second new run and a resume fail at once.
		optB := traintest.Quiet(t)
		optB.Out = out
		errNew := train.Run(context.Background(), cfg, optB)
		optB.Resume, optB.Steps = true, 8
		errResume := train.Run(context.Background(), rundir.Config{}, optB)
		second <- errors.Join(errNew, errResume)
	}
	require.NoError(t, train.Run(context.Background(), cfg, optA))
	err := <-second
	require.ErrorIs(t, err, dirlock.ErrLocked)
	require.ErrorContains(t, err, fmt.Sprintf("in use by pid %d", os.Getpid()))
	require.Equal(t, 2, strings.Count(err.Error(), "in use by"), "both were refused: %v", err)
	traintest.RequireMetricSteps(t, out, 4)
	info, err := rundir.ReadCheckpointInfo(out)
	require.NoError(t, err)
	require.Equal(t, 4, info.Step)
}

func TestNewRunRefusesOccupiedDir(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 6))
	opt := traintest.Quiet(t)

	// Someone else's folder.
	opt.Out = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(opt.Out, "thesis.tex"), []byte("x"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(opt.Out, "bad\nname"), 0o755))
	before := snapshot(t, opt.Out)
	err := train.Run(context.Background(), cfg, opt)
	require.ErrorContains(t, err, `"thesis.tex"`)
	require.ErrorContains(t, err, `"bad\nname"`, "names are quoted")
	require.ErrorContains(t, err, "-resume")
	require.Equal(t, before, snapshot(t, opt.Out), "a refused run writes nothing")

	// An empty folder (with a lock file left by an earlier try) is free.
	opt.Out = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(opt.Out, dirlock.FileName), nil, 0o644))
	cfg.Steps = 2
	require.NoError(t, train.Run(context.Background(), cfg, opt))

	// A run that lost checkpoint.json is a damaged run: a new run is
	// refused, -resume recovers it from its newest checkpoint.
	require.NoError(t, os.Remove(filepath.Join(opt.Out, rundir.CheckpointFile)))
	err = train.Run(context.Background(), cfg, opt)
	require.ErrorContains(t, err, "damaged run")
	ms, err := rundir.ReadMetrics(filepath.Join(opt.Out, rundir.MetricsFile))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, traintest.Steps(ms), "the refused run appended nothing")
	log, err := traintest.Resume(t, opt.Out, 4, rundir.Config{})
	require.NoError(t, err)
	require.Contains(t, log, "no readable checkpoint.json")
	traintest.RequireMetricSteps(t, opt.Out, 4)
}

func TestResumeFallsBackToIntactCheckpoint(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 6))
	cfg.CheckpointEvery = 2
	ref := traintest.TrainTo(t, cfg, 6)

	for _, damage := range []struct {
		name string
		do   func(t *testing.T, ckpt string)
		want string
	}{
		{"truncated G", func(t *testing.T, ckpt string) {
			p := filepath.Join(ckpt, rundir.GFile)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, b[:len(b)/2], 0o644))
		}, rundir.GFile},
		{"NaN in D", func(t *testing.T, ckpt string) {
			p := filepath.Join(ckpt, rundir.DFile)
			ts, meta, err := safetensors.ReadFile(p)
			require.NoError(t, err)
			ts[0].F32[3] = float32(math.NaN())
			require.NoError(t, safetensors.WriteFile(p, ts, meta))
		}, "NaN"},
		{"missing optimizer state", func(t *testing.T, ckpt string) {
			require.NoError(t, os.Remove(filepath.Join(ckpt, rundir.OptimFile)))
		}, rundir.OptimFile},
	} {
		t.Run(damage.name, func(t *testing.T) {
			out := traintest.TrainTo(t, cfg, 4)
			damage.do(t, filepath.Join(out, rundir.CheckpointsDir, "step_0000004"))
			cfgBefore, err := os.ReadFile(filepath.Join(out, rundir.ConfigFile))
			require.NoError(t, err)

			// A resume that cannot start (a fixed flag changed) changes nothing.
			bad := cfg
			bad.NGF = 8
			before := snapshot(t, out)
			_, err = traintest.Resume(t, out, 6, bad, "ngf")
			require.ErrorContains(t, err, "-ngf 8")
			require.Equal(t, before, snapshot(t, out))

			log, err := traintest.Resume(t, out, 6, rundir.Config{})
			require.NoError(t, err)
			require.Contains(t, log, "step_0000004")
			require.Contains(t, log, damage.want)
			require.Contains(t, log, "resuming "+out+" at step 2")
			traintest.RequireSameState(t, filepath.Join(ref, rundir.CheckpointsDir, "step_0000006"), filepath.Join(out, rundir.CheckpointsDir, "step_0000006"))
			traintest.RequireMetricSteps(t, out, 6)
			require.DirExists(t, filepath.Join(out, rundir.CheckpointsDir, "step_0000004"+rundir.DamagedSuffix), "the damaged checkpoint is kept aside")
			cfgAfter, err := os.ReadFile(filepath.Join(out, rundir.ConfigFile))
			require.NoError(t, err)
			require.NotEqual(t, cfgBefore, cfgAfter, "config.json records the new step count")
		})
	}

	// Every checkpoint damaged: the resume fails, naming each, and writes nothing.
	out := traintest.TrainTo(t, cfg, 4)
	for _, s := range rundir.CheckpointSteps(out) {
		require.NoError(t, os.Truncate(filepath.Join(out, rundir.CheckpointsDir, rundir.StepDirName(s), rundir.GFile), 10))
	}
	before := snapshot(t, out)
	_, err := traintest.Resume(t, out, 6, rundir.Config{})
	require.ErrorContains(t, err, "no intact checkpoint")
	require.ErrorContains(t, err, "step_0000004")
	require.ErrorContains(t, err, "step_0000002")
	require.Equal(t, before, snapshot(t, out))
}

func TestResumeFlags(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := traintest.ImageFolder(t, 6)
	cfg := traintest.TinyConfig(data)
	out := traintest.TrainTo(t, cfg, 3)

	// Flags that define the model, the loss or the data order are refused,
	// one line each, and nothing is written.
	before := snapshot(t, out)
	bad := cfg
	bad.Size, bad.NZ, bad.NGF, bad.NDF, bad.Channels, bad.Batch, bad.Seed, bad.LabelSmooth, bad.DSteps = 64, 9, 5, 5, 1, 6, 10, 0.1, 2
	_, err := traintest.Resume(t, out, 6, bad, "size", "nz", "ngf", "ndf", "channels", "batch", "seed", "label-smooth", "d-steps")
	require.Error(t, err)
	for _, f := range []string{"-size 64", "-nz 9", "-ngf 5", "-ndf 5", "-channels 1", "-batch 6", "-seed 10", "-label-smooth 0.1", "-d-steps 2"} {
		require.ErrorContains(t, err, f)
	}
	require.Equal(t, 9, strings.Count(err.Error(), "\n")+1, "one line each: %v", err)
	// The same values as the run's are not a change.
	_, err = traintest.Resume(t, out, 0, cfg, "size", "nz", "seed")
	require.NoError(t, err, "the run is at its step count: nothing to do")

	// The step count must grow.
	_, err = traintest.Resume(t, out, 2, rundir.Config{})
	require.ErrorContains(t, err, "-steps 2")
	require.ErrorContains(t, err, "step 3 already")
	require.Equal(t, before, snapshot(t, out))

	// A resume with no new steps writes nothing at all.
	log, err := traintest.Resume(t, out, 0, rundir.Config{})
	require.NoError(t, err)
	require.Contains(t, log, "nothing to do")
	require.Equal(t, before, snapshot(t, out))

	// Settings that may change are applied and recorded.
	next := cfg
	next.LRD, next.LogEvery, next.CheckpointEvery = 1e-3, 2, 5
	_, err = traintest.Resume(t, out, 5, next, "lr-d", "log-every", "checkpoint-every")
	require.NoError(t, err)
	saved, err := rundir.LoadConfig(filepath.Join(out, rundir.ConfigFile))
	require.NoError(t, err)
	require.Equal(t, 1e-3, saved.LRD)
	require.Equal(t, 5, saved.Steps)
	require.Len(t, saved.History, 1)
	h := saved.History[0]
	require.Equal(t, 3, h.Step)
	require.Equal(t, map[string]any{"lr-d": 1e-3, "log-every": float64(2), "checkpoint-every": float64(5), "steps": float64(5)}, h.Set)
	require.Equal(t, map[string]any{"lr-d": 2e-4, "log-every": float64(1), "checkpoint-every": float64(3), "steps": float64(3)}, h.Was)
	ms, err := rundir.ReadMetrics(filepath.Join(out, rundir.MetricsFile))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3, 4, 5}, traintest.Steps(ms), "-log-every 2 logs step 4 and the last step")

	// The data folder moved: the resume says to pass -data, and takes the
	// new place when it holds the same images.
	moved := data + "-moved"
	require.NoError(t, os.Rename(data, moved))
	_, err = traintest.Resume(t, out, 6, rundir.Config{})
	require.ErrorContains(t, err, "-data DIR")
	require.ErrorContains(t, err, fmt.Sprintf("%q", data))
	_, err = traintest.Resume(t, out, 6, rundir.Config{Data: moved}, "data")
	require.NoError(t, err)
	saved, err = rundir.LoadConfig(filepath.Join(out, rundir.ConfigFile))
	require.NoError(t, err)
	require.Equal(t, moved, saved.Data)

	// Other images are refused, whether named by -data or changed in place.
	other := traintest.ImageFolder(t, 7)
	_, err = traintest.Resume(t, out, 7, rundir.Config{Data: other}, "data")
	require.ErrorContains(t, err, "other images")
	require.NoError(t, os.Remove(filepath.Join(moved, firstFile(t, moved))))
	_, err = traintest.Resume(t, out, 7, rundir.Config{})
	require.ErrorContains(t, err, "changed since the run began")
}

func firstFile(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.NotEmpty(t, es)
	return es[0].Name()
}

// failAfter makes writes fail with ENOSPC once n bytes have gone through.
type failAfter struct {
	w io.Writer
	n int
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k, _ := f.w.Write(p[:f.n])
		f.n = 0
		return k, fmt.Errorf("write: %w", errNoSpace)
	}
	f.n -= len(p)
	return f.w.Write(p)
}

var errNoSpace = errors.New("no space left on device")

// TestDiskFullDuringCheckpoint fills the disk while a checkpoint is
// written: the run stops with the error, the previous checkpoint stays
// current and whole, and the run resumes from it to the same state as an
// uninterrupted one.
func TestDiskFullDuringCheckpoint(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 6))
	cfg.CheckpointEvery = 2
	ref := traintest.TrainTo(t, cfg, 6)

	for _, fail := range []int{0, 100, 30 << 10} { // at once, in a header, mid-tensor
		t.Run(fmt.Sprint(fail), func(t *testing.T) {
			out := traintest.TrainTo(t, cfg, 2)
			opt := traintest.Quiet(t)
			opt.Out, opt.Resume, opt.Steps = out, true, 6
			opt.OnStep = func(_ *engine.GAN, step int) {
				if step == 4 {
					atomicfile.TestHooks.Writer = func(w io.Writer) io.Writer { return &failAfter{w: w, n: fail} }
				}
			}
			t.Cleanup(func() { atomicfile.TestHooks = atomicfile.Hooks{} })
			err := train.Run(context.Background(), rundir.Config{}, opt)
			atomicfile.TestHooks = atomicfile.Hooks{}
			require.ErrorIs(t, err, errNoSpace)
			info, err := rundir.ReadCheckpointInfo(out)
			require.NoError(t, err)
			require.Equal(t, 2, info.Step)
			requireNoLeftovers(t, out)
			_, err = traintest.Resume(t, out, 6, rundir.Config{})
			require.NoError(t, err)
			traintest.RequireSameState(t, filepath.Join(ref, rundir.CheckpointsDir, "step_0000006"), filepath.Join(out, rundir.CheckpointsDir, "step_0000006"))
			traintest.RequireMetricSteps(t, out, 6)
		})
	}
}

// TestDiskFullTmpfs is the same on a real full file system: a small tmpfs
// (mounting one needs root; CI runs as root).
func TestDiskFullTmpfs(t *testing.T) {
	traintest.RequireDevice(t)
	mnt := t.TempDir()
	if err := mountTmpfs(mnt, 2<<20); err != nil {
		if os.Getenv("VKGAN_REQUIRE_TMPFS") == "1" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("cannot mount a tmpfs here (%v); TestDiskFullDuringCheckpoint injects the error instead", err)
	}
	t.Cleanup(func() { _ = unmount(mnt) })
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 6))
	cfg.CheckpointEvery, cfg.Steps = 2, 2
	out := filepath.Join(mnt, "run")
	opt := traintest.Quiet(t)
	opt.Out = out
	require.NoError(t, train.Run(context.Background(), cfg, opt))

	// Leave about one checkpoint's worth of room, less a little.
	var ckptBytes int64
	require.NoError(t, filepath.Walk(filepath.Join(out, rundir.CheckpointsDir, "step_0000002"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			ckptBytes += fi.Size()
		}
		return err
	}))
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler, ckptBytes/2)
	_, err := traintest.Resume(t, out, 6, rundir.Config{})
	require.Error(t, err)
	require.ErrorContains(t, err, "no space left")
	info, err := rundir.ReadCheckpointInfo(out)
	require.NoError(t, err)
	require.Equal(t, 2, info.Step)
	requireNoLeftovers(t, out)

	require.NoError(t, os.Remove(filler))
	_, err = traintest.Resume(t, out, 6, rundir.Config{})
	require.NoError(t, err)
	traintest.RequireMetricSteps(t, out, 6)
}

// fillDisk writes a file that leaves about free bytes on its file system.
func fillDisk(t *testing.T, path string, free int64) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		avail, err := freeBytes(filepath.Dir(path))
		require.NoError(t, err)
		if avail <= free {
			return
		}
		if _, err := f.Write(buf[:min(int64(len(buf)), avail-free)]); err != nil {
			return
		}
	}
}

// requireNoLeftovers checks that a failed checkpoint left no temporary
// directory and that every checkpoint still there reads.
func requireNoLeftovers(t *testing.T, out string) {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(out, rundir.CheckpointsDir))
	require.NoError(t, err)
	for _, e := range es {
		require.False(t, strings.HasPrefix(e.Name(), rundir.TmpPrefix), "left behind: %s", e.Name())
	}
	cfg, err := rundir.LoadConfig(filepath.Join(out, rundir.ConfigFile))
	require.NoError(t, err)
	info, err := rundir.ReadCheckpointInfo(out)
	require.NoError(t, err)
	_, err = rundir.ReadCheckpoint(filepath.Join(out, filepath.FromSlash(info.Dir)), cfg)
	require.NoError(t, err)
	require.True(t, slices.Contains(rundir.CheckpointSteps(out), info.Step))
}

// TestResumeV1Checkpoint resumes a run written by vkgan before the layer
// graph (testdata/v1run: main at 7952938, 3 steps of a 32x32 DCGAN of
// width 2 on testdata/v1data; its config.json names a folder that cannot
// exist, /nonexistent/vkgan-v1data, where it said /tmp/fixdata) and checks it
// ends in the same state, bit for bit, as a run of today's code that was
// never interrupted.
func TestResumeV1Checkpoint(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data, err := filepath.Abs(filepath.Join("testdata", "v1data"))
	require.NoError(t, err)
	run := filepath.Join(t.TempDir(), "run")
	require.NoError(t, os.CopyFS(run, os.DirFS(filepath.Join("testdata", "v1run"))))
	_, err = traintest.Resume(t, run, 5, rundir.Config{})
	require.ErrorContains(t, err, "-data DIR", "the run's data folder is gone")
	log, err := traintest.Resume(t, run, 5, rundir.Config{Data: data}, "data")
	require.NoError(t, err, log)
	traintest.RequireMetricSteps(t, run, 5)

	cfg, err := rundir.LoadConfig(filepath.Join("testdata", "v1run", rundir.ConfigFile))
	require.NoError(t, err)
	cfg.Data = data
	fresh := traintest.TrainTo(t, cfg, 5)
	traintest.RequireSameState(t, filepath.Join(fresh, rundir.CheckpointsDir, "step_0000005"), filepath.Join(run, rundir.CheckpointsDir, "step_0000005"))
}
