package train

import (
	"bytes"
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
)

// trainTo runs a new tiny run to steps in a fresh directory.
func trainTo(t *testing.T, cfg Config, steps int) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	cfg.Steps = steps
	opt := quiet(t)
	opt.Out = out
	require.NoError(t, Run(context.Background(), cfg, opt))
	return out
}

// resume continues the run in out to steps total, with the flags named in
// flags taken from given; it returns the log.
func resume(t *testing.T, out string, steps int, given Config, flags ...string) (string, error) {
	t.Helper()
	var log bytes.Buffer
	opt := RunOptions{Out: out, Resume: true, Steps: steps, Log: &log, Flags: map[string]bool{},
		OnValidation: func(m string) { t.Errorf("validation: %s", m) }}
	for _, f := range flags {
		opt.Flags[f] = true
	}
	err := Run(context.Background(), given, opt)
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

// requireSameState checks that two checkpoints hold the same state, bit
// for bit.
func requireSameState(t *testing.T, a, b string) {
	t.Helper()
	for _, f := range []string{GFile, DFile, GEMAFile, OptimFile} {
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

// requireMetricSteps checks that metrics.jsonl parses and logs each of
// steps 1..n exactly once, in order.
func requireMetricSteps(t *testing.T, out string, n int) {
	t.Helper()
	ms, err := ReadMetrics(filepath.Join(out, MetricsFile))
	require.NoError(t, err)
	var want []int
	for s := 1; s <= n; s++ {
		want = append(want, s)
	}
	require.Equal(t, want, steps(ms))
}

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
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := tinyConfig(imageFolder(t, 6))
	cfg.Steps = 4
	out := filepath.Join(t.TempDir(), "run")

	second := make(chan error, 1)
	optA := quiet(t)
	optA.Out = out
	optA.OnStep = func(_ *engine.GAN, step int) {
		if step != 2 {
			return
		}
		// A holds the lock mid-run: a second new run and a resume fail at once.
		optB := quiet(t)
		optB.Out = out
		errNew := Run(context.Background(), cfg, optB)
		optB.Resume, optB.Steps = true, 8
		errResume := Run(context.Background(), Config{}, optB)
		second <- errors.Join(errNew, errResume)
	}
	require.NoError(t, Run(context.Background(), cfg, optA))
	err := <-second
	require.ErrorIs(t, err, dirlock.ErrLocked)
	require.ErrorContains(t, err, fmt.Sprintf("in use by pid %d", os.Getpid()))
	require.Equal(t, 2, strings.Count(err.Error(), "in use by"), "both were refused: %v", err)
	requireMetricSteps(t, out, 4)
	info, err := ReadCheckpointInfo(out)
	require.NoError(t, err)
	require.Equal(t, 4, info.Step)
}

func TestNewRunRefusesOccupiedDir(t *testing.T) {
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := tinyConfig(imageFolder(t, 6))
	opt := quiet(t)

	// Someone else's folder.
	opt.Out = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(opt.Out, "thesis.tex"), []byte("x"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(opt.Out, "bad\nname"), 0o755))
	before := snapshot(t, opt.Out)
	err := Run(context.Background(), cfg, opt)
	require.ErrorContains(t, err, `"thesis.tex"`)
	require.ErrorContains(t, err, `"bad\nname"`, "names are quoted")
	require.ErrorContains(t, err, "-resume")
	require.Equal(t, before, snapshot(t, opt.Out), "a refused run writes nothing")

	// An empty folder (with a lock file left by an earlier try) is free.
	opt.Out = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(opt.Out, dirlock.FileName), nil, 0o644))
	cfg.Steps = 2
	require.NoError(t, Run(context.Background(), cfg, opt))

	// A run that lost checkpoint.json is a damaged run: a new run is
	// refused, -resume recovers it from its newest checkpoint.
	require.NoError(t, os.Remove(filepath.Join(opt.Out, CheckpointFile)))
	err = Run(context.Background(), cfg, opt)
	require.ErrorContains(t, err, "damaged run")
	ms, err := ReadMetrics(filepath.Join(opt.Out, MetricsFile))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2}, steps(ms), "the refused run appended nothing")
	log, err := resume(t, opt.Out, 4, Config{})
	require.NoError(t, err)
	require.Contains(t, log, "no readable checkpoint.json")
	requireMetricSteps(t, opt.Out, 4)
}

