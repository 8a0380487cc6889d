package quality

import (
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"vkgan/engine"
)

// swdImages returns n smooth c x side x side test images in [-1, 1]: a
// few random plane waves per channel, plus uniform noise of amplitude
// noise, all drawn from seed.
func swdImages(seed uint64, n, c, side int, noise float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float32, n*c*side*side)
	for img := range n {
		for ch := range c {
			type wave struct{ fx, fy, ph, amp float64 }
			var ws [3]wave
			for i := range ws {
				ws[i] = wave{r.Float64() * 0.5, r.Float64() * 0.5, r.Float64() * 2 * math.Pi, 0.25 * r.Float64()}
			}
			plane := out[(img*c+ch)*side*side:][:side*side]
			for y := range side {
				for x := range side {
					v := (r.Float64()*2 - 1) * noise
					for _, w := range ws {
						v += w.amp * math.Sin(w.fx*float64(x)+w.fy*float64(y)+w.ph)
					}
					plane[y*side+x] = float32(max(-1, min(1, v)))
				}
			}
		}
	}
	return out
}

// swdRefSWD is a plain float64 SWD written from the paper's description and
// the reference code's steps, with none of the fast path's code except its
// random draws (swdPositions, swdDirections): a literal 5x5 convolution
// for the pyramid, descriptors as vectors, sort.Float64s, and for unequal
// sizes the quantile functions made equal by repeating each of a's values
// nb times and each of b's na times. It returns the distance per level.
func swdRefSWD(a []float32, na int, b []float32, nb int, c, side int, o SWDOptions) []float64 {
	levels := swdLevels(side)
	pyr := [2][][][]float64{swdRefPyramids(a, na, c, side, len(levels)), swdRefPyramids(b, nb, c, side, len(levels))}
	counts := [2]int{na, nb}
	ns, h := o.NhoodSize, o.NhoodSize/2
	k := c * ns * ns
	var out []float64
	for l, s := range levels {
		var desc [2][][]float64
		for set := range 2 {
			xs, ys := make([]int, o.NhoodsPerImage), make([]int, o.NhoodsPerImage)
			for img := range counts[set] {
				plane := pyr[set][img][l]
				swdPositions(o.Seed, l, img, s, h, xs, ys)
				for t := range xs {
					v := make([]float64, 0, k)
					for ch := range c {
						for dy := -h; dy <= h; dy++ {
							for dx := -h; dx <= h; dx++ {
								v = append(v, plane[(ch*s+ys[t]+dy)*s+xs[t]+dx])
							}
						}
					}
					desc[set] = append(desc[set], v)
				}
			}
			swdRefNormalise(desc[set], c, ns*ns)
		}
		var sum float64
		for rep := range o.DirRepeats {
			dirs := swdDirections(o.Seed, l, rep, o.DirsPerRepeat, k, k)
			for j := range o.DirsPerRepeat {
				dir := dirs[j*k : (j+1)*k]
				var proj [2][]float64
				for set := range 2 {
					for _, v := range desc[set] {
						var p float64
						for i := range v {
							p += v[i] * float64(dir[i])
						}
						proj[set] = append(proj[set], p)
					}
					slices.Sort(proj[set])
				}
				pa, pb := swdRefRepeat(proj[0], len(proj[1])), swdRefRepeat(proj[1], len(proj[0]))
				var d float64
				for i := range pa {
					d += math.Abs(pa[i] - pb[i])
				}
				sum += d / float64(len(pa))
			}
		}
		out = append(out, sum/float64(o.DirRepeats*o.DirsPerRepeat)*1e3)
	}
	return out
}

// swdRefRepeat repeats each value of v times times; with equal sizes it
// returns v.
func swdRefRepeat(v []float64, times int) []float64 {
	if len(v) == times {
		return v
	}
	var out []float64
	for _, x := range v {
		for range times {
			out = append(out, x)
		}
	}
	return out
}

// swdRefNormalise normalises each channel (per consecutive components of
// every descriptor) by its mean and population deviation over the set.
func swdRefNormalise(desc [][]float64, c, per int) {
	for ch := range c {
		var sum, ss, cnt float64
		for _, v := range desc {
			for _, x := range v[ch*per : (ch+1)*per] {
				sum += x
				cnt++
			}
		}
		mean := sum / cnt
		for _, v := range desc {
			for _, x := range v[ch*per : (ch+1)*per] {
				ss += (x - mean) * (x - mean)
			}
		}
		std := math.Sqrt(ss / cnt)
		if std == 0 {
			std = 1
		}
		for _, v := range desc {
			for i := ch * per; i < (ch+1)*per; i++ {
				v[i] = (v[i] - mean) / std
			}
		}
	}
}

