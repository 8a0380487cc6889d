package rundir

import (
	"fmt"

	"vkgan/internal/dirlock"
)

// Lock takes the run directory's lock (creating the directory if needed)
// for as long as the process holds it or until Release: one writer per
// run. A second process's Lock fails at once with an error that is
// dirlock.ErrLocked and names the holder's pid and command.
func Lock(dir string) (*dirlock.Lock, error) {
	l, err := dirlock.Acquire(dir)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return l, nil
}
