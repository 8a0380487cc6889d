package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"vkgan/internal/atomicfile"
)

// DType of a stored tensor. We write F32, F64 and I64 (PyTorch's BatchNorm
// num_batches_tracked is an int64 scalar; FID's reference statistics are
// float64).
type DType string

// The dtypes this package reads and writes.
const (
	F32 DType = "F32"
	F64 DType = "F64"
	I64 DType = "I64"
)

// Tensor is one named tensor of a safetensors file. Exactly one of F32, F64
// and I64 is set, per DType.
type Tensor struct {
	Name  string
	DType DType
	Shape []int // [] for a scalar; never nil after reading
	F32   []float32
	F64   []float64
	I64   []int64
}

// MaxHeader is the largest JSON header accepted, as in the
// reference implementation: a bound on what a corrupt length can make us
// allocate.
const MaxHeader = 100 << 20

const metadataKey = "__metadata__"

// dtypeBits holds the element size in bits of every dtype the format
// defines, so that a file with one we do not support is still fully checked
// before we say so.
var dtypeBits = map[string]uint64{
	"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
	"I16": 16, "U16": 16, "F16": 16, "BF16": 16,
	"I32": 32, "U32": 32, "F32": 32,
	"I64": 64, "U64": 64, "F64": 64, "C64": 64,
	"F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}

// WriteFile writes tensors, in the given order, and metadata to path
// atomically (see atomicfile.Write) with permissions 0644. Nothing is written
// if a tensor is inconsistent (shape against data, dtype, duplicate name).
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	header, err := encodeHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return encodeTo(w, header, tensors)
	})
}

// Encode returns the bytes WriteFile would write.
func Encode(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	header, err := encodeHeader(tensors, metadata)
	if err != nil {
		return nil, fmt.Errorf("train: encode safetensors: %w", err)
	}
	var buf bytes.Buffer
	if err := encodeTo(&buf, header, tensors); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeHeader checks tensors and builds the header, padded with spaces
// to a multiple of 8 bytes so that the data section is 8-byte aligned.
func encodeHeader(tensors []Tensor, metadata map[string]string) ([]byte, error) {
	var h bytes.Buffer
	h.WriteByte('{')
	sep := func() {
		if h.Len() > 1 {
			h.WriteByte(',')
		}
	}
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		h.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeJSONString(&h, k)
			h.WriteByte(':')
			writeJSONString(&h, metadata[k])
		}
		h.WriteByte('}')
	}
	seen := make(map[string]bool, len(tensors))
	var offset uint64
	for i := range tensors {
		t := &tensors[i]
		if t.Name == metadataKey {
			return nil, fmt.Errorf("tensor name %q is reserved for metadata", t.Name)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		seen[t.Name] = true
		n, err := t.elements()
		if err != nil {
			return nil, err
		}
		sep()
		writeJSONString(&h, t.Name)
		fmt.Fprintf(&h, `:{"dtype":"%s","shape":[`, t.DType)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		end := offset + uint64(n)*8 // F64, I64
		if t.DType == F32 {
			end = offset + uint64(n)*4
		}
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeader {
		return nil, fmt.Errorf("header of %d bytes is over the %d-byte limit: too many tensors or too much metadata", h.Len(), MaxHeader)
	}
	return h.Bytes(), nil
}

// elements checks that t's shape, dtype and data agree and returns the
// number of elements.
func (t *Tensor) elements() (int, error) {
	n := 1
	for _, d := range t.Shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor %q has negative dimension in shape %v", t.Name, t.Shape)
		}
		hi, lo := bits.Mul64(uint64(n), uint64(d))
		if hi != 0 || lo > math.MaxInt {
			return 0, fmt.Errorf("tensor %q: shape %v has too many elements", t.Name, t.Shape)
		}
		n = int(lo)
	}
	var have int
	switch t.DType {
	case F32:
		have = len(t.F32)
	case F64:
		have = len(t.F64)
	case I64:
		have = len(t.I64)
	default:
		return 0, fmt.Errorf("tensor %q has dtype %q; only F32, F64 and I64 can be written", t.Name, t.DType)
	}
	// Data in another field would be silently dropped by the writer.
	for _, o := range []struct {
		dtype DType
		set   bool
		what  string
	}{{F32, t.F32 != nil, "float32"}, {F64, t.F64 != nil, "float64"}, {I64, t.I64 != nil, "int64"}} {
		if o.set && o.dtype != t.DType {
			return 0, fmt.Errorf("tensor %q has dtype %s but holds %s data", t.Name, t.DType, o.what)
		}
	}
	if have != n {
		return 0, fmt.Errorf("tensor %q has shape %v (%d elements) but %d values", t.Name, t.Shape, n, have)
	}
	return n, nil
}