// swdRefPyramids returns, per image, its Laplacian pyramid's levels as c
// planes each.
func swdRefPyramids(pix []float32, n, c, side, levels int) [][][]float64 {
	var out [][][]float64
	for img := range n {
		var pyr [][]float64
		g := make([]float64, c*side*side)
		for i := range g {
			g[i] = float64(pix[img*c*side*side+i])
		}
		pyr = append(pyr, g)
		for l := 1; l < levels; l++ {
			s := side >> (l - 1)
			down := swdRefDown(pyr[l-1], c, s)
			up := swdRefUp(down, c, s/2)
			for i := range up {
				pyr[l-1][i] -= up[i]
			}
			pyr = append(pyr, down)
		}
		out = append(out, pyr)
	}
	return out
}

// swdRefKernel is the 5x5 Gaussian [1 4 6 4 1]^T [1 4 6 4 1] / 256.
func swdRefKernel(scale float64) [5][5]float64 {
	g := [5]float64{1, 4, 6, 4, 1}
	var k [5][5]float64
	for i := range 5 {
		for j := range 5 {
			k[i][j] = g[i] * g[j] / 256 * scale
		}
	}
	return k
}

// swdRefConv convolves c planes of side s with k, extending each plane by
// mirroring about its edge pixels (scipy.ndimage mode "mirror").
func swdRefConv(src []float64, c, s int, k [5][5]float64) []float64 {
	refl := func(i int) int {
		for i < 0 || i >= s {
			if i < 0 {
				i = -i
			} else {
				i = 2*(s-1) - i
			}
		}
		return i
	}
	out := make([]float64, len(src))
	for ch := range c {
		for y := range s {
			for x := range s {
				var v float64
				for u := range 5 {
					for w := range 5 {
						v += k[u][w] * src[(ch*s+refl(y+u-2))*s+refl(x+w-2)]
					}
				}
				out[(ch*s+y)*s+x] = v
			}
		}
	}
	return out
}

// swdRefDown is pyr_down: filter, then keep even rows and columns.
func swdRefDown(src []float64, c, s int) []float64 {
	f := swdRefConv(src, c, s, swdRefKernel(1))
	h := s / 2
	out := make([]float64, c*h*h)
	for ch := range c {
		for y := range h {
			for x := range h {
				out[(ch*h+y)*h+x] = f[(ch*s+2*y)*s+2*x]
			}
		}
	}
	return out
}

// swdRefUp is pyr_up: the image on the even pixels of a zero image of twice
// the side, filtered with 4 times the kernel.
func swdRefUp(src []float64, c, s int) []float64 {
	d := 2 * s
	z := make([]float64, c*d*d)
	for ch := range c {
		for y := range s {
			for x := range s {
				z[(ch*d+2*y)*d+2*x] = src[(ch*s+y)*s+x]
			}
		}
	}
	return swdRefConv(z, c, d, swdRefKernel(4))
}

// swdCase is one comparison of the fast path with swdRefSWD.
type swdCase struct {
	name          string
	c, side       int
	na, nb        int
	opt           SWDOptions
	seedA, seedB  uint64
	noiseA, noise float64
	opaque        bool // alpha 1 everywhere: a constant channel
}

var swdCases = []swdCase{
	// The defaults (128 neighbourhoods, 7x7, 4 x 512 directions).
	{name: "rgb32/defaults", c: 3, side: 32, na: 4, nb: 4, opt: SWDOptions{Seed: 7}, seedA: 1, seedB: 2, noise: 0.1},
	// Unequal sizes, one channel, a single level.
	{name: "gray16/unequal", c: 1, side: 16, na: 3, nb: 5, opt: SWDOptions{NhoodsPerImage: 8, DirRepeats: 2, DirsPerRepeat: 16, Seed: 3}, seedA: 3, seedB: 4},
	// Alpha as a fourth channel, three levels, 5x5, a short last batch.
	{name: "rgba64/unequal", c: 4, side: 64, na: 2, nb: 3, opt: SWDOptions{NhoodsPerImage: 10, NhoodSize: 5, DirRepeats: 2, DirsPerRepeat: 6, Seed: 11}, seedA: 5, seedB: 6, noise: 0.2},
	// An opaque alpha channel: centred, not scaled, so it adds nothing.
	{name: "rgba32/opaque", c: 4, side: 32, na: 3, nb: 3, opt: SWDOptions{NhoodsPerImage: 16, DirsPerRepeat: 32, Seed: 12}, seedA: 7, seedB: 8, noise: 0.1, opaque: true},
}

