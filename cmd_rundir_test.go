//go:build unix

package main

import (
	"bufio"
	"flag"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vkgan/internal/safetensors"
	"vkgan/internal/testimg"
	"vkgan/train/rundir"
)

// TestCLIProcess is vkgan itself when run as a child by the tests below:
// go test's binary with the arguments after "--".
func TestCLIProcess(t *testing.T) {
	if os.Getenv("VKGAN_TEST_CLI") != "1" {
		return
	}
	os.Exit(run(flag.Args(), os.Stdout, os.Stderr))
}

// vkganCmd is a vkgan child process (TestCLIProcess) with args.
func vkganCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestCLIProcess$", "-test.count=1", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "VKGAN_TEST_CLI=1")
	return cmd
}

// tinyTrainArgs trains a very small model on a few synthetic images.
func tinyTrainArgs(t *testing.T) []string {
	t.Helper()
	data := t.TempDir()
	require.NoError(t, testimg.WritePNGs(data, 6, 20, 20, func(i int, img *image.RGBA) {
		for p := range img.Pix {
			img.Pix[p] = uint8(29*i + 3*p)
		}
		img.Set(0, 0, color.White)
	}))
	return []string{"-data", data, "-size", "32", "-batch", "4", "-nz", "8", "-ngf", "4", "-ndf", "4",
		"-log-every", "1", "-sample-every", "50", "-checkpoint-every", "50"}
}

// waitForLine reads the child's stderr until a line contains want.
func waitForLine(t *testing.T, r *bufio.Reader, want string) string {
	t.Helper()
	var seen strings.Builder
	for {
		line, err := r.ReadString('\n')
		seen.WriteString(line)
		if strings.Contains(line, want) {
			return seen.String()
		}
		require.NoError(t, err, "no %q in:\n%s", want, seen.String())
	}
}

// TestSecondTrainerRefused: while one vkgan trains into a directory, a
// second one (new run or resume) fails at once naming the first's pid and
// command; the first, stopped with SIGINT, finishes with a checkpoint and a
// metrics log that parses.
func TestSecondTrainerRefused(t *testing.T) {
	hasDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	args := tinyTrainArgs(t)
	out := filepath.Join(t.TempDir(), "run")
	first := vkganCmd(append([]string{"train", "-steps", "100000", "-out", out}, args...)...)
	stderrPipe, err := first.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, first.Start())
	defer first.Process.Kill()
	// The progress bar writes carriage returns; the metrics log is the sign
	// that training runs.
	r := bufio.NewReader(stderrPipe)
	waitForLine(t, r, "train: ")
	require.Eventually(t, func() bool {
		ms, err := rundir.ReadMetrics(filepath.Join(out, rundir.MetricsFile))
		return err == nil && len(ms) >= 2
	}, time.Minute, 20*time.Millisecond)

	began := time.Now()
	code, _, errOut := runCLI(append([]string{"train", "-steps", "5", "-out", out}, args...)...)
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, fmt.Sprintf("in use by pid %d", first.Process.Pid))
	require.Contains(t, errOut, "train -steps 100000 -out "+out, "the holder's command line")
	code, _, errOut = runCLI("train", "-resume", out, "-steps", "200000")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, fmt.Sprintf("in use by pid %d", first.Process.Pid))
	require.Less(t, time.Since(began), 5*time.Second, "refused at once, not after waiting")

	require.NoError(t, first.Process.Signal(os.Interrupt))
	go func() { _, _ = r.WriteTo(new(strings.Builder)) }()
	require.NoError(t, first.Wait(), "SIGINT: finish the step, checkpoint, exit 0")
	ms, err := rundir.ReadMetrics(filepath.Join(out, rundir.MetricsFile))
	require.NoError(t, err)
	info, err := rundir.ReadCheckpointInfo(out)
	require.NoError(t, err)
	require.Equal(t, ms[len(ms)-1].Step, info.Step)
	for i, m := range ms {
		require.Equal(t, i+1, m.Step)
	}
}

