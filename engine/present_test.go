package engine

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestByteThresholdsMatchByteOf(t *testing.T) {
	t.Parallel()
	th := ByteThresholds()
	count := func(v float32) uint8 {
		k := 0
		for j := 1; j < 256; j++ {
			if v >= th[j] {
				k = j
			}
		}
		return uint8(k)
	}
	rng := newRand(3)
	vals := []float32{-1, 1, 0, float32(math.Copysign(0, -1)), -1e-30, 1e-30, 2, -2, float32(math.NaN()), float32(math.Inf(1))}
	for j := 1; j < 256; j++ {
		f := th[j]
		vals = append(vals, f, math.Nextafter32(f, -2), math.Nextafter32(f, 2))
	}
	for range 20000 {
		vals = append(vals, float32(rng.Float64()*2.2-1.1))
	}
	for _, v := range vals {
		require.Equal(t, byteOf(v), count(v), "value %g", v)
	}
}

func TestFit(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ gw, gh, w, h, x, y, dw, dh int }{
		{100, 100, 200, 100, 50, 0, 100, 100},
		{100, 100, 100, 300, 0, 100, 100, 100},
		{10, 20, 30, 30, 7, 0, 15, 30},
		{66, 66, 66, 66, 0, 0, 66, 66},
	} {
		x, y, dw, dh := Fit(c.gw, c.gh, c.w, c.h)
		require.Equal(t, [4]int{c.x, c.y, c.dw, c.dh}, [4]int{x, y, dw, dh}, "%+v", c)
	}
}

// paintRef is Paint on the host: Fit's rectangle, nearest neighbour.
func paintRef(src []float32, g Grid, w, h int) []uint32 {
	gw, gh := g.Pixels()
	x0, y0, dw, dh := Fit(gw, gh, w, h)
	cols := min(g.Cols, g.N)
	out := make([]uint32, w*h)
	plane := g.Size * g.Size
	for y := range h {
		for x := range w {
			px := uint32(0xff000000)
			if x >= x0 && x < x0+dw && y >= y0 && y < y0+dh {
				gx, gy := (x-x0)*gw/dw, (y-y0)*gh/dh
				cell := g.Size + GridBorder
				cx, cy, ox, oy := gx/cell, gy/cell, gx%cell, gy%cell
				k := cy*cols + cx
				if ox >= GridBorder && oy >= GridBorder && cx < cols && k < g.N {
					i := k*g.Channels*plane + (oy-GridBorder)*g.Size + ox - GridBorder
					r := uint32(byteOf(src[i]))
					gg, b := r, r
					if g.Channels >= 3 {
						gg, b = uint32(byteOf(src[i+plane])), uint32(byteOf(src[i+2*plane]))
					}
					if g.Channels == 4 {
						// Premultiplied over the checkerboard.
						a := uint32(byteOf(src[i+3*plane]))
						sq := max(g.Size/8, 1)
						bg := uint32(255)
						if ((ox-GridBorder)/sq+(oy-GridBorder)/sq)%2 == 1 {
							bg = 204
						}
						under := ((255-a)*bg + 127) / 255
						r, gg, b = min(r, a)+under, min(gg, a)+under, min(b, a)+under
					}
					px |= b | gg<<8 | r<<16
				}
			}
			out[y*w+x] = px
		}
	}
	return out
}

func TestPaint(t *testing.T) {
	d := newTestDevice(t)
	p, err := d.NewPainter()
	require.NoError(t, err)
	defer p.Release()
	rng := newRand(5)
	for _, c := range []struct {
		g    Grid
		w, h int
	}{
		{Grid{N: 4, Channels: 3, Size: 8, Cols: 2}, 40, 40},
		{Grid{N: 5, Channels: 3, Size: 5, Cols: 3}, 97, 61},
		{Grid{N: 1, Channels: 1, Size: 7, Cols: 1}, 13, 50},
		{Grid{N: 9, Channels: 3, Size: 4, Cols: 3}, 11, 9},
		{Grid{N: 3, Channels: 4, Size: 16, Cols: 2}, 53, 40},
		{Grid{N: 2, Channels: 4, Size: 5, Cols: 2}, 30, 30},
	} {
		src := make([]float32, c.g.N*c.g.Channels*c.g.Size*c.g.Size)
		for i := range src {
			src[i] = float32(rng.Float64()*2.4 - 1.2)
		}
		src[0] = float32(math.NaN())
		st := tensorOf(t, d, src, len(src))
		dst := zeros(t, d, c.w*c.h)
		run(t, d, func(r *Recorder) error { return p.Paint(r, dst, st, c.g, c.w, c.h) })
		got := download(t, dst)
		want := paintRef(src, c.g, c.w, c.h)
		for i := range want {
			if g := math.Float32bits(got[i]); g != want[i] {
				t.Fatalf("%+v %dx%d: pixel (%d,%d) = %08x, want %08x", c.g, c.w, c.h, i%c.w, i/c.w, g, want[i])
			}
		}
	}
}
