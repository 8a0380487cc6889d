package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif" // registered decoders: LoadDir accepts these formats
	_ "image/jpeg"
	_ "image/png"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	xdraw "golang.org/x/image/draw"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/webp"

	"vkgan/internal/progress"
)

// Dataset is a decoded image set: N square images of Size x Size with
// Channels planes each (3: RGB; 4: RGBA with the colours premultiplied by
// alpha), stored as uint8 in NCHW order (image-major, then channel, row,
// column), ready to upload to the device as-is.
type Dataset struct {
	Pixels          []byte   // len = N*Channels*Size*Size
	N, Size         int      //
	Channels        int      // 3, or 4 when loaded with LoadOptions.Alpha
	Files           []string // source file per image (slash path relative to the root), for reports
	Skipped         int      // files that failed to decode
	SkippedExamples []string // the first few "path: reason", raw: print each with %q (a path may hold any byte)
	FromCache       bool     // true when the pixels came from the cache, not from decoding
	// Classes and Labels are filled with LoadOptions.Labels: the class
	// names, sorted, and each image's class as an index into Classes.
	Classes []string
	Labels  []int32
}

// Image returns image i as an *image.RGBA (premultiplied, as the planes
// are), for sample grids and reports.
func (d *Dataset) Image(i int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, d.Size, d.Size))
	plane := d.Size * d.Size
	c := d.channels()
	src := d.Pixels[i*c*plane : (i+1)*c*plane]
	for p := range plane {
		img.Pix[4*p+0] = src[p]
		img.Pix[4*p+1] = src[plane+p]
		img.Pix[4*p+2] = src[2*plane+p]
		img.Pix[4*p+3] = 255
		if c == 4 {
			img.Pix[4*p+3] = src[3*plane+p]
		}
	}
	return img
}

// PixelsAs returns the pixels with the given number of planes: the set as
// it is for its own count; RGB from RGBA by compositing over white (as a
// decode without alpha does, up to rounding); grey (ITU-R 601 luma,
// rounded) from either. Any other count returns the set as it is.
func (d *Dataset) PixelsAs(channels int) []byte {
	c := d.channels()
	if channels == c || (channels != 1 && channels != 3) {
		return d.Pixels
	}
	plane := d.Size * d.Size
	out := make([]byte, d.N*channels*plane)
	for i := range d.N {
		src := d.Pixels[i*c*plane:]
		dst := out[i*channels*plane:]
		for p := range plane {
			r, g, b := int(src[p]), int(src[plane+p]), int(src[2*plane+p])
			if c == 4 {
				// Premultiplied over white: c + (255 - a).
				under := 255 - int(src[3*plane+p])
				r, g, b = min(r+under, 255), min(g+under, 255), min(b+under, 255)
			}
			if channels == 1 {
				dst[p] = uint8((299*r + 587*g + 114*b + 500) / 1000)
			} else {
				dst[p], dst[plane+p], dst[2*plane+p] = uint8(r), uint8(g), uint8(b)
			}
		}
	}
	return out
}

// channels is Channels, with 0 (a Dataset built by hand) meaning RGB.
func (d *Dataset) channels() int {
	if d.Channels == 4 {
		return 4
	}
	return 3
}

// Hash identifies the decoded set: the SHA-256 of its size and every
// pixel, in order. A run records it, so that a resume can tell that a
// folder, even a moved one, still holds the images it began with.
func (d *Dataset) Hash() string {
	h := sha256.New()
	var hdr [16]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(d.N))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(d.Size))
	h.Write(hdr[:])
	if d.channels() == 4 {
		// RGB sets hash as they always have, so recorded runs still match.
		h.Write([]byte("rgba"))
	}
	h.Write(d.Pixels)
	return hex.EncodeToString(h.Sum(nil))
}

