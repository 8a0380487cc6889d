package torchfile

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"strings"
)

// readZip reads the zip format, torch.save's default since PyTorch 1.6: the
// state_dict's pickle in <archive>/data.pkl, whose persistent ids name
// storages kept raw in <archive>/data/<key>, and since PyTorch 2.1 an
// <archive>/byteorder record. The archive's directory name varies with the
// file name it was saved under.
func readZip(r io.ReaderAt, size int64, file string) (map[string]Tensor, error) {
	zr, err := zip.NewReader(r, size)
	// ErrInsecurePath warns extractors; records are only looked up by name.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return nil, zipErr(file, "the zip directory", err)
	}
	records := make(map[string]*zip.File, len(zr.File))
	var dirs []string
	for _, f := range zr.File {
		if records[f.Name] != nil {
			return nil, &FormatError{File: file, Problem: fmt.Sprintf("zip record %q appears twice", f.Name)}
		}
		records[f.Name] = f
		if dir, rest, _ := strings.Cut(f.Name, "/"); rest == "data.pkl" {
			dirs = append(dirs, dir)
		}
	}
	if len(dirs) != 1 {
		return nil, &FormatError{File: file, Problem: fmt.Sprintf("zip archive with %d <dir>/data.pkl records, not 1: not written by torch.save", len(dirs))}
	}
	dir := dirs[0]
	if records[dir+"/constants.pkl"] != nil {
		return nil, &UnsupportedError{File: file, Problem: "a TorchScript archive (torch.jit.save); save the model's state_dict with torch.save instead"}
	}
	if f := records[dir+"/byteorder"]; f != nil {
		b, err := readRecord(f, file, size, min(f.UncompressedSize64, 16))
		if err != nil {
			return nil, err
		}
		switch string(b) {
		case "little":
		case "big":
			return nil, &UnsupportedError{File: file, Problem: "big-endian storages"}
		default:
			return nil, &FormatError{File: file, Problem: fmt.Sprintf("byteorder record says %q", b)}
		}
	}

	name := dir + "/data.pkl"
	pf := records[name]
	if pf.UncompressedSize64 > maxPickle {
		return nil, &UnsupportedError{File: file, Problem: fmt.Sprintf("%s is %d bytes, over the %d-byte limit", name, pf.UncompressedSize64, maxPickle)}
	}
	pkl, err := readRecord(pf, file, size, pf.UncompressedSize64)
	if err != nil {
		return nil, err
	}
	l := newLoader(file)
	v, _, err := unpickle(bytes.NewReader(pkl), int64(len(pkl)), l, file, name, 0)
	if err != nil {
		return nil, err
	}
	names, tensors, err := l.stateDict(v)
	if err != nil {
		return nil, err
	}
	if err := l.plan(names, tensors); err != nil {
		return nil, err
	}
	out := make(map[string]Tensor, len(names))
	for _, s := range l.order {
		if len(s.users) == 0 {
			continue
		}
		rec := dir + "/data/" + s.key
		f := records[rec]
		if f == nil {
			return nil, &FormatError{File: file, Tensor: names[s.users[0]], Problem: fmt.Sprintf("its storage %q has no record %s", s.key, rec)}
		}
		want := uint64(s.numel * s.typ.size) // checked against overflow by persistent
		if f.UncompressedSize64 != want {
			return nil, &FormatError{File: file, Tensor: names[s.users[0]], Problem: fmt.Sprintf("record %s holds %d bytes, but storage %q of %d torch.%s elements needs %d", rec, f.UncompressedSize64, s.key, s.numel, s.typ.name, want)}
		}
		raw, err := readRecord(f, file, size, want)
		if err != nil {
			return nil, err
		}
		for _, i := range s.users {
			out[names[i]] = materialise(tensors[i], raw)
		}
	}
	return out, nil
}

// readRecord reads a zip record, which must hold exactly want bytes, from
// a file of size bytes. A stored record, as torch.save writes them, is
// read straight into its slice once its extent is checked against the
// file; a compressed one grows its slice as data arrives, so a record that
// claims more than it holds costs an error, not an allocation.
func readRecord(f *zip.File, file string, size int64, want uint64) ([]byte, error) {
	if f.UncompressedSize64 != want {
		return nil, &FormatError{File: file, Problem: fmt.Sprintf("zip record %s holds %d bytes, not %d", f.Name, f.UncompressedSize64, want)}
	}
	rc, err := f.Open()
	if err != nil {
		return nil, zipErr(file, f.Name, err)
	}
	defer rc.Close()
	var b []byte
	if off, err := f.DataOffset(); err == nil && f.Method == zip.Store && f.CompressedSize64 == want && off <= size && want <= uint64(size-off) {
		b = make([]byte, want)
		if _, err := io.ReadFull(rc, b); err != nil {
			return nil, zipErr(file, f.Name, err)
		}
	}
	// The read past the end, or the whole read of a compressed record,
	// makes the zip reader reach the record's end, where it checks the CRC.
	rest, err := io.ReadAll(io.LimitReader(rc, int64(want)-int64(len(b))+1))
	if err != nil {
		return nil, zipErr(file, f.Name, err)
	}
	b = append(b, rest...)
	if uint64(len(b)) != want {
		return nil, &FormatError{File: file, Problem: fmt.Sprintf("zip record %s holds %d bytes, not %d", f.Name, len(b), want)}
	}
	return b, nil
}

// zipErr tells a damaged archive from a failing reader.
func zipErr(file, what string, err error) error {
	var corrupt flate.CorruptInputError
	switch {
	case errors.Is(err, zip.ErrAlgorithm):
		return &UnsupportedError{File: file, Problem: fmt.Sprintf("%s: compression method not supported", what)}
	case errors.Is(err, zip.ErrFormat), errors.Is(err, zip.ErrChecksum), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.As(err, &corrupt):
		return &FormatError{File: file, Problem: fmt.Sprintf("%s: %v", what, err)}
	}
	return fmt.Errorf("torchfile: read %s: %s: %w", file, what, err)
}
