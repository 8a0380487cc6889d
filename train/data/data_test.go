package data

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// solid returns a w x h NRGBA image of one colour.
func solid(w, h int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return img
}

// writeTestFile writes data to dir/rel, making folders as needed.
func writeTestFile(t *testing.T, dir, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, data, 0o644))
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}))
	return b.Bytes()
}

func encodeBMP(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, bmp.Encode(&b, img))
	return b.Bytes()
}

// encodeGIF writes an animated GIF with one frame per colour.
func encodeGIF(t *testing.T, w, h int, frames ...color.Color) []byte {
	t.Helper()
	anim := &gif.GIF{}
	for _, c := range frames {
		img := image.NewPaletted(image.Rect(0, 0, w, h), palette.Plan9)
		idx := uint8(color.Palette(palette.Plan9).Index(c))
		for i := range img.Pix {
			img.Pix[i] = idx
		}
		anim.Image = append(anim.Image, img)
		anim.Delay = append(anim.Delay, 10)
	}
	var b bytes.Buffer
	require.NoError(t, gif.EncodeAll(&b, anim))
	return b.Bytes()
}

// encodeWebP writes a lossless (VP8L) WebP of one colour. Go has no WebP
// encoder, but a flat image is easy: every prefix code is a "simple" code
// with a single symbol, which costs zero bits per pixel, so the bitstream is
// only the header and the five codes (WebP lossless spec, sections 3-6).
func encodeWebP(w, h int, c color.NRGBA) []byte {
	var bw struct {
		buf []byte
		acc uint64
		n   uint
	}
	put := func(v uint64, bits uint) { // LSB first, as VP8L reads
		bw.acc |= v << bw.n
		bw.n += bits
		for bw.n >= 8 {
			bw.buf = append(bw.buf, byte(bw.acc))
			bw.acc >>= 8
			bw.n -= 8
		}
	}
	put(0x2f, 8) // signature
	put(uint64(w-1), 14)
	put(uint64(h-1), 14)
	put(1, 1) // alpha_is_used
	put(0, 3) // version
	put(0, 1) // no transform
	put(0, 1) // no colour cache
	put(0, 1) // no meta prefix codes
	// Green (+ length codes), red, blue, alpha, distance.
	for _, sym := range []uint8{c.G, c.R, c.B, c.A, 0} {
		put(1, 1) // simple code
		put(0, 1) // one symbol
		put(1, 1) // 8-bit symbol
		put(uint64(sym), 8)
	}
	if bw.n > 0 {
		bw.buf = append(bw.buf, byte(bw.acc))
	}
	data := bw.buf
	chunk := append([]byte("VP8L"), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	chunk = append(chunk, data...)
	if len(data)%2 == 1 {
		chunk = append(chunk, 0)
	}
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(chunk)))...)
	out = append(out, "WEBP"...)
	return append(out, chunk...)
}

// hugePNG is a PNG signature and a valid IHDR claiming w x h RGB pixels,
// followed by garbage: only the header is sound.
func hugePNG(w, h uint32) []byte {
	ihdr := []byte("IHDR")
	ihdr = binary.BigEndian.AppendUint32(ihdr, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB, no interlace
	out := []byte("\x89PNG\r\n\x1a\n")
	out = binary.BigEndian.AppendUint32(out, 13)
	out = append(out, ihdr...)
	out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(ihdr))
	return append(out, []byte("IDAT this is not a zlib stream at all")...)
}

// pixel returns image i's RGB at (x, y).
func pixel(ds *Dataset, i, x, y int) [3]byte {
	plane := ds.Size * ds.Size
	base := i*3*plane + y*ds.Size + x
	return [3]byte{ds.Pixels[base], ds.Pixels[base+plane], ds.Pixels[base+2*plane]}
}

// assertFlat checks every pixel of image i is within tol of want.
func assertFlat(t *testing.T, ds *Dataset, i int, want [3]byte, tol int) {
	t.Helper()
	for y := range ds.Size {
		for x := range ds.Size {
			got := pixel(ds, i, x, y)
			for c := range 3 {
				if d := int(got[c]) - int(want[c]); d > tol || d < -tol {
					t.Fatalf("%s: pixel (%d,%d) = %v, want %v ± %d", ds.Files[i], x, y, got, want, tol)
				}
			}
		}
	}
}

