package engine

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// Elementwise ops do one or two fp32 roundings per element against a float64
// reference: relative 1e-6 covers them.
const ewRtol = 1e-6

func TestScaleAxpy(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(1)
	for _, n := range []int{1, 7, 256, 1000003} {
		xv, yv := randSlice(rng, n), randSlice(rng, n)
		x := tensorOf(t, d, xv, n)
		y := tensorOf(t, d, yv, n)
		run(t, d, func(r *Recorder) error {
			if err := r.Axpy(y, x, -0.75); err != nil {
				return err
			}
			return r.Scale(x, 3)
		})
		wantY, wantX := make([]float64, n), make([]float64, n)
		for i := range wantY {
			wantY[i] = float64(yv[i]) - 0.75*float64(xv[i])
			wantX[i] = 3 * float64(xv[i])
		}
		assertClose(t, "axpy", wantY, download(t, y), ewRtol, 1e-7)
		assertClose(t, "scale", wantX, download(t, x), ewRtol, 0)
	}
}

func TestElementwiseBadInput(t *testing.T) {
	d := newTestDevice(t)
	a, b := zeros(t, d, 6), zeros(t, d, 7)
	nchw, bias3, bias4 := zeros(t, d, 2, 3, 4, 4), zeros(t, d, 3), zeros(t, d, 4)
	inf := float32(math.Inf(1))
	cases := map[string]func(r *Recorder) error{
		"scale nil":           func(r *Recorder) error { return r.Scale(nil, 1) },
		"scale inf":           func(r *Recorder) error { return r.Scale(a, inf) },
		"axpy len":            func(r *Recorder) error { return r.Axpy(a, b, 1) },
		"axpy nil":            func(r *Recorder) error { return r.Axpy(a, nil, 1) },
		"bias add rank 1":     func(r *Recorder) error { return r.BiasAdd(a, bias3) },
		"bias add channels":   func(r *Recorder) error { return r.BiasAdd(nchw, bias4) },
		"bias add nil":        func(r *Recorder) error { return r.BiasAdd(nil, bias3) },
		"bias grad channels":  func(r *Recorder) error { return r.BiasGrad(bias4, nchw) },
		"bias grad nil":       func(r *Recorder) error { return r.BiasGrad(nil, nchw) },
		"relu len":            func(r *Recorder) error { return r.ReLU(a, b) },
		"leaky nan slope":     func(r *Recorder) error { return r.LeakyReLU(a, a, float32(math.NaN())) },
		"tanh nil":            func(r *Recorder) error { return r.Tanh(nil, a) },
		"sigmoid len":         func(r *Recorder) error { return r.Sigmoid(b, a) },
		"relu backward len":   func(r *Recorder) error { return r.ReLUBackward(a, a, b) },
		"leaky backward len":  func(r *Recorder) error { return r.LeakyReLUBackward(a, b, a, 0.2) },
		"tanh backward nil":   func(r *Recorder) error { return r.TanhBackward(a, a, nil) },
		"sigmoid backward nl": func(r *Recorder) error { return r.SigmoidBackward(nil, a, a) },
	}
	for name, fn := range cases {
		rec, err := d.Record()
		require.NoError(t, err)
		require.Error(t, fn(rec), name)
		require.Error(t, rec.Submit(), name+": sticky error")
		rec.Release()
	}
}

// biasRef returns y + bias broadcast over dim 1 of shape, in float64.
func biasRef(y, bias []float32, shape []int) []float64 {
	c := shape[1]
	inner := len(y) / (shape[0] * c)
	out := make([]float64, len(y))
	for i := range y {
		out[i] = float64(y[i]) + float64(bias[(i/inner)%c])
	}
	return out
}

// On a CPU device {2,3,50,50} and {1,1,1000,1003} take the tree kernel and
// the rest the per-channel loop (see BiasGrad).
var biasShapes = [][]int{{1, 1}, {2, 3, 50, 50}, {3, 7}, {64, 1}, {1, 3, 1, 1}, {2, 3, 5, 7}, {5, 13, 4, 4}, {2, 2, 3, 3, 3}, {64, 128, 16, 16}, {1, 1, 1000, 1003}}

