package train

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"vkgan/engine"
	"vkgan/internal/mpi"
	"vkgan/train/rundir"
)

// Environment of data-parallel runs.
const (
	// TimeoutEnv is how long a rank waits in a collective for the others
	// (a Go duration, "5m" by default) before it ends the job.
	TimeoutEnv = "VKGAN_MPI_TIMEOUT"
	// CheckEnv=1 compares every rank's weights with rank 0's, bit for bit,
	// after every step (a debug mode: it downloads all weights each step).
	CheckEnv = "VKGAN_MPI_CHECK"
	// TestStopEnv="RANK:STEP:exit" makes that rank exit (status 0, without
	// MPI_Finalize) after that step, "RANK:STEP:hang" makes it stop
	// responding: the fault tests' dead and hung ranks.
	TestStopEnv = "VKGAN_MPI_TEST_STOP"
	// defaultTimeout bounds a collective: far above a step's all-reduce,
	// short enough that a dead rank does not hold the job for long.
	defaultTimeout = 5 * time.Minute
	// setupTimeout bounds the wait for rank 0's setup, which may load and
	// decode a data set (or fetch the emoji set) first.
	setupTimeout = 30 * time.Minute
)

// job is a run's place in a data-parallel job: one process without MPI.
type job struct {
	w       *mpi.World
	timeout time.Duration
	check   bool
	// stopRank, stopStep, stopHow: TestStopEnv (stopStep 0: none).
	stopRank, stopStep int
	stopHow            string
	// Measured by reduce: the step's gradient all-reduces, for the report.
	reduceTime  time.Duration
	reduceBytes int64
}

func newJob(w *mpi.World) (*job, error) {
	j := &job{w: w, timeout: defaultTimeout, check: os.Getenv(CheckEnv) == "1"}
	if s := os.Getenv(TimeoutEnv); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("train: %s=%q: want a positive duration such as 5m", TimeoutEnv, s)
		}
		j.timeout = d
	}
	if s := os.Getenv(TestStopEnv); s != "" {
		parts := strings.Split(s, ":")
		ok := len(parts) == 3 && (parts[2] == "exit" || parts[2] == "hang")
		if ok {
			var e1, e2 error
			j.stopRank, e1 = strconv.Atoi(parts[0])
			j.stopStep, e2 = strconv.Atoi(parts[1])
			ok = e1 == nil && e2 == nil && j.stopStep > 0
		}
		if !ok {
			return nil, fmt.Errorf("train: %s=%q: want RANK:STEP:exit or RANK:STEP:hang", TestStopEnv, s)
		}
		j.stopHow = parts[2]
	}
	return j, nil
}

// testStop is TestStopEnv's fault, after step.
func (j *job) testStop(step int) {
	if j.stopStep != step || j.stopRank != j.rank() || j.ranks() == 1 {
		return
	}
	if j.stopHow == "exit" {
		os.Exit(0)
	}
	select {} // hang: the others must give up on their own
}

func (j *job) ranks() int {
	if j.w == nil {
		return 1
	}
	return j.w.Size()
}

func (j *job) rank() int {
	if j.w == nil {
		return 0
	}
	return j.w.Rank()
}

// lead reports whether this rank writes the run directory and logs.
func (j *job) lead() bool { return j.rank() == 0 }

// reduce sums buf over the ranks (the engine's Shard.Reduce).
func (j *job) reduce(buf []float32) error {
	t0 := time.Now()
	err := j.w.AllreduceSum(buf, j.timeout)
	j.reduceTime += time.Since(t0)
	j.reduceBytes += int64(4 * len(buf))
	return err
}

// bcast copies rank 0's buf to every rank.
func (j *job) bcast(buf []float32) error { return j.w.BcastFloat32(buf, 0, j.timeout) }

