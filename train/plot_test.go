package train

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

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

// evaluate gives ms[i] an image-quality evaluation at every every-th line,
// improving over the run: the metrics named in which, each of s, k, f.
func evaluate(ms []rundir.Metric, every int, which string) {
	for i := every - 1; i < len(ms); i += every {
		k := math.Exp(-3 * float64(i) / float64(len(ms)))
		for _, c := range which {
			switch c {
			case 's':
				ms[i].SWD = ptr(80*k + 5)
			case 'k':
				ms[i].KID, ms[i].KIDStd = ptr(0.08*k+0.004), ptr(0.004)
			case 'f':
				ms[i].FID = ptr(250*k + 30)
			}
		}
	}
}

func ptr(v float64) *float64 { return &v }

func rgb(c color.RGBA) [3]uint8 { return [3]uint8{c.R, c.G, c.B} }

// region is the part of img within r.
func region(img image.Image, r image.Rectangle) image.Image {
	return img.(interface {
		SubImage(image.Rectangle) image.Image
	}).SubImage(r)
}

func TestPlotLossesQuality(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		which string // metrics evaluated, as evaluate takes them
		want  string // panels, top to bottom
	}{
		{"none", "", ""},
		{"all", "skf", "skf"},
		{"swd", "s", "s"},
		{"fid", "f", "f"},
		{"kid and fid", "kf", "kf"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ms := fakeRun(500)
			evaluate(ms, 50, c.which)
			path := filepath.Join(t.TempDir(), rundir.LossPlotFile)
			require.NoError(t, PlotLosses(path, ms))
			img, _ := readPlot(t, path)
			require.Equal(t, image.Rect(0, 0, PlotWidth, PlotHeight+len(c.want)*qualityPanelHeight), img.Bounds())

			top := region(img, image.Rect(0, 0, PlotWidth, PlotHeight))
			for _, s := range []struct {
				metric byte
				c      color.RGBA
			}{{'s', colorSWD}, {'k', colorKID}, {'f', colorFID}} {
				// Antialiased edges of the training series come near a
				// quality colour in a few pixels.
				assert.Less(t, colored(top, rgb(s.c)), 30, "%c drawn over the training panels", s.metric)
				panel := strings.IndexByte(c.want, s.metric)
				if panel < 0 {
					assert.Less(t, colored(img, rgb(s.c)), 30, "%c drawn, not evaluated", s.metric)
					continue
				}
				y0 := PlotHeight + panel*qualityPanelHeight
				in := region(img, image.Rect(0, y0, PlotWidth, y0+qualityPanelHeight))
				assert.Greater(t, colored(in, rgb(s.c)), 300, "%c not drawn in panel %d", s.metric, panel)
			}
		})
	}
}

