package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vkgan/internal/atomicfile"
)

// specialTensors covers the values a float or int round trip can get wrong.
func specialTensors() []Tensor {
	bits := []uint32{
		0x80000000, // -0
		0x7f800000, // +Inf
		0xff800000, // -Inf
		0x7fc00000, // quiet NaN
		0x7fc00001, // quiet NaN with payload
		0x7f800001, // signalling NaN
		0xffffffff, // negative NaN, all payload bits
		0x00000001, // smallest denormal
		0x007fffff, // largest denormal
		0x7f7fffff, // MaxFloat32
		0x3f800000, // 1
	}
	f := make([]float32, len(bits)+1)
	for i, b := range bits {
		f[i] = math.Float32frombits(b)
	}
	f[len(bits)] = 0.1
	bits64 := []uint64{
		0x8000000000000000, // -0
		0x7ff0000000000000, // +Inf
		0xfff0000000000000, // -Inf
		0x7ff8000000000001, // quiet NaN with payload
		0x7ff0000000000001, // signalling NaN
		0x0000000000000001, // smallest denormal
		0x7fefffffffffffff, // MaxFloat64
		0x3fb999999999999a, // 0.1, which float32 cannot hold
	}
	g := make([]float64, len(bits64))
	for i, b := range bits64 {
		g[i] = math.Float64frombits(b)
	}
	return []Tensor{
		{Name: "main.0.weight", DType: F32, Shape: []int{3, 4}, F32: f},
		{Name: "main.1.num_batches_tracked", DType: I64, Shape: []int{}, I64: []int64{7}},
		{Name: "extremes", DType: I64, Shape: []int{5}, I64: []int64{math.MinInt64, math.MaxInt64, -1, 0, 1}},
		{Name: "scalar", DType: F32, Shape: []int{}, F32: []float32{-2.5}},
		{Name: "sigma", DType: F64, Shape: []int{2, 4}, F64: g},
		{Name: "empty64", DType: F64, Shape: []int{0}, F64: []float64{}},
		{Name: "empty", DType: F32, Shape: []int{0, 3}, F32: []float32{}},
		{Name: "names \"quoted\" <&> é", DType: F32, Shape: []int{1, 1, 1, 1}, F32: []float32{42}},
	}
}

// requireSameTensors compares bit for bit, so NaN payloads count.
func requireSameTensors(t testing.TB, want, got []Tensor) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(t, w.Name, g.Name, "tensor %d", i)
		require.Equal(t, w.DType, g.DType, w.Name)
		require.Equal(t, len(w.Shape), len(g.Shape), w.Name)
		for j := range w.Shape {
			require.Equal(t, w.Shape[j], g.Shape[j], w.Name)
		}
		require.Equal(t, len(w.F32), len(g.F32), w.Name)
		for j := range w.F32 {
			if math.Float32bits(w.F32[j]) != math.Float32bits(g.F32[j]) {
				t.Fatalf("%s[%d]: got bits %#08x, want %#08x", w.Name, j, math.Float32bits(g.F32[j]), math.Float32bits(w.F32[j]))
			}
		}
		require.Equal(t, len(w.F64), len(g.F64), w.Name)
		for j := range w.F64 {
			if math.Float64bits(w.F64[j]) != math.Float64bits(g.F64[j]) {
				t.Fatalf("%s[%d]: got bits %#016x, want %#016x", w.Name, j, math.Float64bits(g.F64[j]), math.Float64bits(w.F64[j]))
			}
		}
		require.Equal(t, w.I64, g.I64, w.Name)
		require.Equal(t, w.F32 == nil, g.F32 == nil, w.Name)
		require.Equal(t, w.F64 == nil, g.F64 == nil, w.Name)
		require.Equal(t, w.I64 == nil, g.I64 == nil, w.Name)
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "G.safetensors")
	want := specialTensors()
	md := map[string]string{"step": "1200", "config": `{"nz":100}`, "unicode": "ünï"}
	require.NoError(t, WriteFile(path, want, md))
	got, gotMD, err := ReadFile(path)
	require.NoError(t, err)
	requireSameTensors(t, want, got)
	assert.Equal(t, md, gotMD)

	// The in-memory encoder writes the same bytes.
	file, err := os.ReadFile(path)
	require.NoError(t, err)
	enc, err := Encode(want, md)
	require.NoError(t, err)
	assert.Equal(t, file, enc)
}

