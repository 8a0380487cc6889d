//go:build mpi

package main

// Data-parallel training under mpirun: make test-mpi builds ./vkgan with
// MPI and runs these with VKGAN_MPI_BIN naming it. Each test starts its
// own `mpirun -np 2` job of tiny DCGANs (16x16, width 4) on the one
// Vulkan device the ranks share.

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"vkgan/internal/testimg"
	"vkgan/train/rundir"
)

// mpiBin is the MPI build of vkgan, or the test skips.
func mpiBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("VKGAN_MPI_BIN")
	if bin == "" {
		t.Skip("VKGAN_MPI_BIN is not set: make test-mpi builds ./vkgan with MPI and sets it")
	}
	if _, err := exec.LookPath("mpirun"); err != nil {
		t.Skip("no mpirun")
	}
	return bin
}

// mpiData writes a small image folder and isolates the data cache.
func mpiData(t *testing.T) string {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	require.NoError(t, testimg.WritePNGs(dir, 12, 16, 16, func(i int, img *image.RGBA) {
		for p := range img.Pix {
			img.Pix[p] = uint8(29*i + 3*p)
		}
	}))
	return dir
}

// mpiCmd is `mpirun -np 2 vkgan args...` in its own process group, so a
// test can kill the whole job.
func mpiCmd(ctx context.Context, bin string, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	all := append([]string{"--oversubscribe", "--allow-run-as-root", "-np", "2", bin}, args...)
	cmd := exec.CommandContext(ctx, "mpirun", all...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd, &out
}

// killTree SIGKILLs pid and every process below it: mpirun's ranks are
// not in its process group (Open MPI starts them in their own sessions).
func killTree(pid int) {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				children[pp] = append(children[pp], p)
			}
		}
	}
	var walk func(int)
	walk = func(p int) {
		_ = syscall.Kill(p, syscall.SIGKILL)
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
}

func tinyArgs(data string) []string {
	return []string{"-data", data, "-size", "16", "-batch", "2", "-nz", "8", "-ngf", "4", "-ndf", "4", "-ema", "0.9",
		"-log-every", "1", "-sample-every", "10", "-checkpoint-every", "5"}
}

// TestMPITrainChecksumKillResume trains 2 ranks with the weights compared
// bit for bit after every step (VKGAN_MPI_CHECK), kills the whole job
// after its second checkpoint, resumes it on 2 ranks to the end, and
// checks that a resume on another number of ranks is refused.
func TestMPITrainChecksumKillResume(t *testing.T) {
	bin := mpiBin(t)
	data := mpiData(t)
	run := filepath.Join(t.TempDir(), "run")
	env := []string{"VKGAN_MPI_CHECK=1", "VKGAN_MPI_TIMEOUT=60s"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// First: a run of 400 steps killed once its step-10 checkpoint is there.
	cmd, out := mpiCmd(ctx, bin, env, append([]string{"train", "-steps", "400", "-out", run}, tinyArgs(data)...)...)
	require.NoError(t, cmd.Start())
	killed := false
	for deadline := time.Now().Add(4 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if info, err := rundir.ReadCheckpointInfo(run); err == nil && info.Step >= 10 {
			killTree(cmd.Process.Pid)
			killed = true
			break
		}
	}
	_ = cmd.Wait()
	require.True(t, killed, "no step-10 checkpoint:\n%s", out)
	// Wait for the ranks' run lock to go with them.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		l, err := rundir.Lock(run)
		if err == nil {
			l.Release()
			break
		}
		require.True(t, time.Now().Before(deadline), "the killed ranks still hold the run: %v", err)
	}
	var cfg rundir.Config
	b, err := os.ReadFile(filepath.Join(run, rundir.ConfigFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cfg))
	require.Equal(t, 2, cfg.Ranks, "config.json records the world size")
	info, err := rundir.ReadCheckpointInfo(run)
	require.NoError(t, err)
	t.Logf("killed after the step-%d checkpoint", info.Step)
	total := strconv.Itoa(info.Step + 10)

	// One process may not resume a 2-rank run.
	plain := exec.CommandContext(ctx, bin, "train", "-resume", run, "-steps", total)
	msg, err := plain.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(msg), "was trained on 2 ranks")

	// Resume on 2 ranks for 10 more steps: weights still equal after each.
	cmd, out = mpiCmd(ctx, bin, env, "train", "-resume", run, "-steps", total)
	require.NoError(t, cmd.Run(), "%s", out)
	log := out.String()
	require.Contains(t, log, "train: done, "+total+" steps")
	require.Regexp(t, `VKGAN_MPI_CHECK: every rank's weights equal rank 0's after each of \d+ steps`, log)
	require.Regexp(t, `all-reduce on 2 ranks: \d+ bytes per step`, log)
	// Rank 1 prints nothing: one "done" line, one progress bar's worth.
	require.Equal(t, 1, strings.Count(log, "train: done"), log)
	require.FileExists(t, rundir.SamplePath(run, info.Step+10))
	t.Log(regexp.MustCompile(`train: all-reduce.*`).FindString(log))
}

