package engine

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSpreadRowsStride(t *testing.T) {
	for n, want := range map[int]int{1: 4, 100: 100, 255: 256 + 4, 256: 260, 257: 260, 512: 516, 1024: 1028, 1028: 1028, 2048: 2052} {
		require.Equal(t, want, spreadRows(n), "spreadRows(%d)", n)
	}
}

// TestSpreadRows runs GEMMs whose A (or transposed B) rows are a multiple
// of 256 floats apart, which igemm reads through a copy with spread rows
// (or, for the packed backward-data, packs with them), against the float64
// references and against the same GEMMs on the dense rows
// (forceDenseRows). The copies change addresses only, so the two must
// agree bit for bit. The test fails if the spread path was not taken.
func TestSpreadRows(t *testing.T) {
	d := newTestDevice(t)
	if d.class != ClassCPU {
		t.Skipf("rows are spread on CPU devices; %s is not one", d.info.Name)
	}
	rng := newRand(23)
	type spreadCase struct {
		name string
		role scratchRole // the scratch buffer that shows the spread path ran
		n    int         // its size in floats with spread rows
		want []float64
		out  *Tensor
		op   func(r *Recorder) error
	}
	var cases []spreadCase
	for _, tr := range []struct {
		M, N, K int
		transB  bool
	}{{37, 40, 512, false}, {40, 12, 512, true}, {64, 100, 1024, false}} {
		av, bv := randSlice(rng, tr.M*tr.K), randSlice(rng, tr.K*tr.N)
		a := tensorOf(t, d, av, tr.M, tr.K)
		b := tensorOf(t, d, bv, tr.K, tr.N)
		role, rows := scratchSpreadA, tr.M
		if tr.transB {
			b = tensorOf(t, d, bv, tr.N, tr.K)
			role, rows = scratchSpreadB, tr.N
		}
		c := zeros(t, d, tr.M, tr.N)
		cases = append(cases, spreadCase{
			name: fmt.Sprintf("matmul %dx%dx%d transB %v", tr.M, tr.N, tr.K, tr.transB),
			role: role, n: rows * spreadRows(tr.K), out: c,
			want: refGemm(av, bv, tr.M, tr.N, tr.K, false, tr.transB, 1, 0, nil, nil),
			op:   func(r *Recorder) error { return r.Gemm(c, a, b, false, tr.transB, 1, 0, nil) },
		})
	}
	// Conv forward: weights [20, 16*4*4] (K = 256) on the padded path.
	s := convShape{2, 16, 8, 8, 20, 4, 4, 2, 1}
	oh, ow := s.out()
	xv, wv := randSlice(rng, s.N*s.Cin*s.H*s.W), randSlice(rng, s.Cout*s.Cin*s.KH*s.KW)
	x, w := tensorOf(t, d, xv, s.N, s.Cin, s.H, s.W), tensorOf(t, d, wv, s.Cout, s.Cin, s.KH, s.KW)
	y := zeros(t, d, s.N, s.Cout, oh, ow)
	p := ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P}
	cases = append(cases, spreadCase{name: s.String() + "/forward", role: scratchSpreadA, n: s.Cout * spreadRows(256), out: y,
		want: refConv(xv, wv, s),
		op:   func(r *Recorder) error { return r.Conv2D(y, x, w, p) }})
	// Transposed conv (backward-data with packed weights): 64 input
	// channels, four taps per parity class, K = 256.
	tx, tw := randSlice(rng, 2*64*4*4), randSlice(rng, 64*6*4*4)
	xt, wt := tensorOf(t, d, tx, 2, 64, 4, 4), tensorOf(t, d, tw, 64, 6, 4, 4)
	yt := zeros(t, d, 2, 6, 8, 8)
	cases = append(cases, spreadCase{name: "deconv 64x4x4->6x8x8", role: scratchPacked, n: 4 * 6 * spreadRows(256), out: yt,
		want: refConvTranspose(tx, tw, 2, 64, 4, 6, 4, 2, 1),
		op:   func(r *Recorder) error { return r.ConvTranspose2D(yt, xt, wt, p) }})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got [2][]float32
			for i, dense := range []bool{false, true} {
				forceDenseRows = dense
				r, err := d.Record()
				require.NoError(t, err)
				err = c.op(r)
				if err == nil {
					err = r.Submit()
				}
				forceDenseRows = false
				buf := r.scratchBufs.cur[c.role]
				r.Release()
				require.NoError(t, err)
				if !dense {
					require.NotNil(t, buf, "no scratch buffer for the spread rows")
					require.GreaterOrEqual(t, buf.n, c.n, "scratch buffer too small for spread rows")
				}
				got[i] = download(t, c.out)
				assertClose(t, fmt.Sprintf("dense %v", dense), c.want, got[i], gemmRtol, gemmAtol)
			}
			requireSameBits(t, [2]string{"spread rows", "dense ones"}, got)
		})
	}
}
