package data

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// The decoded-data-set cache is one file per (file list, size) in
// LoadOptions.CacheDir:
//
//	magic    [8]byte  "VKGANDS\x00"
//	version  uint32   cacheVersion
//	key      [32]byte the sha256 that names the file
//	n, size, skipped, examples  uint32
//	n file names, then `examples` skip reasons: uint32 length + bytes each
//	pixels   [n*channels*size*size]byte (channels 3, or 4 with alpha)
//	crc      uint32   CRC-32C of everything above
//
// Integers are little-endian. The reader checks every length against the
// file size and the CRC before using anything, so a truncated or damaged
// file is a cache miss, never a wrong data set.

const (
	cacheMagic = "VKGANDS\x00"
	// cacheVersion changes whenever decoding or resizing changes, so old
	// caches (which would hold differently resized pixels) miss.
	cacheVersion = 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// cacheKey hashes everything the decoded pixels depend on: the format
// version, the target size, the pixel limit, alpha and each file's relative
// path, size and modification time.
func cacheKey(files []sourceFile, size int, maxPixels int64, alpha bool) [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "vkgan dataset cache v%d\nsize %d\nmaxpixels %d\n", cacheVersion, size, maxPixels)
	if alpha {
		// Only then, so that the RGB caches written before stay valid.
		fmt.Fprintf(h, "alpha\n")
	}
	var buf [16]byte
	for _, f := range files {
		// Lengths before strings so that no two lists hash alike.
		binary.LittleEndian.PutUint64(buf[:8], uint64(len(f.rel)))
		h.Write(buf[:8])
		h.Write([]byte(f.rel))
		binary.LittleEndian.PutUint64(buf[:8], uint64(f.size))
		binary.LittleEndian.PutUint64(buf[8:], uint64(f.modTime))
		h.Write(buf[:])
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func cacheFileName(key [32]byte) string {
	return "dataset-" + hex.EncodeToString(key[:16]) + ".cache"
}

// readCache returns the cached data set for key, or nil if the file is
// missing, damaged or does not match nfiles and size.
func readCache(path string, key [32]byte, nfiles, size, channels int) *Dataset {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	const fixed = len(cacheMagic) + 4 + 32 + 4*4
	if len(b) < fixed+4 {
		return nil
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil
	}
	r := cacheReader{b: body}
	if string(r.bytes(len(cacheMagic))) != cacheMagic || r.u32() != cacheVersion {
		return nil
	}
	if !bytes.Equal(r.bytes(32), key[:]) {
		return nil
	}
	n, sz, skipped, examples := r.u32(), r.u32(), r.u32(), r.u32()
	if r.bad || sz != size || n+skipped != nfiles || n == 0 || examples > skipped {
		return nil
	}
	ds := &Dataset{N: n, Size: sz, Channels: channels, Skipped: skipped, FromCache: true}
	ds.Files = make([]string, 0, min(n, len(body)/4))
	for range n {
		ds.Files = append(ds.Files, r.str())
	}
	for range examples {
		ds.SkippedExamples = append(ds.SkippedExamples, r.str())
	}
	plane := channels * size * size
	if r.bad || n > (len(body)-r.off)/plane {
		return nil
	}
	ds.Pixels = r.bytes(n * plane)
	if r.bad || r.off != len(body) {
		return nil
	}
	return ds
}

// cacheReader reads the cache format with a sticky failure flag, so the
// parse reads straight through and is checked once at the end.
type cacheReader struct {
	b   []byte
	off int
	bad bool
}

func (r *cacheReader) bytes(n int) []byte {
	if r.bad || n < 0 || n > len(r.b)-r.off {
		r.bad = true
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

func (r *cacheReader) u32() int {
	s := r.bytes(4)
	if s == nil {
		return 0
	}
	return int(binary.LittleEndian.Uint32(s))
}

func (r *cacheReader) str() string {
	return string(r.bytes(r.u32()))
}

// writeCache writes ds to path atomically: a reader sees the old file or the
// whole new one, never a part.
func writeCache(path string, key [32]byte, ds *Dataset) error {
	var hdr bytes.Buffer
	hdr.WriteString(cacheMagic)
	u32 := func(v int) { hdr.Write(binary.LittleEndian.AppendUint32(nil, uint32(v))) }
	u32(cacheVersion)
	hdr.Write(key[:])
	u32(ds.N)
	u32(ds.Size)
	u32(ds.Skipped)
	u32(len(ds.SkippedExamples))
	for _, s := range ds.Files {
		u32(len(s))
		hdr.WriteString(s)
	}
	for _, s := range ds.SkippedExamples {
		u32(len(s))
		hdr.WriteString(s)
	}
	crc := crc32.Update(crc32.Checksum(hdr.Bytes(), castagnoli), castagnoli, ds.Pixels)

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: cache: %w", err)
	}
	f, err := os.CreateTemp(dir, ".dataset-*.tmp")
	if err != nil {
		return fmt.Errorf("train: cache: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(0o644) // CreateTemp's 0600 would hide the cache from other users
	if err == nil {
		_, err = f.Write(hdr.Bytes())
	}
	if err == nil {
		_, err = f.Write(ds.Pixels)
	}
	if err == nil {
		_, err = f.Write(binary.LittleEndian.AppendUint32(nil, crc))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("train: cache: writing %s: %w", path, err)
	}
	return nil
}
