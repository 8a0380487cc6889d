package engine

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// marginFn is one term's per-logit loss f and its derivative in float64,
// written from the definitions rather than from the kernels' encoding.
// kink is where f' jumps (NaN: nowhere).
type marginFn struct {
	f, df func(x float64) float64
	kink  float64
}

var (
	hingeRealRef = marginFn{
		f:    func(x float64) float64 { return math.Max(1-x, 0) },
		df:   func(x float64) float64 { return step(1-x > 0) * -1 }, // relu'(0) = 0
		kink: 1,
	}
	hingeFakeRef = marginFn{
		f:    func(x float64) float64 { return math.Max(1+x, 0) },
		df:   func(x float64) float64 { return step(1+x > 0) },
		kink: -1,
	}
	hingeGenRef = marginFn{
		f:    func(x float64) float64 { return -x },
		df:   func(float64) float64 { return -1 },
		kink: math.NaN(),
	}
	lsOneRef = marginFn{
		f:    func(x float64) float64 { return (x - 1) * (x - 1) / 2 },
		df:   func(x float64) float64 { return x - 1 },
		kink: math.NaN(),
	}
	lsZeroRef = marginFn{
		f:    func(x float64) float64 { return x * x / 2 },
		df:   func(x float64) float64 { return x },
		kink: math.NaN(),
	}
)

