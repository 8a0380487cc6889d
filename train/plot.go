package train

import (
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"vkgan/internal/atomicfile"
	"vkgan/train/rundir"
)

// Size of losses.png.
const (
	PlotWidth  = 1000 // pixels
	PlotHeight = 800
	plotDPI    = 100
)

// maxPlotPoints bounds the points drawn per series: more than about two per
// horizontal pixel cannot be seen, and drawing them costs time. Longer
// series are reduced to the minimum and maximum of each bucket of steps, so
// spikes stay visible.
const maxPlotPoints = 2 * PlotWidth

// Series colours: D in blue, G in orange; D(x) green, D(G(z)) red and
// purple (before and after D's update).
var (
	colorLossD = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorLossG = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colorDX    = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colorDGZ1  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorDGZ2  = color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
)

// PlotLosses draws a run's metrics to a PNG of PlotWidth x PlotHeight
// pixels, atomically: loss_d and loss_g over steps in the top panel, and
// D(x), D(G(z)) before and after D's update in the bottom panel (0 to 1).
// Each series is drawn faintly as logged, with a smoothed line over it once
// there are enough points. Non-finite values are left out. With no metrics
// (a run that has not logged yet) it still writes the empty, labelled
// panels, so a caller need not special-case the start of a run.
func PlotLosses(path string, ms []rundir.Metric) error {
	c, err := plotLosses(ms)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
		return err
	})
}

func plotLosses(ms []rundir.Metric) (*vgimg.Canvas, error) {
	loss := plot.New()
	loss.Title.Text = "Losses"
	loss.Y.Label.Text = "loss"
	dout := plot.New()
	dout.Title.Text = "Discriminator outputs"
	dout.Y.Label.Text = "mean D"
	dout.Y.Min, dout.Y.Max = 0, 1

	// Both panels share the step axis.
	lo, hi := 0, 1
	if len(ms) > 0 {
		lo, hi = ms[0].Step, ms[0].Step
		for _, m := range ms {
			lo, hi = min(lo, m.Step), max(hi, m.Step)
		}
	} else {
		loss.Title.Text += " (nothing logged yet)"
		loss.Y.Min, loss.Y.Max = 0, 1
	}
	for _, p := range []*plot.Plot{loss, dout} {
		p.X.Min, p.X.Max = float64(lo), float64(hi)
		p.X.Label.Text = "step"
		p.Add(plotter.NewGrid())
	}

	// Legends go in a column right of the panels, where no data can hide
	// them (D(x) near 1 would run under a legend inside the panel).
	legends := [2]plot.Legend{plot.NewLegend(), plot.NewLegend()}
	for _, s := range []struct {
		p     *plot.Plot
		leg   *plot.Legend
		name  string
		c     color.RGBA
		value func(rundir.Metric) float64
	}{
		{loss, &legends[0], "loss_d", colorLossD, func(m rundir.Metric) float64 { return m.LossD }},
		{loss, &legends[0], "loss_g", colorLossG, func(m rundir.Metric) float64 { return m.LossG }},
		{dout, &legends[1], "D(x)", colorDX, func(m rundir.Metric) float64 { return m.DX }},
		{dout, &legends[1], "D(G(z)) before D step", colorDGZ1, func(m rundir.Metric) float64 { return m.DGZ1 }},
		{dout, &legends[1], "D(G(z)) after D step", colorDGZ2, func(m rundir.Metric) float64 { return m.DGZ2 }},
	} {
		addSeries(s.p, s.leg, s.name, s.c, ms, s.value)
	}

	c := vgimg.NewWith(
		vgimg.UseWH(PlotWidth*vg.Inch/plotDPI, PlotHeight*vg.Inch/plotDPI),
		vgimg.UseDPI(plotDPI),
	)
	dc := draw.New(c)
	pad := vg.Points(8)
	var legendW vg.Length
	for i := range legends {
		legends[i].Top, legends[i].Left = true, true
		legends[i].Padding = vg.Points(3)
		r := legends[i].Rectangle(dc)
		legendW = max(legendW, r.Max.X-r.Min.X)
	}
	legendW += 2 * pad
	tiles := draw.Tiles{
		Rows: 2, Cols: 1,
		PadTop: pad, PadBottom: pad, PadLeft: pad,
		PadY: 2 * pad,
	}
	panels := [2]*plot.Plot{loss, dout}
	cs := plot.Align([][]*plot.Plot{{loss}, {dout}}, tiles, draw.Crop(dc, 0, -legendW, 0, 0))
	for i, p := range panels {
		p.Draw(cs[i][0])
		// The legend's top lines up with the top of the panel's data area.
		top := p.DataCanvas(cs[i][0]).Max.Y
		lc := draw.Crop(dc, dc.Max.X-dc.Min.X-legendW+pad, 0, 0, top-dc.Max.Y)
		legends[i].Draw(lc)
	}
	return c, nil
}

