package viewer

import (
	"errors"
	"runtime"
)

// GLFW wants the main thread; this keeps the main goroutine on it.
func init() { runtime.LockOSThread() }

// ErrNoDisplay: there is no window system to open a window on.
var ErrNoDisplay = errors.New("viewer: no display")

// ExitError is a failure that asks for a particular process exit status
// (2 for no display, so scripts can tell it from a failed run).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }
