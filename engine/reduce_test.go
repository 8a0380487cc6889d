package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSumMean(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(7)
	for _, tc := range []struct {
		name string
		n    int
		gen  func(i int) float32
	}{
		{"one", 1, func(int) float32 { return 3.5 }},
		{"prime", 13, func(int) float32 { return float32(rng.Float64()*2 - 1) }},
		{"positive 1M", 1000003, func(int) float32 { return float32(rng.Float64()) }},
		// 0.1 repeated is the classic case a serial fp32 loop gets wrong
		// by ~1e-3 relative.
		{"constant 1M", 1 << 20, func(int) float32 { return 0.1 }},
		{"mixed 1M", 1000000, func(int) float32 { return float32(rng.Float64()*2 - 1) }},
	} {
		xv := make([]float32, tc.n)
		want, abs := 0.0, 0.0
		for i := range xv {
			xv[i] = tc.gen(i)
			want += float64(xv[i])
			abs += math.Abs(float64(xv[i]))
		}
		x := tensorOf(t, d, xv, tc.n)
		sum, mean := zeros(t, d, 1), zeros(t, d, 1)
		run(t, d, func(r *Recorder) error {
			if err := r.Sum(sum, x); err != nil {
				return err
			}
			return r.Mean(mean, x)
		})
		// Relative 1e-6 of the sum of magnitudes: that is the asked-for
		// relative 1e-5 of the sum for same-sign data, with margin, and a
		// meaningful bound when signs cancel.
		tol := 1e-6 * abs
		got := float64(download(t, sum)[0])
		require.InDelta(t, want, got, tol, "%s: sum", tc.name)
		gotMean := float64(download(t, mean)[0])
		require.InDelta(t, want/float64(tc.n), gotMean, tol/float64(tc.n)+1e-12, "%s: mean", tc.name)
	}
}

func TestReduceBadInput(t *testing.T) {
	d := newTestDevice(t)
	x, two := zeros(t, d, 5), zeros(t, d, 2)
	for name, fn := range map[string]func(r *Recorder) error{
		"sum nil x":    func(r *Recorder) error { return r.Sum(two, nil) },
		"sum nil out":  func(r *Recorder) error { return r.Sum(nil, x) },
		"sum out 2":    func(r *Recorder) error { return r.Sum(two, x) },
		"mean nil x":   func(r *Recorder) error { return r.Mean(two, nil) },
		"mean out 2":   func(r *Recorder) error { return r.Mean(two, x) },
		"mean nil out": func(r *Recorder) error { return r.Mean(nil, x) },
	} {
		rec, err := d.Record()
		require.NoError(t, err)
		require.Error(t, fn(rec), name)
		rec.Release()
	}
}
