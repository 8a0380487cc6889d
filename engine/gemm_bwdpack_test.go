package engine

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConvBackwardDataPacked checks conv backward-data with the weights
// packed per parity class (igemm mode 6, CPU devices) and gathered tap by
// tap (mode 2, forceUnpackedBwd) against the float64 reference and central
// finite differences, on shapes whose classes have unequal tap counts
// (stride 3, kernels 3 and 5), cin not a multiple of 4, and partial
// 16- and 32-row tiles. Both modes visit k in the same order, so their
// results must also agree bit for bit.
func TestConvBackwardDataPacked(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(14)
	cases := []convShape{
		{2, 37, 8, 7, 5, 5, 5, 3, 2},    // stride 3, k5: 9 classes, 4 or 1..4 taps
		{1, 33, 6, 6, 6, 3, 3, 1, 1},    // stride 1, k3: one class
		{2, 45, 9, 9, 7, 4, 4, 2, 1},    // DCGAN geometry, odd sizes
		{1, 35, 10, 9, 3, 3, 5, 3, 1},   // stride 3, k3x5, one output channel short
		{3, 5, 7, 6, 3, 3, 3, 2, 0},     // few rows: 4- and 8-row tiles
		{1, 70, 5, 5, 9, 2, 2, 3, 0},    // kernel smaller than the stride: classes with no taps
		{2, 64, 16, 16, 32, 4, 4, 2, 1}, // D's layer shapes, narrow
	}
	for _, s := range cases {
		t.Run(s.String(), func(t *testing.T) {
			oh, ow := s.out()
			xv, wv, rv := randSlice(rng, s.N*s.Cin*s.H*s.W), randSlice(rng, s.Cout*s.Cin*s.KH*s.KW), randSlice(rng, s.N*s.Cout*oh*ow)
			w, dy := tensorOf(t, d, wv, s.Cout, s.Cin, s.KH, s.KW), tensorOf(t, d, rv, s.N, s.Cout, oh, ow)
			p := ConvParams{StrideH: s.S, StrideW: s.S, PadH: s.P, PadW: s.P}
			want, _ := refConvGrads(xv, wv, rv, s)
			var got [2][]float32
			for i, unpacked := range []bool{false, true} {
				dx := zeros(t, d, s.N, s.Cin, s.H, s.W)
				forceUnpackedBwd = unpacked
				run(t, d, func(r *Recorder) error { return r.Conv2DBackwardData(dx, dy, w, p) })
				forceUnpackedBwd = false
				got[i] = download(t, dx)
				assertClose(t, fmt.Sprintf("dx (unpacked %v)", unpacked), want, got[i], gemmRtol, gemmAtol)
				maxErr := 0.0
				for j := range want {
					maxErr = max(maxErr, math.Abs(want[j]-float64(got[i][j])))
				}
				t.Logf("unpacked %v: max |dx - ref| %.3g", unpacked, maxErr)
			}
			for j := range got[0] {
				if math.Float32bits(got[0][j]) != math.Float32bits(got[1][j]) {
					t.Fatalf("dx[%d]: packed %g, unpacked %g: same k order, want the same bits", j, got[0][j], got[1][j])
				}
			}
			// Central differences of the float64 forward: the loss is
			// linear in x, so h can be large and the check is tight.
			x64, w64 := to64(xv), to64(wv)
			for _, i := range sampleIdx(rng, len(xv), 6) {
				fd := convLossDiff(x64, w64, rv, s, x64, i)
				require.InDelta(t, fd, float64(got[0][i]), 1e-4+1e-4*abs(fd), "dx[%d]", i)
			}
		})
	}
}

// TestConvBackwardUnpacked runs the convolution backward tests with mode
// 2's gathered weights on CPU devices too, which otherwise pack them.
func TestConvBackwardUnpacked(t *testing.T) {
	forceUnpackedBwd = true
	defer func() { forceUnpackedBwd = false }()
	t.Run("Conv2DBackward", TestConv2DBackward)
	t.Run("ConvTranspose2D", TestConvTranspose2D)
}
