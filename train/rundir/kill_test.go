//go:build unix

package rundir_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vkgan/internal/atomicfile"
	"vkgan/train"
	"vkgan/train/internal/traintest"
	"vkgan/train/rundir"
)

// killEnv names the run a TestKillHelper child resumes, and killAtEnv the
// write step at which it kills itself (0: none; it prints how many there
// were).
const (
	killEnv   = "VKGAN_TEST_KILL_RUN"
	killAtEnv = "VKGAN_TEST_KILL_AT"
	killSteps = 9 // the total the child resumes to
)

// TestKillHelper is the child process of TestKillAtWriteSteps: it resumes
// a run and sends itself SIGKILL just before its Nth change to the run
// directory, as kill -9 would at that moment.
func TestKillHelper(t *testing.T) {
	run := os.Getenv(killEnv)
	if run == "" {
		return // only as a child
	}
	at, err := strconv.Atoi(os.Getenv(killAtEnv))
	require.NoError(t, err)
	n := 0
	atomicfile.TestHooks.BeforeChange = func(what string) {
		n++
		if n == at {
			fmt.Fprintf(os.Stderr, "killed before write step %d: %s\n", n, what)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute) // the signal arrives before this ends
		}
	}
	require.NoError(t, train.Run(context.Background(), rundir.Config{}, train.RunOptions{Out: run, Resume: true, Steps: killSteps, Log: io.Discard}))
	fmt.Printf("write steps: %d\n", n)
}

// TestKillAtWriteSteps kills a resume of a finished run with SIGKILL at
// 50 randomly chosen moments among all the changes it makes to the run
// directory (checkpoint files, renames, checkpoint.json, the copies in the
// run root, pruning, metrics lines, config.json, sample grids, the plot).
// After each, the run must resume and end in the same state, bit for bit,
// as a run never interrupted, with every step logged once.
func TestKillAtWriteSteps(t *testing.T) {
	traintest.RequireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	cfg := traintest.TinyConfig(traintest.ImageFolder(t, 6))
	cfg.CheckpointEvery, cfg.SampleEvery, cfg.LogEvery = 1, 2, 1
	ref := traintest.TrainTo(t, cfg, killSteps)
	base := traintest.TrainTo(t, cfg, 4)

	child := func(at int, run string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), killEnv+"="+run, killAtEnv+"="+strconv.Itoa(at))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	counted := copyRun(t, base)
	out, err := child(0, counted)
	require.NoError(t, err, out)
	var total int
	_, err = fmt.Sscanf(out[strings.Index(out, "write steps:"):], "write steps: %d", &total)
	require.NoError(t, err, out)
	require.Greater(t, total, 50, "a resume of 5 steps with a checkpoint each changes the run more than 50 times")

	seed := uint64(time.Now().UnixNano())
	t.Logf("%d write steps; kill points drawn with seed %d", total, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	kills := 50
	if os.Getenv("VKGAN_TEST_KILL_ALL") == "1" { // every write step, for a longer check by hand
		kills = total
	}
	for _, at := range rng.Perm(total)[:kills] {
		at++
		run := copyRun(t, base)
		out, err := child(at, run)
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "child at %d: %v\n%s", at, err, out)
		ws, ok := ee.Sys().(syscall.WaitStatus)
		require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "child at %d was not killed: %v\n%s", at, err, out)

		log, err := traintest.Resume(t, run, killSteps, rundir.Config{})
		require.NoError(t, err, "resume after a kill before write step %d (%s)\n%s", at, strings.TrimSpace(out), log)
		traintest.RequireSameState(t, filepath.Join(ref, rundir.CheckpointsDir, rundir.StepDirName(killSteps)), filepath.Join(run, rundir.CheckpointsDir, rundir.StepDirName(killSteps)))
		traintest.RequireMetricSteps(t, run, killSteps)
		requireNoLeftovers(t, run)
		require.NoError(t, os.RemoveAll(filepath.Dir(run)))
	}
}

// copyRun copies a run directory into a new temporary directory.
func copyRun(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "run")
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
	return dst
}