func TestSafetensorsRoundTripManyNoMetadata(t *testing.T) {
	t.Parallel()
	var want []Tensor
	for i := range 500 {
		n := i % 7 // includes empty tensors between others
		f := make([]float32, n)
		for j := range f {
			f[j] = float32(i*10 + j)
		}
		want = append(want, Tensor{Name: fmt.Sprintf("t%03d", i), DType: F32, Shape: []int{n}, F32: f})
		if i%50 == 0 {
			want = append(want, Tensor{Name: fmt.Sprintf("n%03d", i), DType: I64, Shape: []int{}, I64: []int64{int64(i)}})
		}
	}
	for _, md := range []map[string]string{nil, {}} {
		path := filepath.Join(t.TempDir(), "D.safetensors")
		require.NoError(t, WriteFile(path, want, md))
		got, gotMD, err := ReadFile(path)
		require.NoError(t, err)
		requireSameTensors(t, want, got)
		assert.NotNil(t, gotMD)
		assert.Empty(t, gotMD)
	}
}

// TestSafetensorsHeaderLayout checks what other readers rely on: the exact
// bytes of a small file, and for a larger one dtype names, offsets relative
// to the data section in write order, and space padding to 8 bytes.
func TestSafetensorsHeaderLayout(t *testing.T) {
	t.Parallel()
	enc, err := Encode([]Tensor{{Name: "a", DType: F32, Shape: []int{1}, F32: []float32{1}}}, nil)
	require.NoError(t, err)
	header := `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`
	header += strings.Repeat(" ", (8-len(header)%8)%8)
	want := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	want = append(want, header...)
	want = append(want, 0, 0, 0x80, 0x3f)
	assert.Equal(t, want, enc)

	ts := specialTensors()
	enc, err = Encode(ts, map[string]string{"k": "v"})
	require.NoError(t, err)
	n := binary.LittleEndian.Uint64(enc)
	require.Zero(t, n%8, "header length %d is not a multiple of 8", n)
	hdr := enc[8 : 8+n]
	trimmed := bytes.TrimRight(hdr, " ")
	require.Equal(t, byte('}'), trimmed[len(trimmed)-1], "header padded with something other than spaces")
	assert.Less(t, len(hdr)-len(trimmed), 8)

	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(hdr, &m))
	var meta map[string]string
	require.NoError(t, json.Unmarshal(m["__metadata__"], &meta))
	assert.Equal(t, map[string]string{"k": "v"}, meta)
	data := enc[8+n:]
	var at int64
	for _, tn := range ts {
		var info struct {
			DType       string  `json:"dtype"`
			Shape       []int   `json:"shape"`
			DataOffsets []int64 `json:"data_offsets"`
		}
		require.NoError(t, json.Unmarshal(m[tn.Name], &info), tn.Name)
		assert.Equal(t, string(tn.DType), info.DType)
		assert.Equal(t, tn.Shape, info.Shape)
		require.Len(t, info.DataOffsets, 2)
		assert.Equal(t, at, info.DataOffsets[0], "%s starts where the previous tensor ends", tn.Name)
		at = info.DataOffsets[1]
		if tn.Name == "main.1.num_batches_tracked" {
			assert.Equal(t, uint64(7), binary.LittleEndian.Uint64(data[info.DataOffsets[0]:]))
		}
	}
	assert.Equal(t, int64(len(data)), at)
}

// stFile builds a safetensors file from a raw header (padded as given) and data.
func stFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func withLength(n uint64, rest string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
}

type badCase struct {
	name        string
	file        []byte
	unsupported bool
	problem     string // part of the message
}

