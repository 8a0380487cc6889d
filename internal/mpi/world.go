// Package mpi is vkgan's binding to MPI for data-parallel training: a job of
// N processes (ranks), started by mpirun or Slurm's srun, that all-reduces
// gradients and broadcasts weights.
//
// Built with the tag mpi it calls the MPI C library through cgo (make
// build-mpi supplies the flags). Without the tag it is pure Go and every
// World is a single process: Rank 0, Size 1, collectives change nothing. Both
// builds have the same API, so callers need no build tags of their own.
//
// # Threads
//
// MPI is initialised with MPI_THREAD_FUNNELED: only the thread that called
// MPI_Init_thread may make MPI calls. Go moves goroutines between OS threads,
// so this package starts one goroutine locked to its own OS thread, makes the
// MPI_Init_thread call there and runs every later MPI call on it. Callers
// therefore need no runtime.LockOSThread and may call any method from any
// goroutine. Calls are serialised in arrival order, and collectives must be
// issued in the same order on every rank, so issue them from one goroutine
// (the training loop's).
//
// # Faults
//
// Every collective takes a timeout and polls a non-blocking MPI call until
// it completes or the timeout passes, so a rank that died or hung cannot
// hold the others forever: they get a *TimeoutError naming the call and the
// wait, and should then call Abort, which ends every rank of the job. After a
// timeout the World is broken (MPI may still write into the buffer of the
// unfinished call, which stays pinned): every later collective and Finalize
// fail at once.
package mpi

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// World is this process's place in the job: MPI_COMM_WORLD, or a single
// process when MPI is not in use.
type World struct {
	rank, size           int
	localRank, localSize int
	b                    backend // nil: a single process without MPI
}

// backend is the MPI binding; only the mpi build has one. Pointers are to
// the first element of a Go slice of n elements (nil when n is 0).
type backend interface {
	allreduceSum(p unsafe.Pointer, n int, t dtype, timeout time.Duration) error
	bcast(p unsafe.Pointer, n int, t dtype, root int, timeout time.Duration) error
	barrier(timeout time.Duration) error
	finalize() error
	// abort ends the job with code; it returns only if MPI could not.
	abort(code int)
}

// dtype is an element type the collectives carry.
type dtype int

const (
	float32Type dtype = iota
	float64Type
	byteType
)

func (t dtype) String() string {
	switch t {
	case float32Type:
		return "float32"
	case float64Type:
		return "float64"
	case byteType:
		return "byte"
	}
	return "dtype(" + strconv.Itoa(int(t)) + ")"
}

// ErrTimeout is matched (errors.Is) by every error that comes from a
// collective timing out, including the errors of calls refused afterwards.
var ErrTimeout = errors.New("mpi: collective timed out")

// TimeoutError says which collective waited how long before giving up.
type TimeoutError struct {
	Call       string        // "MPI_Iallreduce"
	What       string        // "3500000 float32"
	Rank, Size int           // this process's rank, and the world size
	Timeout    time.Duration // the limit the caller gave
	Waited     time.Duration // measured from the call to giving up
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("mpi: rank %d of %d: %s of %s did not complete within %v (waited %.2fs): another rank died, hung or skipped it; abort the job",
		e.Rank, e.Size, e.Call, e.What, e.Timeout, e.Waited.Seconds())
}

// Is makes errors.Is(err, ErrTimeout) true.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Error is a failed MPI call with the library's own description.
type Error struct {
	Call string // "MPI_Iallreduce"
	Code int    // the MPI error code
	Msg  string // MPI_Error_string's text
}

func (e *Error) Error() string {
	return fmt.Sprintf("mpi: %s failed: %s (MPI error %d)", e.Call, e.Msg, e.Code)
}

// initialised makes a second Init an error: MPI initialises once per process.
var initialised atomic.Bool

// Init joins the job. Started by an MPI launcher (see launchVars) in the mpi
// build, it initialises MPI; otherwise it returns a single-process World
// (Enabled false), so a plain ./vkgan runs as before. The build without MPI
// refuses a launch of more than one rank, since each rank would train alone.
// Call it once, early in main, and Finalize (or Abort) before exiting.
func Init() (*World, error) {
	if !initialised.CompareAndSwap(false, true) {
		return nil, errors.New("mpi: Init called twice (MPI initialises once per process)")
	}
	return initWith(os.Getenv)
}

// initWith is Init with the environment as a function, for tests.
func initWith(getenv func(string) string) (*World, error) {
	l, launched := detectLaunch(getenv)
	if !launched {
		return single(), nil
	}
	if !Built {
		if l.size == 1 && l.rank == 0 {
			return single(), nil // mpirun -np 1: one process is exactly right
		}
		return nil, fmt.Errorf("mpi: started by an MPI launcher as %s (%s), but this vkgan was built without MPI, so each rank would train alone; build it with `make build-mpi`, or run it without mpirun/srun", l.describe(), l.by)
	}
	return startMPI()
}

func single() *World { return &World{size: 1, localSize: 1} }

// launch is what an MPI launcher told this process through its environment.
type launch struct {
	by         string // the variables read, "OMPI_COMM_WORLD_SIZE=2"
	rank, size int    // size -1: not told
}

