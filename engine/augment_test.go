package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// augRef is DiffAugment_pytorch.py's forward in float64, op by op as the
// reference writes it (the contrast mean is taken over the saturated image),
// for x of shape sh = [B,C,H,W] and params q ([B, AugmentParams]).
func augRef(x []float64, sh [4]int, q []float64, a Augment) []float64 {
	nb, c, h, w := sh[0], sh[1], sh[2], sh[3]
	per, hw := c*h*w, h*w
	out := make([]float64, len(x))
	for n := range nb {
		p := q[n*AugmentParams : (n+1)*AugmentParams]
		z := append([]float64(nil), x[n*per:(n+1)*per]...)
		if a.Flip && p[7] >= 0.5 {
			f := make([]float64, per)
			for e := range f {
				f[e] = z[e-e%w+w-1-e%w]
			}
			z = f
		}
		if a.Color {
			for e := range z {
				z[e] += p[0]
			}
			for pix := range hw {
				m := 0.0
				for ci := range c {
					m += z[ci*hw+pix]
				}
				m /= float64(c)
				for ci := range c {
					z[ci*hw+pix] = (z[ci*hw+pix]-m)*p[1] + m
				}
			}
			m := 0.0
			for _, v := range z {
				m += v
			}
			m /= float64(per)
			for e := range z {
				z[e] = (z[e]-m)*p[2] + m
			}
		}
		if a.Translation {
			tx, ty := int(math.Round(p[3])), int(math.Round(p[4]))
			t := make([]float64, per)
			for e := range t {
				ci, i, j := e/hw, e%hw/w, e%w
				if si, sj := i+tx, j+ty; si >= 0 && si < h && sj >= 0 && sj < w {
					t[e] = z[ci*hw+si*w+sj]
				}
			}
			z = t
		}
		if a.Cutout {
			r0 := int(math.Round(p[5])) - augmentCut(h)/2
			c0 := int(math.Round(p[6])) - augmentCut(w)/2
			for e := range z {
				i, j := e%hw/w, e%w
				if i >= r0 && i < r0+augmentCut(h) && j >= c0 && j < c0+augmentCut(w) {
					z[e] = 0
				}
			}
		}
		copy(out[n*per:], z)
	}
	return out
}

// augTRef is the transpose of augRef written out by hand (the formulas in
// augment.comp); TestAugmentBackward checks it against finite differences
// before trusting it on shapes too large for them.
func augTRef(dy []float64, sh [4]int, q []float64, a Augment) []float64 {
	nb, c, h, w := sh[0], sh[1], sh[2], sh[3]
	per, hw := c*h*w, h*w
	dx := make([]float64, len(dy))
	for n := range nb {
		p := q[n*AugmentParams : (n+1)*AugmentParams]
		d := dy[n*per : (n+1)*per]
		// Through cutout and translation back to the colour output dz.
		r0, c0 := math.MinInt32, math.MinInt32
		if a.Cutout {
			r0 = int(math.Round(p[5])) - augmentCut(h)/2
			c0 = int(math.Round(p[6])) - augmentCut(w)/2
		}
		tx, ty := 0, 0
		if a.Translation {
			tx, ty = int(math.Round(p[3])), int(math.Round(p[4]))
		}
		dz := make([]float64, per)
		for e := range d {
			ci, i, j := e/hw, e%hw/w, e%w
			if i >= r0 && i < r0+augmentCut(h) && j >= c0 && j < c0+augmentCut(w) {
				continue
			}
			if si, sj := i+tx, j+ty; si >= 0 && si < h && sj >= 0 && sj < w {
				dz[ci*hw+si*w+sj] = d[e]
			}
		}
		if a.Color {
			sum := 0.0
			for _, v := range dz {
				sum += v
			}
			for e := range dz {
				dz[e] = p[2]*dz[e] + (1-p[2])*sum/float64(per)
			}
			for pix := range hw {
				sc := 0.0
				for ci := range c {
					sc += dz[ci*hw+pix]
				}
				for ci := range c {
					dz[ci*hw+pix] = p[1]*dz[ci*hw+pix] + (1-p[1])*sc/float64(c)
				}
			}
		}
		for e := range dz {
			j := e % w
			if a.Flip && p[7] >= 0.5 {
				j = w - 1 - j
			}
			dx[n*per+e-e%w+j] = dz[e]
		}
	}
	return dx
}