// badSafetensors are files every reader must reject; the fuzzer starts from them.
func badSafetensors() []badCase {
	f4 := make([]byte, 4)
	f8 := make([]byte, 8)
	return []badCase{
		{"empty file", nil, false, "too short"},
		{"truncated length", []byte{1, 0, 0}, false, "too short"},
		{"header length beyond file", withLength(1000, `{}`), false, "beyond the end"},
		{"huge header length", withLength(1<<62, `{}`), false, "beyond the end"},
		{"header length too small", withLength(1, `{`), false, "too small"},
		{"header over limit", withLength(MaxHeader+1, ""), false, "beyond the end"},
		{"truncated data", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, f4), false, "past the data section"},
		{"bad json", stFile(`{"a":{"dtype":"F32",}}`, nil), false, "not valid JSON"},
		{"not an object", stFile(`[1, 2]`, nil), false, "should start with"},
		{"trailing garbage", stFile(`{} {}`, nil), false, "after its JSON object"},
		{"unclosed", stFile(`{"a":`, nil), false, "not valid JSON"},
		{"tensor not an object", stFile(`{"a":3}`, nil), false, "should start with"},
		{"garbage dtype", stFile(`{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}`, f4), false, "unknown dtype"},
		{"dtype not a string", stFile(`{"a":{"dtype":32,"shape":[1],"data_offsets":[0,4]}}`, f4), false, "should be a string"},
		{"BF16", stFile(`{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, f4), true, "BF16"},
		{"U64", stFile(`{"a":{"dtype":"U64","shape":[1],"data_offsets":[0,8]}}`, f8), true, "U64"},
		{"BF16 with wrong size", stFile(`{"a":{"dtype":"BF16","shape":[1],"data_offsets":[0,4]}}`, f4), false, "needs 2 bytes"},
		{"shape size mismatch", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, f4), false, "needs 8 bytes"},
		{"scalar size mismatch", stFile(`{"a":{"dtype":"I64","shape":[],"data_offsets":[0,4]}}`, f4), false, "needs 8 bytes"},
		{"overlap", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f8), false, "overlaps"},
		{"same range twice", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f8), false, "overlaps"},
		{"gap", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f8), false, "gap"},
		{"trailing data", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f8), false, "cover 4"},
		{"data with no tensors", stFile(`{}`, f4), false, "cover 0"},
		{"offsets past end", stFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, f8), false, "past the data section"},
		{"offsets reversed", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}`, f8), false, "end before"},
		{"one offset", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}}`, f4), false, "should have 2"},
		{"three offsets", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}`, f4), false, "should have 2"},
		{"negative offset", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, f4), false, "negative"},
		{"duplicate name", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f8), false, `"a" twice`},
		{"duplicate field", stFile(`{"a":{"dtype":"F32","dtype":"I64","shape":[1],"data_offsets":[0,4]}}`, f4), false, "dtype twice"},
		{"missing shape", stFile(`{"a":{"dtype":"F32","data_offsets":[0,4]}}`, f4), false, "no shape"},
		{"missing dtype", stFile(`{"a":{"shape":[1],"data_offsets":[0,4]}}`, f4), false, "no dtype"},
		{"missing offsets", stFile(`{"a":{"dtype":"F32","shape":[1]}}`, f4), false, "no data_offsets"},
		{"unknown field", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, f4), false, "unknown field"},
		{"negative dim", stFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, f4), false, "negative"},
		{"fractional dim", stFile(`{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}`, f4), false, "not an integer"},
		{"exponent dim", stFile(`{"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}`, f4), false, "not an integer"},
		{"dim out of range", stFile(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,4]}}`, f4), false, "not an integer in range"},
		{"string dim", stFile(`{"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}`, f4), false, "should hold integers"},
		{"huge dims", stFile(`{"a":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,4]}}`, f4), false, "needs 4000000000000000000 bytes"},
		{"overflowing dims", stFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, f4), false, "too many elements"},
		{"overflowing bytes", stFile(`{"a":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]}}`, f8), false, "too many elements"},
		{"metadata not an object", stFile(`{"__metadata__":"x"}`, nil), false, "should start with"},
		{"metadata number value", stFile(`{"__metadata__":{"step":3}}`, nil), false, "should be a string"},
		{"metadata nested", stFile(`{"__metadata__":{"a":{"b":"c"}}}`, nil), false, "should be a string"},
		{"metadata null", stFile(`{"__metadata__":null}`, nil), false, "should start with"},
		{"metadata duplicate key", stFile(`{"__metadata__":{"a":"1","a":"2"}}`, nil), false, `"a" twice`},
		{"metadata twice", stFile(`{"__metadata__":{},"__metadata__":{}}`, nil), false, "twice"},
	}
}

func TestDecodeSafetensorsRejects(t *testing.T) {
	t.Parallel()
	for _, c := range badSafetensors() {
		t.Run(c.name, func(t *testing.T) {
			ts, md, err := Decode(c.file)
			require.Error(t, err)
			assert.Nil(t, ts)
			assert.Nil(t, md)
			var fe *FormatError
			var ue *UnsupportedError
			if c.unsupported {
				require.ErrorAs(t, err, &ue)
			} else {
				require.ErrorAs(t, err, &fe)
			}
			assert.Contains(t, err.Error(), c.problem)
			assert.True(t, strings.HasPrefix(err.Error(), "train: "), err.Error())
		})
	}
}

