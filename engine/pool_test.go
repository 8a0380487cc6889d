package engine

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// poolSentinel pre-fills outputs: channels outside the written slice must
// still hold it afterwards, bit for bit.
const poolSentinel = float32(-777.25)

// poolRef is max_pool2d or avg_pool2d in float64 over x [nb,c,h,w] with
// PyTorch's semantics (padding is -inf for the max; the mean divides by
// the in-bounds taps, or by kh*kw with includePad). It returns
// [nb,c,oh,ow].
func poolRef(x []float32, nb, c, h, w int, p PoolParams, isMax bool) []float64 {
	p = p.norm()
	oh, ow := p.OutSize(h, w)
	out := make([]float64, 0, nb*c*oh*ow)
	for pl := range nb * c {
		for oy := range oh {
			for ox := range ow {
				acc, taps := 0.0, 0
				if isMax {
					acc = math.Inf(-1)
				}
				for ky := range p.KH {
					for kx := range p.KW {
						iy, ix := oy*p.StrideH-p.PadH+ky, ox*p.StrideW-p.PadW+kx
						if iy < 0 || iy >= h || ix < 0 || ix >= w {
							continue
						}
						v := float64(x[(pl*h+iy)*w+ix])
						switch {
						case isMax && (v > acc || math.IsNaN(v)):
							acc = v
						case !isMax:
							acc += v
						}
						taps++
					}
				}
				if !isMax {
					if p.CountIncludePad {
						taps = p.KH * p.KW
					}
					acc /= float64(taps)
				}
				out = append(out, acc)
			}
		}
	}
	return out
}

// sentinelTensor allocates [nb, ctot, plane...] filled with poolSentinel.
func sentinelTensor(t testing.TB, d *Device, shape ...int) *Tensor {
	t.Helper()
	data := make([]float32, numelOf(shape))
	for i := range data {
		data[i] = poolSentinel
	}
	return tensorOf(t, d, data, shape...)
}

// checkSlice compares got [nb, ctot, plane] against want [nb, c, plane]
// placed at channels [c0, c0+c), within |got-want| <= atol + rtol*|want|,
// and checks that every other channel still holds poolSentinel.
func checkSlice(t *testing.T, name string, want []float64, got []float32, nb, c, ctot, c0, plane int, rtol, atol float64) {
	t.Helper()
	require.Len(t, got, nb*ctot*plane, name)
	in := make([]float32, 0, len(want))
	for n := range nb {
		for ch := range ctot {
			row := got[(n*ctot+ch)*plane : (n*ctot+ch+1)*plane]
			if ch >= c0 && ch < c0+c {
				in = append(in, row...)
				continue
			}
			for i, v := range row {
				if math.Float32bits(v) != math.Float32bits(poolSentinel) {
					t.Fatalf("%s: channel %d of image %d (outside [%d, %d)) changed at %d: %g", name, ch, n, c0, c0+c, i, v)
				}
			}
		}
	}
	assertClose(t, name, want, in, rtol, atol)
}

var poolCases = []struct {
	name           string
	nb, c, h, w    int
	p              PoolParams
	ctot           int // 0: c
	rtolAvg, atAvg float64
}{
	{"odd-3x3s2", 3, 5, 17, 13, PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2}, 0, 1e-6, 1e-7},
	{"odd-3x3s1p1", 3, 5, 17, 13, PoolParams{KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, 0, 1e-6, 1e-7},
	{"odd-3x3s2p1-even", 2, 3, 16, 10, PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, 0, 1e-6, 1e-7},
	{"default-stride-2x2", 2, 3, 9, 8, PoolParams{KH: 2, KW: 2}, 0, 1e-6, 1e-7},
	{"rect-3x2s(2,1)p(1,1)", 1, 2, 7, 6, PoolParams{KH: 3, KW: 2, StrideH: 2, StrideW: 1, PadH: 1, PadW: 1}, 0, 1e-6, 1e-7},
	{"5x5p2-window-wider-than-input", 2, 2, 3, 4, PoolParams{KH: 5, KW: 5, StrideH: 1, StrideW: 1, PadH: 2, PadW: 2}, 0, 1e-6, 1e-7},
	{"1x1-input-1x1-window", 2, 3, 1, 1, PoolParams{KH: 1, KW: 1}, 0, 0, 0},
	{"slice-3x3s2", 3, 5, 17, 13, PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, ChannelOffset: 4}, 12, 1e-6, 1e-7},
	{"slice-3x3s1p1-last", 2, 3, 11, 9, PoolParams{KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, ChannelOffset: 5}, 8, 1e-6, 1e-7},
	// Inception-v3: the 3/2 max pool after Conv2d_2b (64 channels at
	// 147x147 -> 73x73) and the 3/1/1 average pool of Mixed_5b (192
	// channels at 35x35), written into the 256-channel concatenation.
	{"inception-147-3s2", 2, 64, 147, 147, PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2}, 0, 1e-6, 1e-7},
	{"inception-35-3s1p1", 2, 192, 35, 35, PoolParams{KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, 0, 1e-6, 1e-7},
	{"inception-35-3s1p1-slice", 2, 192, 35, 35, PoolParams{KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1, ChannelOffset: 224}, 448, 1e-6, 1e-7},
	// More channels than lavapipe's 65535 workgroups in z: two dispatches.
	{"channels-over-z-limit", 2, 66000, 2, 3, PoolParams{KH: 2, KW: 2, StrideH: 1, StrideW: 1, ChannelOffset: 3}, 66004, 1e-6, 1e-7},
}