func TestResumeFallsBackToIntactCheckpoint(t *testing.T) {
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := tinyConfig(imageFolder(t, 6))
	cfg.CheckpointEvery = 2
	ref := trainTo(t, cfg, 6)

	for _, damage := range []struct {
		name string
		do   func(t *testing.T, ckpt string)
		want string
	}{
		{"truncated G", func(t *testing.T, ckpt string) {
			p := filepath.Join(ckpt, GFile)
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, b[:len(b)/2], 0o644))
		}, GFile},
		{"NaN in D", func(t *testing.T, ckpt string) {
			p := filepath.Join(ckpt, DFile)
			ts, meta, err := safetensors.ReadFile(p)
			require.NoError(t, err)
			ts[0].F32[3] = float32(math.NaN())
			require.NoError(t, safetensors.WriteFile(p, ts, meta))
		}, "NaN"},
		{"missing optimizer state", func(t *testing.T, ckpt string) {
			require.NoError(t, os.Remove(filepath.Join(ckpt, OptimFile)))
		}, OptimFile},
	} {
		t.Run(damage.name, func(t *testing.T) {
			out := trainTo(t, cfg, 4)
			damage.do(t, filepath.Join(out, CheckpointsDir, "step_0000004"))
			cfgBefore, err := os.ReadFile(filepath.Join(out, ConfigFile))
			require.NoError(t, err)

			// A resume that cannot start (a fixed flag changed) changes nothing.
			bad := cfg
			bad.NGF = 8
			before := snapshot(t, out)
			_, err = resume(t, out, 6, bad, "ngf")
			require.ErrorContains(t, err, "-ngf 8")
			require.Equal(t, before, snapshot(t, out))

			log, err := resume(t, out, 6, Config{})
			require.NoError(t, err)
			require.Contains(t, log, "step_0000004")
			require.Contains(t, log, damage.want)
			require.Contains(t, log, "resuming "+out+" at step 2")
			requireSameState(t, filepath.Join(ref, CheckpointsDir, "step_0000006"), filepath.Join(out, CheckpointsDir, "step_0000006"))
			requireMetricSteps(t, out, 6)
			require.DirExists(t, filepath.Join(out, CheckpointsDir, "step_0000004"+damagedSuffix), "the damaged checkpoint is kept aside")
			cfgAfter, err := os.ReadFile(filepath.Join(out, ConfigFile))
			require.NoError(t, err)
			require.NotEqual(t, cfgBefore, cfgAfter, "config.json records the new step count")
		})
	}

	// Every checkpoint damaged: the resume fails, naming each, and writes nothing.
	out := trainTo(t, cfg, 4)
	for _, s := range checkpointSteps(out) {
		require.NoError(t, os.Truncate(filepath.Join(out, CheckpointsDir, stepDirName(s), GFile), 10))
	}
	before := snapshot(t, out)
	_, err := resume(t, out, 6, Config{})
	require.ErrorContains(t, err, "no intact checkpoint")
	require.ErrorContains(t, err, "step_0000004")
	require.ErrorContains(t, err, "step_0000002")
	require.Equal(t, before, snapshot(t, out))
}