// writeJSONString writes s as a JSON string without escaping <, > and &,
// as the reference writer does: names stay readable and the header short.
func writeJSONString(b *bytes.Buffer, s string) {
	e := json.NewEncoder(b)
	e.SetEscapeHTML(false)
	// A string always encodes, into a buffer that cannot fail.
	e.Encode(s)
	b.Truncate(b.Len() - 1) // Encode's newline
}

func encodeTo(w io.Writer, header []byte, tensors []Tensor) error {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(header); err != nil {
		return err
	}
	// Convert through a bounded buffer: a checkpoint is never held twice.
	buf := make([]byte, 0, 64<<10)
	flush := func() error {
		_, err := w.Write(buf)
		buf = buf[:0]
		return err
	}
	for i := range tensors {
		t := &tensors[i]
		for _, v := range t.F32 {
			if len(buf)+4 > cap(buf) {
				if err := flush(); err != nil {
					return err
				}
			}
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		for _, v := range t.F64 {
			if len(buf)+8 > cap(buf) {
				if err := flush(); err != nil {
					return err
				}
			}
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
		}
		for _, v := range t.I64 {
			if len(buf)+8 > cap(buf) {
				if err := flush(); err != nil {
					return err
				}
			}
			buf = binary.LittleEndian.AppendUint64(buf, uint64(v))
		}
	}
	return flush()
}

// ReadFile reads and fully checks a safetensors file. A file that is
// not valid gives a *FormatError naming the file and the problem; a valid file
// with a dtype other than F32, F64 and I64 gives an *UnsupportedError. Tensors come
// in the order of their data in the file. Metadata is never nil.
func ReadFile(path string) ([]Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("train: read checkpoint: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("train: read checkpoint: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("train: read checkpoint %s: not a regular file", path)
	}
	ts, md, err := decode(f, fi.Size(), path)
	if err != nil {
		return nil, nil, err
	}
	return ts, md, nil
}

// Decode is ReadFile on bytes in memory.
func Decode(data []byte) ([]Tensor, map[string]string, error) {
	return decode(bytes.NewReader(data), int64(len(data)), "")
}

// entry is one tensor's header record, checked against the data section.
type entry struct {
	name       string
	dtype      string
	shape      []int
	n          int // elements
	begin, end int64
}

// decoder carries the file name into every error.
type decoder struct{ file string }

func (d *decoder) bad(format string, args ...any) error {
	return &FormatError{File: d.file, Problem: fmt.Sprintf(format, args...)}
}

func decode(r io.ReaderAt, size int64, file string) ([]Tensor, map[string]string, error) {
	d := &decoder{file: file}
	if size < 8 {
		return nil, nil, d.bad("file is %d bytes, too short for the 8-byte header length", size)
	}
	var nb [8]byte
	if err := readFull(r, nb[:], 0); err != nil {
		return nil, nil, d.readErr(err)
	}
	hlen := binary.LittleEndian.Uint64(nb[:])
	switch {
	case hlen < 2:
		return nil, nil, d.bad("header length %d is too small for a JSON object", hlen)
	case hlen > uint64(size-8):
		return nil, nil, d.bad("header length %d is beyond the end of the file (%d bytes after the length): truncated or not safetensors", hlen, size-8)
	case hlen > MaxHeader:
		return nil, nil, d.bad("header length %d is over the %d-byte limit", hlen, MaxHeader)
	}
	header := make([]byte, hlen)
	if err := readFull(r, header, 8); err != nil {
		return nil, nil, d.readErr(err)
	}
	dataStart := 8 + int64(hlen)
	entries, md, err := d.parseHeader(header, size-dataStart)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		switch DType(e.dtype) {
		case F32, F64, I64:
		default:
			return nil, nil, &UnsupportedError{File: file, Problem: fmt.Sprintf("tensor %q has dtype %s; only F32, F64 and I64 are supported", e.name, e.dtype)}
		}
	}

	// Sizes are now checked against the file: every allocation below is
	// bounded by its size, and data is converted straight into the tensors.
	ts := make([]Tensor, len(entries))
	buf := make([]byte, min(64<<10, size-dataStart))
	for i, e := range entries {
		t := Tensor{Name: e.name, DType: DType(e.dtype), Shape: e.shape}
		var put func(b []byte, at int)
		var esize int
		switch t.DType {
		case F32:
			t.F32 = make([]float32, e.n)
			esize = 4
			put = func(b []byte, at int) {
				for j := range len(b) / 4 {
					t.F32[at+j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
				}
			}
		case F64:
			t.F64 = make([]float64, e.n)
			esize = 8
			put = func(b []byte, at int) {
				for j := range len(b) / 8 {
					t.F64[at+j] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*j:]))
				}
			}
		default: // I64
			t.I64 = make([]int64, e.n)
			esize = 8
			put = func(b []byte, at int) {
				for j := range len(b) / 8 {
					t.I64[at+j] = int64(binary.LittleEndian.Uint64(b[8*j:]))
				}
			}
		}
		chunk := len(buf) / esize * esize
		for at := 0; at < e.n; {
			b := buf[:min(chunk, (e.n-at)*esize)]
			if err := readFull(r, b, dataStart+e.begin+int64(at*esize)); err != nil {
				return nil, nil, d.readErr(err)
			}
			put(b, at)
			at += len(b) / esize
		}
		ts[i] = t
	}
	return ts, md, nil
}

