package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMaxout checks forward and backward exactly against the reference,
// with ties (the first maximal piece takes the gradient), through the q4
// variants (rows % 4 == 0, pieces <= 16) and the scalar kernels, then the
// backward by finite differences.
func TestMaxout(t *testing.T) {
	for _, scalar := range []bool{false, true} {
		forceScalarMaxout = scalar
		testMaxout(t)
	}
	forceScalarMaxout = false
}

func testMaxout(t *testing.T) {
	d := newTestDevice(t)
	for _, c := range []struct{ n, u, p int }{{3, 4, 5}, {7, 1, 1}, {2, 200, 5}, {5, 3, 2}, {4, 3, 16}, {4, 2, 17}, {8, 1, 3}} {
		rng := newRand(uint64(c.n*1000 + c.u*10 + c.p))
		xs := randSlice(rng, c.n*c.u*c.p)
		for i := 0; i < c.n*c.u && c.p > 1; i += 3 { // a tie for the maximum
			xs[i*c.p], xs[i*c.p+c.p-1] = 10, 10
		}
		dys := randSlice(rng, c.n*c.u)
		x := tensorOf(t, d, xs, c.n, c.u*c.p)
		dy := tensorOf(t, d, dys, c.n, c.u)
		y := zeros(t, d, c.n, c.u)
		dx := zeros(t, d, c.n, c.u*c.p)
		run(t, d, func(r *Recorder) error {
			r.Maxout(y, x, c.p)
			r.MaxoutBackward(dx, dy, x, c.p)
			return r.Err()
		})
		wantY := make([]float64, c.n*c.u)
		wantDX := make([]float64, len(xs))
		for i := range wantY {
			arg := 0
			for j := 1; j < c.p; j++ {
				if xs[i*c.p+j] > xs[i*c.p+arg] {
					arg = j
				}
			}
			wantY[i] = float64(xs[i*c.p+arg])
			wantDX[i*c.p+arg] = float64(dys[i])
		}
		assertClose(t, "maxout y", wantY, download(t, y), 0, 0)
		assertClose(t, "maxout dx", wantDX, download(t, dx), 0, 0)

		// Finite differences of L = sum(dy*y) in float64 on the device's
		// inputs: away from ties, dL/dx is the backward's dx.
		got := download(t, dx)
		const h = 1e-4
		for i := range xs {
			if nearTie(xs[i/c.p*c.p:i/c.p*c.p+c.p], 2*h) {
				continue // the max switches pieces inside the step
			}
			f := func(delta float64) float64 {
				L := 0.0
				for k := 0; k < c.n*c.u; k++ {
					m := math.Inf(-1)
					for j := 0; j < c.p; j++ {
						v := float64(xs[k*c.p+j])
						if k*c.p+j == i {
							v += delta
						}
						m = math.Max(m, v)
					}
					L += float64(dys[k]) * m
				}
				return L
			}
			fd := (f(h) - f(-h)) / (2 * h)
			require.InDelta(t, fd, float64(got[i]), 1e-6, "dx[%d]", i)
		}
	}
}

func TestMaxoutErrors(t *testing.T) {
	d := newTestDevice(t)
	x := zeros(t, d, 2, 10)
	y := zeros(t, d, 2, 3)
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	require.Error(t, r.Maxout(y, x, 5))
	require.Error(t, r.Maxout(y, x, 0))
	require.Error(t, r.MaxoutBackward(x, y, x, 5))
}

// nearTie reports whether the two largest values of v are within gap.
func nearTie(v []float32, gap float64) bool {
	for i := range v {
		for j := range v {
			if i != j && math.Abs(float64(v[i]-v[j])) < gap && v[i] >= maxOf(v)-float32(gap) {
				return true
			}
		}
	}
	return false
}

func maxOf(v []float32) float32 {
	m := v[0]
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
