package torchfile

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// pk assembles pickles opcode by opcode, for files torch.save would not
// write.
type pk struct{ b []byte }

func newPickle() *pk { return &pk{b: []byte{opProto, 2}} }

func (p *pk) op(ops ...byte) *pk { p.b = append(p.b, ops...); return p }

func (p *pk) str(s string) *pk {
	p.b = append(p.b, opBinUnicode)
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(s)))
	p.b = append(p.b, s...)
	return p
}

func (p *pk) int(n int) *pk {
	p.b = append(p.b, opBinInt)
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(int32(n)))
	return p
}

// long writes n as LONG1 with 8 bytes, for values past int32.
func (p *pk) long(n int64) *pk {
	p.b = append(p.b, opLong1, 8)
	p.b = binary.LittleEndian.AppendUint64(p.b, uint64(n))
	return p
}

func (p *pk) global(module, name string) *pk {
	p.b = append(p.b, opGlobal)
	p.b = append(p.b, module+"\n"+name+"\n"...)
	return p
}

func (p *pk) ints(ns []int64) *pk {
	p.op(opMark)
	for _, n := range ns {
		p.long(n)
	}
	return p.op(opTuple)
}

func (p *pk) stop() []byte { return append(p.b, opStop) }

// spec is one tensor of a synthetic state_dict.
type spec struct {
	name    string
	storage string // "FloatStorage"
	key     string
	numel   int64
	offset  int64
	size    []int64
	stride  []int64
}

// tensor pushes a _rebuild_tensor_v2 call for s.
func (p *pk) tensor(s spec) *pk {
	p.global("torch._utils", "_rebuild_tensor_v2").op(opMark)
	p.op(opMark).str("storage").global("torch", s.storage).str(s.key).str("cpu").long(s.numel).op(opTuple, opBinPersID)
	p.long(s.offset).ints(s.size).ints(s.stride).op(opNewFalse)
	p.global("collections", "OrderedDict").op(opEmptyTuple, opReduce)
	return p.op(opTuple, opReduce)
}

// statePickle is an OrderedDict of the specs' tensors, as torch.save
// writes it.
func statePickle(specs ...spec) []byte {
	p := newPickle().global("collections", "OrderedDict").op(opEmptyTuple, opReduce, opMark)
	for _, s := range specs {
		p.str(s.name).tensor(s)
	}
	return p.op(opSetItems).stop()
}

// record is a zip record or a legacy storage.
type record struct {
	name string
	data []byte
}

// zipFile stores data.pkl and records under dir/, as torch.save does.
func zipFile(t testing.TB, dir string, pkl []byte, method uint16, recs ...record) []byte {
	t.Helper()
	all := []record{{dir + "/data.pkl", pkl}}
	for _, r := range recs {
		all = append(all, record{dir + "/" + r.name, r.data})
	}
	return zipRecords(t, method, all...)
}

// rawZip is a zip of empty records with the names given.
func rawZip(t testing.TB, names ...string) []byte {
	t.Helper()
	var recs []record
	for _, n := range names {
		recs = append(recs, record{name: n})
	}
	return zipRecords(t, zip.Store, recs...)
}

func zipRecords(t testing.TB, method uint16, recs ...record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, r := range recs {
		f, err := w.CreateHeader(&zip.FileHeader{Name: r.name, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(r.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// legacyHeader is the legacy format's first three pickles.
func legacyHeader() []byte {
	magic := []byte{opProto, 2, opLong1, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, opStop}
	version := newPickle().int(legacyProtocol).stop()
	info := newPickle().op(opEmptyDict).str("little_endian").op(opNewTrue, opSetItem).stop()
	return append(append(magic, version...), info...)
}

// legacyFile is the legacy format with storages written in the order
// given, each with an element count of len(data)/size.
func legacyFile(pkl []byte, size int, recs ...record) []byte {
	b := append(legacyHeader(), pkl...)
	keys := newPickle().op(opEmptyList, opMark)
	for _, r := range recs {
		keys.str(r.name)
	}
	b = append(b, keys.op(opAppends).stop()...)
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(r.data)/size))
		b = append(b, r.data...)
	}
	return b
}

func f32Bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}