func TestResumeFlags(t *testing.T) {
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := imageFolder(t, 6)
	cfg := tinyConfig(data)
	out := trainTo(t, cfg, 3)

	// Flags that define the model, the loss or the data order are refused,
	// one line each, and nothing is written.
	before := snapshot(t, out)
	bad := cfg
	bad.Size, bad.NZ, bad.NGF, bad.NDF, bad.Channels, bad.Batch, bad.Seed, bad.LabelSmooth, bad.DSteps = 64, 9, 5, 5, 1, 6, 10, 0.1, 2
	_, err := resume(t, out, 6, bad, "size", "nz", "ngf", "ndf", "channels", "batch", "seed", "label-smooth", "d-steps")
	require.Error(t, err)
	for _, f := range []string{"-size 64", "-nz 9", "-ngf 5", "-ndf 5", "-channels 1", "-batch 6", "-seed 10", "-label-smooth 0.1", "-d-steps 2"} {
		require.ErrorContains(t, err, f)
	}
	require.Equal(t, 9, strings.Count(err.Error(), "\n")+1, "one line each: %v", err)
	// The same values as the run's are not a change.
	_, err = resume(t, out, 0, cfg, "size", "nz", "seed")
	require.NoError(t, err, "the run is at its step count: nothing to do")

	// The step count must grow.
	_, err = resume(t, out, 2, Config{})
	require.ErrorContains(t, err, "-steps 2")
	require.ErrorContains(t, err, "step 3 already")
	require.Equal(t, before, snapshot(t, out))

	// A resume with no new steps writes nothing at all.
	log, err := resume(t, out, 0, Config{})
	require.NoError(t, err)
	require.Contains(t, log, "nothing to do")
	require.Equal(t, before, snapshot(t, out))

	// Settings that may change are applied and recorded.
	next := cfg
	next.LRD, next.LogEvery, next.CheckpointEvery = 1e-3, 2, 5
	_, err = resume(t, out, 5, next, "lr-d", "log-every", "checkpoint-every")
	require.NoError(t, err)
	saved, err := LoadConfig(filepath.Join(out, ConfigFile))
	require.NoError(t, err)
	require.Equal(t, 1e-3, saved.LRD)
	require.Equal(t, 5, saved.Steps)
	require.Len(t, saved.History, 1)
	h := saved.History[0]
	require.Equal(t, 3, h.Step)
	require.Equal(t, map[string]any{"lr-d": 1e-3, "log-every": float64(2), "checkpoint-every": float64(5), "steps": float64(5)}, h.Set)
	require.Equal(t, map[string]any{"lr-d": 2e-4, "log-every": float64(1), "checkpoint-every": float64(3), "steps": float64(3)}, h.Was)
	ms, err := ReadMetrics(filepath.Join(out, MetricsFile))
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3, 4, 5}, steps(ms), "-log-every 2 logs step 4 and the last step")

	// The data folder moved: the resume says to pass -data, and takes the
	// new place when it holds the same images.
	moved := data + "-moved"
	require.NoError(t, os.Rename(data, moved))
	_, err = resume(t, out, 6, Config{})
	require.ErrorContains(t, err, "-data DIR")
	require.ErrorContains(t, err, fmt.Sprintf("%q", data))
	_, err = resume(t, out, 6, Config{Data: moved}, "data")
	require.NoError(t, err)
	saved, err = LoadConfig(filepath.Join(out, ConfigFile))
	require.NoError(t, err)
	require.Equal(t, moved, saved.Data)

	// Other images are refused, whether named by -data or changed in place.
	other := imageFolder(t, 7)
	_, err = resume(t, out, 7, Config{Data: other}, "data")
	require.ErrorContains(t, err, "other images")
	require.NoError(t, os.Remove(filepath.Join(moved, firstFile(t, moved))))
	_, err = resume(t, out, 7, Config{})
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
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := tinyConfig(imageFolder(t, 6))
	cfg.CheckpointEvery = 2
	ref := trainTo(t, cfg, 6)

	for _, fail := range []int{0, 100, 30 << 10} { // at once, in a header, mid-tensor
		t.Run(fmt.Sprint(fail), func(t *testing.T) {
			out := trainTo(t, cfg, 2)
			opt := quiet(t)
			opt.Out, opt.Resume, opt.Steps = out, true, 6
			opt.OnStep = func(_ *engine.GAN, step int) {
				if step == 4 {
					atomicfile.TestHooks.Writer = func(w io.Writer) io.Writer { return &failAfter{w: w, n: fail} }
				}
			}
			t.Cleanup(func() { atomicfile.TestHooks = atomicfile.Hooks{} })
			err := Run(context.Background(), Config{}, opt)
			atomicfile.TestHooks = atomicfile.Hooks{}
			require.ErrorIs(t, err, errNoSpace)
			info, err := ReadCheckpointInfo(out)
			require.NoError(t, err)
			require.Equal(t, 2, info.Step)
			requireNoLeftovers(t, out)
			_, err = resume(t, out, 6, Config{})
			require.NoError(t, err)
			requireSameState(t, filepath.Join(ref, CheckpointsDir, "step_0000006"), filepath.Join(out, CheckpointsDir, "step_0000006"))
			requireMetricSteps(t, out, 6)
		})
	}
}

