package toy

import (
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"io"
	"math"
	"math/rand/v2"

	"vkgan/internal/atomicfile"
)

// The talk's picture: D's probability of "real" as a blue field over the
// plane, the collected points as small dark dots and G's samples as green
// circles. Sizes are in pixels of the PNG frames; GIF frames are half size.
const (
	toyFrameSize   = 512
	toyFieldGrid   = 128 // D is evaluated on this many points per side, in one batch
	toyRealDots    = 1000
	toyDrawSamples = 400
	toyCircleR     = 4.0
)

var (
	toyWhite = color.RGBA{247, 251, 255, 255}
	toyBlue  = color.RGBA{33, 102, 172, 255}
	toyDot   = color.RGBA{30, 30, 30, 255}
	toyGreen = color.RGBA{0, 175, 40, 255}
	toyRed   = color.RGBA{215, 40, 40, 255}
)

type toyDrawer struct {
	mix     Mixture
	holdout int
	real    [][2]float64
	pts     []float32
}

func newToyDrawer(mix Mixture, holdout int, seed uint64) *toyDrawer {
	rng := rand.New(rand.NewPCG(seed, 0x64726177))
	return &toyDrawer{mix: mix, holdout: holdout, real: mix.Sample(rng, toyRealDots, holdout)}
}

// gridPoints are the plane coordinates of the field grid, row-major from
// the top-left (y decreasing down the image).
func (t *toyDrawer) gridPoints() []float32 {
	if t.pts != nil {
		return t.pts
	}
	e := t.mix.Extent
	for j := 0; j < toyFieldGrid; j++ {
		y := e - 2*e*(float64(j)+0.5)/toyFieldGrid
		for i := 0; i < toyFieldGrid; i++ {
			x := -e + 2*e*(float64(i)+0.5)/toyFieldGrid
			t.pts = append(t.pts, float32(x), float32(y))
		}
	}
	return t.pts
}

// toPixel maps plane coordinates to pixel coordinates.
func (t *toyDrawer) toPixel(x, y float64) (float64, float64) {
	e := t.mix.Extent
	return (x + e) / (2 * e) * toyFrameSize, (e - y) / (2 * e) * toyFrameSize
}

func lerpRGBA(a, b color.RGBA, f float64) color.RGBA {
	f = math.Max(0, math.Min(1, f))
	l := func(u, v uint8) uint8 { return uint8(math.Round(float64(u) + (float64(v)-float64(u))*f)) }
	return color.RGBA{l(a.R, b.R), l(a.G, b.G), l(a.B, b.B), 255}
}

// draw renders one frame: field holds D's probabilities on gridPoints,
// samples G's points (x, y pairs).
func (t *toyDrawer) draw(field, samples []float32) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, toyFrameSize, toyFrameSize))
	n := toyFieldGrid
	// Near equilibrium D says about 0.5 everywhere, so the ramp spans this
	// frame's lowest to highest value: the darkest blue is where D is most
	// sure of "real", whatever its absolute level.
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range field {
		lo, hi = min(lo, v), max(hi, v)
	}
	if !(hi-lo > 1e-6) {
		lo, hi = 0, 1
	}
	at := func(i, j int) float64 {
		i = min(max(i, 0), n-1)
		j = min(max(j, 0), n-1)
		return float64((field[j*n+i] - lo) / (hi - lo))
	}
	// Bilinear between grid points, which sit at cell centres.
	for py := 0; py < toyFrameSize; py++ {
		gy := (float64(py)+0.5)*float64(n)/toyFrameSize - 0.5
		j0 := int(math.Floor(gy))
		fy := gy - float64(j0)
		for px := 0; px < toyFrameSize; px++ {
			gx := (float64(px)+0.5)*float64(n)/toyFrameSize - 0.5
			i0 := int(math.Floor(gx))
			fx := gx - float64(i0)
			v := (at(i0, j0)*(1-fx)+at(i0+1, j0)*fx)*(1-fy) + (at(i0, j0+1)*(1-fx)+at(i0+1, j0+1)*fx)*fy
			img.SetRGBA(px, py, lerpRGBA(toyWhite, toyBlue, v))
		}
	}
	if t.holdout >= 0 {
		c := t.mix.Centers[t.holdout]
		x, y := t.toPixel(c[0], c[1])
		circle(img, x, y, 10, 1.2, toyRed)
	}
	for _, p := range t.real {
		x, y := t.toPixel(p[0], p[1])
		for dy := 0; dy < 2; dy++ {
			for dx := 0; dx < 2; dx++ {
				setIn(img, int(x)+dx, int(y)+dy, toyDot)
			}
		}
	}
	for i := 0; i < min(toyDrawSamples, len(samples)/2); i++ {
		x, y := t.toPixel(float64(samples[2*i]), float64(samples[2*i+1]))
		circle(img, x, y, toyCircleR, 1.3, toyGreen)
	}
	return img
}

