//go:build mpi

package mpi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helper(mode)
		return
	}
	w, err := Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	testWorld = w
	code := m.Run()
	if err := w.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// helperTimeout is the collective timeout the fault helpers use.
const helperTimeout = 2 * time.Second

// helper is a rank of a job TestFault* starts with mpirun. After a barrier
// (both ranks are up), rank 0 all-reduces with helperTimeout while rank 1
// does what mode says instead.
func helper(mode string) {
	w, err := Init()
	if err != nil {
		fmt.Printf("helper: Init: %v\n", err)
		os.Exit(2)
	}
	if err := w.Barrier(30 * time.Second); err != nil {
		w.Abort(2, fmt.Sprintf("helper: first barrier: %v", err))
	}
	if mode == "clean" { // the normal end
		fmt.Printf("helper: rank %d: Finalize: %v\n", w.Rank(), w.Finalize())
		fmt.Printf("helper: rank %d: Barrier after Finalize: %v\n", w.Rank(), w.Barrier(time.Second))
		os.Exit(0)
	}
	if w.Rank() == 1 {
		switch mode {
		case "finalize": // leaves the loop early, as a rank with a bug would
			// Open MPI 4's MPI_Finalize waits for every rank, so this rank
			// stays in it until rank 0's Abort ends it.
			w.Finalize()
			os.Exit(0)
		case "hang": // alive but stuck (a hung device, a deadlock)
			time.Sleep(2 * time.Minute)
			os.Exit(0)
		case "exit": // dies without a word
			os.Exit(7)
		case "abort": // aborts from another goroutine while waiting forever
			for _, msg := range []string{"helper: rank 1 aborts (first)", "helper: rank 1 aborts (second)"} {
				go func() {
					time.Sleep(500 * time.Millisecond)
					w.Abort(5, msg)
				}()
			}
			err := w.AllreduceSum(make([]float32, 10), 0)
			fmt.Printf("helper: rank 1: all-reduce returned: %v\n", err)
			time.Sleep(time.Minute)
			os.Exit(0)
		}
	}
	if mode == "abort" {
		time.Sleep(2 * time.Minute) // rank 1's Abort ends this rank
		os.Exit(0)
	}
	start := time.Now()
	err = w.AllreduceSum(make([]float32, 1000), helperTimeout)
	fmt.Printf("helper: rank 0: all-reduce after %.3fs, timeout %v: %v\n", time.Since(start).Seconds(), errors.Is(err, ErrTimeout), err)
	start = time.Now()
	err = w.Barrier(time.Second)
	fmt.Printf("helper: rank 0: barrier after %.3fs, timeout %v: %v\n", time.Since(start).Seconds(), errors.Is(err, ErrTimeout), err)
	fmt.Printf("helper: rank 0: Finalize: %v\n", w.Finalize())
	w.Abort(3, "helper: rank 0 aborts after the timeout")
}

