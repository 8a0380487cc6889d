package grid

import (
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"io"
	"math"

	"vkgan/internal/atomicfile"
)

// Border is the width in pixels of the black border around and between
// the images of a grid, as torchvision's save_image draws it.
const Border = 2

// Limits that keep a grid's arithmetic and memory sane; a sample grid is
// 64 images of 64x64.
const (
	maxGridImages = 1 << 16
	maxGridSide   = 1 << 12 // of one image
	maxGridPixels = 1 << 28 // of the whole grid
)

// Image lays out n images as a grid with cols columns (fewer if n is
// smaller), a Border-pixel black border around and between them, and
// black cells after the last image. pix holds the images as NCHW float32 in
// [-1, 1], G's tanh output: n*channels*size*size values, channels 1 (grey),
// 3 (RGB) or 4 (RGBA, colours premultiplied by alpha as the data set
// stores them; each colour is clamped to its alpha, so any G output is a
// valid premultiplied pixel). A value v becomes uint8(round((v+1)*127.5)) after clamping to
// [-1, 1]; NaN becomes 0 (black), like -1, so a diverged G shows as black
// rather than as a plausible colour.
func Image(pix []float32, n, channels, size, cols int) (*image.RGBA, error) {
	switch {
	case n < 1 || n > maxGridImages:
		return nil, fmt.Errorf("train: grid: %d images: need 1 to %d", n, maxGridImages)
	case channels != 1 && channels != 3 && channels != 4:
		return nil, fmt.Errorf("train: grid: %d channels: need 1, 3 or 4", channels)
	case size < 1 || size > maxGridSide:
		return nil, fmt.Errorf("train: grid: image side %d: need 1 to %d", size, maxGridSide)
	case cols < 1:
		return nil, fmt.Errorf("train: grid: %d columns: need at least 1", cols)
	}
	// n and size are bounded above, so none of this can overflow.
	cols = min(cols, n)
	rows := (n + cols - 1) / cols
	w := cols*(size+Border) + Border
	h := rows*(size+Border) + Border
	if w*h > maxGridPixels {
		return nil, fmt.Errorf("train: grid: %dx%d pixels is too large (at most %d)", w, h, maxGridPixels)
	}
	plane := size * size
	if want := n * channels * plane; len(pix) != want {
		return nil, fmt.Errorf("train: grid: %d values for %d images of %dx%dx%d: want %d", len(pix), n, channels, size, size, want)
	}

	img := image.NewRGBA(image.Rect(0, 0, w, h))
	// Opaque black everywhere first: the border and the empty cells.
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 0xff
	}
	for k := range n {
		x0 := Border + (k%cols)*(size+Border)
		y0 := Border + (k/cols)*(size+Border)
		src := pix[k*channels*plane : (k+1)*channels*plane]
		for y := range size {
			row := img.Pix[img.PixOffset(x0, y0+y):]
			for x := range size {
				o := 4 * x
				i := y*size + x
				switch channels {
				case 1:
					v := toByte(src[i])
					row[o], row[o+1], row[o+2] = v, v, v
				case 3:
					row[o] = toByte(src[i])
					row[o+1] = toByte(src[plane+i])
					row[o+2] = toByte(src[2*plane+i])
				case 4:
					a := toByte(src[3*plane+i])
					row[o] = min(toByte(src[i]), a)
					row[o+1] = min(toByte(src[plane+i]), a)
					row[o+2] = min(toByte(src[2*plane+i]), a)
					row[o+3] = a
				}
			}
		}
	}
	return img, nil
}

// toByte maps a tanh output in [-1, 1] to 0..255; see Image.
func toByte(v float32) uint8 {
	f := float64(v)
	switch {
	case f >= 1:
		return 255
	case !(f > -1): // also NaN
		return 0
	}
	return uint8(math.Round((f + 1) * 127.5))
}

// Write writes Image's grid as a PNG file, atomically: a grayscale PNG
// for one channel, one with an alpha channel for four. The folder must
// exist.
func Write(path string, pix []float32, n, channels, size, cols int) error {
	img, err := Image(pix, n, channels, size, cols)
	if err != nil {
		return err
	}
	if channels == 1 {
		gray := image.NewGray(img.Bounds())
		draw.Draw(gray, gray.Bounds(), img, img.Bounds().Min, draw.Src)
		return writePNG(path, gray)
	}
	return writePNG(path, img)
}

// WriteStrip writes n images in one row, as for a latent interpolation.
func WriteStrip(path string, pix []float32, n, channels, size int) error {
	return Write(path, pix, n, channels, size, n)
}

func writePNG(path string, img image.Image) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return png.Encode(w, img)
	})
}