func indexOf(t *testing.T, ds *Dataset, rel string) int {
	t.Helper()
	for i, f := range ds.Files {
		if f == rel {
			return i
		}
	}
	t.Fatalf("%s not loaded; loaded %v; skipped %v", rel, ds.Files, ds.SkippedExamples)
	return -1
}

func TestEncodeWebPIsValid(t *testing.T) {
	// The hand-made WebP must decode with x/image/webp on its own before the
	// loader tests rely on it.
	img, err := webp.Decode(bytes.NewReader(encodeWebP(3, 2, color.NRGBA{10, 200, 30, 255})))
	require.NoError(t, err)
	assert.Equal(t, image.Rect(0, 0, 3, 2), img.Bounds())
	r, g, b, a := img.At(2, 1).RGBA()
	assert.Equal(t, []uint32{10, 200, 30, 255}, []uint32{r >> 8, g >> 8, b >> 8, a >> 8})
}

func TestLoadDirMissing(t *testing.T) {
	_, err := LoadDir(filepath.Join(t.TempDir(), "nope"), LoadOptions{Size: 8})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not exist")

	f := filepath.Join(t.TempDir(), "file.png")
	writeTestFile(t, filepath.Dir(f), "file.png", encodePNG(t, solid(2, 2, color.NRGBA{A: 255})))
	_, err = LoadDir(f, LoadOptions{Size: 8})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a folder")
}

func TestLoadDirBadSize(t *testing.T) {
	_, err := LoadDir(t.TempDir(), LoadOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "size 0")
}

func TestLoadDirEmpty(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadDir(dir, LoadOptions{Size: 8})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no image files")

	// Files of other kinds do not count as images.
	writeTestFile(t, dir, "README.txt", []byte("hello"))
	writeTestFile(t, dir, "sub/notes.md", []byte("hello"))
	_, err = LoadDir(dir, LoadOptions{Size: 8})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no image files")
}

func TestLoadDirOnlyCorrupt(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, dir, "a.png", []byte("not a png"))
	writeTestFile(t, dir, "b.jpg", []byte{0xff, 0xd8, 0xff, 0x00, 0x01})
	writeTestFile(t, dir, "c.gif", nil)
	_, err := LoadDir(dir, LoadOptions{Size: 8})
	require.Error(t, err)
	msg := err.Error()
	t.Log(msg)
	assert.Contains(t, msg, "no usable image")
	assert.Contains(t, msg, "3 image files found")
	for _, name := range []string{"a.png: ", "b.jpg: ", "c.gif: "} {
		assert.Contains(t, msg, name)
	}
}