// swdOpaque sets the last channel of n c-channel images to 1.
func swdOpaque(pix []float32, n, c, side int) {
	for img := range n {
		plane := pix[(img*c+c-1)*side*side:][:side*side]
		for i := range plane {
			plane[i] = 1
		}
	}
}

// TestSWDMatchesReference checks the fast path, on the host and on the
// device, against swdRefSWD: per level within 1e-5 relative (float32
// descriptors and projections against float64 ones; lavapipe and the host
// agree with it to about 1e-7).
func TestSWDMatchesReference(t *testing.T) {
	const rtol = 1e-5
	for _, tc := range swdCases {
		t.Run(tc.name, func(t *testing.T) {
			a := swdImages(tc.seedA, tc.na, tc.c, tc.side, tc.noiseA)
			b := swdImages(tc.seedB, tc.nb, tc.c, tc.side, tc.noise)
			if tc.opaque {
				swdOpaque(a, tc.na, tc.c, tc.side)
				swdOpaque(b, tc.nb, tc.c, tc.side)
			}
			o, err := tc.opt.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			want := swdRefSWD(a, tc.na, b, tc.nb, tc.c, tc.side, o)
			check := func(t *testing.T, d *engine.Device) {
				got, err := SWD(d, a, []int{tc.na, tc.c, tc.side, tc.side}, b, []int{tc.nb, tc.c, tc.side, tc.side}, &tc.opt)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got.Levels, swdLevels(tc.side)) {
					t.Errorf("levels %v, want %v", got.Levels, swdLevels(tc.side))
				}
				var mean float64
				for l, w := range want {
					mean += w / float64(len(want))
					if g := got.PerLevel[l]; math.Abs(g-w) > rtol*math.Abs(w) {
						t.Errorf("level %d: %.8g, want %.8g (rel %.2g, tolerance %g)", got.Levels[l], g, w, math.Abs(g-w)/math.Abs(w), rtol)
					}
				}
				if math.Abs(got.Mean-mean) > rtol*math.Abs(mean) {
					t.Errorf("mean %.8g, want %.8g", got.Mean, mean)
				}
			}
			t.Run("host", func(t *testing.T) { check(t, nil) })
			t.Run("device", func(t *testing.T) { check(t, newTestDevice(t)) })
			t.Run("device/blocks", func(t *testing.T) {
				// Descriptors split into 16-column blocks on the device.
				d := newTestDevice(t)
				defer func(c int) { swdBlockCols = c }(swdBlockCols)
				swdBlockCols = 16
				check(t, d)
			})
		})
	}
}

// swdDevices runs fn on the host and on the test device.
func swdDevices(t *testing.T, fn func(t *testing.T, d *engine.Device)) {
	t.Run("host", func(t *testing.T) { fn(t, nil) })
	t.Run("device", func(t *testing.T) { fn(t, newTestDevice(t)) })
}

func swdShape(n, c, s int) []int { return []int{n, c, s, s} }

// TestSWDSelf: a set against itself has the same descriptors, so every
// projection sorts to the same values and the distance is exactly 0.
func TestSWDSelf(t *testing.T) {
	a := swdImages(1, 6, 3, 32, 0.1)
	swdDevices(t, func(t *testing.T, d *engine.Device) {
		got, err := SWD(d, a, swdShape(6, 3, 32), slices.Clone(a), swdShape(6, 3, 32), &SWDOptions{DirsPerRepeat: 64})
		if err != nil {
			t.Fatal(err)
		}
		for l, v := range got.PerLevel {
			if v != 0 {
				t.Errorf("level %d: %g, want 0", got.Levels[l], v)
			}
		}
	})
}