func TestDecodeSafetensorsAccepts(t *testing.T) {
	t.Parallel()
	// What other writers may produce: no padding, other whitespace, keys in
	// any order, header order unlike data order, padding after the object.
	b := make([]byte, 12)
	binary.LittleEndian.PutUint32(b[8:], math.Float32bits(3))
	ts, md, err := Decode(stFile(
		"{\n \"b\": {\"data_offsets\":[8,12],\"shape\":[],\"dtype\":\"F32\"},\t\"__metadata__\":{\"format\":\"pt\"},"+
			"\"a\":{\"shape\":[1],\"dtype\":\"I64\",\"data_offsets\":[0,8]}}   ", b))
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"format": "pt"}, md)
	requireSameTensors(t, []Tensor{
		{Name: "a", DType: I64, Shape: []int{1}, I64: []int64{0}},
		{Name: "b", DType: F32, Shape: []int{}, F32: []float32{3}},
	}, ts)

	ts, md, err = Decode(stFile("{}", nil))
	require.NoError(t, err)
	assert.Empty(t, ts)
	assert.Equal(t, map[string]string{}, md)
}

// TestDecodeSafetensorsNoHugeAllocation: a header that claims enormous sizes
// must fail on its numbers, before anything that large is allocated.
func TestDecodeSafetensorsNoHugeAllocation(t *testing.T) {
	var before, after runtime.MemStats
	files := [][]byte{
		withLength(1<<62, `{}`),
		stFile(`{"a":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,4000000000000000000]}}`, make([]byte, 4)),
		stFile(`{"a":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,4]}}`, make([]byte, 4)),
	}
	runtime.ReadMemStats(&before)
	start := time.Now()
	for _, f := range files {
		_, _, err := Decode(f)
		require.Error(t, err)
	}
	// A 1 GiB file whose header length is over the limit: refused before
	// the header is read.
	_, _, err := decode(lengthOnly(MaxHeader+8), 1<<30, "big")
	require.ErrorContains(t, err, "over the 104857600-byte limit")
	runtime.ReadMemStats(&after)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "bytes allocated")
	assert.Less(t, time.Since(start), time.Second)
}

// lengthOnly is a file that holds a header length and then zeros.
type lengthOnly uint64

func (l lengthOnly) ReadAt(p []byte, off int64) (int, error) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(l))
	clear(p)
	if off < 8 {
		copy(p, b[off:])
	}
	return len(p), nil
}

func TestReadSafetensorsNamesFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "G.safetensors")
	require.NoError(t, os.WriteFile(path, stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), 0o644))
	_, _, err := ReadFile(path)
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, path, fe.File)
	assert.Equal(t, "train: "+path+": invalid safetensors: "+fe.Problem, err.Error())

	// A valid file cut short anywhere is a format error, never a panic.
	good, err := Encode(specialTensors(), map[string]string{"a": "b"})
	require.NoError(t, err)
	for n := 0; n < len(good); n += 7 {
		require.NoError(t, os.WriteFile(path, good[:n], 0o644))
		_, _, err := ReadFile(path)
		require.ErrorAs(t, err, &fe, "cut at %d", n)
	}

	_, _, err = ReadFile(filepath.Join(dir, "missing.safetensors"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, _, err = ReadFile(dir)
	require.ErrorContains(t, err, "not a regular file")
}

func TestWriteSafetensorsRejectsBadTensors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		ts      []Tensor
		problem string
	}{
		{"shape mismatch", []Tensor{{Name: "a", DType: F32, Shape: []int{2, 2}, F32: []float32{1, 2, 3}}}, "4 elements"},
		{"scalar without value", []Tensor{{Name: "a", DType: I64, Shape: []int{}}}, "1 elements"},
		{"negative dim", []Tensor{{Name: "a", DType: F32, Shape: []int{-1}}}, "negative"},
		{"overflowing shape", []Tensor{{Name: "a", DType: F32, Shape: []int{math.MaxInt, 3}}}, "too many"},
		{"duplicate", []Tensor{{Name: "a", DType: F32, Shape: []int{}, F32: []float32{1}}, {Name: "a", DType: F32, Shape: []int{}, F32: []float32{1}}}, "twice"},
		{"reserved name", []Tensor{{Name: "__metadata__", DType: F32, Shape: []int{}, F32: []float32{1}}}, "reserved"},
		{"unsupported dtype", []Tensor{{Name: "a", DType: "BF16", Shape: []int{}}}, "only F32, F64 and I64"},
		{"F32 with int data", []Tensor{{Name: "a", DType: F32, Shape: []int{1}, F32: []float32{1}, I64: []int64{1}}}, "int64 data"},
		{"I64 with float data", []Tensor{{Name: "a", DType: I64, Shape: []int{1}, F32: []float32{1}, I64: []int64{1}}}, "float32 data"},
		{"F64 with float32 data", []Tensor{{Name: "a", DType: F64, Shape: []int{1}, F32: []float32{1}, F64: []float64{1}}}, "float32 data"},
		{"F32 with float64 data", []Tensor{{Name: "a", DType: F32, Shape: []int{1}, F32: []float32{1}, F64: []float64{1}}}, "float64 data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "x.safetensors")
			err := WriteFile(path, c.ts, nil)
			require.ErrorContains(t, err, c.problem)
			assert.True(t, strings.HasPrefix(err.Error(), "train: write "+path), err.Error())
			assert.Empty(t, dirNames(t, dir), "nothing written")
		})
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// failingWriter fails once n bytes have passed through it.
type failingWriter struct {
	w io.Writer
	n int
}