func TestLoadDirMixed(t *testing.T) {
	dir := t.TempDir()
	red := color.NRGBA{255, 0, 0, 255}

	// Non-square, several formats.
	writeTestFile(t, dir, "red_wide.png", encodePNG(t, solid(40, 20, red)))
	writeTestFile(t, dir, "red_tall.PNG", encodePNG(t, solid(7, 90, red)))
	writeTestFile(t, dir, "green.bmp", encodeBMP(t, solid(33, 47, color.NRGBA{0, 255, 0, 255})))
	writeTestFile(t, dir, "sub/deeper/blue.jpeg", encodeJPEG(t, solid(24, 24, color.NRGBA{0, 0, 255, 255})))
	writeTestFile(t, dir, "webp.webp", encodeWebP(5, 9, color.NRGBA{10, 200, 30, 255}))

	// Transparency goes over white.
	writeTestFile(t, dir, "clear.png", encodePNG(t, solid(16, 16, color.NRGBA{0, 0, 0, 0})))
	writeTestFile(t, dir, "half_black.png", encodePNG(t, solid(64, 64, color.NRGBA{0, 0, 0, 128})))

	// Grey, 16-bit and paletted sources become 8-bit RGB.
	grey := image.NewGray(image.Rect(0, 0, 20, 20))
	for i := range grey.Pix {
		grey.Pix[i] = 100
	}
	writeTestFile(t, dir, "grey.jpg", encodeJPEG(t, grey))
	g16 := image.NewGray16(image.Rect(0, 0, 12, 12))
	for y := range 12 {
		for x := range 12 {
			g16.SetGray16(x, y, color.Gray16{Y: 0x4000})
		}
	}
	writeTestFile(t, dir, "grey16.png", encodePNG(t, g16))
	writeTestFile(t, dir, "anim.gif", encodeGIF(t, 10, 30, color.RGBA{0, 0, 255, 255}, color.RGBA{255, 0, 0, 255}))

	// The centre crop of a wide image is its middle third.
	thirds := solid(30, 10, red)
	for y := range 10 {
		for x := 10; x < 20; x++ {
			thirds.SetNRGBA(x, y, color.NRGBA{0, 0, 255, 255})
		}
		for x := 20; x < 30; x++ {
			thirds.SetNRGBA(x, y, color.NRGBA{0, 255, 0, 255})
		}
	}
	writeTestFile(t, dir, "thirds.png", encodePNG(t, thirds))

	// A 1x1 image becomes a flat colour.
	writeTestFile(t, dir, "one.png", encodePNG(t, solid(1, 1, color.NRGBA{12, 34, 56, 255})))

	// Not images, or hidden: ignored, not skipped.
	writeTestFile(t, dir, "notes.txt", []byte("x"))
	writeTestFile(t, dir, ".git/objects/x.png", []byte("x"))

	var log bytes.Buffer
	ds, err := LoadDir(dir, LoadOptions{Size: 8, Progress: &log})
	require.NoError(t, err)
	assert.Equal(t, 0, ds.Skipped, "%v", ds.SkippedExamples)
	assert.Equal(t, 12, ds.N)
	assert.Len(t, ds.Pixels, ds.N*3*8*8)
	assert.Equal(t, []string{
		"anim.gif", "clear.png", "green.bmp", "grey.jpg", "grey16.png", "half_black.png", "one.png",
		"red_tall.PNG", "red_wide.png", "sub/deeper/blue.jpeg", "thirds.png", "webp.webp",
	}, ds.Files)
	assert.False(t, ds.FromCache)
	assert.Contains(t, log.String(), "data: decoding 12/12")

	assertFlat(t, ds, indexOf(t, ds, "red_wide.png"), [3]byte{255, 0, 0}, 0)
	assertFlat(t, ds, indexOf(t, ds, "red_tall.PNG"), [3]byte{255, 0, 0}, 0)
	assertFlat(t, ds, indexOf(t, ds, "green.bmp"), [3]byte{0, 255, 0}, 0)
	assertFlat(t, ds, indexOf(t, ds, "sub/deeper/blue.jpeg"), [3]byte{0, 0, 255}, 3) // JPEG is lossy
	assertFlat(t, ds, indexOf(t, ds, "webp.webp"), [3]byte{10, 200, 30}, 0)
	assertFlat(t, ds, indexOf(t, ds, "clear.png"), [3]byte{255, 255, 255}, 0)
	assertFlat(t, ds, indexOf(t, ds, "half_black.png"), [3]byte{127, 127, 127}, 1)
	assertFlat(t, ds, indexOf(t, ds, "grey.jpg"), [3]byte{100, 100, 100}, 2)
	assertFlat(t, ds, indexOf(t, ds, "grey16.png"), [3]byte{0x40, 0x40, 0x40}, 0)
	assertFlat(t, ds, indexOf(t, ds, "anim.gif"), [3]byte{0, 0, 255}, 0) // first frame only
	assertFlat(t, ds, indexOf(t, ds, "thirds.png"), [3]byte{0, 0, 255}, 0)
	assertFlat(t, ds, indexOf(t, ds, "one.png"), [3]byte{12, 34, 56}, 0)
}

