package torchfile

import (
	"archive/zip"
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead: no input panics, and what is accepted is consistent. Seeded
// with every fixture in testdata and the synthetic files of both formats.
// Zip CRCs turn most mutations of a zip fixture into checksum errors, so
// FuzzUnpickle reaches the pickle machine directly.
func FuzzRead(f *testing.F) {
	paths, err := filepath.Glob("testdata/*.pt")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	pkl := statePickle(goodSpec)
	f.Add(legacyFile(pkl, 4, sixFloats))
	f.Add(zipFile(f, "archive", pkl, zip.Store, record{"data/0", sixFloats.data}))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if got != nil {
				t.Fatalf("error %v with %d tensors", err, len(got))
			}
			return
		}
		requireConsistent(t, got)
	})
}

// FuzzUnpickle runs a state_dict pickle through the loader as Read does,
// with zeroed storages of the sizes it asks for, up to 1 MiB each.
func FuzzUnpickle(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*_zip.pt")
	for _, p := range paths {
		zr, err := zip.OpenReader(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, zf := range zr.File {
			if filepath.Base(zf.Name) == "data.pkl" {
				b, err := readRecord(zf, p, math.MaxInt64, zf.UncompressedSize64)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
		zr.Close()
	}
	f.Add(statePickle(goodSpec))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := newLoader("")
		v, _, err := unpickle(bytes.NewReader(data), int64(len(data)), l, "", "data.pkl", 0)
		if err != nil {
			return
		}
		names, tensors, err := l.stateDict(v)
		if err != nil {
			return
		}
		if err := l.plan(names, tensors); err != nil {
			return
		}
		out := make(map[string]Tensor)
		for _, s := range l.order {
			if s.numel*s.typ.size > 1<<20 {
				return
			}
			raw := make([]byte, s.numel*s.typ.size)
			for _, i := range s.users {
				out[names[i]] = materialise(tensors[i], raw)
			}
		}
		requireConsistent(t, out)
	})
}

// requireConsistent checks that each tensor's data matches its shape and
// dtype.
func requireConsistent(t *testing.T, ts map[string]Tensor) {
	t.Helper()
	for name, x := range ts {
		if x.Shape == nil {
			t.Fatalf("%q: nil shape", name)
		}
		n := 1
		for _, d := range x.Shape {
			n *= d
		}
		switch x.DType {
		case Int64:
			if x.F32 != nil || x.I64 == nil || len(x.I64) != n {
				t.Fatalf("%q: int64 shape %v with %d int64 and %d float32 values", name, x.Shape, len(x.I64), len(x.F32))
			}
		case Float32, Float64, Float16, BFloat16:
			if x.I64 != nil || x.F32 == nil || len(x.F32) != n {
				t.Fatalf("%q: %s shape %v with %d float32 and %d int64 values", name, x.DType, x.Shape, len(x.F32), len(x.I64))
			}
		default:
			t.Fatalf("%q: dtype %q returned", name, x.DType)
		}
	}
}