func TestBiasAdd(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(2)
	for _, shape := range biasShapes {
		n := 1
		for _, s := range shape {
			n *= s
		}
		yv, bv := randSlice(rng, n), randSlice(rng, shape[1])
		y := tensorOf(t, d, yv, shape...)
		bias := tensorOf(t, d, bv, shape[1])
		run(t, d, func(r *Recorder) error { return r.BiasAdd(y, bias) })
		assertClose(t, "bias add", biasRef(yv, bv, shape), download(t, y), ewRtol, 1e-7)
	}
}

// biasGradRef sums dy over every dimension but 1, in float64, and returns
// the sums of |dy| per channel too (for the error bound).
func biasGradRef(dy []float32, shape []int) (sum, abs []float64) {
	c := shape[1]
	inner := len(dy) / (shape[0] * c)
	sum, abs = make([]float64, c), make([]float64, c)
	for i, v := range dy {
		ch := (i / inner) % c
		sum[ch] += float64(v)
		abs[ch] += math.Abs(float64(v))
	}
	return sum, abs
}

func TestBiasGrad(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(3)
	for _, shape := range biasShapes {
		n := 1
		for _, s := range shape {
			n *= s
		}
		dyv := randSlice(rng, n)
		dy := tensorOf(t, d, dyv, shape...)
		db := tensorOf(t, d, randSlice(rng, shape[1]), shape[1]) // overwritten
		run(t, d, func(r *Recorder) error { return r.BiasGrad(db, dy) })
		want, abs := biasGradRef(dyv, shape)
		got := download(t, db)
		for c := range want {
			// fp32 summation: a few ulps of the sum of magnitudes.
			if tol := 2e-7*abs[c] + 1e-7; math.Abs(float64(got[c])-want[c]) > tol {
				t.Errorf("%v: db[%d] = %g, want %g (tol %.3g)", shape, c, got[c], want[c], tol)
			}
		}
	}
}

// TestBiasGradFiniteDiff checks BiasGrad as the backward of BiasAdd: with
// L(b) = sum(biasAdd(y, b) * g), dL/db = BiasGrad(g).
func TestBiasGradFiniteDiff(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(4)
	shape := []int{3, 4, 2, 3}
	n := 3 * 4 * 2 * 3
	yv, bv, gv := randSlice(rng, n), randSlice(rng, 4), randSlice(rng, n)
	g := tensorOf(t, d, gv, shape...)
	db := zeros(t, d, 4)
	run(t, d, func(r *Recorder) error { return r.BiasGrad(db, g) })
	loss := func(b []float32) float64 {
		s := 0.0
		for i, v := range biasRef(yv, b, shape) {
			s += v * float64(gv[i])
		}
		return s
	}
	const h = 1e-2 // L is linear in b, so a large step is exact.
	fd := make([]float64, 4)
	for c := range fd {
		bp, bm := append([]float32(nil), bv...), append([]float32(nil), bv...)
		bp[c] += h
		bm[c] -= h
		fd[c] = (loss(bp) - loss(bm)) / (float64(bp[c]) - float64(bm[c]))
	}
	assertClose(t, "bias grad vs finite differences", fd, download(t, db), 1e-5, 1e-6)
}

// actRef is the float64 reference of each activation.
func actRef(op uint32, x, slope float64) float64 {
	switch op {
	case ewReLU:
		return math.Max(x, 0)
	case ewLeakyReLU:
		if x > 0 {
			return x
		}
		return slope * x
	case ewTanh:
		return math.Tanh(x)
	default:
		return 1 / (1 + math.Exp(-x))
	}
}

// actInputs mixes random values with the edge cases: zero, tiny values
// (tanh's series branch), the branch point 0.25 and |x| = 100.
func actInputs(rng interface{ Float64() float64 }, n int) []float32 {
	edge := []float32{0, 1e-7, -1e-7, 1e-3, -0.2499, 0.25, 0.2501, -0.25, 1, -1, 9, -9, 20, -20, 88, -88, 100, -100}
	out := make([]float32, n)
	for i := range out {
		if i < len(edge) {
			out[i] = edge[i]
		} else {
			out[i] = float32((rng.Float64()*2 - 1) * 6)
		}
	}
	return out
}