func TestMaxPool2D(t *testing.T) {
	d := newTestDevice(t)
	for i, tc := range poolCases {
		t.Run(tc.name, func(t *testing.T) {
			ctot := max(tc.ctot, tc.c)
			xs := randSlice(newRand(uint64(100+i)), tc.nb*tc.c*tc.h*tc.w)
			x := tensorOf(t, d, xs, tc.nb, tc.c, tc.h, tc.w)
			oh, ow := tc.p.OutSize(tc.h, tc.w)
			y := sentinelTensor(t, d, tc.nb, ctot, oh, ow)
			run(t, d, func(r *Recorder) error { return r.MaxPool2D(y, x, tc.p) })
			// The max is one of the inputs: exact.
			checkSlice(t, "max pool", poolRef(xs, tc.nb, tc.c, tc.h, tc.w, tc.p, true), download(t, y),
				tc.nb, tc.c, ctot, tc.p.ChannelOffset, oh*ow, 0, 0)
		})
	}
}

func TestAvgPool2D(t *testing.T) {
	d := newTestDevice(t)
	for i, tc := range poolCases {
		for _, incl := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/count_include_pad=%v", tc.name, incl), func(t *testing.T) {
				ctot := max(tc.ctot, tc.c)
				p := tc.p
				p.CountIncludePad = incl
				xs := randSlice(newRand(uint64(200+i)), tc.nb*tc.c*tc.h*tc.w)
				x := tensorOf(t, d, xs, tc.nb, tc.c, tc.h, tc.w)
				oh, ow := p.OutSize(tc.h, tc.w)
				y := sentinelTensor(t, d, tc.nb, ctot, oh, ow)
				run(t, d, func(r *Recorder) error { return r.AvgPool2D(y, x, p) })
				// A float32 sum of at most 25 values in [-1, 1], then one
				// division: a few ulps of 1.
				checkSlice(t, "avg pool", poolRef(xs, tc.nb, tc.c, tc.h, tc.w, p, false), download(t, y),
					tc.nb, tc.c, ctot, p.ChannelOffset, oh*ow, tc.rtolAvg, tc.atAvg+1e-6)
			})
		}
	}
}

