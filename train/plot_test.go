package train

import (
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot/plotter"

	"vkgan/train/rundir"
)

// fakeRun returns n logged steps that look like a GAN's: losses that settle
// with noise, D outputs in (0, 1).
func fakeRun(n int) []rundir.Metric {
	r := rand.New(rand.NewPCG(1, 2))
	ms := make([]rundir.Metric, n)
	for i := range ms {
		step := 50 * (i + 1)
		decay := math.Exp(-float64(i) / float64(n/4+1))
		ms[i] = rundir.Metric{
			Step:  step,
			LossD: 0.6 + decay + 0.2*r.Float64(),
			LossG: 2 + 3*decay + r.NormFloat64(),
			DX:    0.6 + 0.3*r.Float64(),
			DGZ1:  0.1 + 0.3*r.Float64(),
			DGZ2:  0.05 + 0.2*r.Float64(),
		}
	}
	return ms
}

// readPlot decodes a plot and counts its pixels that are not white.
func readPlot(t *testing.T, path string) (image.Image, int) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	inked := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0xf000 || g < 0xf000 || bl < 0xf000 {
				inked++
			}
		}
	}
	return img, inked
}

// colored counts the pixels close to c.
func colored(img image.Image, c [3]uint8) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			d := math.Abs(float64(r>>8)-float64(c[0])) + math.Abs(float64(g>>8)-float64(c[1])) + math.Abs(float64(bl>>8)-float64(c[2]))
			if d < 30 {
				n++
			}
		}
	}
	return n
}

func TestPlotLosses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.png")
	require.NoError(t, PlotLosses(empty, nil))
	_, emptyInk := readPlot(t, empty)

	for _, n := range []int{1, 2, 19, 20, 500, 5000} {
		path := filepath.Join(dir, rundir.LossPlotFile)
		require.NoError(t, PlotLosses(path, fakeRun(n)), "n=%d", n)
		img, ink := readPlot(t, path)
		assert.Equal(t, image.Rect(0, 0, PlotWidth, PlotHeight), img.Bounds(), "n=%d", n)
		// Axes, labels and legends alone ink a few percent of the image.
		assert.Greater(t, ink, PlotWidth*PlotHeight/100, "n=%d: blank plot", n)
		if n >= 2 {
			assert.Greater(t, ink, emptyInk, "n=%d: no more ink than the empty plot", n)
			// Each series' colour shows beyond its legend entry.
			for _, c := range []struct {
				name string
				rgb  [3]uint8
			}{
				{"loss_d", [3]uint8{colorLossD.R, colorLossD.G, colorLossD.B}},
				{"loss_g", [3]uint8{colorLossG.R, colorLossG.G, colorLossG.B}},
				{"D(x)", [3]uint8{colorDX.R, colorDX.G, colorDX.B}},
			} {
				assert.Greater(t, colored(img, c.rgb), 200, "n=%d: %s not drawn", n, c.name)
			}
		}
	}

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "no temporary file left behind")
}

func TestPlotLossesNonFinite(t *testing.T) {
	t.Parallel()
	ms := fakeRun(100)
	ms[10].LossD = math.NaN()
	ms[20].LossG = math.Inf(1)
	ms[99].DX = math.Inf(-1)
	for i := range ms {
		ms[i].DGZ2 = math.NaN() // a series with no value at all
	}
	path := filepath.Join(t.TempDir(), rundir.LossPlotFile)
	require.NoError(t, PlotLosses(path, ms))
	_, ink := readPlot(t, path)
	assert.Greater(t, ink, PlotWidth*PlotHeight/100)
}

func TestPlotLossesErrors(t *testing.T) {
	t.Parallel()
	assert.Error(t, PlotLosses(filepath.Join(t.TempDir(), "no", "dir", rundir.LossPlotFile), fakeRun(10)))
}

// A long run's plot, redrawn at every log line, must stay cheap: about 0.1 s
// for 10k points here (BenchmarkPlotLosses). The bound is loose for slow CI
// machines and -race, yet catches a return to one long stroke (6.5 s).
func TestPlotLossesFast(t *testing.T) {
	t.Parallel()
	ms := fakeRun(10_000)
	path := filepath.Join(t.TempDir(), rundir.LossPlotFile)
	start := time.Now()
	require.NoError(t, PlotLosses(path, ms))
	took := time.Since(start)
	t.Logf("PlotLosses of 10k points: %v", took)
	assert.Less(t, took, 3*time.Second)
}

func TestDecimate(t *testing.T) {
	t.Parallel()
	xys := make(plotter.XYs, 10_000)
	for i := range xys {
		xys[i] = plotter.XY{X: float64(i), Y: math.Sin(float64(i) / 100)}
	}
	xys[1234].Y = 50 // a spike
	xys[8765].Y = -50

	assert.Equal(t, xys[:100], decimate(xys[:100], 200), "short series kept as is")

	got := decimate(xys, 200)
	assert.LessOrEqual(t, len(got), 200)
	assert.Greater(t, len(got), 150)
	var hi, lo float64
	for i, p := range got {
		hi, lo = max(hi, p.Y), min(lo, p.Y)
		if i > 0 {
			assert.Less(t, got[i-1].X, p.X, "points out of order")
		}
	}
	assert.Equal(t, 50.0, hi, "spike lost")
	assert.Equal(t, -50.0, lo, "spike lost")
	assert.Equal(t, 0.0, got[0].X)
}

func TestSmoothEMA(t *testing.T) {
	t.Parallel()
	// A constant stays constant (the start is debiased).
	xys := make(plotter.XYs, 100)
	for i := range xys {
		xys[i] = plotter.XY{X: float64(i), Y: 3}
	}
	for _, p := range smoothEMA(xys) {
		assert.InDelta(t, 3, p.Y, 1e-12)
	}
	// Alternating noise is damped.
	for i := range xys {
		xys[i].Y = float64(i%2)*2 - 1
	}
	s := smoothEMA(xys)
	assert.InDelta(t, 0, s[99].Y, 0.5)
}

func BenchmarkPlotLosses(b *testing.B) {
	ms := fakeRun(10_000)
	path := filepath.Join(b.TempDir(), rundir.LossPlotFile)
	for b.Loop() {
		if err := PlotLosses(path, ms); err != nil {
			b.Fatal(err)
		}
	}
}