// augEdges are parameter rows at the ends of each range for an h x w
// image: the largest shifts both ways, cutout in opposite corners, half
// off the image and fully off it (both the identity value and past the
// far side), s = 0 and k = 0.5, and the largest b, s, k below their bounds.
func augEdges(h, w int) [][AugmentParams]float64 {
	sh, sw := float64(augmentShift(h)), float64(augmentShift(w))
	oh, ow := float64(augmentOffsets(h)-1), float64(augmentOffsets(w)-1)
	hi := float64(math.Nextafter32(0.5, 0))
	return [][AugmentParams]float64{
		{-0.5, 0, 0.5, -sh, -sw, 0, 0, 1},
		{hi, 2 * hi, 1 + hi, sh, sw, oh, ow, 0},
		{0.125, 1, 1, sh, -sw, augmentOff, augmentOff, 1},
		{-0.25, 0.5, 0.75, -sh, sw, float64(h + w + 5), 1, 0},
		{0.3, 1.5, 1.25, 0, 0, oh, 0, 1},
		{0, 0, 0.5, 1, -1, -1, float64(w), 0},
	}
}

// augParams returns B parameter rows for h x w images: sample n takes
// edge row (n+variant) mod (edges+1), the extra slot being a random draw
// from the ranges. Every value is a float32.
func augParams(rng *rand.Rand, nb, h, w, variant int) []float64 {
	edges := augEdges(h, w)
	q := make([]float64, nb*AugmentParams)
	randInt := func(lo, n int) float64 { return float64(lo + rng.IntN(n)) }
	for n := range nb {
		row := q[n*AugmentParams : (n+1)*AugmentParams]
		if e := (n + variant) % (len(edges) + 1); e < len(edges) {
			copy(row, edges[e][:])
			continue
		}
		sh, sw := augmentShift(h), augmentShift(w)
		row[0] = float64(float32(rng.Float64() - 0.5))
		row[1] = float64(float32(2 * rng.Float64()))
		row[2] = float64(float32(rng.Float64() + 0.5))
		row[3], row[4] = randInt(-sh, 2*sh+1), randInt(-sw, 2*sw+1)
		row[5], row[6] = randInt(0, augmentOffsets(h)), randInt(0, augmentOffsets(w))
		row[7] = randInt(0, 2)
	}
	return q
}