// TestSWDNoise: the distance from a set to itself plus Gaussian noise
// grows with the noise's deviation, at every level and on average.
func TestSWDNoise(t *testing.T) {
	const n, c, s = 8, 3, 32
	a := swdImages(2, n, c, s, 0)
	r := rand.New(rand.NewPCG(9, 9))
	gauss := make([]float64, len(a))
	for i := range gauss {
		gauss[i] = r.NormFloat64()
	}
	opt := &SWDOptions{DirsPerRepeat: 64, Seed: 5}
	swdDevices(t, func(t *testing.T, d *engine.Device) {
		var prev *SWDResult
		for _, std := range []float64{0.02, 0.1, 0.4} {
			b := make([]float32, len(a))
			for i, v := range a {
				b[i] = v + float32(std*gauss[i])
			}
			got, err := SWD(d, a, swdShape(n, c, s), b, swdShape(n, c, s), opt)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("std %g: %.4g (mean %.4g)", std, got.PerLevel, got.Mean)
			if prev != nil {
				for l := range got.PerLevel {
					if got.PerLevel[l] <= prev.PerLevel[l] {
						t.Errorf("std %g, level %d: %g, not above %g at the lower std", std, got.Levels[l], got.PerLevel[l], prev.PerLevel[l])
					}
				}
				if got.Mean <= prev.Mean {
					t.Errorf("std %g: mean %g, not above %g at the lower std", std, got.Mean, prev.Mean)
				}
			}
			prev = got
		}
	})
}

// TestSWDSeed: the same seed gives the same result bit for bit (also with
// the device against the host's run order); another seed another one.
func TestSWDSeed(t *testing.T) {
	a := swdImages(3, 4, 3, 32, 0.1)
	b := swdImages(4, 5, 3, 32, 0.1)
	run := func(d *engine.Device, seed uint64) *SWDResult {
		t.Helper()
		got, err := SWD(d, a, swdShape(4, 3, 32), b, swdShape(5, 3, 32), &SWDOptions{DirsPerRepeat: 32, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	swdDevices(t, func(t *testing.T, d *engine.Device) {
		first, again, other := run(d, 1), run(d, 1), run(d, 2)
		if !slices.Equal(first.PerLevel, again.PerLevel) || first.Mean != again.Mean {
			t.Errorf("seed 1 twice: %v then %v", first.PerLevel, again.PerLevel)
		}
		for l := range first.PerLevel {
			if first.PerLevel[l] == other.PerLevel[l] {
				t.Errorf("level %d: seeds 1 and 2 both give %g", first.Levels[l], first.PerLevel[l])
			}
		}
	})
}

// TestSWDProgress: Progress counts every (level, direction) pair once, in
// order, ending at the total.
func TestSWDProgress(t *testing.T) {
	a := swdImages(5, 2, 1, 32, 0.1)
	var calls [][2]int
	opt := &SWDOptions{NhoodsPerImage: 4, DirRepeats: 3, DirsPerRepeat: 10, Progress: func(done, total int) {
		calls = append(calls, [2]int{done, total})
	}}
	if _, err := SWD(nil, a, swdShape(2, 1, 32), a, swdShape(2, 1, 32), opt); err != nil {
		t.Fatal(err)
	}
	const total = 2 * 3 * 10
	if len(calls) == 0 || calls[len(calls)-1] != [2]int{total, total} {
		t.Fatalf("progress calls %v, want the last to be [%d %d]", calls, total, total)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] <= calls[i-1][0] || calls[i][1] != total {
			t.Fatalf("progress calls %v: not increasing to a fixed total", calls)
		}
	}
}

func TestSWDBadInput(t *testing.T) {
	ok := swdImages(1, 2, 3, 16, 0)
	bad := slices.Clone(ok)
	bad[100] = float32(math.NaN())
	inf := slices.Clone(ok)
	inf[7] = float32(math.Inf(-1))
	for _, tc := range []struct {
		name     string
		a        []float32
		sa       []int
		b        []float32
		sb       []int
		opt      *SWDOptions
		contains string
	}{
		{"empty a", nil, swdShape(0, 3, 16), ok, swdShape(2, 3, 16), nil, "set a is empty"},
		{"empty b", ok, swdShape(2, 3, 16), nil, swdShape(0, 3, 16), nil, "set b is empty"},
		{"channels differ", ok, swdShape(2, 3, 16), make([]float32, 2*1*16*16), swdShape(2, 1, 16), nil, "channels and side must match"},
		{"sides differ", make([]float32, 32*32*3), swdShape(1, 3, 32), ok, swdShape(2, 3, 16), nil, "channels and side must match"},
		{"two channels", make([]float32, 2*16*16), swdShape(1, 2, 16), ok, swdShape(2, 3, 16), nil, "want 1, 3 or 4"},
		{"two dimensions", make([]float32, 3*16*32), swdShape(1, 3, 16)[:2:2], ok, swdShape(2, 3, 16), nil, "want [N C S S]"},
		{"rectangle", make([]float32, 3*16*32), []int{1, 3, 16, 32}, ok, swdShape(2, 3, 16), nil, "want square"},
		{"not a power of two", make([]float32, 3*24*24), swdShape(1, 3, 24), ok, swdShape(2, 3, 16), nil, "power of two"},
		{"too small", make([]float32, 3*8*8), swdShape(1, 3, 8), ok, swdShape(2, 3, 16), nil, "power of two >= 16"},
		{"short data", ok[:100], swdShape(2, 3, 16), ok, swdShape(2, 3, 16), nil, "has 100 values"},
		{"NaN", ok, swdShape(2, 3, 16), bad, swdShape(2, 3, 16), nil, "set b image 0 holds NaN"},
		{"Inf", inf, swdShape(2, 3, 16), ok, swdShape(2, 3, 16), nil, "set a image 0 holds -Inf"},
		{"even neighbourhood", ok, swdShape(2, 3, 16), ok, swdShape(2, 3, 16), &SWDOptions{NhoodSize: 6}, "NhoodSize 6 must be odd"},
		{"large neighbourhood", ok, swdShape(2, 3, 16), ok, swdShape(2, 3, 16), &SWDOptions{NhoodSize: 17}, "at most 16"},
		{"negative counts", ok, swdShape(2, 3, 16), ok, swdShape(2, 3, 16), &SWDOptions{NhoodsPerImage: -1, DirRepeats: -2, DirsPerRepeat: -3}, "NhoodsPerImage -1 must be positive\nDirRepeats -2 must be positive\nDirsPerRepeat -3 must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SWD(nil, tc.a, tc.sa, tc.b, tc.sb, tc.opt)
			if err == nil {
				t.Fatalf("got %+v, want an error containing %q", got, tc.contains)
			}
			if !strings.HasPrefix(err.Error(), "quality: swd") || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q, want one starting %q and containing %q", err, "quality: swd", tc.contains)
			}
		})
	}
}