// runJob runs helper mode on 2 ranks under mpirun and returns its output,
// its error and how long it took.
func runJob(t *testing.T, mode string) (string, error, time.Duration) {
	t.Helper()
	if _, launched := detectLaunch(os.Getenv); launched {
		t.Skip("runs from the single-process pass: mpirun inside an MPI job is not supported")
	}
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("no mpirun on PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "2", os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	t.Logf("mpirun -np 2 (%s) ended after %.1fs: %v\n%s", mode, took.Seconds(), err, out)
	if ctx.Err() != nil {
		t.Fatalf("mpirun still running after %v: a rank hangs", took)
	}
	return string(out), err, took
}

// checkRank0TimedOut checks rank 0's lines: the all-reduce gave up with a
// TimeoutError after helperTimeout (plus slack for a busy machine), and the
// barrier after it failed at once, matching ErrTimeout too.
func checkRank0TimedOut(t *testing.T, out string) {
	t.Helper()
	m := regexp.MustCompile(`helper: rank 0: all-reduce after ([0-9.]+)s, timeout true: (.*)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("rank 0's all-reduce did not time out")
	}
	waited, _ := strconv.ParseFloat(m[1], 64)
	if waited < helperTimeout.Seconds() || waited > helperTimeout.Seconds()+3 {
		t.Errorf("rank 0 gave up after %.3fs, want %v (+3s slack)", waited, helperTimeout)
	}
	for _, s := range []string{"rank 0 of 2", "MPI_Iallreduce of 1000 float32", "did not complete within 2s", "abort the job"} {
		if !strings.Contains(m[2], s) {
			t.Errorf("timeout error %q lacks %q", m[2], s)
		}
	}
	m = regexp.MustCompile(`helper: rank 0: barrier after ([0-9.]+)s, timeout true: (.*)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("the barrier after the timeout did not fail with ErrTimeout")
	}
	if took, _ := strconv.ParseFloat(m[1], 64); took > 0.1 || !strings.Contains(m[2], "MPI_Ibarrier not started") {
		t.Errorf("the barrier after the timeout took %ss: %s", m[1], m[2])
	}
	if !strings.Contains(out, "helper: rank 0: Finalize: mpi: MPI_Finalize not called") {
		t.Error("Finalize after the timeout did not refuse")
	}
	if n := strings.Count(out, "rank 0 of 2: helper: rank 0 aborts after the timeout"); n != 1 {
		t.Errorf("the abort message printed %d times, want once", n)
	}
}

// TestFaultPeerFinalizesEarly: rank 1 returns before the all-reduce
// (Finalize, exit 0); rank 0 times out, and its Abort ends the job.
func TestFaultPeerFinalizesEarly(t *testing.T) {
	out, err, _ := runJob(t, "finalize")
	if err == nil {
		t.Error("mpirun succeeded after rank 0 aborted")
	}
	checkRank0TimedOut(t, out)
}

// TestCleanEnd: both ranks Finalize, collectives after it refuse, and the
// job succeeds.
func TestCleanEnd(t *testing.T) {
	out, err, _ := runJob(t, "clean")
	if err != nil {
		t.Errorf("mpirun: %v", err)
	}
	for r := 0; r < 2; r++ {
		for _, s := range []string{
			fmt.Sprintf("helper: rank %d: Finalize: <nil>", r),
			fmt.Sprintf("helper: rank %d: Barrier after Finalize: mpi: MPI_Ibarrier called after Finalize", r),
		} {
			if !strings.Contains(out, s) {
				t.Errorf("no line %q", s)
			}
		}
	}
}

// TestFaultPeerHangs: rank 1 stays alive but never joins; rank 0 times out
// and its Abort ends rank 1 too, long before rank 1's 2-minute sleep.
func TestFaultPeerHangs(t *testing.T) {
	out, err, took := runJob(t, "hang")
	if err == nil {
		t.Error("mpirun succeeded after rank 0 aborted")
	}
	checkRank0TimedOut(t, out)
	if took > time.Minute {
		t.Errorf("the job took %v: MPI_Abort did not end the hung rank", took)
	}
}

// TestFaultPeerDies: rank 1 exits 7 without Finalize. Open MPI's mpirun
// then ends rank 0 itself; with a launcher that does not, rank 0 times out
// as above. Either way the job ends, and fails.
func TestFaultPeerDies(t *testing.T) {
	_, err, took := runJob(t, "exit")
	if err == nil {
		t.Error("mpirun succeeded after rank 1 died")
	}
	if took > time.Minute {
		t.Errorf("the job took %v after a rank died", took)
	}
}

// TestFaultAbortInterruptsWait: Abort from another goroutine ends a job
// whose collective waits with no timeout, and prints one message.
func TestFaultAbortInterruptsWait(t *testing.T) {
	out, err, took := runJob(t, "abort")
	if err == nil {
		t.Error("mpirun succeeded after rank 1 aborted")
	}
	if took > time.Minute {
		t.Errorf("the job took %v after Abort", took)
	}
	if n := strings.Count(out, "rank 1 of 2: helper: rank 1 aborts"); n != 1 {
		t.Errorf("the abort message printed %d times, want once", n)
	}
}

// TestGoSignalsAfterInit: a nil dereference is still a Go panic after
// MPI_Init, whose library may install its own SIGSEGV handler (vk_init
// puts Go's back; Open MPI 4 leaves Go's alone, so the list logged is
// empty with it).
func TestGoSignalsAfterInit(t *testing.T) {
	if b, ok := testWorld.b.(*binding); ok {
		t.Logf("handlers MPI_Init replaced and vk_init put back: signals %v", signalList(b.restored))
	}
	var p *int
	err := func() (err error) {
		defer func() {
			if r, ok := recover().(runtime.Error); ok {
				err = r
			}
		}()
		return fmt.Errorf("read %d through a nil pointer", *p)
	}()
	if err == nil || !strings.Contains(err.Error(), "nil pointer") {
		t.Fatalf("nil dereference gave %v, want a runtime panic", err)
	}
}

func signalList(mask uint64) []int {
	var s []int
	for i := 0; i < 64; i++ {
		if mask&(1<<i) != 0 {
			s = append(s, i+1)
		}
	}
	return s
}

// TestAllreduceGradientSizes measures AllreduceSum of DCGAN gradient sizes on
// the job's ranks (docs/SCALE.md), when VKGAN_MPI_BENCH=1: a fixed count
// of calls on every rank (a benchmark's b.N could differ between ranks
// and deadlock), each after a barrier so that rank skew is not counted.
func TestAllreduceGradientSizes(t *testing.T) {
	if os.Getenv("VKGAN_MPI_BENCH") != "1" || testWorld.Size() < 2 {
		t.Skip("VKGAN_MPI_BENCH=1 under mpirun measures the all-reduce")
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"DCGAN-32 width 32", 538432}, {"DCGAN-64", 6342272}, {"DCGAN-128", 23950976}} {
		buf := make([]float32, c.n)
		const calls = 10
		var total time.Duration
		for range calls {
			if err := testWorld.Barrier(time.Minute); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			if err := testWorld.AllreduceSum(buf, time.Minute); err != nil {
				t.Fatal(err)
			}
			total += time.Since(t0)
		}
		per := total / calls
		t.Logf("rank %d: %s: %d bytes in %.2f ms (%.2f GB/s of buffer)", testWorld.Rank(), c.name, 4*c.n, per.Seconds()*1e3, float64(4*c.n)/per.Seconds()/1e9)
	}
}