func to32(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// augCases are the op sets each test runs: each op alone and all at once.
var augCases = []Augment{
	{Color: true}, {Translation: true}, {Cutout: true}, {Flip: true},
	{Color: true, Translation: true, Cutout: true, Flip: true},
}

// augShapes are the shapes each test runs: the smallest image, odd sizes,
// a model batch, C = 1 and C = 4, and a batch beyond the 4096-group grid
// cap so the kernel's loop over samples runs.
var augShapes = [][4]int{{1, 1, 2, 2}, {3, 3, 7, 5}, {64, 3, 32, 32}, {5, 1, 9, 8}, {3, 4, 5, 6}, {4100, 1, 2, 3}}

func maxAbsDiff(want []float64, got []float32) float64 {
	m := 0.0
	for i := range want {
		m = max(m, math.Abs(float64(got[i])-want[i]))
	}
	return m
}

// TestAugmentForward compares the kernel with augRef on uploaded
// parameters, every edge row landing on every sample index in turn.
// Inputs are in [-1, 1); the tolerance 2e-6 abs + 2e-6 rel covers float32
// rounding of a few operations (outputs stay below ~6).
func TestAugmentForward(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(11)
	for _, sh := range augShapes {
		nb, c, h, w := sh[0], sh[1], sh[2], sh[3]
		x64 := to64(randSlice(rng, nb*c*h*w))
		x := tensorOf(t, d, to32(x64), nb, c, h, w)
		y := zeros(t, d, nb, c, h, w)
		params := zeros(t, d, nb, AugmentParams)
		for _, a := range augCases {
			worst := 0.0
			for v := range len(augEdges(h, w)) + 1 {
				q := augParams(rng, nb, h, w, v)
				require.NoError(t, params.Upload(to32(q)))
				run(t, d, func(r *Recorder) error { return r.Augment(y, x, params, a) })
				want := augRef(x64, sh, q, a)
				got := download(t, y)
				assertClose(t, fmt.Sprintf("%v %v variant %d", sh, a, v), want, got, 2e-6, 2e-6)
				worst = max(worst, maxAbsDiff(want, got))
			}
			t.Logf("%v %-30q max |err| %.3g", sh, a.String(), worst)
		}
	}
}

// TestAugmentBackward checks, per shape and op set: augTRef against float64
// central differences of augRef (small shapes; the map is affine, so the
// differences are exact up to rounding, tolerance 1e-9); the kernel against
// those differences or, on shapes too large for them, augTRef (tolerance
// 1e-5 abs + 1e-5 rel: the backward sums over the sample); and the adjoint
// identity <dy, aug(x) - aug(0)> = <aug^T(dy), x> from the kernel's own
// outputs (aug is affine: brightness adds b), relative to
// sum |dy*(aug(x) - aug(0))|, within 1e-6.
func TestAugmentBackward(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(12)
	for _, sh := range augShapes {
		nb, c, h, w := sh[0], sh[1], sh[2], sh[3]
		size := nb * c * h * w
		small := size <= 400
		x32, dy32 := randSlice(rng, size), randSlice(rng, size)
		x, dy := tensorOf(t, d, x32, nb, c, h, w), tensorOf(t, d, dy32, nb, c, h, w)
		y, dx := zeros(t, d, nb, c, h, w), zeros(t, d, nb, c, h, w)
		zero, y0 := zeros(t, d, nb, c, h, w), zeros(t, d, nb, c, h, w)
		params := zeros(t, d, nb, AugmentParams)
		for _, a := range augCases {
			worst, worstAdj := 0.0, 0.0
			for v := range len(augEdges(h, w)) + 1 {
				q := augParams(rng, nb, h, w, v)
				require.NoError(t, params.Upload(to32(q)))
				run(t, d, func(r *Recorder) error {
					if err := r.Augment(y, x, params, a); err != nil {
						return err
					}
					if err := r.Augment(y0, zero, params, a); err != nil {
						return err
					}
					return r.AugmentBackward(dx, dy, params, a)
				})
				name := fmt.Sprintf("%v %v variant %d", sh, a, v)
				want := augTRef(to64(dy32), sh, q, a)
				if small {
					fd := augFD(to64(dy32), sh, q, a)
					for i := range fd {
						require.InDelta(t, fd[i], want[i], 1e-9, "%s: augTRef[%d] vs differences", name, i)
					}
					want = fd
				}
				got := download(t, dx)
				assertClose(t, name, want, got, 1e-5, 1e-5)
				worst = max(worst, maxAbsDiff(want, got))

				yv, y0v := download(t, y), download(t, y0)
				var lhs, rhs, scale float64
				for i := range yv {
					lin := float64(yv[i]) - float64(y0v[i])
					lhs += float64(dy32[i]) * lin
					rhs += float64(got[i]) * float64(x32[i])
					scale += math.Abs(float64(dy32[i]) * lin)
				}
				adj := math.Abs(lhs-rhs) / max(scale, 1e-30)
				require.Less(t, adj, 1e-6, "%s: <dy, aug x - aug 0> = %g, <aug^T dy, x> = %g", name, lhs, rhs)
				worstAdj = max(worstAdj, adj)
			}
			t.Logf("%v %-30q max |err| %.3g, adjoint rel %.3g", sh, a.String(), worst, worstAdj)
		}
	}
}

// augFD is the transpose applied to dy by central differences of augRef:
// dx[i] = <dy, (aug(x + h e_i) - aug(x - h e_i)) / 2h>, taken at x = 0
// (the map is affine, so the point does not matter).
func augFD(dy []float64, sh [4]int, q []float64, a Augment) []float64 {
	const step = 0.5
	x := make([]float64, len(dy))
	dx := make([]float64, len(dy))
	for i := range x {
		x[i] = step
		plus := augRef(x, sh, q, a)
		x[i] = -step
		minus := augRef(x, sh, q, a)
		x[i] = 0
		for k := range dy {
			dx[i] += dy[k] * (plus[k] - minus[k]) / (2 * step)
		}
	}
	return dx
}

// TestAugmentCutoutClampMatchesBox checks the claim in augment.go: for
// every offset the reference can draw, its clamped index grid zeroes
// exactly the box intersected with the image, which is what the kernel and
// augRef compute.
func TestAugmentCutoutClampMatchesBox(t *testing.T) {
	for n := 1; n <= 70; n++ {
		size := augmentCut(n)
		for off := range augmentOffsets(n) {
			clamped := map[int]bool{}
			for g := range size {
				clamped[min(max(g+off-size/2, 0), n-1)] = true
			}
			for i := range n {
				inBox := i >= off-size/2 && i < off-size/2+size
				require.Equal(t, inBox, clamped[i], "side %d offset %d row %d", n, off, i)
			}
		}
	}
}

// drawRef is augment_draw.comp on the host, in the same float32 steps, so
// the draws can be compared bit for bit.
func drawRef(nb int, a Augment, h, w int, seed uint64, step, stream uint32) []float32 {
	const tag = 0x61756700
	key := [2]uint32{uint32(seed), uint32(seed >> 32)}
	below := func(word uint32, m int) float32 {
		return min(float32(math.Floor(float64(float32(unitRef(word)*float32(m))))), float32(m-1))
	}
	out := make([]float32, nb*AugmentParams)
	for n := range nb {
		w0 := philoxRef([4]uint32{uint32(n), step, stream, tag}, key)
		w1 := philoxRef([4]uint32{uint32(n), step, stream, tag + 1}, key)
		v := []float32{0, 1, 1, 0, 0, augmentOff, augmentOff, 0}
		if a.Color {
			v[0] = unitRef(w0[0]) - 0.5
			v[1] = unitRef(w0[1]) * 2
			v[2] = min(unitRef(w0[2])+0.5, 1.5-1.0/8388608)
		}
		if a.Translation {
			sh, sw := augmentShift(h), augmentShift(w)
			v[3] = below(w0[3], 2*sh+1) - float32(sh)
			v[4] = below(w1[0], 2*sw+1) - float32(sw)
		}
		if a.Cutout {
			v[5] = below(w1[1], augmentOffsets(h))
			v[6] = below(w1[2], augmentOffsets(w))
		}
		if a.Flip && unitRef(w1[3]) < 0.5 {
			v[7] = 1
		}
		copy(out[n*AugmentParams:], v)
	}
	return out
}

// augDraw runs AugmentDraw once and downloads the parameters.
func augDraw(t *testing.T, d *Device, nb int, a Augment, h, w int, seed uint64, step *Counter, stream uint32) []float32 {
	t.Helper()
	params := zeros(t, d, nb, AugmentParams)
	run(t, d, func(r *Recorder) error { return r.AugmentDraw(params, a, h, w, seed, step, stream) })
	return download(t, params)
}

// TestAugmentDraw checks, for square and non-square images: that the draws
// equal drawRef bit for bit; every field within its range (integers
// integral); each field's histogram against uniform by a chi-square bound
// (dof + 6 sqrt(2 dof), over 4 sigma); and every disabled op at identity.
func TestAugmentDraw(t *testing.T) {
	d := newTestDevice(t)
	const nb, seed = 60000, 0xfeedbeef12345678
	step := newCounterT(t, d, 17)
	all := Augment{Color: true, Translation: true, Cutout: true, Flip: true}
	for _, hw := range [][2]int{{2, 2}, {7, 5}, {32, 32}, {64, 48}} {
		h, w := hw[0], hw[1]
		got := augDraw(t, d, nb, all, h, w, seed, step, 3)
		require.Equal(t, drawRef(nb, all, h, w, seed, 17, 3), got, "%dx%d: draws differ from the host Philox", h, w)
		sh, sw := augmentShift(h), augmentShift(w)
		ints := []struct {
			field, lo, n int
		}{{3, -sh, 2*sh + 1}, {4, -sw, 2*sw + 1}, {5, 0, augmentOffsets(h)}, {6, 0, augmentOffsets(w)}, {7, 0, 2}}
		for _, f := range ints {
			counts := make([]float64, f.n)
			for n := range nb {
				v := float64(got[n*AugmentParams+f.field])
				require.True(t, v == math.Trunc(v) && v >= float64(f.lo) && v < float64(f.lo+f.n),
					"%dx%d: field %d of sample %d = %g, want an integer in [%d, %d)", h, w, f.field, n, v, f.lo, f.lo+f.n)
				counts[int(v)-f.lo]++
			}
			chiSquareUniform(t, fmt.Sprintf("%dx%d field %d", h, w, f.field), counts)
		}
		floats := []struct {
			field  int
			lo, hi float64
		}{{0, -0.5, 0.5}, {1, 0, 2}, {2, 0.5, 1.5}}
		for _, f := range floats {
			counts := make([]float64, 20)
			for n := range nb {
				v := float64(got[n*AugmentParams+f.field])
				require.True(t, v >= f.lo && v < f.hi, "%dx%d: field %d of sample %d = %g, want [%g, %g)", h, w, f.field, n, v, f.lo, f.hi)
				counts[int((v-f.lo)/(f.hi-f.lo)*20)]++
			}
			chiSquareUniform(t, fmt.Sprintf("%dx%d field %d", h, w, f.field), counts)
		}
	}

	identity := []float32{0, 1, 1, 0, 0, augmentOff, augmentOff, 0}
	fields := map[string][]int{"color": {0, 1, 2}, "translation": {3, 4}, "cutout": {5, 6}, "flip": {7}}
	for _, a := range append([]Augment{{}}, augCases...) {
		const n = 257
		got := augDraw(t, d, n, a, 9, 13, seed, step, 1)
		require.Equal(t, drawRef(n, a, 9, 13, seed, 17, 1), got, "%q", a.String())
		on := map[int]bool{}
		for name, fs := range fields {
			if a.on()[slices.Index(augmentNames, name)] {
				for _, f := range fs {
					on[f] = true
				}
			}
		}
		for s := range n {
			for f := range AugmentParams {
				if !on[f] {
					require.Equal(t, identity[f], got[s*AugmentParams+f], "%q: disabled field %d of sample %d", a.String(), f, s)
				}
			}
		}
	}
}

// chiSquareUniform fails when counts are far from uniform. One bin (a
// shift range of {0}) has nothing to test.
func chiSquareUniform(t *testing.T, name string, counts []float64) {
	t.Helper()
	if len(counts) < 2 {
		return
	}
	total := 0.0
	for _, c := range counts {
		total += c
	}
	exp := total / float64(len(counts))
	chi := 0.0
	for _, c := range counts {
		chi += (c - exp) * (c - exp) / exp
	}
	dof := float64(len(counts) - 1)
	require.Less(t, chi, dof+6*math.Sqrt(2*dof), "%s: chi-square %g over %g degrees of freedom (counts %v)", name, chi, dof, counts)
}

// TestAugmentDrawStreams replays one recording that draws for three
// streams and then increments the counter: the same (seed, counter,
// stream) gives the same bits, streams and steps differ.
func TestAugmentDrawStreams(t *testing.T) {
	d := newTestDevice(t)
	const nb, seed = 128, 5
	all := Augment{Color: true, Translation: true, Cutout: true, Flip: true}
	step := newCounterT(t, d, 0)
	ps := []*Tensor{zeros(t, d, nb, AugmentParams), zeros(t, d, nb, AugmentParams), zeros(t, d, nb, AugmentParams)}
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	for s, p := range ps {
		require.NoError(t, r.AugmentDraw(p, all, 32, 32, seed, step, uint32(s)))
	}
	require.NoError(t, r.Increment(step))
	var steps [][][]float32
	for s := range uint32(2) {
		require.NoError(t, r.Submit())
		var got [][]float32
		for i, p := range ps {
			v := download(t, p)
			require.Equal(t, drawRef(nb, all, 32, 32, seed, s, uint32(i)), v, "step %d stream %d", s, i)
			got = append(got, v)
		}
		steps = append(steps, got)
	}
	// b, s and k are continuous: a repeat across streams or steps would
	// mean shared counters.
	differ := func(a, b []float32) bool {
		for n := range nb {
			if a[n*AugmentParams] == b[n*AugmentParams] {
				return false
			}
		}
		return true
	}
	require.True(t, differ(steps[0][0], steps[0][1]) && differ(steps[0][1], steps[0][2]) && differ(steps[0][0], steps[0][2]), "streams share draws")
	for i := range ps {
		require.True(t, differ(steps[0][i], steps[1][i]), "stream %d repeats after Increment", i)
	}
	// A different seed differs too; rewinding the counter repeats bits.
	other := augDraw(t, d, nb, all, 32, 32, seed+1, step, 0)
	require.True(t, differ(other, drawRef(nb, all, 32, 32, seed, 2, 0)), "seed does not change the draw")
	require.NoError(t, step.Set(0))
	require.NoError(t, r.Submit())
	for i, p := range ps {
		require.Equal(t, steps[0][i], download(t, p), "stream %d after rewinding", i)
	}
}

// TestAugmentDeterministic runs the forward and backward twice on a model
// batch: the fixed reduction order gives the same bits.
func TestAugmentDeterministic(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(13)
	const nb, c, h, w = 16, 3, 32, 32
	all := Augment{Color: true, Translation: true, Cutout: true, Flip: true}
	x := tensorOf(t, d, randSlice(rng, nb*c*h*w), nb, c, h, w)
	y, dx := zeros(t, d, nb, c, h, w), zeros(t, d, nb, c, h, w)
	params := tensorOf(t, d, to32(augParams(rng, nb, h, w, 0)), nb, AugmentParams)
	var runs [2][2][]float32
	for i := range runs {
		run(t, d, func(r *Recorder) error {
			if err := r.Augment(y, x, params, all); err != nil {
				return err
			}
			return r.AugmentBackward(dx, x, params, all)
		})
		runs[i] = [2][]float32{download(t, y), download(t, dx)}
	}
	require.Equal(t, runs[0], runs[1])
}

func TestAugmentBadInput(t *testing.T) {
	d := newTestDevice(t)
	all := Augment{Color: true, Translation: true, Cutout: true, Flip: true}
	x, y := zeros(t, d, 2, 3, 4, 4), zeros(t, d, 2, 3, 4, 4)
	params, step := zeros(t, d, 2, AugmentParams), newCounterT(t, d, 0)
	view, err := x.Reshape(2, 3, 16)
	require.NoError(t, err)
	same, err := x.Reshape(2, 3, 4, 4)
	require.NoError(t, err)
	for name, fn := range map[string]func(r *Recorder) error{
		"nil x":              func(r *Recorder) error { return r.Augment(y, nil, params, all) },
		"nil y":              func(r *Recorder) error { return r.Augment(nil, x, params, all) },
		"nil params":         func(r *Recorder) error { return r.Augment(y, x, nil, all) },
		"3D x":               func(r *Recorder) error { return r.Augment(zeros(t, d, 2, 3, 16), view, params, all) },
		"y shape":            func(r *Recorder) error { return r.Augment(zeros(t, d, 2, 3, 4, 5), x, params, all) },
		"y is x":             func(r *Recorder) error { return r.Augment(x, x, params, all) },
		"y views x":          func(r *Recorder) error { return r.Augment(same, x, params, all) },
		"params rows":        func(r *Recorder) error { return r.Augment(y, x, zeros(t, d, 3, AugmentParams), all) },
		"params cols":        func(r *Recorder) error { return r.Augment(y, x, zeros(t, d, 2, 7), all) },
		"params is y":        func(r *Recorder) error { return r.Augment(y, x, y, all) },
		"backward dx is dy":  func(r *Recorder) error { return r.AugmentBackward(x, x, params, all) },
		"backward dy shape":  func(r *Recorder) error { return r.AugmentBackward(y, zeros(t, d, 2, 3, 5, 4), params, all) },
		"draw nil params":    func(r *Recorder) error { return r.AugmentDraw(nil, all, 4, 4, 1, step, 0) },
		"draw nil counter":   func(r *Recorder) error { return r.AugmentDraw(params, all, 4, 4, 1, nil, 0) },
		"draw params 1D":     func(r *Recorder) error { return r.AugmentDraw(zeros(t, d, 16), all, 4, 4, 1, step, 0) },
		"draw params cols":   func(r *Recorder) error { return r.AugmentDraw(zeros(t, d, 2, 9), all, 4, 4, 1, step, 0) },
		"draw zero height":   func(r *Recorder) error { return r.AugmentDraw(params, all, 0, 4, 1, step, 0) },
		"draw negative wide": func(r *Recorder) error { return r.AugmentDraw(params, all, 4, -1, 1, step, 0) },
		"draw huge":          func(r *Recorder) error { return r.AugmentDraw(params, all, 4, 1<<24, 1, step, 0) },
	} {
		rec, err := d.Record()
		require.NoError(t, err)
		err = fn(rec)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), "engine: augment", name)
		require.Equal(t, err, rec.Submit(), "%s: the error is sticky", name)
		rec.Release()
	}
}

