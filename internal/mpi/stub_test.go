//go:build !mpi

package mpi

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "init" {
		// Init as vkgan's main would, in the environment the test gave.
		_, err := Init()
		fmt.Printf("helper: Init: %v\n", err)
		os.Exit(0)
	}
	w, err := Init()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	testWorld = w
	os.Exit(m.Run())
}

func TestStubRefusesLaunch(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string // "" : a single-process World
	}{
		{env: map[string]string{"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}, want: "rank 1 of 2 (OMPI_COMM_WORLD_RANK=1 OMPI_COMM_WORLD_SIZE=2)"},
		{env: map[string]string{"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"}, want: "rank 0 of 2"},
		{env: map[string]string{"PMI_RANK": "0", "PMI_SIZE": "8"}, want: "rank 0 of 8 (PMI_RANK=0 PMI_SIZE=8)"},
		{env: map[string]string{"PMIX_RANK": "0"}, want: "rank 0 of an unknown number (PMIX_RANK=0)"},
		// mpirun -np 1: the one process it asked for.
		{env: map[string]string{"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "1", "PMIX_RANK": "0"}},
		{env: map[string]string{}},
	} {
		w, err := initWith(func(k string) string { return c.env[k] })
		if c.want == "" {
			if err != nil || w.Size() != 1 || w.Enabled() {
				t.Errorf("%v: %v, want a single process", c.env, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%v: Init succeeded, want an error", c.env)
			continue
		}
		for _, s := range []string{c.want, "built without MPI", "make build-mpi"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%v: %q lacks %q", c.env, err, s)
			}
		}
	}
}

// TestStubRefusesMpirunEnv runs Init in a process whose environment looks
// like mpirun's rank 1 of 2, as vkgan's main would.
func TestStubRefusesMpirunEnv(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=init", "OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2", "PMIX_RANK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "make build-mpi") || !strings.Contains(string(out), "rank 1 of 2") {
		t.Fatalf("Init under mpirun's variables said:\n%s", out)
	}
}