func TestToSquareRGBCMYKAndScale(t *testing.T) {
	// CMYK (from Adobe JPEGs, which Go cannot write) converts to RGB.
	cmyk := image.NewCMYK(image.Rect(0, 0, 6, 4))
	for i := 0; i < len(cmyk.Pix); i += 4 {
		cmyk.Pix[i], cmyk.Pix[i+1], cmyk.Pix[i+2], cmyk.Pix[i+3] = 0, 255, 255, 0 // red
	}
	dst := make([]byte, 3*5*5)
	toSquare(cmyk, 5, false, dst)
	ds := &Dataset{Pixels: dst, N: 1, Size: 5, Files: []string{"cmyk"}}
	assertFlat(t, ds, 0, [3]byte{255, 0, 0}, 0)

	// Downscaling a left/right split keeps each half's colour away from the
	// seam: the filter does not smear across the whole image.
	split := solid(64, 64, color.NRGBA{0, 0, 0, 255})
	for y := range 64 {
		for x := 32; x < 64; x++ {
			split.SetNRGBA(x, y, color.NRGBA{255, 255, 255, 255})
		}
	}
	dst = make([]byte, 3*16*16)
	toSquare(split, 16, false, dst)
	ds = &Dataset{Pixels: dst, N: 1, Size: 16}
	assert.Equal(t, [3]byte{0, 0, 0}, pixel(ds, 0, 2, 5))
	assert.Equal(t, [3]byte{255, 255, 255}, pixel(ds, 0, 13, 5))
}

func TestLoadDirBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := encodePNG(t, solid(8, 8, color.NRGBA{1, 2, 3, 255}))
	writeTestFile(t, dir, "good.png", good)

	noisy := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	for i := range noisy.Pix {
		noisy.Pix[i] = byte(i * 7919 >> 3)
	}
	full := encodePNG(t, noisy)
	writeTestFile(t, dir, "truncated.png", full[:len(full)/2])
	writeTestFile(t, dir, "text.png", []byte("this is a text file, not an image\n"))
	writeTestFile(t, dir, "huge.png", hugePNG(100000, 100000))
	writeTestFile(t, dir, "zero.bmp", nil)

	start := time.Now()
	ds, err := LoadDir(dir, LoadOptions{Size: 4})
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 2*time.Second, "the huge header must not be decoded")

	assert.Equal(t, []string{"good.png"}, ds.Files)
	assert.Equal(t, 4, ds.Skipped)
	require.Len(t, ds.SkippedExamples, 4)
	reasons := strings.Join(ds.SkippedExamples, "\n")
	t.Log(reasons)
	assert.Contains(t, reasons, "huge.png: png image of 100000x100000 is larger than the 67108864-pixel limit")
	assert.Contains(t, reasons, "text.png: not a recognised image")
	assert.Contains(t, reasons, "truncated.png: ")
	assert.Contains(t, reasons, "zero.bmp: empty file")
	assertFlat(t, ds, 0, [3]byte{1, 2, 3}, 0)

	// A lower limit applies to ordinary images too.
	_, err = LoadDir(dir, LoadOptions{Size: 4, MaxPixels: 63})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "good.png: png image of 8x8 is larger than the 63-pixel limit")
}

func TestLoadDirSkippedExamplesCapped(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		writeTestFile(t, dir, n+".png", []byte("junk"))
	}
	writeTestFile(t, dir, "z.png", encodePNG(t, solid(2, 2, color.NRGBA{A: 255})))
	ds, err := LoadDir(dir, LoadOptions{Size: 2})
	require.NoError(t, err)
	assert.Equal(t, 7, ds.Skipped)
	assert.Len(t, ds.SkippedExamples, maxSkippedExamples)
	assert.True(t, strings.HasPrefix(ds.SkippedExamples[0], "a.png: "))
}

