package mpi

// Tests for both builds. Under `mpirun -np 2` (make test-mpi) every rank
// runs them in the same order, so the collectives meet; run as one process
// they check the single-process World.

import (
	"errors"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testWorld is the World TestMain made, shared by every test: MPI
// initialises once per process.
var testWorld *World

// helperEnv makes the test binary a helper process (see TestMain).
const helperEnv = "VKGAN_MPI_TEST_HELPER"

// testTimeout is long because ranks share 2 busy cores; a lost rank still
// ends the test instead of hanging it.
const testTimeout = 60 * time.Second

func TestWorldShape(t *testing.T) {
	w := testWorld
	if w.Size() < 1 || w.Rank() < 0 || w.Rank() >= w.Size() {
		t.Fatalf("rank %d of %d", w.Rank(), w.Size())
	}
	if w.LocalSize() < 1 || w.LocalSize() > w.Size() || w.LocalRank() < 0 || w.LocalRank() >= w.LocalSize() {
		t.Fatalf("local rank %d of %d (world %d)", w.LocalRank(), w.LocalSize(), w.Size())
	}
	if !w.Enabled() && (w.Size() != 1 || w.Rank() != 0) {
		t.Fatalf("without MPI: rank %d of %d, want 0 of 1", w.Rank(), w.Size())
	}
	// make test-mpi says how many ranks it started: a launch this package
	// failed to see would otherwise pass as N single processes.
	if np := os.Getenv("VKGAN_MPI_TEST_NP"); np != "" && np != strconv.Itoa(w.Size()) {
		t.Fatalf("started with -np %s but Size is %d (launcher not detected?)", np, w.Size())
	}
	for _, c := range []struct {
		env  string
		got  int
		what string
	}{
		{"OMPI_COMM_WORLD_RANK", w.Rank(), "Rank"},
		{"OMPI_COMM_WORLD_SIZE", w.Size(), "Size"},
		{"OMPI_COMM_WORLD_LOCAL_RANK", w.LocalRank(), "LocalRank"},
		{"OMPI_COMM_WORLD_LOCAL_SIZE", w.LocalSize(), "LocalSize"},
	} {
		if v := os.Getenv(c.env); v != "" && v != strconv.Itoa(c.got) {
			t.Errorf("%s %d, but mpirun set %s=%s", c.what, c.got, c.env, v)
		}
	}
	// Every rank marks its own slot: the sum is all ones only when the
	// ranks are distinct and all take part.
	seen := make([]float32, w.Size())
	seen[w.Rank()] = 1
	if err := w.AllreduceSum(seen, testTimeout); err != nil {
		t.Fatal(err)
	}
	for r, v := range seen {
		if v != 1 {
			t.Fatalf("rank %d counted %v times: %v", r, v, seen)
		}
	}
}

// testValue is rank r's element i: small integers, so float32 sums over a
// few ranks are exact and can be compared with ==.
func testValue(i, r int) float32 { return float32((i*31 + r*977) % 4096) }

func TestAllreduceSum(t *testing.T) {
	w := testWorld
	for _, n := range []int{0, 1, 7, 1000, 65537, 3_000_001} {
		buf := make([]float32, n)
		for i := range buf {
			buf[i] = testValue(i, w.Rank())
		}
		if err := w.AllreduceSum(buf, testTimeout); err != nil {
			t.Fatalf("%d floats: %v", n, err)
		}
		for i, got := range buf {
			var want float32
			for r := 0; r < w.Size(); r++ {
				want += testValue(i, r)
			}
			if got != want {
				t.Fatalf("%d floats: element %d is %v, want %v", n, i, got, want)
			}
		}
	}
}

func TestAllreduceSumFloat64(t *testing.T) {
	w := testWorld
	// Past float32's 24 bits, still exact in float64.
	val := func(i, r int) float64 { return float64(1<<40) + float64(i*3+r) }
	buf := make([]float64, 100_003)
	for i := range buf {
		buf[i] = val(i, w.Rank())
	}
	if err := w.AllreduceSumFloat64(buf, testTimeout); err != nil {
		t.Fatal(err)
	}
	for i, got := range buf {
		var want float64
		for r := 0; r < w.Size(); r++ {
			want += val(i, r)
		}
		if got != want {
			t.Fatalf("element %d is %v, want %v", i, got, want)
		}
	}
}

func TestBcast(t *testing.T) {
	w := testWorld
	root := w.Size() - 1 // not rank 0 when there are several
	b := make([]byte, 100_003)
	for i := range b {
		b[i] = 0xAA
		if w.Rank() == root {
			b[i] = byte(i*13 + 5)
		}
	}
	if err := w.Bcast(b, root, testTimeout); err != nil {
		t.Fatal(err)
	}
	for i, got := range b {
		if want := byte(i*13 + 5); got != want {
			t.Fatalf("byte %d is %#x, want %#x (root %d)", i, got, want, root)
		}
	}

	f := make([]float32, 1_000_001)
	if w.Rank() == 0 {
		for i := range f {
			f[i] = float32(i) * 0.5
		}
	}
	if err := w.BcastFloat32(f, 0, testTimeout); err != nil {
		t.Fatal(err)
	}
	for i, got := range f {
		if want := float32(i) * 0.5; got != want {
			t.Fatalf("float %d is %v, want %v", i, got, want)
		}
	}
	if err := w.Bcast(nil, 0, testTimeout); err != nil {
		t.Fatalf("empty broadcast: %v", err)
	}
}

func TestBcastRootOutOfRange(t *testing.T) {
	w := testWorld
	// Refused before any MPI call, so the ranks stay in step.
	for _, root := range []int{-1, w.Size()} {
		err := w.Bcast(make([]byte, 4), root, testTimeout)
		if err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("root %d: %v, want an out of range error", root, err)
		}
	}
}