// TestSWDRadixSort checks the radix sort against slices.Sort on values
// that exercise every key bit: signs, zeros, subnormals, infinities.
func TestSWDRadixSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 1000, 100000} {
		v := make([]float32, n)
		for i := range v {
			switch r.IntN(8) {
			case 0:
				v[i] = math.Float32frombits(r.Uint32()) // any bits, NaN aside
				if v[i] != v[i] {
					v[i] = 0
				}
			case 1:
				v[i] = float32(math.Copysign(0, r.Float64()-0.5))
			case 2:
				v[i] = float32(math.Inf(r.IntN(2)*2 - 1))
			default:
				v[i] = float32(r.NormFloat64())
			}
		}
		keys, tmp := make([]uint32, n), make([]uint32, n)
		sorted := swdRadixSort(v, keys, tmp)
		want := slices.Clone(v)
		slices.Sort(want)
		for i, k := range sorted {
			if g := swdUnkey(k); g != want[i] {
				t.Fatalf("n=%d: sorted[%d] = %g, want %g", n, i, g, want[i])
			}
		}
	}
	// All keys equal: every pass is skipped and keys holds the result.
	v := []float32{3, 3, 3}
	if got := swdRadixSort(v, make([]uint32, 3), make([]uint32, 3)); swdUnkey(got[2]) != 3 {
		t.Errorf("constant input sorted to %v", got)
	}
}

// TestSWDW1 checks the quantile walk against the sizes made equal by
// repetition, and the equal-size formula against the mean difference.
func TestSWDW1(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, sz := range [][2]int{{5, 5}, {3, 7}, {8, 6}, {1, 4}, {12, 18}} {
		a, b := make([]float64, sz[0]), make([]float64, sz[1])
		ka, kb := make([]uint32, sz[0]), make([]uint32, sz[1])
		for i := range a {
			a[i] = float64(float32(r.NormFloat64()))
		}
		for i := range b {
			b[i] = float64(float32(r.NormFloat64() + 0.3))
		}
		slices.Sort(a)
		slices.Sort(b)
		for i := range a {
			ka[i] = swdKey(float32(a[i]))
		}
		for i := range b {
			kb[i] = swdKey(float32(b[i]))
		}
		pa, pb := swdRefRepeat(a, len(b)), swdRefRepeat(b, len(a))
		var want float64
		for i := range pa {
			want += math.Abs(pa[i] - pb[i])
		}
		want /= float64(len(pa))
		if got := swdW1(ka, kb); math.Abs(got-want) > 1e-12*want {
			t.Errorf("sizes %v: %.15g, want %.15g", sz, got, want)
		}
	}
}