// LoadOptions configures LoadDir. The zero value (apart from Size) is the
// default.
type LoadOptions struct {
	Size      int                   // target side in pixels (32 or 64 in practice; any >= 1)
	CacheDir  string                // "" = no cache; else the cache file lives here (created if missing)
	Filter    func(rel string) bool // nil = all files; rel is the slash path relative to the root
	Workers   int                   // 0 = runtime.NumCPU()
	Progress  io.Writer             // nil = silent; a terminal gets a redrawn bar, other writers a few plain lines
	MaxPixels int64                 // 0 = DefaultMaxPixels: images whose header claims more are skipped without decoding
	// Alpha keeps transparency as a fourth plane (colours premultiplied
	// by it) instead of compositing over white.
	Alpha bool
	// Labels makes a Source's Load fill Dataset.Classes and Labels, for
	// conditional training: a Folder's classes are its subfolders, the
	// Emoji set's its emoji.json categories (see the sources). They come
	// from the file list after loading, so the cache and Hash ignore
	// them. LoadDir alone leaves them empty.
	Labels bool
}

// DefaultMaxPixels is the largest image (width*height, from its header)
// LoadDir decodes when LoadOptions.MaxPixels is 0: 64 megapixels, about
// 8000x8000. A decoded image can take 8 bytes a pixel, so this bounds a
// worker's memory at about 512 MiB.
const DefaultMaxPixels = 64 << 20

// bigImagePixels is the size above which decodes run one at a time, so that
// NumCPU workers all holding huge images cannot exhaust memory.
const bigImagePixels = 16 << 20

// maxSkippedExamples is how many failed files LoadDir names.
const maxSkippedExamples = 5

// imageExts are the extensions LoadDir reads; other files are ignored.
var imageExts = []string{".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"}

// IsImageFile reports whether LoadDir reads a file of this name.
func IsImageFile(name string) bool {
	return slices.Contains(imageExts, strings.ToLower(filepath.Ext(name)))
}

// sourceFile is one candidate image found by the directory walk.
type sourceFile struct {
	rel     string // slash path relative to the root
	path    string // path to open
	size    int64
	modTime int64 // UnixNano
}

// LoadDir decodes every image under dir (recursively; PNG, JPEG, GIF's
// first frame, BMP and WebP, by extension, case-insensitive) into a Dataset
// of opt.Size x opt.Size RGB images: alpha is composited over white (or
// kept as a fourth plane with opt.Alpha), the image centre-cropped to a square and resized with a Catmull-Rom filter.
// Files are taken in path order, so the result is deterministic. Files that
// fail to decode are skipped and counted. Hidden folders (names starting
// with ".") are not searched. Symbolic links to files are followed; links to
// folders are not, so a link loop cannot hang the walk.
//
// With opt.CacheDir set, the decoded set is cached in one file keyed by the
// files' names, sizes and modification times and by opt.Size; a later call
// with the same files reads it back without decoding. Failing to write the
// cache is not an error: the data set is still returned, and the problem is
// reported on opt.Progress.
func LoadDir(dir string, opt LoadOptions) (*Dataset, error) {
	if opt.Size < 1 {
		return nil, fmt.Errorf("train: image size %d: must be at least 1", opt.Size)
	}
	if opt.MaxPixels <= 0 {
		opt.MaxPixels = DefaultMaxPixels
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	files, err := listImages(dir, opt.Filter)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if opt.Filter != nil {
			return nil, fmt.Errorf("train: no image file under %q matches the filter; choose another filter or folder", dir)
		}
		return nil, fmt.Errorf("train: no image files under %q (looked for %s, in subfolders too); point -data at a folder of images",
			dir, strings.Join(imageExts, " "))
	}
	plane := opt.channels() * opt.Size * opt.Size
	if opt.Size > 1<<14 || len(files) > math.MaxInt/plane {
		return nil, fmt.Errorf("train: %d images of %dx%d do not fit in memory; use a smaller size or fewer images", len(files), opt.Size, opt.Size)
	}

	var (
		cachePath string
		key       [32]byte
	)
	if opt.CacheDir != "" {
		key = cacheKey(files, opt.Size, opt.MaxPixels, opt.Alpha)
		cachePath = filepath.Join(opt.CacheDir, cacheFileName(key))
		if ds := readCache(cachePath, key, len(files), opt.Size, opt.channels()); ds != nil {
			if opt.Progress != nil {
				fmt.Fprintf(opt.Progress, "data: %d images of %dx%d from cache %q\n", ds.N, ds.Size, ds.Size, cachePath)
			}
			return ds, nil
		}
	}

	ds, err := decodeAll(dir, files, opt)
	if err != nil {
		return nil, err
	}
	if cachePath != "" {
		if err := writeCache(cachePath, key, ds); err != nil && opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "data: not cached: %v\n", err)
		}
	}
	return ds, nil
}