// TestPoolBorderDivisor pins the divisor at the borders with ones: a
// corner of a 3x3/1/1 pool has 4 taps, an edge 6, the inside 9.
func TestPoolBorderDivisor(t *testing.T) {
	d := newTestDevice(t)
	ones := make([]float32, 4*5)
	for i := range ones {
		ones[i] = 1
	}
	x := tensorOf(t, d, ones, 1, 1, 4, 5)
	excl, incl := zeros(t, d, 1, 1, 4, 5), zeros(t, d, 1, 1, 4, 5)
	p := PoolParams{KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	pi := p
	pi.CountIncludePad = true
	run(t, d, func(r *Recorder) error {
		r.AvgPool2D(excl, x, p)
		r.AvgPool2D(incl, x, pi)
		return r.Err()
	})
	for i, v := range download(t, excl) {
		require.Equal(t, float32(1), v, "count_include_pad=False at %d", i)
	}
	row := []float64{4, 6, 6, 6, 4}
	mid := []float64{6, 9, 9, 9, 6}
	var want []float64
	for _, r := range [][]float64{row, mid, mid, row} {
		for _, v := range r {
			want = append(want, v/9)
		}
	}
	assertClose(t, "count_include_pad=True", want, download(t, incl), 1e-6, 0)
}

// TestMaxPool2DNaN: a NaN is the maximum of every window holding it, as
// in PyTorch, whatever its position in the window.
func TestMaxPool2DNaN(t *testing.T) {
	d := newTestDevice(t)
	const h, w = 6, 7
	xs := randSlice(newRand(7), h*w)
	nanAt := 2*w + 3
	xs[nanAt] = float32(math.NaN())
	x := tensorOf(t, d, xs, 1, 1, h, w)
	p := PoolParams{KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	y := zeros(t, d, 1, 1, h, w)
	run(t, d, func(r *Recorder) error { return r.MaxPool2D(y, x, p) })
	want := poolRef(xs, 1, 1, h, w, p, true)
	got := download(t, y)
	for i := range want {
		require.Equal(t, math.IsNaN(want[i]), math.IsNaN(float64(got[i])), "NaN at %d (got %g, want %g)", i, got[i], want[i])
		if !math.IsNaN(want[i]) {
			require.Equal(t, want[i], float64(got[i]), "at %d", i)
		}
	}
}

func TestGlobalAvgPool(t *testing.T) {
	d := newTestDevice(t)
	for i, tc := range []struct {
		name        string
		nb, c, h, w int
		yShape      func(nb, ctot int) []int
		ctot, c0    int // ctot 0: c
	}{
		{"odd", 3, 5, 17, 13, flat2, 0, 0},
		{"odd-4d", 3, 5, 17, 13, flat4, 0, 0},
		{"1x1", 2, 7, 1, 1, flat2, 0, 0},
		{"slice", 3, 5, 7, 3, flat2, 11, 6},
		{"slice-4d", 3, 5, 7, 3, flat4, 9, 2},
		// Inception-v3's final pool: 2048 channels at 8x8.
		{"inception-8x8x2048", 2, 2048, 8, 8, flat2, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctot := max(tc.ctot, tc.c)
			xs := randSlice(newRand(uint64(300+i)), tc.nb*tc.c*tc.h*tc.w)
			x := tensorOf(t, d, xs, tc.nb, tc.c, tc.h, tc.w)
			y := sentinelTensor(t, d, tc.yShape(tc.nb, ctot)...)
			run(t, d, func(r *Recorder) error { return r.GlobalAvgPool(y, x, tc.c0) })
			hw := tc.h * tc.w
			want := make([]float64, tc.nb*tc.c)
			for pl := range want {
				for _, v := range xs[pl*hw : (pl+1)*hw] {
					want[pl] += float64(v)
				}
				want[pl] /= float64(hw)
			}
			// A sequential float32 sum of up to 221 values in [-1, 1].
			checkSlice(t, "global avg pool", want, download(t, y), tc.nb, tc.c, ctot, tc.c0, 1, 1e-6, 1e-6)
		})
	}
}

func flat2(nb, ctot int) []int { return []int{nb, ctot} }
func flat4(nb, ctot int) []int { return []int{nb, ctot, 1, 1} }

func TestPoolErrors(t *testing.T) {
	d := newTestDevice(t)
	x := zeros(t, d, 2, 3, 9, 9)
	k3s2 := PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2} // 9x9 -> 4x4
	for _, tc := range []struct {
		name string
		y, x *Tensor
		p    PoolParams
		want string
	}{
		{"nil", nil, x, k3s2, "nil tensor"},
		{"3d", zeros(t, d, 3, 4, 4), x, k3s2, "want 4D"},
		{"zero window", zeros(t, d, 2, 3, 4, 4), x, PoolParams{KW: 3}, "must be >= 1"},
		{"negative stride", zeros(t, d, 2, 3, 4, 4), x, PoolParams{KH: 3, KW: 3, StrideH: -1}, "must be >= 1"},
		{"padding over half", zeros(t, d, 2, 3, 9, 9), x, PoolParams{KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 2, PadW: 1}, "at most half"},
		{"window too big", zeros(t, d, 2, 3, 1, 1), x, PoolParams{KH: 10, KW: 3}, "does not fit"},
		{"wrong size", zeros(t, d, 2, 3, 5, 4), x, k3s2, "want [2 Ctot 4 4]"},
		{"wrong batch", zeros(t, d, 1, 3, 4, 4), x, k3s2, "want [2 Ctot 4 4]"},
		{"slice past end", zeros(t, d, 2, 5, 4, 4), x, PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, ChannelOffset: 3}, "channels [3, 6)"},
		{"negative offset", zeros(t, d, 2, 5, 4, 4), x, PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, ChannelOffset: -1}, "channels [-1, 2)"},
		{"alias", x, x, PoolParams{KH: 1, KW: 1}, "alias"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, op := range []func(r *Recorder) error{
				func(r *Recorder) error { return r.MaxPool2D(tc.y, tc.x, tc.p) },
				func(r *Recorder) error { return r.AvgPool2D(tc.y, tc.x, tc.p) },
			} {
				r, err := d.Record()
				require.NoError(t, err)
				err = op(r)
				require.ErrorContains(t, err, tc.want)
				require.ErrorContains(t, err, "engine: ")
				require.Equal(t, err, r.Err(), "the error is sticky")
				require.Equal(t, err, r.Submit())
				r.Release()
			}
		})
	}
	y2 := zeros(t, d, 2, 4)
	for _, tc := range []struct {
		name string
		y, x *Tensor
		c0   int
		want string
	}{
		{"nil", y2, nil, 0, "nil tensor"},
		{"2d input", y2, zeros(t, d, 2, 3), 0, "4D NCHW input"},
		{"spatial output", zeros(t, d, 2, 3, 2, 1), x, 0, "want [2 Ctot] or [2 Ctot 1 1]"},
		{"wrong batch", zeros(t, d, 3, 4), x, 0, "want [2 Ctot]"},
		{"slice past end", y2, x, 2, "channels [2, 5)"},
		{"alias", zeros(t, d, 2, 3, 1, 1), nil, 0, "alias"},
	} {
		t.Run("global/"+tc.name, func(t *testing.T) {
			if tc.name == "alias" {
				tc.x = tc.y
			}
			r, err := d.Record()
			require.NoError(t, err)
			defer r.Release()
			err = r.GlobalAvgPool(tc.y, tc.x, tc.c0)
			require.ErrorContains(t, err, tc.want)
			require.Equal(t, err, r.Err())
		})
	}
}