func setIn(img *image.RGBA, x, y int, c color.RGBA) {
	if image.Pt(x, y).In(img.Rect) {
		img.SetRGBA(x, y, c)
	}
}

// circle draws a ring of radius r and width w centred at (cx, cy).
func circle(img *image.RGBA, cx, cy, r, w float64, c color.RGBA) {
	if math.IsNaN(cx) || math.IsNaN(cy) || math.Abs(cx) > 1e6 || math.Abs(cy) > 1e6 {
		return
	}
	R := int(math.Ceil(r + w))
	for y := int(cy) - R; y <= int(cy)+R; y++ {
		for x := int(cx) - R; x <= int(cx)+R; x++ {
			d := math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-cy)
			if math.Abs(d-r) <= w/2 {
				setIn(img, x, y, c)
			}
		}
	}
}

type toyFrame struct{ img *image.RGBA }

// toyPalette: 200 steps of the field's white-to-blue ramp, then the dot,
// green and red colours, so frames quantise without dithering noise.
func toyPalette() color.Palette {
	var p color.Palette
	for i := 0; i < 200; i++ {
		p = append(p, lerpRGBA(toyWhite, toyBlue, float64(i)/199))
	}
	return append(p, toyDot, toyGreen, toyRed, lerpRGBA(toyGreen, toyBlue, 0.5), lerpRGBA(toyGreen, toyWhite, 0.5))
}

// paletted halves a frame and maps it onto pal. Field colours go straight
// to their ramp index; others to the nearest palette colour.
func paletted(src *image.RGBA, pal color.Palette) *image.Paletted {
	w, h := src.Rect.Dx()/2, src.Rect.Dy()/2
	dst := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	cache := map[color.RGBA]uint8{}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			// Of the 2x2 block keep a non-field colour if there is one, so
			// dots and circles survive the halving.
			c := src.RGBAAt(2*x, 2*y)
			for _, q := range [][2]int{{1, 0}, {0, 1}, {1, 1}} {
				if v := src.RGBAAt(2*x+q[0], 2*y+q[1]); v == toyGreen || v == toyDot || v == toyRed {
					c = v
				}
			}
			i, ok := cache[c]
			if !ok {
				i = uint8(pal.Index(c))
				cache[c] = i
			}
			dst.SetColorIndex(x, y, i)
		}
	}
	return dst
}

// writeToyGIF writes the frames as an animated GIF (a tenth of a second
// each, the last held for two seconds, looping).
func writeToyGIF(path string, frames []*toyFrame) error {
	if len(frames) == 0 {
		return fmt.Errorf("train: toy: no frames for %s", path)
	}
	pal := toyPalette()
	anim := &gif.GIF{}
	for i, f := range frames {
		anim.Image = append(anim.Image, paletted(f.img, pal))
		d := 10
		if i == len(frames)-1 {
			d = 200
		}
		anim.Delay = append(anim.Delay, d)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return gif.EncodeAll(w, anim) })
}

// writePNG writes a frame as a PNG file, atomically.
func writePNG(path string, img image.Image) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return png.Encode(w, img) })
}