// shard is this rank's engine.Shard; the zero Shard in one process.
func (j *job) shard() engine.Shard {
	if j.ranks() == 1 {
		return engine.Shard{}
	}
	return engine.Shard{Rank: j.rank(), Size: j.ranks(), Reduce: j.reduce}
}

// startMsg is what rank 0 decides before training and the others follow.
type startMsg struct {
	Config  rundir.Config `json:"config"`
	Step    int           `json:"step"`
	Elapsed float64       `json:"elapsed"`
	Nothing bool          `json:"nothing"` // the run is finished: every rank exits
}

// share sends rank 0's s to every rank (a length, then JSON).
func (j *job) share(s *startMsg) error {
	var body []byte
	if j.lead() {
		var err error
		if body, err = json.Marshal(s); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(body)))
	if err := j.w.Bcast(n[:], 0, setupTimeout); err != nil {
		return fmt.Errorf("train: waiting for rank 0's setup: %w", err)
	}
	size := binary.LittleEndian.Uint64(n[:])
	if size > 64<<20 {
		return fmt.Errorf("train: rank 0 sent a setup of %d bytes", size)
	}
	if !j.lead() {
		body = make([]byte, size)
	}
	if err := j.w.Bcast(body, 0, j.timeout); err != nil {
		return fmt.Errorf("train: rank 0's setup: %w", err)
	}
	if !j.lead() {
		*s = startMsg{}
		if err := json.Unmarshal(body, s); err != nil {
			return fmt.Errorf("train: rank 0's setup: %w", err)
		}
	}
	return nil
}

// anyStop reports whether any rank wants to stop (Ctrl-C or -max-time on
// one of them), so that all stop after the same step: one tiny all-reduce
// per step.
func (j *job) anyStop(stop bool) (bool, error) {
	v := []float32{0}
	if stop {
		v[0] = 1
	}
	if err := j.w.AllreduceSum(v, j.timeout); err != nil {
		return false, fmt.Errorf("train: agreeing on a stop: %w", err)
	}
	return v[0] > 0, nil
}

// checkSame compares this rank's state with rank 0's by checksum
// (CheckEnv).
func (j *job) checkSame(gan *engine.GAN, step int) error {
	h, err := gan.Checksum()
	if err != nil {
		return err
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], h)
	if err := j.w.Bcast(b[:], 0, j.timeout); err != nil {
		return fmt.Errorf("train: %s: %w", CheckEnv, err)
	}
	if got := binary.LittleEndian.Uint64(b[:]); got != h {
		return fmt.Errorf("train: %s: after step %d rank %d's weights differ from rank 0's (checksum %016x, rank 0's %016x)", CheckEnv, step, j.rank(), h, got)
	}
	return nil
}

// deviceFor picks this rank's device selector from sel (the -device
// flag, else VKGAN_DEVICE) among devices: see pickDevice.
func (j *job) deviceFor(sel string, devices int) (string, error) {
	if j.ranks() == 1 {
		return sel, nil
	}
	return pickDevice(sel, os.Getenv("VKGAN_DEVICE"), j.w.LocalRank(), devices)
}

// pickDevice is the device selector of the rank with the given local rank
// (its index among the ranks on its machine) under mpirun: sel, else env,
// as a comma-separated list indexed by local rank (a single entry serves
// every rank), or when both are empty the device of index local rank,
// wrapping around when the machine has fewer devices than ranks (ranks
// then share devices).
func pickDevice(sel, env string, local, devices int) (string, error) {
	if sel == "" {
		sel = env
	}
	if sel == "" {
		if devices < 1 {
			return "", nil // Open reports the missing device
		}
		return strconv.Itoa(local % devices), nil
	}
	list := strings.Split(sel, ",")
	if len(list) == 1 {
		return sel, nil
	}
	if local >= len(list) {
		return "", fmt.Errorf("train: -device %q lists %d devices; local rank %d has none (give one per rank on each machine)", sel, len(list), local)
	}
	return strings.TrimSpace(list[local]), nil
}