func TestParseAugment(t *testing.T) {
	for _, tc := range []struct {
		list string
		flip bool
		want Augment
		str  string
	}{
		{"", false, Augment{}, ""},
		{"  ", true, Augment{Flip: true}, "flip"},
		{"color,translation,cutout", false, Augment{Color: true, Translation: true, Cutout: true}, "color,translation,cutout"},
		{"cutout, color", true, Augment{Color: true, Cutout: true, Flip: true}, "flip,color,cutout"},
		{"translation", false, Augment{Translation: true}, "translation"},
		{"flip,cutout", false, Augment{Cutout: true, Flip: true}, "flip,cutout"},
	} {
		got, err := ParseAugment(tc.list, tc.flip)
		require.NoError(t, err, tc.list)
		require.Equal(t, tc.want, got, tc.list)
		require.Equal(t, tc.str, got.String())
		require.Equal(t, tc.want != Augment{}, got.Enabled())
		back, err := ParseAugment(got.String(), false)
		require.NoError(t, err)
		require.Equal(t, got, back, "String round trip")
	}
	for _, bad := range []string{"colour", "color,,cutout", "color,color", "translation,zoom", "Color"} {
		_, err := ParseAugment(bad, false)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "engine: augment", bad)
	}
	_, err := ParseAugment("zoom", false)
	require.ErrorContains(t, err, "color, translation, cutout, flip")
}