func step(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// marginCase is a loss with its float64 reference per term.
type marginCase struct {
	name            string
	loss            Loss
	real, fake, gen marginFn
}

func (c marginCase) termRef(t LossTerm) marginFn {
	return map[LossTerm]marginFn{TermReal: c.real, TermFake: c.fake, TermGen: c.gen}[t]
}

func marginCases() []marginCase {
	return []marginCase{
		{name: "hinge", loss: HingeLoss{}, real: hingeRealRef, fake: hingeFakeRef, gen: hingeGenRef},
		{name: "ls", loss: LSLoss{}, real: lsOneRef, fake: lsZeroRef, gen: lsOneRef},
	}
}

// marginLogits returns n logits uniform in [-3, 3) with the hinge kinks,
// their float32 neighbours and 0 written over both ends (the front lands in
// a joint batch's real half, the back in its fake half).
func marginLogits(seed uint64, n int) []float32 {
	xs := randSlice(newRand(seed), n)
	for i := range xs {
		xs[i] *= 3
	}
	special := []float32{
		1, -1, 0,
		math.Nextafter32(1, 2), math.Nextafter32(1, 0),
		math.Nextafter32(-1, 0), math.Nextafter32(-1, -2),
	}
	for i, v := range special {
		if i < n {
			xs[i] = v
		}
		if n > 2*len(special) {
			xs[n-1-i] = v
		}
	}
	return xs
}

// marginRefLoss is scale times the mean of f_i(x_i), where element i
// uses real below split and fake from there on.
func marginRefLoss(x []float64, split int, real, fake marginFn, scale float64) float64 {
	var s float64
	for i, v := range x {
		fn := fake
		if i < split {
			fn = real
		}
		s += fn.f(v)
	}
	return scale * s / float64(len(x))
}

// marginCheckGrad compares the device's gradient with the analytic float64
// one everywhere (kinks included) and with central differences of the
// float64 loss away from the kinks. The losses are piecewise quadratic, so
// with h = 1e-3 the differences are exact up to rounding (~1e-13 relative).
// It returns the largest relative differences against each (against
// 1e-3*scale/n where the gradient is smaller).
func marginCheckGrad(t *testing.T, xs []float32, got []float32, split int, real, fake marginFn, scale float64) (analytic, fd float64) {
	t.Helper()
	n := len(xs)
	x := to64(xs)
	want := make([]float64, n)
	for i, v := range x {
		fn := fake
		if i < split {
			fn = real
		}
		want[i] = scale * fn.df(v) / float64(n)
	}
	// dlogits = k*f' with k = float32(scale/n): relative 1e-6 covers k's
	// rounding and x - c in float32; the zero at a kink must be exact
	// (atol 0 for the hinge: its slopes are 0 or ±k).
	assertClose(t, "dlogits", want, got, 1e-6, 0)
	analytic = maxRelDiff(want, got, 1e-3*scale/float64(n))

	const h = 1e-3
	var fdWant []float64
	var fdGot []float32
	for i, v := range x {
		fn := fake
		if i < split {
			fn = real
		}
		if math.Abs(v-fn.kink) <= 2*h {
			continue // not differentiable here; checked analytically above
		}
		x[i] = v + h
		lp := marginRefLoss(x, split, real, fake, scale)
		x[i] = v - h
		lm := marginRefLoss(x, split, real, fake, scale)
		x[i] = v
		fdWant = append(fdWant, (lp-lm)/(2*h))
		fdGot = append(fdGot, got[i])
	}
	// The gradient is O(scale/n): relative 1e-5 plus 1e-9 absolute.
	assertClose(t, "dlogits vs finite differences", fdWant, fdGot, 1e-5, 1e-9)
	return analytic, maxRelDiff(fdWant, fdGot, 1e-3*scale/float64(n))
}

// maxRelDiff is the largest |got-want| / max(|want|, floor): a relative
// error, taken against floor where want is tiny (a finite difference near
// a zero gradient).
func maxRelDiff(want []float64, got []float32, floor float64) float64 {
	var m float64
	for i := range want {
		m = math.Max(m, math.Abs(float64(got[i])-want[i])/math.Max(math.Abs(want[i]), floor))
	}
	return m
}

var marginSizes = []int{1, 7, 64, 513}

func TestMarginLossTerms(t *testing.T) {
	d := newTestDevice(t)
	terms := []struct {
		name string
		term LossTerm
	}{{"real", TermReal}, {"fake", TermFake}, {"gen", TermGen}}
	var worstLoss, worstMeanD, worstGrad, worstFD float64
	for _, lc := range marginCases() {
		for _, tm := range terms {
			ref := lc.termRef(tm.term)
			// n = 1 at each kink, then the odd sizes with the kinks inside.
			inputs := [][]float32{{1}, {-1}}
			for _, n := range marginSizes {
				inputs = append(inputs, marginLogits(uint64(n)+uint64(tm.term)*1000, n))
			}
			for k, xs := range inputs {
				n := len(xs)
				withMeanD := k != 3 // the n = 7 case passes a nil meanD
				t.Run(fmt.Sprintf("%s/%s/%d_n%d", lc.name, tm.name, k, n), func(t *testing.T) {
					x, dx := tensorOf(t, d, xs, n, 1), zeros(t, d, n, 1)
					loss, meanD := zeros(t, d, 1), zeros(t, d, 1)
					// meanD starts at a value no mean of these logits takes.
					run(t, d, func(r *Recorder) error { return r.Fill(meanD, 1234) })
					md := meanD
					if !withMeanD {
						md = nil
					}
					run(t, d, func(r *Recorder) error {
						lc.loss.Record(r, tm.term, x, dx, loss, md)
						return r.Err()
					})
					x64 := to64(xs)
					want := marginRefLoss(x64, n, ref, ref, 1)
					got := download(t, loss)[0]
					// fp32 terms and a tree sum of at most 513 of them.
					assertClose(t, "loss", []float64{want}, []float32{got}, 1e-5, 1e-6)
					worstLoss = math.Max(worstLoss, maxRelDiff([]float64{want}, []float32{got}, 1e-6))

					gotD := download(t, meanD)[0]
					if withMeanD {
						var s float64
						for _, v := range x64 {
							s += v
						}
						assertClose(t, "meanD", []float64{s / float64(n)}, []float32{gotD}, 1e-5, 1e-6)
						worstMeanD = math.Max(worstMeanD, maxRelDiff([]float64{s / float64(n)}, []float32{gotD}, 1e-6))
					} else {
						require.Equal(t, float32(1234), gotD, "nil meanD: nothing written")
					}

					a, f := marginCheckGrad(t, xs, download(t, dx), n, ref, ref, 1)
					worstGrad, worstFD = math.Max(worstGrad, a), math.Max(worstFD, f)
				})
			}
		}
	}
	t.Logf("max relative error: loss %.3g, meanD %.3g, dlogits %.3g (analytic), %.3g (finite differences)", worstLoss, worstMeanD, worstGrad, worstFD)
}

func TestMarginLossJoint(t *testing.T) {
	d := newTestDevice(t)
	cases := []struct {
		rows, perRow, realRows int
	}{
		{1, 1, 0}, {1, 1, 1}, {7, 1, 3}, {64, 1, 32}, {513, 1, 256}, {513, 1, 513},
		{7, 4, 4}, // a patch discriminator's four logits per row
	}
	var worstLoss, worstGrad, worstFD float64
	for _, lc := range marginCases() {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/rows%dx%d_real%d", lc.name, tc.rows, tc.perRow, tc.realRows), func(t *testing.T) {
				n := tc.rows * tc.perRow
				xs := marginLogits(uint64(n)+7, n)
				x, dx, loss := tensorOf(t, d, xs, tc.rows, tc.perRow), zeros(t, d, tc.rows, tc.perRow), zeros(t, d, 1)
				run(t, d, func(r *Recorder) error {
					lc.loss.RecordJoint(r, x, dx, tc.realRows, loss)
					return r.Err()
				})
				split := tc.realRows * tc.perRow
				want := marginRefLoss(to64(xs), split, lc.real, lc.fake, 1)
				got := download(t, loss)[0]
				assertClose(t, "loss", []float64{want}, []float32{got}, 1e-5, 1e-6)
				worstLoss = math.Max(worstLoss, maxRelDiff([]float64{want}, []float32{got}, 1e-6))
				// dlogits is the gradient of twice the joint mean.
				a, f := marginCheckGrad(t, xs, download(t, dx), split, lc.real, lc.fake, 2)
				worstGrad, worstFD = math.Max(worstGrad, a), math.Max(worstFD, f)
			})
		}
	}
	t.Logf("max relative error: loss %.3g, dlogits %.3g (analytic), %.3g (finite differences)", worstLoss, worstGrad, worstFD)
}