// listImages walks dir and returns the image files that pass filter, sorted
// by relative path.
func listImages(dir string, filter func(string) bool) ([]sourceFile, error) {
	info, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("train: data folder %q does not exist; pass a folder of images (or fetch the emoji set)", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("train: data folder: %w", quotePath(err))
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("train: data path %q is a file, not a folder; pass the folder that holds the images", dir)
	}
	var files []sourceFile
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("train: reading data folder: %w", quotePath(err))
		}
		if d.IsDir() {
			// Hidden folders (.git, .cache, a fetch still unpacking)
			// hold no training images.
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !IsImageFile(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return fmt.Errorf("train: reading data folder: %w", err)
		}
		rel = filepath.ToSlash(rel)
		if filter != nil && !filter(rel) {
			return nil
		}
		// os.Stat follows a link to a file; anything that is not a
		// regular file in the end (a folder link, a device) is ignored.
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		files = append(files, sourceFile{rel: rel, path: path, size: fi.Size(), modTime: fi.ModTime().UnixNano()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// WalkDir visits in lexical order of OS names per folder; sorting the
	// slash paths makes the order independent of the separator.
	slices.SortFunc(files, func(a, b sourceFile) int { return strings.Compare(a.rel, b.rel) })
	return files, nil
}

// decodeAll decodes files in parallel into a Dataset, dropping the ones that
// fail.
func decodeAll(dir string, files []sourceFile, opt LoadOptions) (*Dataset, error) {
	plane := opt.channels() * opt.Size * opt.Size
	pixels := make([]byte, len(files)*plane)
	reasons := make([]string, len(files)) // "" = decoded

	prog := progress.New(opt.Progress, "data: decoding", len(files))
	var (
		mu            sync.Mutex // guards done and skipped, for the status line
		done, skipped int
		bigMu         sync.Mutex // one huge decode at a time
		wg            sync.WaitGroup
	)
	next := make(chan int)
	for range min(opt.Workers, len(files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				err := decodeFile(files[i], opt.Size, opt.MaxPixels, opt.Alpha, &bigMu, pixels[i*plane:(i+1)*plane])
				if err != nil {
					reasons[i] = err.Error()
				}
				mu.Lock()
				done++
				status := ""
				if err != nil {
					skipped++
				}
				if skipped > 0 {
					status = fmt.Sprintf("%d skipped", skipped)
				}
				prog.Set(done, status)
				mu.Unlock()
			}
		}()
	}
	for i := range files {
		next <- i
	}
	close(next)
	wg.Wait()
	prog.Done()

	ds := &Dataset{Size: opt.Size, Channels: opt.channels()}
	for i, f := range files {
		if reasons[i] != "" {
			ds.Skipped++
			if len(ds.SkippedExamples) < maxSkippedExamples {
				ds.SkippedExamples = append(ds.SkippedExamples, f.rel+": "+reasons[i])
			}
			continue
		}
		// Move the kept images down over the skipped ones; the order stays.
		if ds.N != i {
			copy(pixels[ds.N*plane:(ds.N+1)*plane], pixels[i*plane:(i+1)*plane])
		}
		ds.Files = append(ds.Files, f.rel)
		ds.N++
	}
	ds.Pixels = pixels[: ds.N*plane : ds.N*plane]
	if ds.N == 0 {
		return nil, fmt.Errorf("train: no usable image under %q: %d image files found, all failed to decode (first: %s); check that the files are images",
			dir, len(files), quoteAll(ds.SkippedExamples))
	}
	if opt.Progress != nil && ds.Skipped > 0 {
		fmt.Fprintf(opt.Progress, "data: skipped %d of %d files that failed to decode; first: %s\n",
			ds.Skipped, len(files), quoteAll(ds.SkippedExamples))
	}
	return ds, nil
}

// quoteAll joins "path: reason" entries for a message, each quoted: a file
// name may hold a newline or invalid UTF-8.
func quoteAll(entries []string) string {
	q := make([]string, len(entries))
	for i, e := range entries {
		q[i] = strconv.Quote(e)
	}
	return strings.Join(q, "; ")
}

// quotePath returns err with the path of an *fs.PathError quoted, so that a
// file name cannot garble the message; other errors unchanged.
func quotePath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return fmt.Errorf("%s %q: %w", pe.Op, pe.Path, pe.Err)
	}
	return err
}

