//go:build mpi

package mpi

/*
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Built reports whether this binary has the MPI binding (the tag mpi).
const Built = true

// abortGrace is how long Abort waits for MPI_Abort to end the process
// before exiting by itself: the MPI thread may be inside a blocking call
// (MPI_Finalize) that never returns to take the abort.
const abortGrace = 10 * time.Second

// binding runs every MPI call on one locked OS thread (see the package
// comment): calls go to it as closures and wait for them to finish.
type binding struct {
	calls  chan func() // to the MPI thread; closed by Finalize
	aborts chan int    // an exit code for the MPI thread's MPI_Abort

	finalized atomic.Bool
	aborting  atomic.Bool

	restored uint64 // signals whose handlers MPI_Init replaced and vk_init put back (bit s-1)

	mu         sync.Mutex // held by each call until it finishes; guards what follows
	rank, size int
	broken     error             // the first collective that timed out or failed
	stuck      []*runtime.Pinner // buffers of unfinished collectives, which MPI may still write
}

func startMPI() (*World, error) {
	b := &binding{calls: make(chan func()), aborts: make(chan int, 1)}
	type started struct {
		w   C.vk_world
		err error
	}
	ready := make(chan started, 1)
	go func() {
		// Never unlocked: this is MPI's main thread for the life of the
		// process, and Go ends the thread when this goroutine returns.
		runtime.LockOSThread()
		var w C.vk_world
		if rc := C.vk_init(&w); rc != C.VK_OK {
			ready <- started{err: mpiError(C.GoString(w.call), rc)}
			return
		}
		ready <- started{w: w}
		b.serve()
	}()
	s := <-ready
	if s.err != nil {
		return nil, s.err
	}
	b.rank, b.size = int(s.w.rank), int(s.w.size)
	b.restored = uint64(s.w.restored)
	return &World{
		rank: b.rank, size: b.size,
		localRank: int(s.w.local_rank), localSize: int(s.w.local_size),
		b: b,
	}, nil
}

// serve is the MPI thread's loop. A pending abort goes before any call.
func (b *binding) serve() {
	for {
		select {
		case code := <-b.aborts:
			b.abortHere(code)
		default:
		}
		select {
		case code := <-b.aborts:
			b.abortHere(code)
		case f, ok := <-b.calls:
			if !ok {
				return
			}
			f()
		}
	}
}

func (b *binding) abortHere(code int) {
	C.vk_abort(C.int(code))
	os.Exit(code) // MPI_Abort returned, which it should not
}

// do runs f on the MPI thread, unless the world can no longer take calls.
func (b *binding) do(call string, f func() error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.aborting.Load():
		return fmt.Errorf("mpi: %s not started: the job is aborting", call)
	case b.finalized.Load():
		return fmt.Errorf("mpi: %s called after Finalize", call)
	case b.broken != nil:
		return fmt.Errorf("mpi: %s not started: an earlier collective failed: %w", call, b.broken)
	}
	done := make(chan error, 1)
	b.calls <- func() { done <- f() }
	return <-done
}

// collective runs one polling collective on the MPI thread. c gets the
// timeout in seconds (0: none) and where to name a failing MPI call.
func (b *binding) collective(call, what string, p unsafe.Pointer, timeout time.Duration, c func(timeout C.double, failed **C.char) C.int) error {
	return b.do(call, func() error {
		// MPI keeps p while the call runs, and after it if the call does not
		// finish: pinned, the buffer cannot move or be freed under it.
		pin := new(runtime.Pinner)
		if p != nil {
			pin.Pin(p)
		}
		secs := 0.0
		if timeout > 0 {
			secs = timeout.Seconds()
		}
		start := time.Now()
		var failed *C.char
		rc := c(C.double(secs), &failed)
		if rc == C.VK_OK {
			pin.Unpin()
			return nil
		}
		// Unfinished: the request may still write p, and the ranks are out
		// of step, so no later collective or MPI_Finalize may start.
		b.stuck = append(b.stuck, pin)
		var err error
		switch rc {
		case C.VK_TIMEOUT:
			err = &TimeoutError{Call: call, What: what, Rank: b.rank, Size: b.size, Timeout: timeout, Waited: time.Since(start)}
		case C.VK_ABORTED:
			err = fmt.Errorf("mpi: %s of %s abandoned: the job is aborting", call, what)
		default:
			err = mpiError(C.GoString(failed), rc)
		}
		b.broken = err
		return err
	})
}

func (b *binding) allreduceSum(p unsafe.Pointer, n int, t dtype, timeout time.Duration) error {
	return b.collective("MPI_Iallreduce", fmt.Sprintf("%d %v", n, t), p, timeout, func(secs C.double, failed **C.char) C.int {
		return C.vk_allreduce_sum(p, C.int64_t(n), C.int(t), secs, failed)
	})
}

func (b *binding) bcast(p unsafe.Pointer, n int, t dtype, root int, timeout time.Duration) error {
	return b.collective("MPI_Ibcast", fmt.Sprintf("%d %v from rank %d", n, t, root), p, timeout, func(secs C.double, failed **C.char) C.int {
		return C.vk_bcast(p, C.int64_t(n), C.int(t), C.int(root), secs, failed)
	})
}

func (b *binding) barrier(timeout time.Duration) error {
	return b.collective("MPI_Ibarrier", "the world", nil, timeout, func(secs C.double, failed **C.char) C.int {
		return C.vk_barrier(secs, failed)
	})
}

func (b *binding) finalize() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.finalized.Load():
		return nil
	case b.aborting.Load():
		return fmt.Errorf("mpi: MPI_Finalize not called: the job is aborting")
	case b.broken != nil:
		return fmt.Errorf("mpi: MPI_Finalize not called, it would wait for the unfinished collective; abort instead: %w", b.broken)
	}
	done := make(chan error, 1)
	b.calls <- func() {
		if rc := C.vk_finalize(); rc != C.VK_OK {
			done <- mpiError("MPI_Finalize", rc)
			return
		}
		done <- nil
	}
	err := <-done
	b.finalized.Store(true)
	close(b.calls)
	return err
}

func (b *binding) abort(code int) {
	b.aborting.Store(true)
	if b.finalized.Load() {
		return // no MPI left to abort; World.Abort exits
	}
	C.vk_request_abort() // stops a waiting collective; touches no MPI state
	select {
	case b.aborts <- code:
	default: // another Abort got there first
	}
	time.Sleep(abortGrace)
}

// mpiError describes code with MPI_Error_string. It runs on the MPI thread.
func mpiError(call string, code C.int) error {
	var buf [512]C.char
	C.vk_error_string(code, &buf[0], C.int(len(buf)))
	return &Error{Call: call, Code: int(code), Msg: C.GoString(&buf[0])}
}
