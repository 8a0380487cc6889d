package rundir

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
)

// The sample grids of a run (samples/step_NNNNNNN.png): SampleCount images
// from FixedNoise, SampleCols to a row.
const (
	SampleCount = 64
	SampleCols  = 8
)

// SamplePath is the file of the sample grid of a step in run directory dir:
// samples/step_NNNNNNN.png, zero-padded so names sort by step.
func SamplePath(dir string, step int) string {
	return filepath.Join(dir, SamplesDir, fmt.Sprintf("step_%07d.png", step))
}

// FixedNoise is the latent batch of the run's sample grids: the same for
// every grid of a run (and for `vkgan sample` with the run's seed).
func FixedNoise(seed uint64, n, nz int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc908))
	z := make([]float32, n*nz)
	for i := range z {
		z[i] = float32(rng.NormFloat64())
	}
	return z
}