// TestLoadDirOddNames checks that a file name with a newline or invalid
// UTF-8 cannot garble LoadDir's messages: they quote each skipped file,
// while SkippedExamples keeps the raw "path: reason" for the caller.
func TestLoadDirOddNames(t *testing.T) {
	dir := t.TempDir()
	odd := "bad\n\xff.png"
	writeTestFile(t, dir, odd, []byte("junk"))
	writeTestFile(t, dir, "good.png", encodePNG(t, solid(2, 2, color.NRGBA{A: 255})))
	var log bytes.Buffer
	ds, err := LoadDir(dir, LoadOptions{Size: 2, Progress: &log})
	require.NoError(t, err)
	require.Equal(t, []string{odd + ": not a recognised image (unknown format)"}, ds.SkippedExamples)
	var line string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "skipped") {
			line = l
		}
	}
	assert.Contains(t, line, `first: "bad\n\xff.png: not a recognised image (unknown format)"`)
	assert.True(t, utf8.ValidString(log.String()), "%q", log.String())

	require.NoError(t, os.Remove(filepath.Join(dir, "good.png")))
	_, err = LoadDir(dir, LoadOptions{Size: 2})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "\n")
	assert.True(t, utf8.ValidString(err.Error()), "%q", err.Error())
	assert.Contains(t, err.Error(), `(first: "bad\n\xff.png: not a recognised image (unknown format)")`)

	// The reason leaves out the path, which the entry already names.
	missing := filepath.Join(t.TempDir(), "gone\n.png")
	err = decodeFile(sourceFile{rel: "gone\n.png", path: missing, size: 1}, 2, DefaultMaxPixels, false, new(sync.Mutex), make([]byte, 12))
	require.Error(t, err)
	assert.Equal(t, "open: no such file or directory", err.Error())
	assert.ErrorIs(t, err, os.ErrNotExist)

	// The walk's errors quote the path.
	assert.Equal(t, `lstat "a\nb": no such file or directory`,
		quotePath(&os.PathError{Op: "lstat", Path: "a\nb", Err: syscall.ENOENT}).Error())
}

// makeSet writes a few distinct images for the ordering and cache tests.
func makeSet(t *testing.T) string {
	dir := t.TempDir()
	for i, rel := range []string{"z.png", "a/b.png", "a/a.png", "m.jpg", "B.bmp", "a.png"} {
		img := solid(10+i, 12, color.NRGBA{uint8(40 * i), uint8(255 - 30*i), 77, 255})
		img.SetNRGBA(3, 4, color.NRGBA{0, 0, 0, 255}) // some detail to resample
		var data []byte
		switch filepath.Ext(rel) {
		case ".png":
			data = encodePNG(t, img)
		case ".jpg":
			data = encodeJPEG(t, img)
		case ".bmp":
			data = encodeBMP(t, img)
		}
		writeTestFile(t, dir, rel, data)
	}
	writeTestFile(t, dir, "bad.png", []byte("junk"))
	return dir
}

func TestLoadDirDeterministic(t *testing.T) {
	dir := makeSet(t)
	a, err := LoadDir(dir, LoadOptions{Size: 6, Workers: 1})
	require.NoError(t, err)
	b, err := LoadDir(dir, LoadOptions{Size: 6, Workers: 7})
	require.NoError(t, err)
	assert.Equal(t, []string{"B.bmp", "a.png", "a/a.png", "a/b.png", "m.jpg", "z.png"}, a.Files)
	assert.Equal(t, a, b)
}

func TestLoadDirFilter(t *testing.T) {
	dir := makeSet(t)
	ds, err := LoadDir(dir, LoadOptions{Size: 6, Filter: func(rel string) bool { return strings.HasPrefix(rel, "a/") }})
	require.NoError(t, err)
	assert.Equal(t, []string{"a/a.png", "a/b.png"}, ds.Files)

	_, err = LoadDir(dir, LoadOptions{Size: 6, Filter: func(string) bool { return false }})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "matches the filter")
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "dataset-*.cache"))
	require.NoError(t, err)
	return m
}