func (l launch) describe() string {
	if l.size < 0 {
		return fmt.Sprintf("rank %d of an unknown number", l.rank)
	}
	return fmt.Sprintf("rank %d of %d", l.rank, l.size)
}

// launchVars are the launchers' variables, rank and size, in the order they
// are trusted: Open MPI's mpirun; MPICH's and Intel MPI's Hydra and Slurm's
// pmi2 plugin; PMIx (Open MPI 5, Slurm's pmix plugin), which gives no size.
var launchVars = [][2]string{
	{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
	{"PMI_RANK", "PMI_SIZE"},
	{"PMIX_RANK", ""},
}

// detectLaunch reads the launcher's variables without calling MPI, which
// the build without MPI cannot and a plain run must not.
func detectLaunch(getenv func(string) string) (launch, bool) {
	for _, v := range launchVars {
		rs, ss := getenv(v[0]), ""
		if v[1] != "" {
			ss = getenv(v[1])
		}
		if rs == "" && ss == "" {
			continue
		}
		l := launch{rank: -1, size: -1}
		by := ""
		if rs != "" {
			by = v[0] + "=" + rs
			if r, err := strconv.Atoi(rs); err == nil {
				l.rank = r
			}
		}
		if ss != "" {
			if by != "" {
				by += " "
			}
			by += v[1] + "=" + ss
			if s, err := strconv.Atoi(ss); err == nil {
				l.size = s
			}
		}
		l.by = by
		return l, true
	}
	return launch{}, false
}

// Rank is this process's rank in the world, 0 to Size-1.
func (w *World) Rank() int { return w.rank }

// Size is the number of ranks; 1 without MPI.
func (w *World) Size() int { return w.size }

// LocalRank is the rank among the ranks on this machine (those that share
// memory, MPI_COMM_TYPE_SHARED), in world-rank order: the index of the
// device this rank should take by default.
func (w *World) LocalRank() int { return w.localRank }

// LocalSize is the number of ranks on this machine.
func (w *World) LocalSize() int { return w.localSize }

// Enabled reports whether MPI was initialised: the mpi build started by a
// launcher. When false, the World is one process and the collectives are
// identities.
func (w *World) Enabled() bool { return w.b != nil }

// Finalize ends MPI (MPI_Finalize). It is a no-op without MPI and on a
// second call. It fails without calling MPI after a collective timed out,
// since MPI_Finalize would wait for that call: Abort instead.
func (w *World) Finalize() error {
	if w.b == nil {
		return nil
	}
	return w.b.finalize()
}

// AllreduceSum replaces buf on every rank by the element-wise sum of all
// ranks' buf (MPI_Iallreduce, MPI_IN_PLACE). Every rank must pass the same
// length. A timeout of 0 or less waits forever.
func (w *World) AllreduceSum(buf []float32, timeout time.Duration) error {
	if w.b == nil {
		return nil
	}
	return w.b.allreduceSum(first(buf), len(buf), float32Type, timeout)
}

// AllreduceSumFloat64 is AllreduceSum for float64.
func (w *World) AllreduceSumFloat64(buf []float64, timeout time.Duration) error {
	if w.b == nil {
		return nil
	}
	return w.b.allreduceSum(first(buf), len(buf), float64Type, timeout)
}

// Bcast copies root's buf into every other rank's buf (MPI_Ibcast). Every
// rank must pass the same length: broadcast the length first when only root
// knows it. A timeout of 0 or less waits forever.
func (w *World) Bcast(buf []byte, root int, timeout time.Duration) error {
	if err := w.checkRoot("Bcast", root); err != nil || w.b == nil {
		return err
	}
	return w.b.bcast(first(buf), len(buf), byteType, root, timeout)
}

// BcastFloat32 is Bcast for float32.
func (w *World) BcastFloat32(buf []float32, root int, timeout time.Duration) error {
	if err := w.checkRoot("BcastFloat32", root); err != nil || w.b == nil {
		return err
	}
	return w.b.bcast(first(buf), len(buf), float32Type, root, timeout)
}

// Barrier returns once every rank has called it (MPI_Ibarrier). A timeout
// of 0 or less waits forever.
func (w *World) Barrier(timeout time.Duration) error {
	if w.b == nil {
		return nil
	}
	return w.b.barrier(timeout)
}

func (w *World) checkRoot(call string, root int) error {
	if root < 0 || root >= w.size {
		return fmt.Errorf("mpi: %s: root %d out of range for %d ranks", call, root, w.size)
	}
	return nil
}

// first is the address of s's first element, nil for an empty s.
func first[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

// abortPrint makes Abort print one message per process, whoever calls it.
var abortPrint sync.Once

// Abort prints msg to stderr (once per process, prefixed with the rank when
// there are several) and ends every rank of the job with exit code code
// (MPI_Abort); without MPI it exits this process. It does not return and
// may be called from any goroutine, even while a collective is waiting.
func (w *World) Abort(code int, msg string) {
	abortPrint.Do(func() {
		if w.size > 1 {
			msg = fmt.Sprintf("rank %d of %d: %s", w.rank, w.size, msg)
		}
		fmt.Fprintln(os.Stderr, msg)
	})
	if w.b != nil {
		w.b.abort(code)
	}
	os.Exit(code)
}
