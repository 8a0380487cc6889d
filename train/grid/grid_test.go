package grid

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vkgan/train/rundir"
)

func TestToByte(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v    float32
		want uint8
	}{
		{-1, 0}, {1, 255}, {0, 128}, // 127.5 rounds away from zero
		{-2, 0}, {2, 255}, {-0.5, 64}, {0.5, 191},
		{float32(math.NaN()), 0},
		{float32(math.Inf(1)), 255}, {float32(math.Inf(-1)), 0},
		{-1 + 1.0/127.5, 1}, {1 - 1.0/127.5, 254},
	} {
		assert.Equal(t, tc.want, toByte(tc.v), "%v", tc.v)
	}
}

// rgb reads a pixel as [r, g, b], checking it is opaque.
func rgb(t *testing.T, img *image.RGBA, x, y int) [3]uint8 {
	t.Helper()
	o := img.PixOffset(x, y)
	require.Equal(t, uint8(255), img.Pix[o+3], "alpha at %d,%d", x, y)
	return [3]uint8{img.Pix[o], img.Pix[o+1], img.Pix[o+2]}
}

func TestGridImageRGB(t *testing.T) {
	t.Parallel()
	// Three RGB images of 2x2 in a 2-column grid: the fourth cell is empty.
	// Image k's channel c, pixel (x, y) is at k*12 + c*4 + y*2 + x.
	pix := []float32{
		// image 0: red channel ramps, green -1, blue 1
		-1, -0.5, 0.5, 1, -1, -1, -1, -1, 1, 1, 1, 1,
		// image 1: out of range and non-finite values
		-3, 3, float32(math.NaN()), float32(math.Inf(1)), 0, 0, 0, 0, 0, 0, 0, 0,
		// image 2: all mid-grey
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	}
	img, err := Image(pix, 3, 3, 2, 2)
	require.NoError(t, err)
	// 2 columns and 2 rows of 2 px with 2 px borders: 2+2+2+2+2 = 10.
	require.Equal(t, image.Rect(0, 0, 10, 10), img.Bounds())

	black := [3]uint8{0, 0, 0}
	want := map[image.Point][3]uint8{
		// image 0 at (2, 2)
		{2, 2}: {0, 0, 255}, {3, 2}: {64, 0, 255},
		{2, 3}: {191, 0, 255}, {3, 3}: {255, 0, 255},
		// image 1 at (6, 2)
		{6, 2}: {0, 128, 128}, {7, 2}: {255, 128, 128},
		{6, 3}: {0, 128, 128}, {7, 3}: {255, 128, 128},
		// image 2 at (2, 6)
		{2, 6}: {128, 128, 128}, {3, 6}: {128, 128, 128},
		{2, 7}: {128, 128, 128}, {3, 7}: {128, 128, 128},
	}
	for y := range 10 {
		for x := range 10 {
			w, ok := want[image.Point{x, y}]
			if !ok {
				w = black // border, or the empty fourth cell
			}
			assert.Equal(t, w, rgb(t, img, x, y), "pixel %d,%d", x, y)
		}
	}
}

func TestGridImageGrey(t *testing.T) {
	t.Parallel()
	// Four grey images of 2x2 in a 2x2 grid: image k's pixel i is k/4 - i/8.
	var pix []float32
	for k := range 4 {
		for i := range 4 {
			pix = append(pix, float32(k)/4-float32(i)/8)
		}
	}
	img, err := Image(pix, 4, 1, 2, 2)
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 10, 10), img.Bounds())
	for k := range 4 {
		x0, y0 := 2+4*(k%2), 2+4*(k/2)
		for i := range 4 {
			v := toByte(pix[k*4+i])
			assert.Equal(t, [3]uint8{v, v, v}, rgb(t, img, x0+i%2, y0+i/2), "image %d pixel %d", k, i)
		}
	}
	assert.Equal(t, [3]uint8{128, 128, 128}, rgb(t, img, 2, 2))
	assert.Equal(t, [3]uint8{0, 0, 0}, rgb(t, img, 4, 2), "border between images")
}

func TestGridImageRGBA(t *testing.T) {
	t.Parallel()
	// One 2x2 RGBA image: opaque red, half-transparent green, a colour
	// brighter than its alpha (clamped), fully transparent.
	pix := []float32{
		1, 0, 1, -1, // R
		-1, 0, 1, -1, // G
		-1, -1, -1, -1, // B
		1, 0, -0.5, -1, // A
	}
	img, err := Image(pix, 1, 4, 2, 1)
	require.NoError(t, err)
	at := func(x, y int) [4]uint8 {
		c := img.RGBAAt(2+x, 2+y)
		return [4]uint8{c.R, c.G, c.B, c.A}
	}
	assert.Equal(t, [4]uint8{255, 0, 0, 255}, at(0, 0))
	assert.Equal(t, [4]uint8{128, 128, 0, 128}, at(1, 0))
	assert.Equal(t, [4]uint8{64, 64, 0, 64}, at(0, 1), "colours clamped to alpha")
	assert.Equal(t, [4]uint8{0, 0, 0, 0}, at(1, 1))
	assert.Equal(t, [4]uint8{0, 0, 0, 255}, [4]uint8(img.Pix[0:4]), "the border stays opaque black")

	path := filepath.Join(t.TempDir(), "rgba.png")
	require.NoError(t, Write(path, pix, 1, 4, 2, 1))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	back, err := png.Decode(f)
	require.NoError(t, err)
	nc := back.(*image.NRGBA)
	assert.Equal(t, color.NRGBA{255, 255, 0, 128}, nc.NRGBAAt(3, 2), "stored with its alpha (unpremultiplied by PNG)")
	assert.Equal(t, uint8(0), nc.NRGBAAt(3, 3).A)
}

