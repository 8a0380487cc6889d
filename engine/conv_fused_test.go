package engine

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// fusedCase is a convolution with separate row and column geometry (the
// Inception's 1x7 and 7x1 kernels) written into channels C0.. of an
// output with Ctot channels.
type fusedCase struct {
	N, Cin, H, W, Cout, KH, KW, SH, SW, PH, PW int
	C0, Ctot                                   int
	BN, ReLU                                   bool
}

func (c fusedCase) out() (int, int) {
	return (c.H+2*c.PH-c.KH)/c.SH + 1, (c.W+2*c.PW-c.KW)/c.SW + 1
}

// refFused is the float64 reference: the convolution, then the inference
// batch norm (gamma, beta, mean, var, eps) and the ReLU, placed into the
// output's channel slice; the other channels keep prev.
func refFused(c fusedCase, x, w, gamma, beta, mean, vr, prev []float32, eps float64) []float64 {
	oh, ow := c.out()
	y := make([]float64, len(prev))
	for i, v := range prev {
		y[i] = float64(v)
	}
	for n := range c.N {
		for co := range c.Cout {
			for i := range oh {
				for j := range ow {
					var s float64
					for ci := range c.Cin {
						for kh := range c.KH {
							ih := i*c.SH - c.PH + kh
							for kw := range c.KW {
								iw := j*c.SW - c.PW + kw
								if ih < 0 || ih >= c.H || iw < 0 || iw >= c.W {
									continue
								}
								s += float64(x[((n*c.Cin+ci)*c.H+ih)*c.W+iw]) * float64(w[((co*c.Cin+ci)*c.KH+kh)*c.KW+kw])
							}
						}
					}
					if c.BN {
						s = (s-float64(mean[co]))/math.Sqrt(float64(vr[co])+eps)*float64(gamma[co]) + float64(beta[co])
					}
					if c.ReLU {
						s = max(s, 0)
					}
					y[((n*c.Ctot+c.C0+co)*oh+i)*ow+j] = s
				}
			}
		}
	}
	return y
}