var errInjected = errors.New("injected failure")

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n, _ := f.w.Write(p[:f.n])
		f.n = 0
		return n, errInjected
	}
	f.n -= len(p)
	return f.w.Write(p)
}

// The tests below set package-level hooks, so they do not run in parallel.

func TestWriteSafetensorsFailureKeepsOldFile(t *testing.T) {
	big := make([]float32, 1<<20) // more than the 1 MiB write buffer, so data reaches the file
	for i := range big {
		big[i] = float32(i)
	}
	v2 := []Tensor{{Name: "w", DType: F32, Shape: []int{len(big)}, F32: big}}
	for _, stage := range []string{"write header", "write data", "sync", "rename"} {
		t.Run(stage, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "G.safetensors")
			v1 := specialTensors()
			require.NoError(t, WriteFile(path, v1, map[string]string{"v": "1"}))
			old, err := os.ReadFile(path)
			require.NoError(t, err)

			switch stage {
			case "write header":
				atomicfile.TestHooks.Writer = func(w io.Writer) io.Writer { return &failingWriter{w: w, n: 20} }
			case "write data":
				atomicfile.TestHooks.Writer = func(w io.Writer) io.Writer { return &failingWriter{w: w, n: 3 << 20} }
			default:
				atomicfile.TestHooks.Stage = func(s string) error {
					if s == stage {
						return errInjected
					}
					return nil
				}
			}
			t.Cleanup(func() { atomicfile.TestHooks = atomicfile.Hooks{} })

			err = WriteFile(path, v2, map[string]string{"v": "2"})
			require.ErrorIs(t, err, errInjected)
			assert.Contains(t, err.Error(), path)
			now, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, old, now, "previous file intact")
			assert.Equal(t, []string{"G.safetensors"}, dirNames(t, dir), "no temporary file left")
			got, md, err := ReadFile(path)
			require.NoError(t, err)
			requireSameTensors(t, v1, got)
			assert.Equal(t, "1", md["v"])
		})
	}
}

func TestWriteSafetensorsReadOnlyDir(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() == 0 {
		t.Skip("permissions do not stop this user from writing")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "G.safetensors")
	require.NoError(t, WriteFile(path, specialTensors(), nil))
	old, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o555))
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	err = WriteFile(path, specialTensors()[:1], nil)
	require.ErrorIs(t, err, os.ErrPermission)
	now, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, old, now)
	assert.Equal(t, []string{"G.safetensors"}, dirNames(t, dir))
}

func TestWriteSafetensorsStaleTemp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "G.safetensors")
	// What a killed run leaves: half-written temporaries, one unwritable.
	require.NoError(t, os.WriteFile(path+".tmp", []byte("half"), 0o644))
	require.NoError(t, os.WriteFile(path+".123456.tmp", []byte("half"), 0o400))
	require.NoError(t, WriteFile(path, specialTensors(), nil))
	got, _, err := ReadFile(path)
	require.NoError(t, err)
	requireSameTensors(t, specialTensors(), got)
	require.NoError(t, WriteFile(path, specialTensors()[:2], nil))
	got, _, err = ReadFile(path)
	require.NoError(t, err)
	requireSameTensors(t, specialTensors()[:2], got)
}