func TestPoolOutSize(t *testing.T) {
	for _, tc := range []struct {
		p            PoolParams
		h, w, oh, ow int
	}{
		{PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2}, 147, 147, 73, 73},
		{PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2}, 71, 71, 35, 35},
		{PoolParams{KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, 35, 35, 35, 35},
		{PoolParams{KH: 2, KW: 3}, 9, 8, 4, 2}, // default stride: the window
		{PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, 17, 16, 9, 8},
	} {
		oh, ow := tc.p.OutSize(tc.h, tc.w)
		require.Equal(t, [2]int{tc.oh, tc.ow}, [2]int{oh, ow}, "%+v on %dx%d", tc.p, tc.h, tc.w)
	}
}

// The Inception-v3 pools at batch 16. GB/s counts the input read once
// and the output written once.
func BenchmarkMaxPool2D(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range []struct {
		name    string
		c, h, w int
		p       PoolParams
	}{
		{"16x64x147x147/3s2", 64, 147, 147, PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2}},
		{"16x192x71x71/3s2", 192, 71, 71, PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2}},
		{"16x768x17x17/3s2", 768, 17, 17, PoolParams{KH: 3, KW: 3, StrideH: 2, StrideW: 2}},
	} {
		b.Run(s.name, func(b *testing.B) {
			x := benchTensor(b, d, 16, s.c, s.h, s.w)
			oh, ow := s.p.OutSize(s.h, s.w)
			y := benchTensor(b, d, 16, s.c, oh, ow)
			benchGPU(b, d, int64(4*(x.n+y.n)), func(r *Recorder) error { return r.MaxPool2D(y, x, s.p) })
		})
	}
}

func BenchmarkAvgPool2D(b *testing.B) {
	d := newTestDevice(b)
	p := PoolParams{KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	for _, s := range []struct {
		name    string
		c, h, w int
	}{
		{"16x192x35x35/3s1p1", 192, 35, 35},
		{"16x768x17x17/3s1p1", 768, 17, 17},
		{"16x2048x8x8/3s1p1", 2048, 8, 8},
	} {
		b.Run(s.name, func(b *testing.B) {
			x := benchTensor(b, d, 16, s.c, s.h, s.w)
			y := benchTensor(b, d, 16, s.c, s.h, s.w)
			benchGPU(b, d, int64(4*(x.n+y.n)), func(r *Recorder) error { return r.AvgPool2D(y, x, p) })
		})
	}
}

func BenchmarkGlobalAvgPool(b *testing.B) {
	d := newTestDevice(b)
	b.Run("16x2048x8x8", func(b *testing.B) {
		x := benchTensor(b, d, 16, 2048, 8, 8)
		y := benchTensor(b, d, 16, 2048)
		benchGPU(b, d, int64(4*(x.n+y.n)), func(r *Recorder) error { return r.GlobalAvgPool(y, x, 0) })
	})
}