func TestBarrier(t *testing.T) {
	w := testWorld
	if err := w.Barrier(testTimeout); err != nil {
		t.Fatal(err)
	}
	// Rank 0 arrives late: the others must wait for it.
	const late = 300 * time.Millisecond
	if w.Rank() == 0 {
		time.Sleep(late)
	}
	start := time.Now()
	if err := w.Barrier(testTimeout); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); w.Rank() != 0 && waited < late*2/3 {
		t.Fatalf("rank %d left the barrier after %v, before rank 0 came (%v late)", w.Rank(), waited, late)
	}
}

// TestAllreduceTiming logs the time of one all-reduce of 3.5M floats (a
// DCGAN-64 discriminator's gradients are about that size); run with -v.
func TestAllreduceTiming(t *testing.T) {
	w := testWorld
	if !w.Enabled() {
		t.Skip("one process: nothing to time")
	}
	buf := make([]float32, 3_500_000)
	var times []time.Duration
	for i := 0; i < 11; i++ {
		if err := w.Barrier(testTimeout); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := w.AllreduceSum(buf, testTimeout); err != nil {
			t.Fatal(err)
		}
		if i > 0 { // the first warms up buffers and connections
			times = append(times, time.Since(start))
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	t.Logf("rank %d of %d: all-reduce of %d float32 (%.1f MB): min %v, median %v, max %v",
		w.Rank(), w.Size(), len(buf), float64(4*len(buf))/1e6, times[0], times[len(times)/2], times[len(times)-1])
}

func TestDetectLaunch(t *testing.T) {
	for _, c := range []struct {
		env        map[string]string
		launched   bool
		rank, size int
		by         string
	}{
		{env: nil},
		{env: map[string]string{"SLURM_PROCID": "0"}},
		{env: map[string]string{"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "PMIX_RANK": "1"},
			launched: true, rank: 1, size: 2, by: "OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=2"},
		{env: map[string]string{"PMI_RANK": "3", "PMI_SIZE": "4"}, launched: true, rank: 3, size: 4, by: "PMI_RANK=3 PMI_SIZE=4"},
		{env: map[string]string{"PMI_SIZE": "4"}, launched: true, rank: -1, size: 4, by: "PMI_SIZE=4"},
		{env: map[string]string{"PMIX_RANK": "0"}, launched: true, rank: 0, size: -1, by: "PMIX_RANK=0"},
	} {
		l, ok := detectLaunch(func(k string) string { return c.env[k] })
		if ok != c.launched || ok && (l.rank != c.rank || l.size != c.size || l.by != c.by) {
			t.Errorf("%v: launched %v %+v, want %v rank %d size %d by %q", c.env, ok, l, c.launched, c.rank, c.size, c.by)
		}
	}
}

func TestInitUnlaunchedIsSingleProcess(t *testing.T) {
	w, err := initWith(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if w.Enabled() || w.Rank() != 0 || w.Size() != 1 || w.LocalRank() != 0 || w.LocalSize() != 1 {
		t.Fatalf("got enabled %v rank %d/%d local %d/%d, want one process", w.Enabled(), w.Rank(), w.Size(), w.LocalRank(), w.LocalSize())
	}
	// Collectives are identities; Finalize does nothing, twice.
	buf := []float32{1, 2, 3}
	if err := w.AllreduceSum(buf, time.Second); err != nil || buf[0] != 1 || buf[2] != 3 {
		t.Fatalf("AllreduceSum: %v %v", buf, err)
	}
	if err := w.Bcast([]byte{1}, 0, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := w.Bcast([]byte{1}, 1, time.Second); err == nil {
		t.Fatal("Bcast from root 1 of 1 rank succeeded")
	}
	if err := w.Barrier(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
}

func TestInitTwice(t *testing.T) {
	if _, err := Init(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("second Init: %v, want an error", err)
	}
}

func TestTimeoutErrorMatches(t *testing.T) {
	err := error(&TimeoutError{Call: "MPI_Iallreduce", What: "10 float32", Rank: 0, Size: 2, Timeout: 2 * time.Second, Waited: 2001 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatal("TimeoutError does not match ErrTimeout")
	}
	want := "mpi: rank 0 of 2: MPI_Iallreduce of 10 float32 did not complete within 2s (waited 2.00s)"
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("%q\nwant prefix %q", err, want)
	}
}