// TestSafetensorsPythonReader runs scripts/safetensors_check.py, the reader
// the PyTorch cross-check uses, on a file from our writer.
func TestSafetensorsPythonReader(t *testing.T) {
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skipf("%s with numpy not available: %v", py, err)
	}
	t.Parallel()
	ts := []Tensor{
		{Name: "main.0.weight", DType: F32, Shape: []int{4, 3, 4, 4}, F32: make([]float32, 4*3*4*4)},
		{Name: "main.1.weight", DType: F32, Shape: []int{4}, F32: []float32{1, -0.5, 0.25, math.SmallestNonzeroFloat32}},
		{Name: "main.1.running_mean", DType: F32, Shape: []int{0}, F32: []float32{}},
		{Name: "main.1.num_batches_tracked", DType: I64, Shape: []int{}, I64: []int64{1 << 40}},
		{Name: "neg", DType: I64, Shape: []int{2}, I64: []int64{-3, 5}},
		{Name: "mu", DType: F64, Shape: []int{3}, F64: []float64{0.1, -1e300, math.SmallestNonzeroFloat64}},
	}
	for i := range ts[0].F32 {
		ts[0].F32[i] = float32(math.Sin(float64(i))) * 0.02
	}
	path := filepath.Join(t.TempDir(), "G.safetensors")
	require.NoError(t, WriteFile(path, ts, map[string]string{"format": "pt"}))

	args := [][]string{{"scripts/safetensors_check.py", path}}
	if exec.Command(py, "-c", "import torch").Run() == nil {
		args = append(args, []string{"scripts/safetensors_check.py", "--torch", path})
	}
	for _, a := range args {
		cmd := exec.Command(py, a...)
		cmd.Dir = filepath.Join("..", "..")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "%v: %s", a, stderr.String())
		sc := bufio.NewScanner(bytes.NewReader(out))
		var i int
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			require.Len(t, f, 4, sc.Text())
			require.Less(t, i, len(ts), "more lines than tensors")
			want := ts[i]
			assert.Equal(t, want.Name, f[0])
			assert.Equal(t, string(want.DType), f[1])
			shape := "[" + strings.Trim(strings.ReplaceAll(fmt.Sprint(want.Shape), " ", ", "), "[]") + "]"
			assert.Equal(t, shape, f[2], want.Name)
			var sum float64
			for _, v := range want.F32 {
				sum += float64(v)
			}
			for _, v := range want.F64 {
				sum += v
			}
			for _, v := range want.I64 {
				sum += float64(v)
			}
			got, err := strconv.ParseFloat(f[3], 64)
			require.NoError(t, err)
			assert.InDelta(t, sum, got, 1e-12*(1+math.Abs(sum)), "%s sum (%v)", want.Name, a)
			i++
		}
		assert.Equal(t, len(ts), i, "%v: one line per tensor", a)
	}

	// It rejects what our reader rejects.
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	require.NoError(t, os.WriteFile(bad, badSafetensors()[6].file, 0o644))
	cmd := exec.Command(py, "scripts/safetensors_check.py", bad)
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "safetensors_check: ")
}

// bigTensors is a 16 MiB checkpoint-like set of tensors.
func bigTensors() []Tensor {
	w := make([]float32, 4<<20)
	for i := range w {
		w[i] = float32(i) * 1e-3
	}
	return []Tensor{
		{Name: "main.0.weight", DType: F32, Shape: []int{1024, 4096}, F32: w},
		{Name: "main.1.num_batches_tracked", DType: I64, Shape: []int{}, I64: []int64{3}},
	}
}

// TestReadSafetensorsMemory: reading converts straight from the file into
// the tensors, so it allocates about the data's size once, not a copy of
// the whole file on top.
func TestReadSafetensorsMemory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.safetensors")
	want := bigTensors()
	require.NoError(t, WriteFile(path, want, nil))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, _, err := ReadFile(path)
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	requireSameTensors(t, want, got)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(fi.Size())+1<<20, "bytes allocated to read a %d-byte file", fi.Size())
}

func BenchmarkReadSafetensors(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.safetensors")
	require.NoError(b, WriteFile(path, bigTensors(), nil))
	fi, err := os.Stat(path)
	require.NoError(b, err)
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ReadFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteSafetensors(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.safetensors")
	ts := bigTensors()
	b.SetBytes(int64(len(ts[0].F32)) * 4)
	b.ReportAllocs()
	for b.Loop() {
		if err := WriteFile(path, ts, nil); err != nil {
			b.Fatal(err)
		}
	}
}