// TestMarginLossJointMatchesTerms checks RecordJoint against Record on the
// two halves of the same batch: with equal halves twice the joint loss is
// the sum of the real and fake terms, and the joint gradient is each
// term's gradient.
func TestMarginLossJointMatchesTerms(t *testing.T) {
	d := newTestDevice(t)
	const half = ViewAlign // views start on a multiple of ViewAlign
	for _, lc := range marginCases() {
		t.Run(lc.name, func(t *testing.T) {
			xs := marginLogits(99, 2*half)
			x := tensorOf(t, d, xs, 2*half, 1)
			xr, err := x.View(0, half, 1)
			require.NoError(t, err)
			xf, err := x.View(half, half, 1)
			require.NoError(t, err)
			dj, dr, df := zeros(t, d, 2*half, 1), zeros(t, d, half, 1), zeros(t, d, half, 1)
			lj, lr, lf := zeros(t, d, 1), zeros(t, d, 1), zeros(t, d, 1)
			run(t, d, func(r *Recorder) error {
				lc.loss.RecordJoint(r, x, dj, half, lj)
				lc.loss.Record(r, TermReal, xr, dr, lr, nil)
				lc.loss.Record(r, TermFake, xf, df, lf, nil)
				return r.Err()
			})
			sum := float64(download(t, lr)[0]) + float64(download(t, lf)[0])
			assertClose(t, "2 * joint loss", []float64{sum}, []float32{2 * download(t, lj)[0]}, 1e-5, 1e-6)
			sep := append(download(t, dr), download(t, df)...)
			assertClose(t, "joint dlogits", to64(sep), download(t, dj), 1e-6, 0)
		})
	}
}

