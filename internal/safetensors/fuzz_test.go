package safetensors

import (
	"testing"
)

// FuzzDecodeSafetensors: the decoder never panics, and whatever it accepts
// survives re-encoding unchanged.
func FuzzDecodeSafetensors(f *testing.F) {
	seeds := [][]Tensor{
		specialTensors(),
		nil,
		{{Name: "x", DType: F32, Shape: []int{2, 1}, F32: []float32{1, 2}}},
		{{Name: "n", DType: I64, Shape: []int{}, I64: []int64{-9}}, {Name: "e", DType: F32, Shape: []int{0}, F32: []float32{}}},
		{{Name: "mu", DType: F64, Shape: []int{2}, F64: []float64{0.5, -3}}},
	}
	for i, ts := range seeds {
		md := map[string]string{}
		if i%2 == 0 {
			md["step"] = "12"
		}
		b, err := Encode(ts, md)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, c := range badSafetensors() {
		f.Add(c.file)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, md, err := Decode(data)
		if err != nil {
			if ts != nil || md != nil {
				t.Fatalf("error %v with results", err)
			}
			return
		}
		again, err := Encode(ts, md)
		if err != nil {
			t.Fatalf("accepted file does not re-encode: %v", err)
		}
		ts2, md2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded file rejected: %v", err)
		}
		requireSameTensors(t, ts, ts2)
		if len(md) != len(md2) {
			t.Fatalf("metadata %v became %v", md, md2)
		}
		for k, v := range md {
			if md2[k] != v {
				t.Fatalf("metadata %v became %v", md, md2)
			}
		}
	})
}
