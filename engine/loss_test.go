package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// bceRef is the float64 mean binary cross-entropy with logits.
func bceRef(x, t []float64) float64 {
	var s float64
	for i, v := range x {
		s += math.Max(v, 0) - v*t[i] + math.Log1p(math.Exp(-math.Abs(v)))
	}
	return s / float64(len(x))
}

func TestBCEWithLogits(t *testing.T) {
	d := newTestDevice(t)
	large := []float32{1e4, -1e4, 100, -100, 30, -30, 17, -17, 0, 1e-3, -3e3, 88.7}
	for _, tc := range []struct {
		name   string
		logits []float32
		target float32 // <0: random targets tensor in [0,1]; else the constant
	}{
		{"n1", []float32{0.3}, -1},
		{"n7", nil, -1},
		{"n64", nil, -1},
		{"n1000", nil, -1},
		{"n64_const1", nil, 1},
		{"n64_const0", nil, 0},
		{"n13_const0.9", nil, 0.9},
		{"large", large, -1},
		{"large_const1", large, 1},
		{"large_const0", large, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := newRand(uint64(len(tc.name)) + 17)
			xs := tc.logits
			if xs == nil {
				var n int
				for _, c := range tc.name[1:] {
					if c < '0' || c > '9' {
						break
					}
					n = n*10 + int(c-'0')
				}
				xs = randSlice(rng, n)
				for i := range xs {
					xs[i] *= 6
				}
			}
			n := len(xs)
			ts := make([]float32, n)
			for i := range ts {
				if tc.target < 0 {
					ts[i] = float32(rng.Float64())
				} else {
					ts[i] = tc.target
				}
			}
			const scale = 2.5
			x, targ := tensorOf(t, d, xs, n), tensorOf(t, d, ts, n)
			loss, dx := zeros(t, d, 1), zeros(t, d, n)
			run(t, d, func(r *Recorder) error {
				if tc.target < 0 {
					if err := r.BCEWithLogits(loss, x, targ); err != nil {
						return err
					}
					return r.BCEWithLogitsBackward(dx, x, targ, scale)
				}
				if err := r.BCEWithLogitsConst(loss, x, tc.target); err != nil {
					return err
				}
				return r.BCEWithLogitsConstBackward(dx, x, tc.target, scale)
			})
			x64, t64 := to64(xs), to64(ts)
			want := bceRef(x64, t64)
			got := download(t, loss)[0]
			require.False(t, math.IsNaN(float64(got)) || math.IsInf(float64(got), 0), "loss %g", got)
			// Loss: relative 1e-5 plus absolute 1e-6 (log1p series and fp32 sums).
			assertClose(t, "loss", []float64{want}, []float32{got}, 1e-5, 1e-6)

			// Backward against central differences of scale*bceRef. With
			// |x| in the thousands h must stay relative to x.
			gotDx := download(t, dx)
			wantDx := make([]float64, n)
			for i := range x64 {
				old := x64[i]
				h := 1e-6 * math.Max(1, math.Abs(old))
				x64[i] = old + h
				lp := bceRef(x64, t64)
				x64[i] = old - h
				lm := bceRef(x64, t64)
				x64[i] = old
				wantDx[i] = scale * (lp - lm) / (2 * h)
			}
			// dx is O(scale/n); fp32 sigmoid error is ~1e-7 absolute, the
			// finite differences ~1e-7 relative to scale/n.
			assertClose(t, "dlogits", wantDx, gotDx, 1e-4, 1e-5*scale/float64(n))
		})
	}
}

func TestBCEWithLogitsBadInput(t *testing.T) {
	d := newTestDevice(t)
	x, t5, l1, l2 := zeros(t, d, 4), zeros(t, d, 5), zeros(t, d, 1), zeros(t, d, 2)
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	require.Error(t, r.BCEWithLogits(l1, x, nil), "nil targets")
	require.Error(t, r.BCEWithLogits(l1, x, t5), "targets size")
	require.Error(t, r.BCEWithLogits(l2, x, x), "loss size")
	require.Error(t, r.BCEWithLogits(nil, x, x), "nil loss")
	require.Error(t, r.BCEWithLogitsConst(l1, nil, 1), "nil logits")
	require.Error(t, r.BCEWithLogitsConst(l1, x, float32(math.NaN())), "NaN target")
	require.Error(t, r.BCEWithLogitsBackward(t5, x, x, 1), "dlogits size")
	require.Error(t, r.BCEWithLogitsBackward(x, x, nil, 1), "nil targets")
	require.Error(t, r.BCEWithLogitsConstBackward(x, x, 1, float32(math.Inf(1))), "scale")
	require.Error(t, r.Submit(), "sticky error")
}