func TestLoadDirCache(t *testing.T) {
	dir := makeSet(t)
	cache := filepath.Join(t.TempDir(), "cache", "nested")
	opt := LoadOptions{Size: 6, CacheDir: cache}

	first, err := LoadDir(dir, opt)
	require.NoError(t, err)
	assert.False(t, first.FromCache)
	require.Len(t, cacheFiles(t, cache), 1)

	// Unchanged files: the cache, with the same contents.
	second, err := LoadDir(dir, opt)
	require.NoError(t, err)
	assert.True(t, second.FromCache)
	second.FromCache = false
	assert.Equal(t, first, second)

	// Prove the hit does not decode: break an image in place but keep its
	// size and time; the cached pixels still come back.
	p := filepath.Join(dir, "z.png")
	st, err := os.Stat(p)
	require.NoError(t, err)
	orig, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, bytes.Repeat([]byte{'x'}, len(orig)), 0o644))
	require.NoError(t, os.Chtimes(p, st.ModTime(), st.ModTime()))
	third, err := LoadDir(dir, opt)
	require.NoError(t, err)
	assert.True(t, third.FromCache)
	require.NoError(t, os.WriteFile(p, orig, 0o644))

	// Touching a file misses (and writes a new cache file).
	later := st.ModTime().Add(time.Hour)
	require.NoError(t, os.Chtimes(p, later, later))
	touched, err := LoadDir(dir, opt)
	require.NoError(t, err)
	assert.False(t, touched.FromCache)
	assert.Equal(t, first.Pixels, touched.Pixels)
	assert.Len(t, cacheFiles(t, cache), 2)

	// Another size misses.
	other, err := LoadDir(dir, LoadOptions{Size: 5, CacheDir: cache})
	require.NoError(t, err)
	assert.False(t, other.FromCache)
	assert.Equal(t, 5, other.Size)

	// An added file misses.
	writeTestFile(t, dir, "new.png", encodePNG(t, solid(3, 3, color.NRGBA{9, 9, 9, 255})))
	added, err := LoadDir(dir, opt)
	require.NoError(t, err)
	assert.False(t, added.FromCache)
	assert.Equal(t, first.N+1, added.N)
	again, err := LoadDir(dir, opt)
	require.NoError(t, err)
	assert.True(t, again.FromCache)
}

func TestLoadDirCorruptCache(t *testing.T) {
	dir := makeSet(t)
	cache := t.TempDir()
	opt := LoadOptions{Size: 6, CacheDir: cache}
	want, err := LoadDir(dir, opt)
	require.NoError(t, err)
	files := cacheFiles(t, cache)
	require.Len(t, files, 1)
	good, err := os.ReadFile(files[0])
	require.NoError(t, err)

	damage := map[string][]byte{
		"empty":      {},
		"truncated":  good[:len(good)-10],
		"header":     good[:20],
		"extra":      append(append([]byte{}, good...), 0),
		"flipped":    func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 0x40; return b }(),
		"bad magic":  func() []byte { b := bytes.Clone(good); b[0] = 'X'; return b }(),
		"not a file": nil,
	}
	for name, data := range damage {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, os.RemoveAll(files[0]))
			if data == nil {
				require.NoError(t, os.Mkdir(files[0], 0o755))
			} else {
				require.NoError(t, os.WriteFile(files[0], data, 0o644))
			}
			got, err := LoadDir(dir, opt)
			require.NoError(t, err)
			assert.False(t, got.FromCache)
			assert.Equal(t, want, got)
		})
	}
}

func TestCacheReaderRejectsLies(t *testing.T) {
	// A well-formed, correctly checksummed file whose counts do not match
	// the request is still a miss.
	ds := &Dataset{Pixels: make([]byte, 2*3*4*4), N: 2, Size: 4, Files: []string{"a", "b"}, Skipped: 1, SkippedExamples: []string{"c: bad"}}
	path := filepath.Join(t.TempDir(), "c.cache")
	var key [32]byte
	key[0] = 1
	require.NoError(t, writeCache(path, key, ds))

	got := readCache(path, key, 3, 4, 3)
	require.NotNil(t, got)
	assert.Equal(t, ds.Files, got.Files)
	assert.Equal(t, ds.SkippedExamples, got.SkippedExamples)

	assert.Nil(t, readCache(path, key, 4, 4, 3), "file count differs")
	assert.Nil(t, readCache(path, key, 3, 5, 3), "size differs")
	var other [32]byte
	assert.Nil(t, readCache(path, other, 3, 4, 3), "key differs")
}

