package torchfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

// goodSpec is a valid 2x3 float32 tensor over a 6-element storage.
var goodSpec = spec{name: "w", storage: "FloatStorage", key: "0", numel: 6, size: []int64{2, 3}, stride: []int64{3, 1}}

var sixFloats = record{"0", f32Bytes(0, 1, 2, 3, 4, 5)}

// TestReadSynthetic covers files torch.save does not write, in both
// formats where the container does not matter: each must give the error
// type named, with the tensor and a phrase a user can act on.
func TestReadSynthetic(t *testing.T) {
	t.Parallel()
	with := func(f func(*spec)) []byte {
		s := goodSpec
		f(&s)
		return statePickle(s)
	}
	cases := []struct {
		name        string
		pkl         []byte
		unsupported bool
		tensor      string
		contains    string
	}{
		{"os.system", newPickle().global("os", "system").str("echo hi").op(opTuple1, opReduce).stop(), true, "", "Python global os.system is not allowed"},
		{"stack global", newPickle().str("builtins").str("eval").op(opStackGlobal).stop(), true, "", "Python global builtins.eval is not allowed"},
		{"newer rebuild", newPickle().global("torch._utils", "_rebuild_tensor_v3").stop(), true, "", "torch._utils._rebuild_tensor_v3 is not allowed"},
		{"unknown opcode", newPickle().op(0xff).stop(), false, "", "opcode 0xff"},
		{"protocol 6", []byte{opProto, 6, opNone, opStop}, true, "", "pickle protocol 6"},
		{"memo miss", newPickle().op(opBinGet, 3).stop(), false, "", "memo entry 3 read before it was stored"},
		{"empty stack", newPickle().op(opReduce).stop(), false, "", "stack is empty"},
		{"mark hides", newPickle().op(opEmptyDict, opMark, opSetItem).stop(), false, "", "SETITEM with 0 values"},
		{"no mark", newPickle().op(opEmptyList, opAppends).stop(), false, "", "no MARK"},
		{"long string", append(newPickle().op(opBinUnicode).b, 0xff, 0xff, 0xff, 0x7f), false, "", "a 2147483647-byte value runs past the end of the data"},
		{"frame", append(newPickle().op(opFrame).b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), false, "", "frame of 18446744073709551615 bytes"},
		{"bad utf-8", append(newPickle().op(opShortBinUni, 1).b, 0xff, opStop), false, "", "not valid UTF-8"},
		{"top-level list", newPickle().op(opEmptyList).stop(), true, "", "the file holds a list, not a state_dict"},
		{"int key", newPickle().op(opEmptyDict).int(1).tensor(goodSpec).op(opSetItem).stop(), true, "", "state_dict key 0 is an int, not a str"},
		{"non-tensor value", newPickle().op(opEmptyDict).str("epoch").int(3).op(opSetItem).stop(), true, "epoch", "the value is an int, not a tensor"},
		{"duplicate key", statePickle(goodSpec, goodSpec), false, "w", "the key appears twice"},
		{"other persistent id", newPickle().op(opMark).str("module").op(opTuple, opBinPersID).stop(), true, "", "persistent id of kind module"},
		{"storage view", newPickle().op(opMark).str("storage").global("torch", "FloatStorage").str("0").str("cpu").int(6).op(opEmptyTuple, opTuple, opBinPersID).stop(), true, "", "a view of another storage"},
		{"storage retyped", statePickle(goodSpec, spec{"v", "DoubleStorage", "0", 6, 0, nil, nil}), false, "", `storage "0" is named as 6 of torch.FloatStorage and as 6 of torch.DoubleStorage`},
		{"huge storage", with(func(s *spec) { s.numel = math.MaxInt64 / 2 }), false, "", "has 4611686018427387903 elements"},
		{"rank mismatch", with(func(s *spec) { s.stride = []int64{1} }), false, "w", "size [2 3] and stride [1] differ in length"},
		{"negative size", with(func(s *spec) { s.size = []int64{-2, 3} }), false, "w", "negative size or stride"},
		{"negative offset", with(func(s *spec) { s.offset = -1 }), false, "w", "negative storage offset"},
		{"element overflow", with(func(s *spec) { s.size = []int64{1 << 32, 1 << 32}; s.stride = []int64{0, 0} }), false, "w", "more elements than an int64 counts"},
		{"past storage", with(func(s *spec) { s.offset = 1 }), false, "w", `reaches element 6 of storage "0", which holds 6`},
		{"stride past storage", with(func(s *spec) { s.stride = []int64{math.MaxInt64, 1} }), false, "w", "reaches element 9223372036854775807"},
		{"repeated view", with(func(s *spec) { s.size = []int64{1000, 6}; s.stride = []int64{0, 1} }), true, "w", "6000 elements over a storage of 6"},
		{"int32", with(func(s *spec) { s.storage = "IntStorage" }), true, "w", "dtype int32 (torch.IntStorage)"},
	}
	for _, c := range cases {
		for _, format := range []string{"zip", "legacy"} {
			var file []byte
			if format == "zip" {
				file = zipFile(t, "archive", c.pkl, 0, record{"data/0", sixFloats.data})
			} else {
				file = legacyFile(c.pkl, 4, sixFloats)
			}
			got, err := Read(bytes.NewReader(file), int64(len(file)))
			require.Nil(t, got, "%s %s", c.name, format)
			var fe *FormatError
			var ue *UnsupportedError
			switch {
			case c.unsupported && errors.As(err, &ue):
				require.Equal(t, c.tensor, ue.Tensor, "%s %s: %v", c.name, format, err)
			case !c.unsupported && errors.As(err, &fe):
				require.Equal(t, c.tensor, fe.Tensor, "%s %s: %v", c.name, format, err)
			default:
				t.Fatalf("%s %s: error %v (%T), want unsupported=%v", c.name, format, err, err, c.unsupported)
			}
			require.ErrorContains(t, err, c.contains, "%s %s", c.name, format)
		}
	}
}

