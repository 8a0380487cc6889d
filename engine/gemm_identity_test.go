package engine

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

// TestDCGANBitIdentity hashes the outputs of the DCGAN training path's
// GEMM and convolution passes (igemm modes 0-6 as Gemm, Conv2D,
// ConvTranspose2D and their backward passes dispatch them) on the DCGAN
// shapes at batch 64 and 2, from seeded inputs. The hashes depend on the
// device, so it is a tool for changes to shared GEMM code rather than a
// check on every machine: VKGAN_IDENTITY_OUT=file writes them, and
// VKGAN_IDENTITY_IN=file (written by the code before the change, on the
// same device) requires every output to be bit for bit the same.
func TestDCGANBitIdentity(t *testing.T) {
	out, in := os.Getenv("VKGAN_IDENTITY_OUT"), os.Getenv("VKGAN_IDENTITY_IN")
	if out == "" && in == "" {
		t.Skip("set VKGAN_IDENTITY_OUT or VKGAN_IDENTITY_IN")
	}
	d := newTestDevice(t)
	got := map[string]string{}
	var order []string
	hash := func(name string, ts ...*Tensor) {
		h := sha256.New()
		for _, x := range ts {
			for _, v := range download(t, x) {
				binary.Write(h, binary.LittleEndian, math.Float32bits(v))
			}
		}
		got[name] = fmt.Sprintf("%x", h.Sum(nil))
		order = append(order, name)
	}
	seed := uint64(100)
	rnd := func(shape ...int) *Tensor {
		seed++
		n := 1
		for _, s := range shape {
			n *= s
		}
		return tensorOf(t, d, randSlice(newRand(seed), n), shape...)
	}
	for _, n := range []int{64, 2} {
		for _, s0 := range dcganConvs {
			s := s0
			s.N = n
			oh, ow := s.out()
			x, w, y := rnd(s.N, s.Cin, s.H, s.W), rnd(s.Cout, s.Cin, s.KH, s.KW), rnd(s.N, s.Cout, oh, ow)
			p := ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P}
			yf, dx, dw := zeros(t, d, s.N, s.Cout, oh, ow), zeros(t, d, s.N, s.Cin, s.H, s.W), zeros(t, d, s.Cout, s.Cin, s.KH, s.KW)
			dwAcc := rnd(s.Cout, s.Cin, s.KH, s.KW)
			run(t, d, func(r *Recorder) error {
				r.Conv2D(yf, x, w, p)
				r.Conv2DBackwardData(dx, y, w, p)
				r.Conv2DBackwardWeights(dw, y, x, p)
				pa := p
				pa.Accumulate = true
				return r.Conv2DBackwardWeights(dwAcc, y, x, pa)
			})
			hash(fmt.Sprintf("conv %s forward", s), yf)
			hash(fmt.Sprintf("conv %s backward-data", s), dx)
			hash(fmt.Sprintf("conv %s backward-weights", s), dw, dwAcc)
		}
		for _, c := range []struct{ Cin, H, Cout, K, S, P int }{
			{100, 1, 512, 4, 1, 0}, {512, 4, 256, 4, 2, 1}, {256, 8, 128, 4, 2, 1}, {128, 16, 64, 4, 2, 1}, {64, 32, 3, 4, 2, 1},
		} {
			oh := (c.H-1)*c.S - 2*c.P + c.K
			x, w, dy := rnd(n, c.Cin, c.H, c.H), rnd(c.Cin, c.Cout, c.K, c.K), rnd(n, c.Cout, oh, oh)
			p := ConvParams{StrideH: c.S, StrideW: c.S, PadH: c.P, PadW: c.P}
			y, dx, dw := zeros(t, d, n, c.Cout, oh, oh), zeros(t, d, n, c.Cin, c.H, c.H), zeros(t, d, c.Cin, c.Cout, c.K, c.K)
			run(t, d, func(r *Recorder) error {
				r.ConvTranspose2D(y, x, w, p)
				r.ConvTranspose2DBackwardData(dx, dy, w, p)
				return r.ConvTranspose2DBackwardWeights(dw, dy, x, p)
			})
			name := fmt.Sprintf("deconv n%d %dx%dx%d->%d k%ds%dp%d", n, c.Cin, c.H, c.H, c.Cout, c.K, c.S, c.P)
			hash(name+" forward", y)
			hash(name+" backward-data", dx)
			hash(name+" backward-weights", dw)
		}
	}
	for _, g := range []struct {
		M, N, K     int
		ta, tb      bool
		alpha, beta float32
		bias        bool
	}{
		{1024, 1024, 1024, false, false, 1, 0, false},
		{1024, 1024, 1024, true, false, 1, 0, false},
		{1024, 1024, 1024, false, true, 1, 0, false},
		{64, 1, 8192, false, true, 1, 0, false}, // D's last layer as a matmul
		{37, 129, 13, true, true, 0.5, 1, true},
		{2, 3, 1, false, false, 1, 0, true},
	} {
		ar, ac, br, bc := gemmOperandShapes(g.M, g.N, g.K, g.ta, g.tb)
		a, b, c := rnd(ar, ac), rnd(br, bc), rnd(g.M, g.N)
		var bias *Tensor
		if g.bias {
			bias = rnd(g.N)
		}
		run(t, d, func(r *Recorder) error { return r.Gemm(c, a, b, g.ta, g.tb, g.alpha, g.beta, bias) })
		hash(fmt.Sprintf("gemm %dx%dx%d ta=%v tb=%v alpha=%g beta=%g bias=%v", g.M, g.N, g.K, g.ta, g.tb, g.alpha, g.beta, g.bias), c)
	}
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range order {
			fmt.Fprintf(f, "%s\t%s\n", got[k], k)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if in != "" {
		f, err := os.Open(in)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		n := 0
		for sc := bufio.NewScanner(f); sc.Scan(); n++ {
			sum, name, _ := strings.Cut(sc.Text(), "\t")
			if got[name] != sum {
				t.Errorf("%s: output differs from %s", name, in)
			}
		}
		if n != len(order) {
			t.Errorf("%s has %d outputs, this run %d", in, n, len(order))
		}
	}
}