// TestTimeoutLeavesCheckpoint runs vkgan under timeout(1), which signals
// the process and then its whole process group: two SIGTERMs at once must
// still mean "checkpoint and exit 0", not "quit at once".
func TestTimeoutLeavesCheckpoint(t *testing.T) {
	hasDevice(t)
	if _, err := exec.LookPath("timeout"); err != nil {
		t.Fatalf("timeout(1) from coreutils: %v", err)
	}
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	out := filepath.Join(t.TempDir(), "run")
	child := vkganCmd(append([]string{"train", "-steps", "100000", "-out", out}, tinyTrainArgs(t)...)...)
	cmd := exec.Command("timeout", append([]string{"--preserve-status", "-s", "TERM", "3"}, child.Args...)...)
	cmd.Env = child.Env
	log, err := cmd.CombinedOutput()
	require.NoError(t, err, "vkgan's own exit status is 0:\n%s", log)
	require.Contains(t, string(log), "interrupted")
	require.NotContains(t, string(log), "vkgan: quit at once")
	info, err := rundir.ReadCheckpointInfo(out)
	require.NoError(t, err)
	code, _, errOut := runCLI("train", "-resume", out, "-steps", fmt.Sprint(info.Step+2))
	require.Equal(t, 0, code, errOut)
}

// TestSecondSignalWithinASecond sends SIGTERM to vkgan and, 200 ms later,
// to its process group (what timeout(1) does, without the chance that the
// kernel merges the two): it still checkpoints and exits 0. SIGQUIT quits
// at once.
func TestSecondSignalWithinASecond(t *testing.T) {
	hasDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	args := tinyTrainArgs(t)
	start := func(out string) (*exec.Cmd, *strings.Builder) {
		cmd := vkganCmd(append([]string{"train", "-steps", "100000", "-out", out}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		var log strings.Builder
		cmd.Stderr = &log
		require.NoError(t, cmd.Start())
		require.Eventually(t, func() bool {
			ms, err := rundir.ReadMetrics(filepath.Join(out, rundir.MetricsFile))
			return err == nil && len(ms) >= 1
		}, time.Minute, 20*time.Millisecond)
		return cmd, &log
	}
	out := filepath.Join(t.TempDir(), "run")
	cmd, log := start(out)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), log.String())
	require.Contains(t, log.String(), "checkpoint written")
	ms, err := rundir.ReadMetrics(filepath.Join(out, rundir.MetricsFile))
	require.NoError(t, err)
	info, err := rundir.ReadCheckpointInfo(out)
	require.NoError(t, err)
	require.Equal(t, ms[len(ms)-1].Step, info.Step, "the checkpoint is of the last step")

	out = filepath.Join(t.TempDir(), "run")
	cmd, log = start(out)
	require.NoError(t, cmd.Process.Signal(syscall.SIGQUIT))
	err = cmd.Wait()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 131, ee.ExitCode(), log.String())
	require.Contains(t, log.String(), "quit at once")
}

// TestTrainFlagChecks: numeric flags are range-checked before anything is
// written, and flags that a resume would ignore are refused.
func TestTrainFlagChecks(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	code, _, errOut := runCLI("train", "-steps", "-5", "-max-time", "-1s", "-out", out)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "-steps -5 must be at least 1")
	require.Contains(t, errOut, "-max-time -1s")
	require.NoDirExists(t, out)
	code, _, errOut = runCLI("train", "-lr-d", "NaN", "-batch", "-3", "-out", out)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "-lr-d NaN")
	require.Contains(t, errOut, "-batch -3")
	require.NoDirExists(t, out)
	code, _, errOut = runCLI("train", "-resume", out, "-out", out+"2")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "give it once, with -resume")
	code, _, errOut = runCLI("train", "-resume", out, "-demo")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "-demo starts a new run")
}

// TestSampleRefusesNaNCheckpoint: sample passes over a checkpoint whose
// weights are not finite, naming its step, and fails when none is usable.
func TestSampleRefusesNaNCheckpoint(t *testing.T) {
	hasDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	run := filepath.Join(t.TempDir(), "run")
	args := append([]string{"train", "-steps", "4", "-out", run}, tinyTrainArgs(t)...)
	args = append(args, "-checkpoint-every", "2")
	code, _, errOut := runCLI(args...)
	require.Equal(t, 0, code, errOut)
	poison := func(step int) {
		p := filepath.Join(run, rundir.CheckpointsDir, fmt.Sprintf("step_%07d", step), rundir.GFile)
		ts, meta, err := safetensors.ReadFile(p)
		require.NoError(t, err)
		ts[0].F32[0] = float32(math.NaN())
		require.NoError(t, safetensors.WriteFile(p, ts, meta))
	}
	grid := filepath.Join(t.TempDir(), "grid.png")
	poison(4)
	code, out, errOut := runCLI("sample", "-run", run, "-n", "4", "-out", grid)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "step 4")
	require.Contains(t, errOut, "NaN")
	require.Contains(t, out, "samples of step 2")
	poison(2)
	code, _, errOut = runCLI("sample", "-run", run, "-n", "4", "-out", grid)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no usable checkpoint")
	require.Contains(t, errOut, "step 4")
	require.Contains(t, errOut, "step 2")
}