// TestReadSyntheticZip covers damage only the zip format can have.
func TestReadSyntheticZip(t *testing.T) {
	t.Parallel()
	pkl := statePickle(goodSpec)
	cases := []struct {
		name     string
		file     []byte
		contains string
	}{
		{"no data.pkl", rawZip(t, "archive/data/0"), "0 <dir>/data.pkl records"},
		{"missing record", zipFile(t, "archive", pkl, 0), `tensor "w": its storage "0" has no record archive/data/0`},
		{"short record", zipFile(t, "archive", pkl, 0, record{"data/0", f32Bytes(1, 2)}), "record archive/data/0 holds 8 bytes, but storage \"0\" of 6 torch.FloatStorage elements needs 24"},
		{"big-endian", zipFile(t, "archive", pkl, 0, record{"data/0", sixFloats.data}, record{"byteorder", []byte("big")}), "unsupported PyTorch file: big-endian storages"},
		{"torchscript", zipFile(t, "archive", pkl, 0, record{"constants.pkl", nil}), "TorchScript"},
		{"two archives", rawZip(t, "a/data.pkl", "b/data.pkl"), "2 <dir>/data.pkl records"},
	}
	for _, c := range cases {
		_, err := Read(bytes.NewReader(c.file), int64(len(c.file)))
		require.ErrorContains(t, err, c.contains, c.name)
	}

	// A corrupted storage byte fails the zip CRC: a FormatError, not wrong weights.
	file := zipFile(t, "archive", pkl, 0, record{"data/0", sixFloats.data})
	i := bytes.Index(file, sixFloats.data)
	file[i+5] ^= 1
	_, err := Read(bytes.NewReader(file), int64(len(file)))
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	require.ErrorContains(t, err, "checksum")
}

// TestReadSyntheticLegacy covers damage only the legacy format can have.
func TestReadSyntheticLegacy(t *testing.T) {
	t.Parallel()
	pkl := statePickle(goodSpec)
	good := legacyFile(pkl, 4, sixFloats)
	got, err := Read(bytes.NewReader(good), int64(len(good)))
	require.NoError(t, err)
	require.Equal(t, []float32{0, 1, 2, 3, 4, 5}, got["w"].F32)

	cases := []struct {
		name     string
		file     []byte
		contains string
	}{
		{"wrong magic", append(newPickle().int(7).stop(), good[15:]...), "starts with a pickled int, not PyTorch's magic number"},
		{"protocol", bytes.Replace(good, []byte{opBinInt, 0xe9, 0x03, 0, 0}, []byte{opBinInt, 0xea, 0x03, 0, 0}, 1), "legacy protocol version 1002"},
		{"big-endian", bytes.Replace(good, []byte("little_endian\x88"), []byte("little_endian\x89"), 1), "saved on a big-endian machine"},
		{"count", legacyFile(pkl, 8, sixFloats), fmt.Sprintf(`storage "0" at byte %d has 3 elements, but the pickle says 6`, len(good)-8-24)},
		{"unused key", legacyFile(pkl, 4, sixFloats, record{"1", nil}), `names "1", which no tensor uses`},
		{"missing key", legacyFile(pkl, 4), `storage "0" is missing from the storage key list`},
		{"twice", legacyFile(pkl, 4, sixFloats, sixFloats), `names "0" twice`},
		{"global in header", append(newPickle().global("os", "system").stop(), good[15:]...), "Python global os.system in a header pickle"},
	}
	for _, c := range cases {
		_, err := Read(bytes.NewReader(c.file), int64(len(c.file)))
		var fe *FormatError
		var ue *UnsupportedError
		if !errors.As(err, &fe) && !errors.As(err, &ue) {
			t.Fatalf("%s: error %v (%T), want a *FormatError or *UnsupportedError", c.name, err, err)
		}
		require.ErrorContains(t, err, c.contains, c.name)
	}
}

