package torchfile

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// DType is the element type a tensor has in the file.
type DType string

// The dtypes this package reads. Floating tensors come back as float32.
const (
	Float32  DType = "float32"
	Float64  DType = "float64"  // rounded to the nearest float32; out of range becomes ±Inf
	Float16  DType = "float16"  // converted exactly
	BFloat16 DType = "bfloat16" // converted exactly
	Int64    DType = "int64"    // kept as int64, in I64: BatchNorm's num_batches_tracked
)

// Tensor is one state_dict entry as a contiguous row-major array, whatever
// its strides and storage offset in the file. Exactly one of F32 and I64 is
// non-nil, per DType.
type Tensor struct {
	DType DType     // as stored in the file
	Shape []int     // [] for a scalar; never nil
	F32   []float32 // the values of a Float32, Float64, Float16 or BFloat16 tensor
	I64   []int64   // the values of an Int64 tensor
}

// Limits on what a file can make this package allocate.
const (
	// maxPickle bounds the zip format's data.pkl, which is read whole and
	// whose values take up to about 16 times its size: torch writes some
	// 150 bytes per tensor, so this allows 400,000 tensors.
	maxPickle = 64 << 20
	// maxExpansion bounds the tensors' data, as float32 or int64, against
	// the storage bytes they view (plus 1 MiB). Each tensor is at most its
	// storage's size; this stops a file from viewing one storage through
	// thousands of tensors.
	maxExpansion = 8
)

// ReadFile reads the state_dict that torch.save wrote to path, in the zip
// format (PyTorch 1.6 and later) or the legacy one. See Read.
func ReadFile(path string) (map[string]Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torchfile: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("torchfile: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("torchfile: %s: not a regular file", path)
	}
	return read(f, fi.Size(), path)
}

// Read reads a state_dict saved by torch.save from r, which holds size
// bytes: an OrderedDict or dict from tensor names to tensors or
// nn.Parameters. A file that is not valid gives a *FormatError; a valid one
// holding anything else (another dtype, a nested checkpoint, a Python
// global outside the few a state_dict needs) gives an *UnsupportedError.
func Read(r io.ReaderAt, size int64) (map[string]Tensor, error) {
	return read(r, size, "")
}

func read(r io.ReaderAt, size int64, file string) (map[string]Tensor, error) {
	if size < 0 {
		return nil, fmt.Errorf("torchfile: Read with negative size %d", size)
	}
	var head [262]byte // through tar's "ustar" magic
	h := head[:min(size, int64(len(head)))]
	if err := readFull(r, h, 0, file); err != nil {
		return nil, err
	}
	switch {
	case size == 0:
		return nil, &FormatError{File: file, Problem: "empty file"}
	case bytes.HasPrefix(h, []byte("PK\x03\x04")):
		return readZip(r, size, file)
	case len(h) == len(head) && string(h[257:]) == "ustar":
		return nil, &UnsupportedError{File: file, Problem: "tar format (PyTorch before 0.4); load and re-save it with a newer torch"}
	case len(h) > 0 && h[0] == opProto:
		return readLegacy(r, size, file)
	}
	return nil, &FormatError{File: file, Problem: fmt.Sprintf("starts with %q, neither a zip archive nor a pickle", h[:min(len(h), 8)])}
}

// readFull is ReadAt that calls a short read a truncated file.
func readFull(r io.ReaderAt, b []byte, off int64, file string) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		return &FormatError{File: file, Problem: fmt.Sprintf("file ends at byte %d, inside data that runs to byte %d", off+int64(n), off+int64(len(b)))}
	}
	return fmt.Errorf("torchfile: read %s: %w", file, err)
}

// stateDict checks that v, the main pickle's value, is a dict from names to
// tensors, and returns them in file order.
func (l *loader) stateDict(v any) ([]string, []*tensorRef, error) {
	d, ok := v.(*pyDict)
	if !ok {
		return nil, nil, l.unsupported("the file holds %s, not a state_dict (a dict of tensors)", aType(v))
	}
	names := make([]string, len(d.keys))
	tensors := make([]*tensorRef, len(d.keys))
	seen := make(map[string]bool, len(d.keys))
	for i, k := range d.keys {
		name, ok := k.(string)
		if !ok {
			return nil, nil, l.unsupported("state_dict key %d is %s, not a str", i, aType(k))
		}
		if seen[name] {
			return nil, nil, &FormatError{File: l.file, Tensor: name, Problem: "the key appears twice in the state_dict"}
		}
		seen[name] = true
		t, ok := d.vals[i].(*tensorRef)
		if !ok {
			p := fmt.Sprintf("the value is %s, not a tensor", aType(d.vals[i]))
			if _, isDict := d.vals[i].(*pyDict); isDict {
				p += fmt.Sprintf("; the file looks like a checkpoint holding a state_dict (its keys: %s): save that state_dict on its own", keyList(d.keys))
			}
			return nil, nil, &UnsupportedError{File: l.file, Tensor: name, Problem: p}
		}
		names[i], tensors[i] = name, t
	}
	return names, tensors, nil
}

// keyList names up to ten dict keys, for errors.
func keyList(keys []any) string {
	var s []string
	for i, k := range keys {
		if i == 10 {
			s = append(s, fmt.Sprintf("and %d more", len(keys)-10))
			break
		}
		if str, ok := k.(string); ok {
			s = append(s, strconv.Quote(str))
		} else {
			s = append(s, typeName(k))
		}
	}
	return strings.Join(s, ", ")
}