func FuzzReadCache(f *testing.F) {
	// readCache must never panic or accept a file whose lengths do not add
	// up, whatever the bytes.
	ds := &Dataset{Pixels: bytes.Repeat([]byte{7}, 2*3*2*2), N: 2, Size: 2, Files: []string{"a.png", "b/c.png"}, Skipped: 1, SkippedExamples: []string{"d.png: bad"}}
	var key [32]byte
	path := filepath.Join(f.TempDir(), "seed.cache")
	require.NoError(f, writeCache(path, key, ds))
	seed, err := os.ReadFile(path)
	require.NoError(f, err)
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add([]byte(cacheMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "c.cache")
		require.NoError(t, os.WriteFile(p, data, 0o644))
		got := readCache(p, key, 3, 2, 3)
		if got != nil {
			assert.Len(t, got.Pixels, got.N*3*2*2)
			assert.Len(t, got.Files, got.N)
		}
	})
}

// With Alpha, transparency stays as a fourth plane and the colours are
// premultiplied by it; the RGB and RGBA decodes of one folder are cached
// apart and hash apart.
func TestLoadDirAlpha(t *testing.T) {
	dir := t.TempDir()
	writeTestFile(t, dir, "clear.png", encodePNG(t, solid(16, 16, color.NRGBA{200, 100, 50, 0})))
	writeTestFile(t, dir, "half_red.png", encodePNG(t, solid(20, 20, color.NRGBA{255, 0, 0, 128})))
	writeTestFile(t, dir, "opaque.jpg", encodeJPEG(t, solid(8, 8, color.NRGBA{0, 0, 255, 255})))
	cache := t.TempDir()

	rgb, err := LoadDir(dir, LoadOptions{Size: 4, CacheDir: cache})
	require.NoError(t, err)
	assert.Equal(t, 3, rgb.Channels)
	for _, fromCache := range []bool{false, true} {
		ds, err := LoadDir(dir, LoadOptions{Size: 4, CacheDir: cache, Alpha: true})
		require.NoError(t, err)
		assert.Equal(t, fromCache, ds.FromCache)
		assert.Equal(t, 4, ds.Channels)
		require.Len(t, ds.Pixels, 3*4*4*4)
		plane := 16
		pixel := func(i, p int) [4]byte {
			px := ds.Pixels[i*4*plane:]
			return [4]byte{px[p], px[plane+p], px[2*plane+p], px[3*plane+p]}
		}
		for p := range plane {
			assert.Equal(t, [4]byte{0, 0, 0, 0}, pixel(0, p), "transparent: all zero, whatever colour the file stored")
			assert.Equal(t, [4]byte{128, 0, 0, 128}, pixel(1, p), "half red, premultiplied")
			got := pixel(2, p)
			assert.Equal(t, byte(255), got[3], "opaque")
			assert.Greater(t, got[2], byte(240))
		}
		img := ds.Image(1)
		assert.Equal(t, color.RGBA{128, 0, 0, 128}, img.RGBAAt(1, 1))
		assert.NotEqual(t, rgb.Hash(), ds.Hash())
	}
	// The RGB decode composited the same files over white.
	assert.Equal(t, byte(255), rgb.Pixels[0], "clear over white")
	assert.Equal(t, byte(255), rgb.Pixels[3*16], "half red over white: red")
	assert.InDelta(t, 127, int(rgb.Pixels[3*16+16]), 1, "half red over white: green is white's half")
}

func TestPixelsAs(t *testing.T) {
	// 1x1 RGBA images: opaque orange; half-transparent blue (premultiplied).
	ds := &Dataset{N: 1, Size: 1, Channels: 4, Pixels: []byte{200, 100, 0, 255}}
	assert.Equal(t, ds.Pixels, ds.PixelsAs(4))
	assert.Equal(t, []byte{200, 100, 0}, ds.PixelsAs(3))
	assert.Equal(t, []byte{(299*200 + 587*100 + 500) / 1000}, ds.PixelsAs(1))
	half := &Dataset{N: 1, Size: 1, Channels: 4, Pixels: []byte{0, 0, 128, 128}}
	assert.Equal(t, []byte{127, 127, 255}, half.PixelsAs(3), "over white")
	rgb := &Dataset{N: 2, Size: 1, Channels: 3, Pixels: []byte{10, 20, 30, 255, 255, 255}}
	assert.Equal(t, rgb.Pixels, rgb.PixelsAs(3))
	assert.Equal(t, []byte{(299*10 + 587*20 + 114*30 + 500) / 1000, 255}, rgb.PixelsAs(1))
}
