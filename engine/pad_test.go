package engine

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPad checks pad's zero-padded copies element by element, through
// texel reads (pad_tex, CPU devices with rows of whole texels and one
// column of padding) and through storage-buffer loads (forceNoTexel): a
// copy must be exact. Rows 4 wide and over, odd row lengths and other
// paddings take the storage-buffer kernel either way.
func TestPad(t *testing.T) {
	d := newTestDevice(t)
	texel := d.class == ClassCPU && d.info.Limits.ShaderInt64
	rng := newRand(21)
	for _, s := range []struct{ n, c, h, w, ph, pw int }{
		{2, 3, 8, 8, 1, 1},    // DCGAN geometry
		{1, 2, 4, 4, 1, 1},    // one texel a row
		{3, 5, 6, 12, 1, 1},   // rectangular
		{2, 2, 5, 7, 1, 1},    // odd width: storage buffers
		{2, 3, 8, 8, 2, 2},    // wider padding: storage buffers
		{1, 1, 3, 16, 0, 1},   // no row padding
		{64, 3, 64, 64, 1, 1}, // D's first layer
	} {
		t.Run(fmt.Sprintf("%dx%dx%dx%d_p%d,%d", s.n, s.c, s.h, s.w, s.ph, s.pw), func(t *testing.T) {
			xv := randSlice(rng, s.n*s.c*s.h*s.w)
			x := tensorOf(t, d, xv, s.n, s.c, s.h, s.w)
			g := gemmArgs{nb: s.n, cin: s.c, h: s.h, w: s.w, ph: s.ph, pw: s.pw}
			for _, noTexel := range []bool{false, true} {
				var got []float32
				var names []string
				forceNoTexel = noTexel
				run(t, d, func(r *Recorder) error {
					r.EnableProfile()
					xp, err := r.pad(x, &g)
					if err == nil {
						err = r.Submit()
						got, names = download(t, xp), r.profNames
					}
					return err
				})
				forceNoTexel = false
				wantTex := texel && !noTexel && s.w%4 == 0 && s.pw == 1
				require.Equal(t, wantTex, slices.Contains(names, "pad_tex"), "texel reads %v, kernels %v", wantTex, names)
				require.Len(t, got, s.n*s.c*g.hp*g.wp)
				for i, v := range got {
					pl, rem := i/(g.hp*g.wp), i%(g.hp*g.wp)
					y, xcol := rem/g.wp-s.ph, rem%g.wp-s.pw
					want := float32(0)
					if y >= 0 && y < s.h && xcol >= 0 && xcol < s.w {
						want = xv[(pl*s.h+y)*s.w+xcol]
					}
					if math.Float32bits(v) != math.Float32bits(want) {
						t.Fatalf("texel %v: element %d (plane %d, row %d, column %d) is %g, want %g", !noTexel, i, pl, rem/g.wp, rem%g.wp, v, want)
					}
				}
			}
		})
	}
}

// BenchmarkPad times the padded copies of the DCGAN's discriminator
// inputs at batch 64 (one column and row of padding, rows of whole
// texels): bytes are the input read and the padded copy written.
func BenchmarkPad(b *testing.B) {
	d := newTestDevice(b)
	for _, s := range []struct{ c, hw int }{{3, 64}, {64, 32}, {128, 16}, {256, 8}} {
		b.Run(fmt.Sprintf("64x%dx%dx%d", s.c, s.hw, s.hw), func(b *testing.B) {
			x := benchTensor(b, d, 64, s.c, s.hw, s.hw)
			g := gemmArgs{nb: 64, cin: s.c, h: s.hw, w: s.hw, ph: 1, pw: 1}
			hp, wp := s.hw+2, s.hw+4 // padCopy's row width: a multiple of 4
			benchGPU(b, d, int64(4*64*s.c*(s.hw*s.hw+hp*wp)), func(r *Recorder) error {
				_, err := r.pad(x, &g)
				return err
			})
		})
	}
}