// TestMPIRankStopsEarly makes rank 1 exit without a word (mpirun sees it
// go) or hang (nothing does but rank 0's all-reduce timeout) after step 7;
// either way the job ends unsuccessfully within the 10 s timeout plus
// start-up, with the step-5 checkpoint kept, and for the hang rank 0
// says in one line why.
func TestMPIRankStopsEarly(t *testing.T) {
	bin := mpiBin(t)
	for _, how := range []string{"exit", "hang"} {
		t.Run(how, func(t *testing.T) {
			data := mpiData(t)
			run := filepath.Join(t.TempDir(), "run")
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			env := []string{"VKGAN_MPI_TIMEOUT=10s", "VKGAN_MPI_TEST_STOP=1:7:" + how}
			cmd, out := mpiCmd(ctx, bin, env, append([]string{"train", "-steps", "200", "-out", run}, tinyArgs(data)...)...)
			began := time.Now()
			err := cmd.Run()
			took := time.Since(began)
			require.Error(t, err, "%s", out)
			require.NoError(t, ctx.Err(), "the job had to be killed:\n%s", out)
			require.Less(t, took, 100*time.Second, "%s", out)
			info, ierr := rundir.ReadCheckpointInfo(run)
			require.NoError(t, ierr, "%s", out)
			require.Equal(t, 5, info.Step)
			if how == "hang" {
				require.Contains(t, out.String(), "did not complete within 10s")
			}
			t.Logf("job ended after %.1fs:\n%s", took.Seconds(), out)
		})
	}
}

// TestMPIToyMatchesOneProcess runs the toy's small protocol (batch 512)
// on 2 ranks of 256 under mpirun and as one process: after 200 steps the
// losses agree to fp32 summation error and G's evaluation samples to
// 1e-3 (Adam's updates amplify the last bits a little each step).
func TestMPIToyMatchesOneProcess(t *testing.T) {
	bin := mpiBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	one, two := filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "two")
	args := []string{"toy", "-steps", "200", "-frame-every", "1000", "-log-every", "100"}
	msg, err := exec.CommandContext(ctx, bin, append(args, "-out", one)...).CombinedOutput()
	require.NoError(t, err, "%s", msg)
	cmd, out := mpiCmd(ctx, bin, nil, append(args, "-out", two)...)
	require.NoError(t, cmd.Run(), "%s", out)
	require.Equal(t, 1, strings.Count(out.String(), "reverse KL"), "rank 0 alone reports:\n%s", out)
	read := func(dir string) (res struct {
		LossD float64 `json:"loss_d"`
		LossG float64 `json:"loss_g"`
		Batch int     `json:"batch"`
	}, samples []float64) {
		b, err := os.ReadFile(filepath.Join(dir, "toy.json"))
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &res))
		b, err = os.ReadFile(filepath.Join(dir, "samples.csv"))
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
			for _, f := range strings.Split(line, ",") {
				v, err := strconv.ParseFloat(f, 64)
				require.NoError(t, err)
				samples = append(samples, v)
			}
		}
		return res, samples
	}
	r1, s1 := read(one)
	r2, s2 := read(two)
	require.Equal(t, 512, r2.Batch, "the global batch")
	require.InEpsilon(t, r1.LossD, r2.LossD, 1e-4)
	require.InEpsilon(t, r1.LossG, r2.LossG, 1e-4)
	require.Len(t, s2, len(s1))
	worst := 0.0
	for i := range s1 {
		worst = max(worst, math.Abs(s1[i]-s2[i]))
	}
	require.Less(t, worst, 1e-3)
	t.Logf("losses D %.7f/%.7f G %.7f/%.7f (1 process/2 ranks); samples within %.2g", r1.LossD, r2.LossD, r1.LossG, r2.LossG, worst)
}
