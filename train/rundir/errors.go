package rundir

import (
	"errors"
)

// ErrNonFinite is returned when a loss becomes NaN or infinite, and by
// SaveCheckpoint for a state that holds NaN or infinity: a diverged state
// never replaces a good checkpoint.
var ErrNonFinite = errors.New("train: non-finite loss")

// ErrNotRunDir marks a directory that holds something other than a run,
// which a new run refuses (CheckNew).
var ErrNotRunDir = errors.New("train: not a run directory")
