//go:build !mpi

package mpi

import "errors"

// Built reports whether this binary has the MPI binding (the tag mpi).
const Built = false

// startMPI is unreachable here: initWith refuses launches before it.
func startMPI() (*World, error) {
	return nil, errors.New("mpi: built without MPI; build with `make build-mpi`")
}
