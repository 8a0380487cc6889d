package engine

import (
	"os"
	"sort"
	"strings"
	"testing"
)

// abPairs records fa and fb alternately (A B B A A B ...) between
// timestamps in one command buffer, submits it three times, and logs the
// median GFLOPS of each and the median and range of the per-pair speedup
// of b over a. On a CPU device shared with other jobs, elapsed times swing
// by 2x from minute to minute; within a pair both ops see about the same
// interference, so the ratio is far steadier than separate benchmark runs.
func abPairs(t *testing.T, d *Device, name string, flops float64, fa, fb func(r *Recorder) error) {
	t.Helper()
	r, err := d.Record()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	const pairs = 6
	ts := []int{r.Timestamp()}
	for i := range 2 * pairs {
		f := fa
		if (i+i/2)%2 == 1 {
			f = fb
		}
		if err := f(r); err != nil {
			t.Fatal(err)
		}
		ts = append(ts, r.Timestamp())
	}
	if ts[0] < 0 {
		t.Skip("no timestamps on this device")
	}
	if err := r.Submit(); err != nil { // warm-up
		t.Fatal(err)
	}
	var a, b, ratio []float64
	for range 2 {
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		st, err := r.Timestamps()
		if err != nil {
			t.Fatal(err)
		}
		for i := range pairs {
			ta, tb := st[ts[2*i+1]]-st[ts[2*i]], st[ts[2*i+2]]-st[ts[2*i+1]]
			if i%2 == 1 {
				ta, tb = tb, ta
			}
			a, b, ratio = append(a, ta), append(b, tb), append(ratio, ta/tb)
		}
	}
	for _, v := range [][]float64{a, b, ratio} {
		sort.Float64s(v)
	}
	mid := len(a) / 2
	t.Logf("%-40s A %6.1f  B %6.1f GFLOPS  B/A median %.2f [%.2f-%.2f]",
		name, flops/a[mid], flops/b[mid], ratio[mid], ratio[0], ratio[len(ratio)-1])
}

// TestConvFusedAB compares igemm MODE 1 (A) with convwin (B) on the
// Inception shapes that convwin takes. It is a measuring tool, not a
// check: it runs only with VKGAN_AB=1 (or a substring of the shapes to
// run) and -v.
func TestConvFusedAB(t *testing.T) {
	pat := os.Getenv("VKGAN_AB")
	if pat == "" {
		t.Skip("VKGAN_AB not set")
	}
	d := newTestDevice(t)
	for _, c := range inceptionConvs {
		if pat != "1" && !strings.Contains(c.String(), pat) {
			continue
		}
		oh, ow := c.out()
		x := tensorOf(t, d, randSlice(newRand(1), c.N*c.Cin*c.H*c.W), c.N, c.Cin, c.H, c.W)
		w := tensorOf(t, d, randSlice(newRand(2), c.Cout*c.Cin*c.KH*c.KW), c.Cout, c.Cin, c.KH, c.KW)
		s := tensorOf(t, d, randSlice(newRand(3), 2*c.Cout), 2*c.Cout)
		y := zeros(t, d, c.N, c.Ctot, oh, ow)
		p := ConvParams{StrideH: c.SH, StrideW: c.SW, PadH: c.PH, PadW: c.PW}
		g, bias, err := fusedArgs(y, x, w, p, ConvEpilogue{ChannelOffset: c.C0, ScaleShift: s, ReLU: c.ReLU})
		if err != nil {
			t.Fatal(err)
		}
		vert, ok := g.windowLayout()
		if !ok {
			continue
		}
		abPairs(t, d, c.String(), c.flops(),
			func(r *Recorder) error { return r.igemm(modeConvForward, g, g.N, 1, g.K%4 == 0, false, w, x, y, bias) },
			func(r *Recorder) error { return r.convWindow(g, vert, d.subgroupTiles(), x, w, y, bias) })
	}
}