func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (d *decoder) readErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return d.bad("file ends early (changed while reading?)")
	}
	return fmt.Errorf("train: read checkpoint %s: %w", d.file, err)
}

// parseHeader walks the header's JSON tokens rather than unmarshalling it,
// because encoding/json silently keeps the last of duplicate keys and a
// duplicate tensor name must be an error.
func (d *decoder) parseHeader(header []byte, dataLen int64) ([]entry, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if err := d.expectDelim(dec, '{', "header"); err != nil {
		return nil, nil, err
	}
	var entries []entry
	var md map[string]string
	names := make(map[string]bool)
	for dec.More() {
		key, err := d.key(dec, "header")
		if err != nil {
			return nil, nil, err
		}
		if names[key] {
			return nil, nil, d.bad("header has %q twice", key)
		}
		names[key] = true
		if key == metadataKey {
			if md, err = d.metadata(dec); err != nil {
				return nil, nil, err
			}
			continue
		}
		e, err := d.tensorInfo(dec, key, dataLen)
		if err != nil {
			return nil, nil, err
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, d.bad("header is not valid JSON: %v", err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, nil, d.bad("header is not valid JSON: %v", err)
		}
		return nil, nil, d.bad("header has %v after its JSON object", tok)
	}
	if md == nil {
		md = map[string]string{}
	}

	// Tensors must tile the data section exactly: in offset order, each
	// starts where the previous ended and the last ends at the file's end.
	slices.SortStableFunc(entries, func(a, b entry) int {
		if a.begin != b.begin {
			return cmpInt64(a.begin, b.begin)
		}
		return cmpInt64(a.end, b.end)
	})
	var at int64
	for i, e := range entries {
		switch {
		case e.begin < at:
			return nil, nil, d.bad("tensor %q (bytes %d to %d) overlaps tensor %q", e.name, e.begin, e.end, entries[i-1].name)
		case e.begin > at:
			return nil, nil, d.bad("gap of %d bytes in the data section before tensor %q", e.begin-at, e.name)
		}
		at = e.end
	}
	if at != dataLen {
		return nil, nil, d.bad("data section is %d bytes but its tensors cover %d", dataLen, at)
	}
	return entries, md, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (d *decoder) expectDelim(dec *json.Decoder, want json.Delim, what string) error {
	tok, err := dec.Token()
	if err != nil {
		return d.bad("%s is not valid JSON: %v", what, err)
	}
	if tok != want {
		return d.bad("%s should start with %q, found %v", what, want, tokString(tok))
	}
	return nil
}

func (d *decoder) key(dec *json.Decoder, what string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", d.bad("%s is not valid JSON: %v", what, err)
	}
	k, ok := tok.(string)
	if !ok {
		return "", d.bad("%s is not valid JSON: key %v", what, tokString(tok))
	}
	return k, nil
}

func (d *decoder) str(dec *json.Decoder, what string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", d.bad("%s is not valid JSON: %v", what, err)
	}
	s, ok := tok.(string)
	if !ok {
		return "", d.bad("%s should be a string, found %v", what, tokString(tok))
	}
	return s, nil
}

func (d *decoder) metadata(dec *json.Decoder) (map[string]string, error) {
	if err := d.expectDelim(dec, '{', "__metadata__"); err != nil {
		return nil, err
	}
	md := map[string]string{}
	for dec.More() {
		k, err := d.key(dec, "__metadata__")
		if err != nil {
			return nil, err
		}
		if _, dup := md[k]; dup {
			return nil, d.bad("__metadata__ has %q twice", k)
		}
		v, err := d.str(dec, fmt.Sprintf("__metadata__ value %q", k))
		if err != nil {
			return nil, err
		}
		md[k] = v
	}
	_, err := dec.Token()
	if err != nil {
		return nil, d.bad("__metadata__ is not valid JSON: %v", err)
	}
	return md, nil
}