// TestSWDPyramidReconstructs: the last level plus the Laplacian levels,
// each upsampled with pyr_up, give the image back (the pyramid's defining
// property, independent of the reference).
func TestSWDPyramidReconstructs(t *testing.T) {
	const c, side = 2, 64
	img := swdImages(8, 1, c, side, 0.3)
	levels := len(swdLevels(side))
	p := newSWDPyramid(c, side, levels)
	var lev [][]float32
	for l := range levels {
		lev = append(lev, slices.Clone(p.level(img, l, levels-1)))
	}
	rec := lev[levels-1]
	for l := levels - 2; l >= 0; l-- {
		s := side >> l
		up := make([]float32, c*s*s)
		for ch := range c {
			swdResample(up[ch*s*s:(ch+1)*s*s], rec[ch*s*s/4:(ch+1)*s*s/4], make([]float32, s*s), s/2, swdUpTaps(s/2))
		}
		for i := range up {
			up[i] += lev[l][i]
		}
		rec = up
	}
	for i := range img {
		if math.Abs(float64(rec[i]-img[i])) > 1e-5 {
			t.Fatalf("pixel %d: reconstructed %g, want %g", i, rec[i], img[i])
		}
	}
}

// TestSWDDefaults: the zero options are DefaultSWD.
func TestSWDDefaults(t *testing.T) {
	got, err := SWDOptions{}.withDefaults()
	if err != nil || got.NhoodsPerImage != 128 || got.NhoodSize != 7 || got.DirRepeats != 4 || got.DirsPerRepeat != 512 {
		t.Errorf("zero options give %+v, %v", got, err)
	}
	if d := DefaultSWD(); d.NhoodsPerImage != got.NhoodsPerImage || d.NhoodSize != got.NhoodSize || d.DirRepeats != got.DirRepeats || d.DirsPerRepeat != got.DirsPerRepeat {
		t.Errorf("DefaultSWD() = %+v, want %+v", d, got)
	}
}

var updateSWD = flag.Bool("update-swd", false, "rewrite testdata/swd_golden.json")

// TestSWDGolden pins the values for a fixed input and seed, so that a
// change of the random streams (ours, or math/rand/v2's derived draws) or
// of the algorithm shows up as a diff of testdata/swd_golden.json rather
// than as silently different metrics in old and new runs. The host result
// must match to 1e-9 relative, the device's to 1e-5.
func TestSWDGolden(t *testing.T) {
	const path = "testdata/swd_golden.json"
	a := swdImages(21, 4, 3, 32, 0.1)
	b := swdImages(22, 5, 3, 32, 0.1)
	opt := &SWDOptions{DirsPerRepeat: 64, Seed: 2018}
	got, err := SWD(nil, a, swdShape(4, 3, 32), b, swdShape(5, 3, 32), opt)
	if err != nil {
		t.Fatal(err)
	}
	if *updateSWD {
		js, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(js, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	js, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-swd to create it)", err)
	}
	var want SWDResult
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	compare := func(t *testing.T, got *SWDResult, rtol float64) {
		if !slices.Equal(got.Levels, want.Levels) {
			t.Fatalf("levels %v, want %v", got.Levels, want.Levels)
		}
		for l, w := range want.PerLevel {
			if g := got.PerLevel[l]; math.Abs(g-w) > rtol*math.Abs(w) {
				t.Errorf("level %d: %.17g, want %.17g (tolerance %g relative)", want.Levels[l], g, w, rtol)
			}
		}
	}
	compare(t, got, 1e-9)
	t.Run("device", func(t *testing.T) {
		got, err := SWD(newTestDevice(t), a, swdShape(4, 3, 32), b, swdShape(5, 3, 32), opt)
		if err != nil {
			t.Fatal(err)
		}
		compare(t, got, 1e-5)
	})
}