func TestMarginLossBadInput(t *testing.T) {
	d := newTestDevice(t)
	x, x5, l1, l2 := zeros(t, d, 4, 1), zeros(t, d, 5), zeros(t, d, 1), zeros(t, d, 2)
	dx := zeros(t, d, 4)
	for _, lc := range marginCases() {
		l := lc.loss
		for _, tc := range []struct {
			name string
			fn   func(r *Recorder)
		}{
			{"nil logits", func(r *Recorder) { l.Record(r, TermReal, nil, dx, l1, nil) }},
			{"empty logits", func(r *Recorder) { l.Record(r, TermReal, &Tensor{}, dx, l1, nil) }},
			{"nil dlogits", func(r *Recorder) { l.Record(r, TermFake, x, nil, l1, nil) }},
			{"dlogits size", func(r *Recorder) { l.Record(r, TermGen, x, x5, l1, nil) }},
			{"nil loss", func(r *Recorder) { l.Record(r, TermReal, x, dx, nil, nil) }},
			{"loss size", func(r *Recorder) { l.Record(r, TermReal, x, dx, l2, nil) }},
			{"meanD size", func(r *Recorder) { l.Record(r, TermReal, x, dx, l1, l2) }},
			{"term 3", func(r *Recorder) { l.Record(r, LossTerm(3), x, dx, l1, nil) }},
			{"term -1", func(r *Recorder) { l.Record(r, LossTerm(-1), x, dx, l1, nil) }},
			{"joint nil logits", func(r *Recorder) { l.RecordJoint(r, nil, dx, 2, l1) }},
			{"joint empty logits", func(r *Recorder) { l.RecordJoint(r, &Tensor{}, dx, 0, l1) }},
			{"joint nil dlogits", func(r *Recorder) { l.RecordJoint(r, x, nil, 2, l1) }},
			{"joint dlogits size", func(r *Recorder) { l.RecordJoint(r, x, x5, 2, l1) }},
			{"joint nil loss", func(r *Recorder) { l.RecordJoint(r, x, dx, 2, nil) }},
			{"joint loss size", func(r *Recorder) { l.RecordJoint(r, x, dx, 2, l2) }},
			{"joint realRows -1", func(r *Recorder) { l.RecordJoint(r, x, dx, -1, l1) }},
			{"joint realRows 5 of 4", func(r *Recorder) { l.RecordJoint(r, x, dx, 5, l1) }},
		} {
			t.Run(lc.name+"/"+tc.name, func(t *testing.T) {
				r, err := d.Record()
				require.NoError(t, err)
				defer r.Release()
				require.NotPanics(t, func() { tc.fn(r) })
				require.Error(t, r.Err())
				require.Contains(t, r.Err().Error(), "engine: ")
				require.Error(t, r.Submit(), "sticky error")
			})
		}
	}
}

func TestParseLoss(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Loss
	}{
		{"bce", BCELoss{RealLabel: 0.9}},
		{"hinge", HingeLoss{}},
		{"ls", LSLoss{}},
	} {
		got, err := ParseLoss(tc.name, 0.9)
		require.NoError(t, err, tc.name)
		require.Equal(t, tc.want, got, tc.name)
	}
	got, err := ParseLoss("bce", 1)
	require.NoError(t, err)
	require.Equal(t, BCELoss{RealLabel: 1}, got)
	for _, name := range LossNames {
		_, err := ParseLoss(name, 1)
		require.NoError(t, err, "LossNames entry %q", name)
	}
	for _, name := range []string{"", "BCE", "wgan", "hinge "} {
		l, err := ParseLoss(name, 1)
		require.Error(t, err, "%q", name)
		require.Nil(t, l)
		msg := err.Error()
		require.True(t, strings.HasPrefix(msg, "engine: "), msg)
		for _, c := range LossNames {
			require.Contains(t, msg, c, "the error lists the choices")
		}
	}
}
