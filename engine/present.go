package engine

import (
	"fmt"
	"math"

	"vkgan/shaders"
)

// GridBorder is the black border, in pixels, around and between the cells
// of a grid; it matches train/grid.Border so a window shows what
// `vkgan sample` writes.
const GridBorder = 2

// Grid is a layout of n images of channels x size x size in cols columns,
// as train/grid.Image draws it.
type Grid struct {
	N, Channels, Size, Cols int
}

// Pixels is the grid's size in pixels, borders included.
func (g Grid) Pixels() (w, h int) {
	cols := min(g.Cols, g.N)
	rows := (g.N + cols - 1) / cols
	return cols*(g.Size+GridBorder) + GridBorder, rows*(g.Size+GridBorder) + GridBorder
}

// Fit is the largest rectangle of a gw x gh picture's aspect that fits a
// w x h window, centred: its corner (x, y) and size (dw, dh), in whole
// pixels. Window pixel (x+i, y+j) shows picture pixel (i*gw/dw, j*gh/dh),
// integer division (nearest neighbour, rounding down).
func Fit(gw, gh, w, h int) (x, y, dw, dh int) {
	if w*gh <= h*gw {
		dw, dh = w, max(w*gh/gw, 1)
	} else {
		dw, dh = max(h*gw/gh, 1), h
	}
	return (w - dw) / 2, (h - dh) / 2, dw, dh
}

// ByteThresholds returns, for j = 1..255, the smallest float32 that
// grid.Image turns into byte j or more (entry 0 is -Inf). The device
// compares each value with these instead of computing round((v+1)*127.5)
// in float32, which would differ from the host's float64 arithmetic in the
// last bit now and then; with them the bytes agree exactly.
func ByteThresholds() []float32 {
	t := make([]float32, 256)
	t[0] = float32(math.Inf(-1))
	// Search float32 values in order: key maps them to ordered integers.
	key := func(f float32) int64 {
		b := math.Float32bits(f)
		if b>>31 != 0 {
			return -int64(b & 0x7fffffff)
		}
		return int64(b)
	}
	unkey := func(k int64) float32 {
		if k < 0 {
			return math.Float32frombits(uint32(-k) | 1<<31)
		}
		return math.Float32frombits(uint32(k))
	}
	for j := 1; j < 256; j++ {
		lo, hi := key(-1), key(1) // byteOf(-1) = 0 < j <= 255 = byteOf(1)
		for lo+1 < hi {
			mid := lo + (hi-lo)/2
			if int(byteOf(unkey(mid))) >= j {
				hi = mid
			} else {
				lo = mid
			}
		}
		t[j] = unkey(hi)
	}
	return t
}

// byteOf is grid.Image's mapping of a tanh output to 0..255.
func byteOf(v float32) uint8 {
	f := float64(v)
	switch {
	case f >= 1:
		return 255
	case !(f > -1):
		return 0
	}
	return uint8(math.Round((f + 1) * 127.5))
}

// Painter turns G's output into window pixels on the device (to_bgra).
type Painter struct {
	d     *Device
	table *Tensor
}

// NewPainter uploads the byte thresholds (1 KiB) once.
func (d *Device) NewPainter() (*Painter, error) {
	t, err := d.FromSlice(ByteThresholds(), 256)
	if err != nil {
		return nil, err
	}
	return &Painter{d: d, table: t}, nil
}

// Release frees the painter's table. Safe on nil and twice.
func (p *Painter) Release() {
	if p == nil {
		return
	}
	p.table.Release()
	p.table = nil
}

// Paint records drawing src, g's images (NCHW in [-1, 1], at least
// g.N*g.Channels*g.Size^2 values), into dst as width x height BGRA8
// pixels, one 32-bit word each (dst needs width*height elements), scaled
// into Fit's rectangle with nearest neighbour and black around it.
func (p *Painter) Paint(r *Recorder, dst, src *Tensor, g Grid, width, height int) error {
	if r.err != nil {
		return r.err
	}
	if p == nil || p.table == nil {
		return r.fail(fmt.Errorf("engine: paint: released painter"))
	}
	switch {
	case g.N < 1 || g.Cols < 1 || g.Size < 1 || (g.Channels != 1 && g.Channels != 3 && g.Channels != 4):
		return r.fail(fmt.Errorf("engine: paint: bad grid %+v", g))
	case width < 1 || height < 1 || width > 1<<14 || height > 1<<14:
		return r.fail(fmt.Errorf("engine: paint: window %dx%d out of range", width, height))
	case src == nil || dst == nil:
		return r.fail(fmt.Errorf("engine: paint: nil tensor"))
	case src.Len() < g.N*g.Channels*g.Size*g.Size:
		return r.fail(fmt.Errorf("engine: paint: %d values for %d images of %dx%dx%d", src.Len(), g.N, g.Channels, g.Size, g.Size))
	case dst.Len() < width*height:
		return r.fail(fmt.Errorf("engine: paint: %d pixels in the destination, want %dx%d", dst.Len(), width, height))
	}
	cols := min(g.Cols, g.N)
	gw, gh := g.Pixels()
	x, y, dw, dh := Fit(gw, gh, width, height)
	u := func(v int) uint32 { return uint32(v) }
	push := shaders.ToBgraPush{
		Width: u(width), Height: u(height), N: u(g.N), Channels: u(g.Channels), Size: u(g.Size), Cols: u(cols),
		Gw: u(gw), Gh: u(gh), Dx: u(x), Dy: u(y), Dw: u(dw), Dh: u(dh),
	}
	groups := [3]uint32{uint32((width + 15) / 16), uint32((height + 15) / 16), 1}
	return dispatch(r, shaders.ToBgra, nil, groups, push, src, p.table, dst)
}

// Generate maps z (n x NZ values) to n images and leaves them on the
// device, in Output, for a Painter: unlike Sample, nothing is downloaded.
func (s *Sampler) Generate(z []float32) error {
	if err := s.z.Upload(z); err != nil {
		return err
	}
	return s.rec.Submit()
}

// Batch is the number of images per Generate.
func (s *Sampler) Batch() int { return s.n }