// decodeFile decodes one image into dst (3 or, with alpha, 4 planes of
// size*size bytes). The returned error is the reason shown to the user,
// without the file name.
func decodeFile(src sourceFile, size int, maxPixels int64, alpha bool, bigMu *sync.Mutex, dst []byte) (err error) {
	defer func() {
		// The decoders are meant never to panic, but a bad file must cost
		// one skipped image, never the run.
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder failed: %v", r)
		}
		// Opening, seeking and reading fail with the full path, which the
		// caller already shows (relative, beside the reason).
		if pe, ok := err.(*fs.PathError); ok {
			err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
		}
	}()
	if src.size == 0 {
		return errors.New("empty file")
	}
	f, err := os.Open(src.path)
	if err != nil {
		return err
	}
	defer f.Close()

	// The header first: a file claiming enormous dimensions is rejected
	// before the decoder allocates for them.
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return decodeReason(err)
	}
	w, h := int64(cfg.Width), int64(cfg.Height)
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%s image has zero size (%dx%d)", format, w, h)
	}
	if w > maxPixels/h {
		return fmt.Errorf("%s image of %dx%d is larger than the %d-pixel limit", format, w, h, maxPixels)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if w*h > bigImagePixels {
		bigMu.Lock()
		defer bigMu.Unlock()
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return decodeReason(err)
	}
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return fmt.Errorf("%s image has zero size", format)
	}
	toSquare(img, size, alpha, dst)
	return nil
}

// decodeReason turns decoder errors into short reasons.
func decodeReason(err error) error {
	switch {
	case errors.Is(err, image.ErrFormat):
		return errors.New("not a recognised image (unknown format)")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("truncated image")
	}
	return err
}

// toSquare centre-crops img to a square, resizes it to size x size and
// writes it to dst as three planes (R, G, B) composited over white or, with
// alpha, as four planes (R, G, B premultiplied by A, then A).
//
// Premultiplied, because a transparent pixel then has one value (all zero)
// instead of whatever colour the file stored under it, which G would
// otherwise have to learn as noise; and resampling is only correct in
// premultiplied space.
func toSquare(img image.Image, size int, alpha bool, dst []byte) {
	b := img.Bounds()
	side := min(b.Dx(), b.Dy())
	x0 := b.Min.X + (b.Dx()-side)/2
	y0 := b.Min.Y + (b.Dy()-side)/2
	sr := image.Rect(x0, y0, x0+side, y0+side)

	canvas := image.NewRGBA(image.Rect(0, 0, size, size))
	if !alpha {
		draw.Draw(canvas, canvas.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	}
	if side == size {
		// Nothing to resample: plain compositing is exact and much faster.
		draw.Draw(canvas, canvas.Bounds(), img, sr.Min, draw.Over)
	} else {
		// Catmull-Rom for both directions: sharp when shrinking, smooth
		// when enlarging, and exact on flat colour. Over (onto white, or
		// onto transparent, which is Src) filters in premultiplied
		// space, so transparent edges do not bleed dark fringes.
		xdraw.CatmullRom.Scale(canvas, canvas.Bounds(), img, sr, xdraw.Over, nil)
	}
	plane := size * size
	for p := range plane {
		dst[p] = canvas.Pix[4*p+0]
		dst[plane+p] = canvas.Pix[4*p+1]
		dst[2*plane+p] = canvas.Pix[4*p+2]
		if alpha {
			dst[3*plane+p] = canvas.Pix[4*p+3]
		}
	}
}

// channels is the number of planes a decoded image has.
func (o LoadOptions) channels() int {
	if o.Alpha {
		return 4
	}
	return 3
}
