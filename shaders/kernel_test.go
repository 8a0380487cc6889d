package shaders

import (
	"encoding/binary"
	"io/fs"
	"math"
	"slices"
	"testing"
)

// TestKernelsHaveModules checks that the generated table and the embedded
// SPIR-V list the same kernels.
func TestKernelsHaveModules(t *testing.T) {
	var names []string
	for _, d := range All {
		if _, err := SPIRV(d.Name); err != nil {
			t.Errorf("%s: %v", d.Name, err)
		}
		names = append(names, d.Name+".spv")
	}
	files, err := fs.Glob(spv, "spv/*.spv")
	if err != nil {
		t.Fatal(err)
	}
	for i := range files {
		files[i] = files[i][len("spv/"):]
	}
	if !slices.Equal(names, files) {
		t.Errorf("kernels %v, modules %v", names, files)
	}
}

// words decodes b as little-endian 32-bit words.
func words(b []byte) []uint32 {
	w := make([]uint32, len(b)/4)
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return w
}

// TestPushBytes checks generated encoders against the GLSL blocks' layouts
// written out by hand.
func TestPushBytes(t *testing.T) {
	f := math.Float32bits
	for _, tc := range []struct {
		name string
		push Push
		size int
		want []uint32
	}{
		{"fill", FillPush{N: 7, Value: -2.5}, Fill.PushSize, []uint32{7, f(-2.5)}},
		{"toy_mix int", ToyMixPush{N: 1, K: 2, Holdout: -1, Stdev: 0.25, SeedLo: 3, SeedHi: 4, Offset: 5}, ToyMix.PushSize,
			[]uint32{1, 2, 0xffffffff, f(0.25), 3, 4, 5}},
		{"igemm", IgemmPush{M: 1, N: 2, K: 3, SAm: 4, SAk: 5, SBk: 6, SBn: 7, Ldc: 8, Nb: 9, Cin: 10, H: 11, W: 12,
			Cout: 13, Oh: 14, Ow: 15, Kh: 16, Kw: 17, Sh: 18, Sw: 19, Ph: 20, Pw: 21, Alpha: 1.5, Beta: -1,
			HasBias: 1, Hp: 24, Wp: 25, Yc: 26, Yc0: 27, Epi: 3, Slope: 0.25}, Igemm.PushSize,
			[]uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, f(1.5), f(-1), 1, 24, 25, 26, 27, 3, f(0.25)}},
		{"counter", NoPush{}, Counter.PushSize, nil},
	} {
		b := tc.push.Bytes()
		if len(b) != tc.size {
			t.Errorf("%s: %d bytes, the kernel declares %d", tc.name, len(b), tc.size)
		}
		if got := words(b); !slices.Equal(got, tc.want) {
			t.Errorf("%s: words %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestPutBool(t *testing.T) {
	b := []byte{9, 9, 9, 9, 9, 9, 9, 9}
	putBool(b, 0, true)
	putBool(b, 4, false)
	if got := words(b); !slices.Equal(got, []uint32{1, 0}) {
		t.Errorf("putBool: %v, want [1 0]", got)
	}
}
