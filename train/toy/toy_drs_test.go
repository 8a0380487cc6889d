package toy

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// With D's logit equal to log(p_data / p_G), the kept points follow
// p_data: G puts half its mass on each of two points, the data 80% and
// 20%, so the kept shares must be 80/20 (not G's 50/50).
func TestRejectionSampleRecoversDataShares(t *testing.T) {
	const n = 40000
	xy := make([]float32, 0, 2*n)
	logits := make([]float32, 0, n)
	for i := 0; i < n; i++ {
		a := i%2 == 0
		if a {
			xy = append(xy, 1, 0)
			logits = append(logits, float32(math.Log(0.8/0.5)))
		} else {
			xy = append(xy, -1, 0)
			logits = append(logits, float32(math.Log(0.2/0.5)))
		}
	}
	kept, maxLogit, err := rejectionSample(xy, logits, rand.New(rand.NewPCG(1, 2)))
	require.NoError(t, err)
	require.InDelta(t, math.Log(1.6), maxLogit, 1e-6)
	var onA int
	for i := 0; i < len(kept); i += 2 {
		if kept[i] > 0 {
			onA++
		}
	}
	share := float64(onA) / float64(len(kept)/2)
	require.InDelta(t, 0.8, share, 0.01, "share of the kept points on the data's heavy point")
	// Every A candidate is at the bound, so all are kept; B's at a quarter.
	require.Equal(t, n/2, onA)
	require.InDelta(t, n/8, len(kept)/2-onA, 300)
}

func TestRejectionSampleBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	_, _, err := rejectionSample([]float32{0, 0, 1}, []float32{0, 1}, rng)
	require.ErrorContains(t, err, "3 coordinates for 2 logits")
	_, _, err = rejectionSample([]float32{0, 0, 1, 1}, []float32{0, float32(math.NaN())}, rng)
	require.ErrorContains(t, err, "candidate 1 is NaN")
	_, _, err = rejectionSample([]float32{0, 0}, []float32{float32(math.Inf(1))}, rng)
	require.ErrorContains(t, err, "+Inf")
	kept, _, err := rejectionSample(nil, nil, rng)
	require.NoError(t, err)
	require.Empty(t, kept)
}