// TestDiskFullTmpfs is the same on a real full file system: a small tmpfs
// (mounting one needs root; CI runs as root).
func TestDiskFullTmpfs(t *testing.T) {
	requireDevice(t)
	mnt := t.TempDir()
	if err := mountTmpfs(mnt, 2<<20); err != nil {
		if os.Getenv("VKGAN_REQUIRE_TMPFS") == "1" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("cannot mount a tmpfs here (%v); TestDiskFullDuringCheckpoint injects the error instead", err)
	}
	t.Cleanup(func() { _ = unmount(mnt) })
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := tinyConfig(imageFolder(t, 6))
	cfg.CheckpointEvery, cfg.Steps = 2, 2
	out := filepath.Join(mnt, "run")
	opt := quiet(t)
	opt.Out = out
	require.NoError(t, Run(context.Background(), cfg, opt))

	// Leave about one checkpoint's worth of room, less a little.
	var ckptBytes int64
	require.NoError(t, filepath.Walk(filepath.Join(out, CheckpointsDir, "step_0000002"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			ckptBytes += fi.Size()
		}
		return err
	}))
	filler := filepath.Join(mnt, "filler")
	fillDisk(t, filler, ckptBytes/2)
	_, err := resume(t, out, 6, Config{})
	require.Error(t, err)
	require.ErrorContains(t, err, "no space left")
	info, err := ReadCheckpointInfo(out)
	require.NoError(t, err)
	require.Equal(t, 2, info.Step)
	requireNoLeftovers(t, out)

	require.NoError(t, os.Remove(filler))
	_, err = resume(t, out, 6, Config{})
	require.NoError(t, err)
	requireMetricSteps(t, out, 6)
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
	es, err := os.ReadDir(filepath.Join(out, CheckpointsDir))
	require.NoError(t, err)
	for _, e := range es {
		require.False(t, strings.HasPrefix(e.Name(), tmpPrefix), "left behind: %s", e.Name())
	}
	cfg, err := LoadConfig(filepath.Join(out, ConfigFile))
	require.NoError(t, err)
	info, err := ReadCheckpointInfo(out)
	require.NoError(t, err)
	_, err = ReadCheckpoint(filepath.Join(out, filepath.FromSlash(info.Dir)), cfg)
	require.NoError(t, err)
	require.True(t, slices.Contains(checkpointSteps(out), info.Step))
}

// TestResumeV1Checkpoint resumes a run written by vkgan before the layer
// graph (testdata/v1run: main at 7952938, 3 steps of a 32x32 DCGAN of
// width 2 on testdata/v1data; its config.json names a folder that cannot
// exist, /nonexistent/vkgan-v1data, where it said /tmp/fixdata) and checks it
// ends in the same state, bit for bit, as a run of today's code that was
// never interrupted.
func TestResumeV1Checkpoint(t *testing.T) {
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data, err := filepath.Abs(filepath.Join("testdata", "v1data"))
	require.NoError(t, err)
	run := filepath.Join(t.TempDir(), "run")
	require.NoError(t, os.CopyFS(run, os.DirFS(filepath.Join("testdata", "v1run"))))
	_, err = resume(t, run, 5, Config{})
	require.ErrorContains(t, err, "-data DIR", "the run's data folder is gone")
	log, err := resume(t, run, 5, Config{Data: data}, "data")
	require.NoError(t, err, log)
	requireMetricSteps(t, run, 5)

	cfg, err := LoadConfig(filepath.Join("testdata", "v1run", ConfigFile))
	require.NoError(t, err)
	cfg.Data = data
	fresh := trainTo(t, cfg, 5)
	requireSameState(t, filepath.Join(fresh, CheckpointsDir, "step_0000005"), filepath.Join(run, CheckpointsDir, "step_0000005"))
}