func TestConv2DFused(t *testing.T) {
	d := newTestDevice(t)
	rng := newRand(31)
	const eps = 1e-3
	for _, c := range []fusedCase{
		{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, false, false},
		{2, 5, 9, 11, 7, 1, 7, 1, 1, 0, 3, 3, 13, true, true},  // Inception 1x7
		{2, 5, 11, 9, 6, 7, 1, 1, 1, 3, 0, 0, 6, true, true},   // 7x1
		{3, 3, 17, 13, 5, 3, 3, 2, 2, 0, 0, 2, 9, true, false}, // stride 2, odd sides
		{2, 4, 10, 10, 3, 4, 4, 2, 2, 1, 1, 1, 5, true, true},  // the padded (kw % 4) path
		{1, 6, 8, 8, 4, 8, 8, 1, 1, 0, 0, 4, 8, false, true},   // kernel covers the input
		{2, 32, 35, 35, 19, 1, 1, 1, 1, 0, 0, 64, 96, true, true},
		{1, 9, 12, 12, 17, 3, 1, 1, 1, 1, 0, 3, 20, true, true},
		// The window kernel (convwin.comp): 8 pixels per invocation with a
		// partial last group, 4 where 8 would waste a line's end, rows and
		// columns, strides 1 and 2 either way, asymmetric padding, odd and
		// non-multiple-of-4 sides, tile rows past M (TM 16, 8 and 4).
		{2, 3, 9, 37, 33, 3, 3, 1, 1, 1, 1, 5, 40, true, true},   // 3x3, ow 37: 8 per invocation
		{1, 4, 13, 21, 9, 5, 5, 1, 1, 2, 2, 0, 9, true, true},    // 5x5, ow 21
		{1, 4, 13, 19, 9, 5, 5, 1, 1, 2, 2, 0, 9, true, true},    // 5x5, ow 19: 4 per invocation
		{2, 3, 29, 5, 6, 7, 1, 1, 1, 3, 0, 2, 10, true, true},    // 7x1, oh 29: columns of 8
		{1, 5, 15, 6, 4, 3, 1, 2, 1, 1, 0, 0, 4, true, false},    // 3x1, row stride 2
		{1, 2, 9, 16, 3, 3, 3, 2, 1, 1, 0, 0, 3, false, true},    // row stride 2, column stride 1
		{2, 3, 6, 10, 4, 3, 3, 1, 2, 0, 1, 1, 6, true, true},     // column stride 2, padding 0x1
		{2, 6, 3, 3, 17, 1, 3, 1, 1, 0, 1, 5, 30, true, true},    // 1x3, ow 3 < 4
		{1, 3, 7, 11, 8, 5, 3, 1, 1, 2, 1, 0, 8, true, true},     // 5x3, padding 2x1
		{1, 3, 6, 6, 5, 2, 2, 1, 1, 1, 1, 0, 5, false, false},    // 2x2, padding 1
		{1, 4, 10, 10, 3, 3, 3, 1, 1, 1, 1, 0, 3, true, true},    // M 3: TM 4
		{2, 16, 17, 17, 24, 1, 7, 1, 1, 0, 3, 8, 40, true, true}, // Inception 1x7 on 17x17
		{2, 16, 17, 17, 24, 7, 1, 1, 1, 3, 0, 8, 40, true, true}, // and 7x1
	} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			oh, ow := c.out()
			xv := randSlice(rng, c.N*c.Cin*c.H*c.W)
			wv := randSlice(rng, c.Cout*c.Cin*c.KH*c.KW)
			prev := make([]float32, c.N*c.Ctot*oh*ow)
			for i := range prev {
				prev[i] = -777 // a sentinel the fused conv must leave alone outside its channels
			}
			gamma, beta, mean := randSlice(rng, c.Cout), randSlice(rng, c.Cout), randSlice(rng, c.Cout)
			vr := make([]float32, c.Cout)
			for i := range vr {
				vr[i] = float32(0.1 + rng.Float64())
			}
			x, w := tensorOf(t, d, xv, c.N, c.Cin, c.H, c.W), tensorOf(t, d, wv, c.Cout, c.Cin, c.KH, c.KW)
			y := tensorOf(t, d, prev, c.N, c.Ctot, oh, ow)
			e := ConvEpilogue{ChannelOffset: c.C0, ReLU: c.ReLU}
			if c.BN {
				e.ScaleShift = zeros(t, d, 2*c.Cout)
			}
			p := ConvParams{StrideH: c.SH, StrideW: c.SW, PadH: c.PH, PadW: c.PW}
			run(t, d, func(r *Recorder) error {
				if c.BN {
					r.FoldBatchNorm(e.ScaleShift, tensorOf(t, d, gamma, c.Cout), tensorOf(t, d, beta, c.Cout),
						tensorOf(t, d, mean, c.Cout), tensorOf(t, d, vr, c.Cout), eps)
				}
				return r.Conv2DFused(y, x, w, p, e)
			})
			want := refFused(c, xv, wv, gamma, beta, mean, vr, prev, eps)
			assertClose(t, "y", want, download(t, y), gemmRtol, gemmAtol)

			// The window kernel as a GPU runs it (no subgroup broadcasts).
			g, bias, err := fusedArgs(y, x, w, p, e)
			require.NoError(t, err)
			if vert, ok := g.windowLayout(); ok && !g.paddable() {
				y2 := tensorOf(t, d, prev, c.N, c.Ctot, oh, ow)
				run(t, d, func(r *Recorder) error { return r.convWindow(g, vert, false, x, w, y2, bias) })
				assertClose(t, "y without subgroups", want, download(t, y2), gemmRtol, gemmAtol)
			}
		})
	}
}

func TestConv2DFusedBadInput(t *testing.T) {
	d := newTestDevice(t)
	x, w := zeros(t, d, 1, 2, 5, 5), zeros(t, d, 3, 2, 3, 3)
	for _, c := range []struct {
		y    *Tensor
		e    ConvEpilogue
		want string
	}{
		{zeros(t, d, 1, 4, 3, 3), ConvEpilogue{ChannelOffset: 2}, "cannot take channels 2..4"},
		{zeros(t, d, 1, 3, 4, 4), ConvEpilogue{}, "cannot take channels"},
		{zeros(t, d, 1, 3, 3, 3), ConvEpilogue{ChannelOffset: -1}, "cannot take channels"},
		{zeros(t, d, 1, 3, 3, 3), ConvEpilogue{ScaleShift: zeros(t, d, 3)}, "scale-shift has 3 values"},
	} {
		r, err := d.Record()
		require.NoError(t, err)
		require.ErrorContains(t, r.Conv2DFused(c.y, x, w, ConvParams{}, c.e), c.want)
		r.Release()
	}
	r, err := d.Record()
	require.NoError(t, err)
	defer r.Release()
	s := zeros(t, d, 6)
	require.ErrorContains(t, r.FoldBatchNorm(s, zeros(t, d, 3), zeros(t, d, 3), zeros(t, d, 3), zeros(t, d, 2), 1e-3), "want C, C, C, C and 2C")
}
