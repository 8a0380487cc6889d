package quality

import (
	"math"
	"math/rand/v2"
)

// The pyramid follows the reference code's pyr_down and pyr_up, which
// call scipy.ndimage.convolve with mode="mirror": the 5x5 Gaussian
// [1 4 6 4 1]^2/256 over an image extended by reflection about its edge
// pixels (d c b | a b c d | c b a, OpenCV's BORDER_REFLECT_101). pyr_down
// filters at full resolution and keeps even rows and columns; pyr_up puts
// the image on the even pixels of a zero image twice the side and filters
// it with 4 times the kernel, the zero image mirrored at its own edges.
// Both filters are separable, so each pass here is two 1D passes over
// precomputed taps.

// swdMirror reflects i into [0, n) about the first and last samples.
func swdMirror(i, n int) int {
	if i < 0 {
		return -i
	}
	if i >= n {
		return 2*n - 2 - i
	}
	return i
}

// swdTaps are a 1D resampling filter's taps: output o reads
// src[idx[o][t]] with weight w[o][t].
type swdTaps struct {
	idx [][]int
	w   [][]float32
}

// swdGauss is [1 4 6 4 1]/16, one dimension of the 5x5 kernel.
var swdGauss = [5]float64{1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16}

// swdDownTaps filters a side-n line and keeps its even samples.
func swdDownTaps(n int) swdTaps {
	var t swdTaps
	for o := range n / 2 {
		var idx []int
		var w []float32
		for v, g := range swdGauss {
			idx = append(idx, swdMirror(2*o+v-2, n))
			w = append(w, float32(g))
		}
		t.idx = append(t.idx, idx)
		t.w = append(t.w, w)
	}
	return t
}

// swdUpTaps places a side-n line on the even samples of a zero line of
// side 2n and filters it with 2*[1 4 6 4 1]/16 (the 1D factor of pyr_up's
// 4x kernel): only taps that land on an even sample after mirroring read
// anything.
func swdUpTaps(n int) swdTaps {
	var t swdTaps
	for o := range 2 * n {
		var idx []int
		var w []float32
		for v, g := range swdGauss {
			p := swdMirror(o+v-2, 2*n)
			if p%2 == 0 {
				idx = append(idx, p/2)
				w = append(w, float32(2*g))
			}
		}
		t.idx = append(t.idx, idx)
		t.w = append(t.w, w)
	}
	return t
}

// swdResample applies taps along rows then along columns: src is sin x sin,
// dst is len(taps.idx) square, tmp holds sin*len(taps.idx) values.
func swdResample(dst, src, tmp []float32, sin int, taps swdTaps) {
	sout := len(taps.idx)
	for y := range sin {
		row := src[y*sin : (y+1)*sin]
		out := tmp[y*sout : (y+1)*sout]
		for o, idx := range taps.idx {
			var s float32
			for t, i := range idx {
				s += taps.w[o][t] * row[i]
			}
			out[o] = s
		}
	}
	for o, idx := range taps.idx {
		out := dst[o*sout : (o+1)*sout]
		clear(out)
		for t, i := range idx {
			w, row := taps.w[o][t], tmp[i*sout:(i+1)*sout]
			for x := range out {
				out[x] += w * row[x]
			}
		}
	}
}

// swdPyramid computes Laplacian pyramid levels of one image at a time; a
// worker owns one.
type swdPyramid struct {
	c, side int
	down    []swdTaps   // down[l]: from level l to l+1
	up      []swdTaps   // up[l]: from level l+1 to l
	gauss   [][]float32 // gauss[l]: level l of the Gaussian pyramid, l >= 1
	tmp     []float32
	lap     []float32
}

func newSWDPyramid(c, side, levels int) *swdPyramid {
	p := &swdPyramid{c: c, side: side, gauss: make([][]float32, levels)}
	for l := range levels - 1 {
		s := side >> l
		p.down = append(p.down, swdDownTaps(s))
		p.up = append(p.up, swdUpTaps(s/2))
		p.gauss[l+1] = make([]float32, c*(s/2)*(s/2))
	}
	p.tmp = make([]float32, side*side)
	p.lap = make([]float32, c*side*side)
	return p
}

// level returns level l of img's Laplacian pyramid (c planes of side>>l;
// the last level is the Gaussian one). last is the index of the last
// level. The result is valid until the next call.
func (p *swdPyramid) level(img []float32, l, last int) []float32 {
	p.gauss[0] = img
	upto := min(l+1, last)
	for k := range upto {
		s := p.side >> k
		for ch := range p.c {
			src := p.gauss[k][ch*s*s : (ch+1)*s*s]
			dst := p.gauss[k+1][ch*s*s/4 : (ch+1)*s*s/4]
			swdResample(dst, src, p.tmp, s, p.down[k])
		}
	}
	g := p.gauss[l]
	if l == last {
		return g
	}
	s := p.side >> l
	lap := p.lap[:p.c*s*s]
	for ch := range p.c {
		src := p.gauss[l+1][ch*s*s/4 : (ch+1)*s*s/4]
		dst := lap[ch*s*s : (ch+1)*s*s]
		swdResample(dst, src, p.tmp, s/2, p.up[l])
		for i, v := range g[ch*s*s : (ch+1)*s*s] {
			dst[i] = v - dst[i]
		}
	}
	return lap
}

// Random streams, keyed by what they draw so that no two draws share one.
const (
	swdStreamPositions  = 1
	swdStreamDirections = 2
)

// swdRand returns the stream for (kind, level, index) under seed.
func swdRand(seed uint64, kind, level, index int) *rand.Rand {
	k := uint64(kind)<<56 ^ uint64(level)<<48 ^ uint64(index)
	// splitmix64's finaliser spreads the key over all 64 bits.
	k ^= k >> 30
	k *= 0xbf58476d1ce4e5b9
	k ^= k >> 27
	k *= 0x94d049bb133111eb
	k ^= k >> 31
	return rand.New(rand.NewPCG(seed, k))
}

// swdPositions draws the centres (xs[t], ys[t]) of image img's
// neighbourhoods at level l of side s, uniform over the centres whose
// window of half-width h lies inside the image, as the reference's
// randint(H, S - H) does. Both sets draw the same positions for the same
// image index.
func swdPositions(seed uint64, l, img, s, h int, xs, ys []int) {
	r := swdRand(seed, swdStreamPositions, l, img)
	for t := range xs {
		xs[t] = h + r.IntN(s-2*h)
		ys[t] = h + r.IntN(s-2*h)
	}
}

// swdDirections draws level l's repeat-th set of dirs random unit
// directions in k dimensions, as float32 rows of kp values (zero beyond
// k): Gaussian components normalised in float64, then rounded, as the
// reference does.
func swdDirections(seed uint64, l, repeat, dirs, k, kp int) []float32 {
	r := swdRand(seed, swdStreamDirections, l, repeat)
	out := make([]float32, dirs*kp)
	v := make([]float64, k)
	for j := range dirs {
		var ss float64
		for i := range v {
			v[i] = r.NormFloat64()
			ss += v[i] * v[i]
		}
		norm := math.Sqrt(ss)
		for i, x := range v {
			out[j*kp+i] = float32(x / norm)
		}
	}
	return out
}