type ewAct struct {
	name string
	op   uint32
	fwd  func(r *Recorder, y, x *Tensor) error
	bwd  func(r *Recorder, dx, dy, v *Tensor) error
}

const ewSlope = 0.2

var ewActs = []ewAct{
	{"relu", ewReLU, (*Recorder).ReLU, (*Recorder).ReLUBackward},
	{"leaky", ewLeakyReLU,
		func(r *Recorder, y, x *Tensor) error { return r.LeakyReLU(y, x, ewSlope) },
		func(r *Recorder, dx, dy, x *Tensor) error { return r.LeakyReLUBackward(dx, dy, x, ewSlope) }},
	{"tanh", ewTanh, (*Recorder).Tanh, (*Recorder).TanhBackward},
	{"sigmoid", ewSigmoid, (*Recorder).Sigmoid, (*Recorder).SigmoidBackward},
}

// TestActivationForward covers odd lengths (one float per access) and even
// ones (the w2 kernels, two per 64-bit word).
func TestActivationForward(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(5)
	for _, a := range ewActs {
		for _, n := range []int{1, 13, 100003, 2, 100004} {
			xv := actInputs(rng, n)
			want := make([]float64, n)
			for i, v := range xv {
				want[i] = actRef(a.op, float64(v), ewSlope)
			}
			x := tensorOf(t, d, xv, n)
			y := zeros(t, d, n)
			inPlace := tensorOf(t, d, xv, n)
			run(t, d, func(r *Recorder) error {
				if err := a.fwd(r, y, x); err != nil {
					return err
				}
				return a.fwd(r, inPlace, inPlace)
			})
			// tanh and sigmoid go through exp: a few ulps (rtol 2e-6);
			// sigmoid(-88) ~ 6e-39 may flush to zero (atol 1e-30).
			assertClose(t, a.name, want, download(t, y), 2e-6, 1e-30)
			assertClose(t, a.name+" in place", want, download(t, inPlace), 2e-6, 1e-30)
		}
	}
}

// TestActivationBackward checks each backward kernel against central
// finite differences of the float64 forward, on L = sum(f(x) * g), at an
// odd length and an even one (the w2 kernels).
func TestActivationBackward(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(6)
	for _, n := range []int{301, 300} {
		for _, a := range ewActs {
			testActivationBackward(t, d, rng, a, n)
		}
	}
}

func testActivationBackward(t *testing.T, d *Device, rng *rand.Rand, a ewAct, n int) {
	xv, gv := make([]float32, n), randSlice(rng, n)
	for i := range xv {
		// Keep away from ReLU's kink, where the derivative jumps.
		v := (rng.Float64()*2 - 1) * 4
		if math.Abs(v) < 0.01 {
			v = 0.5
		}
		xv[i] = float32(v)
	}
	x := tensorOf(t, d, xv, n)
	y := zeros(t, d, n)
	dx := zeros(t, d, n)
	g := tensorOf(t, d, gv, n)
	gAlias := tensorOf(t, d, gv, n)
	v := x
	if a.op == ewTanh || a.op == ewSigmoid {
		v = y
	}
	run(t, d, func(r *Recorder) error {
		if err := a.fwd(r, y, x); err != nil {
			return err
		}
		if err := a.bwd(r, dx, g, v); err != nil {
			return err
		}
		return a.bwd(r, gAlias, gAlias, v) // dx aliasing dy
	})
	const h = 1e-3
	fd := make([]float64, n)
	for i := range fd {
		xi := float64(xv[i])
		fd[i] = (actRef(a.op, xi+h, ewSlope) - actRef(a.op, xi-h, ewSlope)) / (2 * h) * float64(gv[i])
	}
	// Central differences err by h^2 f'''/6 ~ 1e-7; the fp32 forward
	// output feeding tanh/sigmoid backward by ~1e-7 relative.
	assertClose(t, a.name+" backward", fd, download(t, dx), 1e-5, 1e-6)
	assertClose(t, a.name+" backward in place", fd, download(t, gAlias), 1e-5, 1e-6)
}