// addSeries adds one metric to p: the logged values faint, a smoothed line
// over them, and a legend entry.
func addSeries(p *plot.Plot, leg *plot.Legend, name string, c color.RGBA, ms []rundir.Metric, value func(rundir.Metric) float64) {
	xys := make(plotter.XYs, 0, len(ms))
	for _, m := range ms {
		if v := value(m); !math.IsNaN(v) && !math.IsInf(v, 0) {
			xys = append(xys, plotter.XY{X: float64(m.Step), Y: v})
		}
	}
	const minSmooth = 20 // fewer points are clearer drawn as they are
	if len(xys) < minSmooth {
		l := &chunkedLine{xys: xys, style: draw.LineStyle{Color: c, Width: vg.Points(2)}, dots: true}
		p.Add(l)
		// Listed even with no points, so an empty plot says what it will show.
		leg.Add(name, l)
		return
	}
	raw := &chunkedLine{
		xys:   decimate(xys, maxPlotPoints),
		style: draw.LineStyle{Color: color.NRGBA{R: c.R, G: c.G, B: c.B, A: 0x50}, Width: vg.Points(1)},
	}
	smooth := &chunkedLine{
		xys:   decimate(smoothEMA(xys), maxPlotPoints),
		style: draw.LineStyle{Color: c, Width: vg.Points(2)},
	}
	p.Add(raw, smooth)
	leg.Add(name, smooth)
}

// chunkedLine is plotter.Line drawn as many short strokes. The rasterizer
// under vgimg (freetype's) searches a list of cells per row for every
// cell it adds, so one long, dense, zig-zagging stroke costs time
// quadratic in its length: 10k points took seconds; in chunks, milliseconds.
type chunkedLine struct {
	xys   plotter.XYs
	style draw.LineStyle
	dots  bool // mark each point, for short series
}

var (
	_ plot.Plotter     = (*chunkedLine)(nil)
	_ plot.DataRanger  = (*chunkedLine)(nil)
	_ plot.Thumbnailer = (*chunkedLine)(nil)
)

// Plot implements plot.Plotter.
func (l *chunkedLine) Plot(c draw.Canvas, p *plot.Plot) {
	if len(l.xys) == 0 {
		return
	}
	trX, trY := p.Transforms(&c)
	pts := make([]vg.Point, len(l.xys))
	for i, xy := range l.xys {
		pts[i] = vg.Point{X: trX(xy.X), Y: trY(xy.Y)}
	}
	const chunk = 32
	for i := 0; i < len(pts)-1; i += chunk {
		// Chunks share their end points, so the line is unbroken.
		c.StrokeLines(l.style, c.ClipLinesXY(pts[i:min(i+chunk+1, len(pts))])...)
	}
	if l.dots {
		g := draw.GlyphStyle{Color: l.style.Color, Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
		for _, pt := range pts {
			if c.Contains(pt) {
				c.DrawGlyph(g, pt)
			}
		}
	}
}

// DataRange implements plot.DataRanger.
func (l *chunkedLine) DataRange() (xmin, xmax, ymin, ymax float64) {
	if len(l.xys) == 0 {
		return math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	}
	return plotter.XYRange(l.xys)
}

// Thumbnail implements plot.Thumbnailer, for the legend.
func (l *chunkedLine) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(l.style, c.Min.X, y, c.Max.X, y)
}

// smoothEMA returns an exponential moving average of the y values, debiased
// at the start as TensorBoard's is, over a span of about 2% of the points.
func smoothEMA(xys plotter.XYs) plotter.XYs {
	span := max(float64(len(xys))/50, 2)
	alpha := 2 / (span + 1)
	out := make(plotter.XYs, len(xys))
	avg, weight := 0.0, 0.0
	for i, p := range xys {
		avg = (1-alpha)*avg + alpha*p.Y
		weight = (1-alpha)*weight + alpha
		out[i] = plotter.XY{X: p.X, Y: avg / weight}
	}
	return out
}

// decimate reduces xys (sorted by x or nearly so) to at most about max
// points: it splits them into max/2 runs of equal length and keeps the
// lowest and highest point of each, in order, so the outline and every
// spike survive.
func decimate(xys plotter.XYs, max int) plotter.XYs {
	if len(xys) <= max {
		return xys
	}
	buckets := max / 2
	out := make(plotter.XYs, 0, 2*buckets)
	for b := range buckets {
		lo, hi := b*len(xys)/buckets, (b+1)*len(xys)/buckets
		iMin, iMax := lo, lo
		for i := lo; i < hi; i++ {
			if xys[i].Y < xys[iMin].Y {
				iMin = i
			}
			if xys[i].Y > xys[iMax].Y {
				iMax = i
			}
		}
		first, second := min(iMin, iMax), iMax+iMin-min(iMin, iMax)
		out = append(out, xys[first])
		if second != first {
			out = append(out, xys[second])
		}
	}
	return out
}