func TestGridImageShapes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n, size, cols int
		w, h          int
	}{
		{64, 64, 8, 8*66 + 2, 8*66 + 2}, // the run's sample grid
		{64, 32, 8, 8*34 + 2, 8*34 + 2},
		{10, 4, 8, 8*6 + 2, 2*6 + 2}, // a short last row
		{3, 4, 8, 3*6 + 2, 6 + 2},    // fewer images than columns
		{1, 1, 1, 5, 5},
	} {
		pix := make([]float32, tc.n*3*tc.size*tc.size)
		img, err := Image(pix, tc.n, 3, tc.size, tc.cols)
		require.NoError(t, err)
		assert.Equal(t, image.Rect(0, 0, tc.w, tc.h), img.Bounds(), "%+v", tc)
	}
}

func TestGridImageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                   string
		len, n, ch, size, cols int
		want                   string
	}{
		{"no images", 0, 0, 3, 2, 2, "0 images"},
		{"negative n", 12, -1, 3, 2, 2, "-1 images"},
		{"too many", 12, 1 << 20, 3, 2, 2, "images: need 1 to"},
		{"channels", 8, 1, 2, 2, 2, "2 channels: need 1, 3 or 4"},
		{"size", 0, 1, 3, 0, 2, "image side 0"},
		{"huge size", 12, 1, 3, 1 << 30, 1, "image side"},
		{"cols", 12, 1, 3, 2, 0, "0 columns"},
		{"short", 11, 1, 3, 2, 1, "11 values for 1 images of 3x2x2: want 12"},
		{"long", 13, 1, 3, 2, 1, "want 12"},
		{"grid too large", 12, 1 << 16, 3, 64, 1 << 16, "too large"},
	} {
		_, err := Image(make([]float32, tc.len), tc.n, tc.ch, tc.size, tc.cols)
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), "train: grid: ", tc.name)
		assert.Contains(t, err.Error(), tc.want, tc.name)
	}
}

func TestWriteGrid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, rundir.SamplesDir), 0o755))
	path := rundir.SamplePath(dir, 500)
	assert.Equal(t, filepath.Join(dir, "samples", "step_0000500.png"), path)

	const n, size = 64, 8
	pix := make([]float32, n*3*size*size)
	for i := range pix {
		pix[i] = float32(math.Sin(float64(i)))
	}
	require.NoError(t, Write(path, pix, n, 3, size, 8))
	want, err := Image(pix, n, 3, size, 8)
	require.NoError(t, err)

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	got, err := png.Decode(f)
	require.NoError(t, err)
	require.Equal(t, want.Bounds(), got.Bounds())
	for y := range want.Bounds().Dy() {
		for x := range want.Bounds().Dx() {
			r, g, b, a := got.At(x, y).RGBA()
			w := want.RGBAAt(x, y)
			require.Equal(t, [4]uint8{w.R, w.G, w.B, w.A}, [4]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}, "pixel %d,%d", x, y)
		}
	}

	// Bad arguments write nothing; a missing folder is an error.
	bad := filepath.Join(dir, "bad.png")
	assert.Error(t, Write(bad, pix[:10], n, 3, size, 8))
	_, err = os.Stat(bad)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Error(t, Write(filepath.Join(dir, "nope", "x.png"), pix, n, 3, size, 8))
	entries, err := os.ReadDir(filepath.Join(dir, rundir.SamplesDir))
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left behind")
}

func TestWriteStrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "interp.png")
	pix := make([]float32, 10*1*4*4)
	require.NoError(t, WriteStrip(path, pix, 10, 1, 4))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	require.NoError(t, err)
	assert.Equal(t, 10*6+2, cfg.Width)
	assert.Equal(t, 6+2, cfg.Height)
}

func BenchmarkWriteGrid(b *testing.B) {
	// The run's sample grid: 64 RGB images of 64x64.
	const n, size = 64, 64
	pix := make([]float32, n*3*size*size)
	for i := range pix {
		pix[i] = float32(math.Sin(float64(i) * 0.01))
	}
	path := filepath.Join(b.TempDir(), "grid.png")
	for b.Loop() {
		if err := Write(path, pix, n, 3, size, 8); err != nil {
			b.Fatal(err)
		}
	}
}