// An evaluation every few lines is drawn at those steps only, each marked:
// the coloured columns of the panel run from the first marker to the last,
// and the markers sit at the evaluated steps.
func TestPlotLossesQualitySparse(t *testing.T) {
	t.Parallel()
	ms := fakeRun(100) // steps 50 to 5000
	// Evaluations at steps 1000, 2000 and 4000.
	for _, i := range []int{19, 39, 79} {
		require.Equal(t, 50*(i+1), ms[i].Step)
		ms[i].SWD = ptr(30) // level, so the line is one row thick
	}
	ms[59].FID = ptr(math.NaN()) // an FID panel with nothing to draw
	path := filepath.Join(t.TempDir(), rundir.LossPlotFile)
	require.NoError(t, PlotLosses(path, ms))
	img, _ := readPlot(t, path)
	require.Equal(t, PlotHeight+2*qualityPanelHeight, img.Bounds().Dy())

	// Coloured pixels per column in the SWD panel: a marker (5 pt across,
	// 7 px) is more than twice as tall as the line (1.5 pt).
	const markerPx = 5
	col := make([]int, PlotWidth)
	for y := PlotHeight; y < PlotHeight+qualityPanelHeight; y++ {
		for x := range col {
			col[x] += colored(region(img, image.Rect(x, y, x+1, y+1)), rgb(colorSWD))
		}
	}
	first := slices.IndexFunc(col, func(n int) bool { return n > 0 })
	require.GreaterOrEqual(t, first, 0, "SWD not drawn")
	end := first + slices.Index(col[first:], 0) // the legend's line comes after a gap
	require.Greater(t, end, first)
	var centres []float64
	for x := first; x < end; {
		if col[x] < markerPx {
			x++
			continue
		}
		x0 := x
		for x < end && col[x] >= markerPx {
			x++
		}
		centres = append(centres, float64(x0+x-1)/2)
	}
	require.Len(t, centres, 3, "markers in columns %v", col[first:end])
	assert.InDelta(t, float64(first), centres[0]-3, 2, "line starts before the first evaluation")
	assert.InDelta(t, float64(end-1), centres[2]+3, 2, "line runs past the last evaluation")
	// Steps 1000, 2000, 4000: the middle marker a third of the way.
	assert.InDelta(t, 1.0/3, (centres[1]-centres[0])/(centres[2]-centres[0]), 0.02)
	for x := end; x < PlotWidth; x++ {
		assert.Less(t, col[x], markerPx, "a marker at column %d, beyond the last evaluation", x)
	}
	// Left of the legends, which show FID's line.
	fid := region(img, image.Rect(0, PlotHeight+qualityPanelHeight, PlotWidth*3/4, img.Bounds().Dy()))
	assert.Zero(t, colored(fid, rgb(colorFID)), "NaN FID drawn")
}

func TestEvaluatedXYs(t *testing.T) {
	t.Parallel()
	ms := []rundir.Metric{
		{Step: 10},
		{Step: 20, SWD: ptr(3)},
		{Step: 30, SWD: ptr(math.NaN())},
		{Step: 40, SWD: ptr(math.Inf(1))},
		{Step: 50, SWD: ptr(math.Inf(-1))},
		{Step: 60},
		{Step: 70, SWD: ptr(0)},
	}
	swd := func(m rundir.Metric) *float64 { return m.SWD }
	assert.Equal(t, plotter.XYs{{X: 20, Y: 3}, {X: 70, Y: 0}}, evaluatedXYs(ms, swd))
	assert.Empty(t, evaluatedXYs(ms[:1], swd))

	ms[1].KID, ms[1].KIDStd = ptr(0.01), ptr(math.NaN()) // no bar where std is NaN
	ms[6].KID, ms[6].KIDStd = ptr(0.02), ptr(0.001)
	ms[5].KIDStd = ptr(0.001) // nor where only std is set
	kid := func(m rundir.Metric) *float64 { return m.KID }
	kidStd := func(m rundir.Metric) *float64 { return m.KIDStd }
	bars := stdBars(ms, kid, kidStd, colorKID)
	require.NotNil(t, bars)
	eb := bars.(errorBars).bars
	assert.Equal(t, plotter.XYs{{X: 70, Y: 0.02}}, eb.XYs)
	assert.Equal(t, plotter.YErrors{{Low: 0.001, High: 0.001}}, eb.YErrors)
	assert.Nil(t, stdBars(ms[:2], kid, kidStd, colorKID))
}

// Panels whose y tick labels differ in width still share the step axis.
func TestAlignX(t *testing.T) {
	t.Parallel()
	c := draw.New(vgimg.New(4*vg.Inch, 2*vg.Inch))
	narrow, wide := plot.New(), plot.New()
	narrow.Y.Min, narrow.Y.Max = 0, 1
	wide.Y.Min, wide.Y.Max = 0.00001, 0.00002
	ps := []*plot.Plot{narrow, wide}
	cs := []draw.Canvas{c, c}
	require.NotEqual(t, ps[0].DataCanvas(cs[0]).Min.X, ps[1].DataCanvas(cs[1]).Min.X)
	alignX(ps, cs)
	d0, d1 := ps[0].DataCanvas(cs[0]), ps[1].DataCanvas(cs[1])
	assert.InDelta(t, float64(d0.Min.X), float64(d1.Min.X), 1e-9)
	assert.InDelta(t, float64(d0.Max.X), float64(d1.Max.X), 1e-9)
}
