package engine

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// resizeCoord is PyTorch 2.x's source coordinate for output index d
// (area_pixel_compute_source_index with align_corners=False) in its float32
// arithmetic, each operation rounded on its own: the scale in/out is a
// float32 quotient, and a float64 coordinate would differ from it by up to
// 1.6e-5 (299 -> 35), more than the test's tolerance. It returns the first
// source index, the next one clamped to the edge and the weight of the
// second.
func resizeCoord(in, out, d int) (i0, i1 int, l float64) {
	scale := float32(in) / float32(out)
	src := float32(scale*(float32(d)+0.5)) - 0.5
	src = max(src, 0)
	i0 = min(int(src), in-1)
	i1 = min(i0+1, in-1)
	return i0, i1, float64(src) - float64(i0)
}

// resizeRef is F.interpolate(x, size=(oh, ow), mode='bilinear',
// align_corners=False) followed by a*v + b, interpolating in float64:
// x is [planes, h, w], the result [planes, oh, ow].
func resizeRef(x []float32, planes, h, w, oh, ow int, a, b float64) []float64 {
	out := make([]float64, 0, planes*oh*ow)
	for pl := range planes {
		at := func(iy, ix int) float64 { return float64(x[(pl*h+iy)*w+ix]) }
		for oy := range oh {
			y0, y1, ly := resizeCoord(h, oh, oy)
			for ox := range ow {
				x0, x1, lx := resizeCoord(w, ow, ox)
				top := (1-lx)*at(y0, x0) + lx*at(y0, x1)
				bot := (1-lx)*at(y1, x0) + lx*at(y1, x1)
				out = append(out, a*((1-ly)*top+ly*bot)+b)
			}
		}
	}
	return out
}

func TestResizeBilinear(t *testing.T) {
	d := newTestDevice(t)
	for i, tc := range []struct {
		name                string
		nb, c, h, w, oh, ow int
		ctot                int // 0: c
		p                   ResizeParams
	}{
		{"up-7x5-13x11", 3, 5, 7, 5, 13, 11, 0, ResizeParams{}},
		{"down-13x11-7x5", 3, 5, 13, 11, 7, 5, 0, ResizeParams{}},
		{"mixed-17x13-9x30", 2, 3, 17, 13, 9, 30, 0, ResizeParams{}},
		{"same-size", 2, 2, 6, 9, 6, 9, 0, ResizeParams{}},
		{"from-1x1", 2, 2, 1, 1, 3, 4, 0, ResizeParams{}},
		{"to-1x1", 2, 2, 5, 7, 1, 1, 0, ResizeParams{}},
		// pytorch-fid's resize of 32x32 and 64x64 images to 299x299.
		{"fid-32-299", 2, 3, 32, 32, 299, 299, 0, ResizeParams{}},
		{"fid-64-299", 1, 3, 64, 64, 299, 299, 0, ResizeParams{}},
		{"down-299-35", 2, 3, 299, 299, 35, 35, 0, ResizeParams{}},
		{"affine", 2, 3, 32, 32, 47, 53, 0, ResizeParams{Scale: 2, Shift: -1}},
		{"slice-affine", 2, 3, 7, 5, 13, 11, 8, ResizeParams{ChannelOffset: 4, Scale: 0.5, Shift: 0.25}},
		{"slice-first", 3, 2, 9, 9, 4, 4, 5, ResizeParams{}},
		// More channels than lavapipe's 65535 workgroups in z: two dispatches.
		{"channels-over-z-limit", 2, 66000, 1, 2, 2, 3, 66001, ResizeParams{ChannelOffset: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctot := max(tc.ctot, tc.c)
			xs := randSlice(newRand(uint64(400+i)), tc.nb*tc.c*tc.h*tc.w)
			x := tensorOf(t, d, xs, tc.nb, tc.c, tc.h, tc.w)
			y := sentinelTensor(t, d, tc.nb, ctot, tc.oh, tc.ow)
			run(t, d, func(r *Recorder) error { return r.ResizeBilinear(y, x, tc.p) })
			a := float64(tc.p.Scale)
			if a == 0 {
				a = 1
			}
			want := resizeRef(xs, tc.nb*tc.c, tc.h, tc.w, tc.oh, tc.ow, a, float64(tc.p.Shift))
			// Three float32 lerps of values in [-1, 1] (and the affine):
			// a few ulps of 2.
			checkSlice(t, "resize", want, download(t, y), tc.nb, tc.c, ctot, tc.p.ChannelOffset, tc.oh*tc.ow, 0, 2e-6)
		})
	}
}

// TestResizeBilinearUpsampleExact: doubling a constant-step ramp keeps it
// linear inside and clamps it at the edges, as PyTorch does: a row
// [0 1 2 3] becomes [0 .25 .75 1.25 1.75 2.25 2.75 3].
func TestResizeBilinearUpsampleExact(t *testing.T) {
	d := newTestDevice(t)
	x := tensorOf(t, d, []float32{0, 1, 2, 3}, 1, 1, 1, 4)
	y := zeros(t, d, 1, 1, 1, 8)
	run(t, d, func(r *Recorder) error { return r.ResizeBilinear(y, x, ResizeParams{}) })
	require.Equal(t, []float32{0, .25, .75, 1.25, 1.75, 2.25, 2.75, 3}, download(t, y))
}

func TestResizeBilinearErrors(t *testing.T) {
	d := newTestDevice(t)
	x := zeros(t, d, 2, 3, 5, 5)
	nan := float32(0)
	nan /= nan
	for _, tc := range []struct {
		name string
		y, x *Tensor
		p    ResizeParams
		want string
	}{
		{"nil", nil, x, ResizeParams{}, "nil tensor"},
		{"3d", zeros(t, d, 3, 4, 4), x, ResizeParams{}, "want 4D"},
		{"wrong batch", zeros(t, d, 1, 3, 4, 4), x, ResizeParams{}, "want [2 Ctot 4 4]"},
		{"slice past end", zeros(t, d, 2, 4, 4, 4), x, ResizeParams{ChannelOffset: 2}, "channels [2, 5)"},
		{"negative offset", zeros(t, d, 2, 4, 4, 4), x, ResizeParams{ChannelOffset: -1}, "channels [-1, 2)"},
		{"nan scale", zeros(t, d, 2, 3, 4, 4), x, ResizeParams{Scale: nan}, "must be numbers"},
		{"alias", x, x, ResizeParams{}, "alias"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := d.Record()
			require.NoError(t, err)
			defer r.Release()
			err = r.ResizeBilinear(tc.y, tc.x, tc.p)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "engine: resize bilinear: ")
			require.Equal(t, err, r.Err(), "the error is sticky")
		})
	}
}

// pytorch-fid's resize at batch 16. GB/s counts the input read once and
// the output written once.
func BenchmarkResizeBilinear(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range []struct {
		name         string
		h, w, oh, ow int
	}{
		{"16x3x32x32-299x299", 32, 32, 299, 299},
		{"16x3x64x64-299x299", 64, 64, 299, 299},
		{"16x3x299x299-35x35", 299, 299, 35, 35},
	} {
		b.Run(s.name, func(b *testing.B) {
			x := benchTensor(b, d, 16, 3, s.h, s.w)
			y := benchTensor(b, d, 16, 3, s.oh, s.ow)
			benchGPU(b, d, int64(4*(x.n+y.n)), func(r *Recorder) error { return r.ResizeBilinear(y, x, ResizeParams{}) })
		})
	}
}