// tensorInfo reads {"dtype": ..., "shape": [...], "data_offsets": [b, e]}
// and checks it against itself and the data section's length.
func (d *decoder) tensorInfo(dec *json.Decoder, name string, dataLen int64) (entry, error) {
	e := entry{name: name}
	what := fmt.Sprintf("tensor %q", name)
	if err := d.expectDelim(dec, '{', what); err != nil {
		return e, err
	}
	var haveDtype, haveShape, haveOffsets bool
	for dec.More() {
		k, err := d.key(dec, what)
		if err != nil {
			return e, err
		}
		switch k {
		case "dtype":
			if haveDtype {
				return e, d.bad("%s has dtype twice", what)
			}
			haveDtype = true
			if e.dtype, err = d.str(dec, what+" dtype"); err != nil {
				return e, err
			}
		case "shape":
			if haveShape {
				return e, d.bad("%s has shape twice", what)
			}
			haveShape = true
			dims, err := d.uints(dec, what+" shape", -1)
			if err != nil {
				return e, err
			}
			e.shape = make([]int, len(dims))
			for i, v := range dims {
				if v > math.MaxInt {
					return e, d.bad("%s has dimension %d, too large", what, v)
				}
				e.shape[i] = int(v)
			}
		case "data_offsets":
			if haveOffsets {
				return e, d.bad("%s has data_offsets twice", what)
			}
			haveOffsets = true
			off, err := d.uints(dec, what+" data_offsets", 2)
			if err != nil {
				return e, err
			}
			if off[0] > off[1] {
				return e, d.bad("%s data_offsets [%d, %d] end before they begin", what, off[0], off[1])
			}
			if off[1] > uint64(dataLen) {
				return e, d.bad("%s data_offsets [%d, %d] reach past the data section's %d bytes", what, off[0], off[1], dataLen)
			}
			e.begin, e.end = int64(off[0]), int64(off[1])
		default:
			return e, d.bad("%s has unknown field %q", what, k)
		}
	}
	if _, err := dec.Token(); err != nil {
		return e, d.bad("%s is not valid JSON: %v", what, err)
	}
	switch {
	case !haveDtype:
		return e, d.bad("%s has no dtype", what)
	case !haveShape:
		return e, d.bad("%s has no shape", what)
	case !haveOffsets:
		return e, d.bad("%s has no data_offsets", what)
	}
	nbits, ok := dtypeBits[e.dtype]
	if !ok {
		return e, d.bad("%s has unknown dtype %q", what, e.dtype)
	}

	// Element count and byte size, with every product checked, so that a
	// shape claiming 1e18 elements fails here instead of in make.
	var n uint64 = 1
	for _, v := range e.shape {
		if v == 0 {
			n = 0
			break
		}
	}
	if n != 0 {
		for _, v := range e.shape {
			hi, lo := bits.Mul64(n, uint64(v))
			if hi != 0 || lo > math.MaxInt64 {
				return e, d.bad("%s shape %v has too many elements", what, e.shape)
			}
			n = lo
		}
	}
	var size uint64
	if nbits%8 == 0 {
		hi, lo := bits.Mul64(n, nbits/8)
		if hi != 0 || lo > math.MaxInt64 {
			return e, d.bad("%s shape %v has too many elements", what, e.shape)
		}
		size = lo
	} else {
		hi, lo := bits.Mul64(n, nbits)
		if hi != 0 {
			return e, d.bad("%s shape %v has too many elements", what, e.shape)
		}
		if lo%8 != 0 {
			return e, d.bad("%s shape %v of %s does not fill whole bytes", what, e.shape, e.dtype)
		}
		size = lo / 8
	}
	if want := int64(size); want != e.end-e.begin {
		return e, d.bad("%s shape %v of %s needs %d bytes but data_offsets [%d, %d] hold %d", what, e.shape, e.dtype, want, e.begin, e.end, e.end-e.begin)
	}
	e.n = int(n)
	return e, nil
}

// uints reads an array of non-negative integers; want < 0 means any length.
func (d *decoder) uints(dec *json.Decoder, what string, want int) ([]uint64, error) {
	if err := d.expectDelim(dec, '[', what); err != nil {
		return nil, err
	}
	vs := []uint64{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, d.bad("%s is not valid JSON: %v", what, err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, d.bad("%s should hold integers, found %v", what, tokString(tok))
		}
		if strings.HasPrefix(string(num), "-") {
			return nil, d.bad("%s has negative value %s", what, num)
		}
		v, err := strconv.ParseUint(string(num), 10, 64)
		if err != nil || v > math.MaxInt64 {
			return nil, d.bad("%s has %s, not an integer in range", what, num)
		}
		if want >= 0 && len(vs) == want {
			return nil, d.bad("%s should have %d values", what, want)
		}
		vs = append(vs, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, d.bad("%s is not valid JSON: %v", what, err)
	}
	if want >= 0 && len(vs) != want {
		return nil, d.bad("%s should have %d values, has %d", what, want, len(vs))
	}
	return vs, nil
}

func tokString(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return strconv.Quote(t.String())
	case string:
		return strconv.Quote(t)
	case nil:
		return "null"
	}
	return fmt.Sprint(tok)
}