func TestDecodeLong(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		b    []byte
		want any
	}{
		{nil, int64(0)},
		{[]byte{0xff}, int64(-1)},
		{[]byte{0x7f}, int64(127)},
		{[]byte{0x80, 0x00}, int64(128)},
		{[]byte{0x00, 0x80}, int64(-32768)},
		{[]byte{1, 0, 0, 0, 0, 0, 0, 0x80}, int64(math.MinInt64 + 1)},
		{[]byte{0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}, legacyMagic},
		{[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff}, big.NewInt(0).Lsh(big.NewInt(-1), 64)},
	} {
		got := decodeLong(c.b)
		if w, ok := c.want.(*big.Int); ok {
			g, ok := got.(*big.Int)
			require.True(t, ok, "% x: got %T", c.b, got)
			require.Zero(t, w.Cmp(g), "% x: got %v, want %v", c.b, g, w)
			continue
		}
		require.Equal(t, c.want, got, "% x", c.b)
	}
}

// TestHalfToFloat32 checks all 65,536 float16 values against their
// definition: (-1)^s × 2^(e-15) × 1.f, or 2^-14 × 0.f when e is 0.
func TestHalfToFloat32(t *testing.T) {
	t.Parallel()
	for h := range 1 << 16 {
		got := halfToFloat32(uint16(h))
		sign := 1.0
		if h>>15 != 0 {
			sign = -1
		}
		e, f := h>>10&0x1f, h&0x3ff
		var want float64
		switch e {
		case 0x1f:
			if f != 0 {
				if got == got {
					t.Fatalf("%#04x: got %v, want NaN", h, got)
				}
				// The payload moves to the top of float32's fraction.
				require.Equal(t, uint32(f)<<13, math.Float32bits(got)&0x7fffff, "%#04x", h)
				continue
			}
			want = math.Inf(1)
		case 0:
			want = math.Ldexp(float64(f), -24)
		default:
			want = math.Ldexp(1+float64(f)/1024, e-15)
		}
		want *= sign
		if float64(got) != want || math.Signbit(float64(got)) != math.Signbit(want) {
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		}
	}
}

// TestOffsetsAndStrides reads views whose strides skip and reverse the
// order of a storage, against indices computed by hand.
func TestOffsetsAndStrides(t *testing.T) {
	t.Parallel()
	vals := make([]float32, 24)
	for i := range vals {
		vals[i] = float32(i)
	}
	st := record{"0", f32Bytes(vals...)}
	specs := []spec{
		{"a", "FloatStorage", "0", 24, 5, []int64{2, 3}, []int64{1, 4}},         // transposed, offset
		{"b", "FloatStorage", "0", 24, 23, []int64{}, []int64{}},                // scalar at the end
		{"c", "FloatStorage", "0", 24, 2, []int64{2, 1, 3}, []int64{9, 100, 2}}, // size-1 dim, huge stride
		{"d", "FloatStorage", "0", 24, 24, []int64{0, 5}, []int64{5, 1}},        // empty at the end
	}
	want := map[string][]float32{
		"a": {5, 9, 13, 6, 10, 14},
		"b": {23},
		"c": {2, 4, 6, 11, 13, 15},
		"d": {},
	}
	file := zipFile(t, "archive", statePickle(specs...), 0, record{"data/0", st.data})
	got, err := Read(bytes.NewReader(file), int64(len(file)))
	require.NoError(t, err)
	for name, w := range want {
		require.Equal(t, w, got[name].F32, name)
	}
	require.Equal(t, []int{}, got["b"].Shape)
	require.Equal(t, []int{0, 5}, got["d"].Shape)

	// int64 storages read the same way.
	var raw []byte
	for i := range 6 {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(-i))
	}
	file = legacyFile(statePickle(spec{"n", "LongStorage", "k", 6, 1, []int64{2, 2}, []int64{1, 2}}), 8, record{"k", raw})
	got, err = Read(bytes.NewReader(file), int64(len(file)))
	require.NoError(t, err)
	require.Equal(t, []int64{-1, -3, -2, -4}, got["n"].I64)
	require.Equal(t, Int64, got["n"].DType)
}
