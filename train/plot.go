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

// Size of losses.png. PlotHeight holds the training panels; a run with
// image-quality evaluations gets qualityPanelHeight more per metric.
const (
	PlotWidth  = 1000 // pixels
	PlotHeight = 800
	plotDPI    = 100

	qualityPanelHeight = 200 // pixels
)

// maxPlotPoints bounds the points drawn per series: more than about two per
// horizontal pixel cannot be seen, and drawing them costs time. Longer
// series are reduced to the minimum and maximum of each bucket of steps, so
// spikes stay visible.
const maxPlotPoints = 2 * PlotWidth

// Series colours: D in blue, G in orange; D(x) green, D(G(z)) red and
// purple (before and after D's update); SWD brown, KID cyan, FID pink.
var (
	colorLossD = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorLossG = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colorDX    = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colorDGZ1  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorDGZ2  = color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}
	colorSWD   = color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff}
	colorKID   = color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff}
	colorFID   = color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff}
)

// qualityMetrics are the image-quality panels, in order, each drawn only
// when some line holds its value. Each metric has its own small panel:
// SWD x1e3 runs in the tens, FID in the tens to hundreds and KID in
// hundredths, so on one y axis KID would lie flat on zero; normalising
// would hide the numbers a reader wants to read off, and a second y axis
// serves only two. Stacked on the same step axis, they read at a glance.
var qualityMetrics = []struct {
	name       string
	c          color.RGBA
	value, std func(rundir.Metric) *float64 // std nil: no error bars
}{
	{"SWD ×10³", colorSWD, func(m rundir.Metric) *float64 { return m.SWD }, nil},
	{"KID", colorKID, func(m rundir.Metric) *float64 { return m.KID }, func(m rundir.Metric) *float64 { return m.KIDStd }},
	{"FID", colorFID, func(m rundir.Metric) *float64 { return m.FID }, nil},
}

// PlotLosses draws a run's metrics to a PNG of PlotWidth x PlotHeight
// pixels, atomically: loss_d and loss_g over steps in the top panel, and
// D(x), D(G(z)) before and after D's update in the bottom panel (0 to 1).
// Each series is drawn faintly as logged, with a smoothed line over it once
// there are enough points. Non-finite values are left out. With no metrics
// (a run that has not logged yet) it still writes the empty, labelled
// panels, so a caller need not special-case the start of a run.
//
// When some lines hold an image-quality evaluation (-eval-every), one panel
// per metric logged (SWD, KID, FID) goes below, on the same step axis, and
// the image is qualityPanelHeight pixels taller for each. Evaluations are
// sparse, so each is marked, joined by a line, KID with its std as error
// bars; steps without one are skipped, and so are non-finite values.
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
	legends := []plot.Legend{plot.NewLegend(), plot.NewLegend()}
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

	quality, qualityLegends := qualityPanels(ms, lo, hi)
	panels := append([]*plot.Plot{loss, dout}, quality...)
	legends = append(legends, qualityLegends...)

	px := vg.Inch / plotDPI
	qualityH := vg.Length(len(quality)*qualityPanelHeight) * px
	c := vgimg.NewWith(
		vgimg.UseWH(PlotWidth*px, PlotHeight*px+qualityH),
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
	cs := plot.Align([][]*plot.Plot{{loss}, {dout}}, tiles, draw.Crop(dc, 0, -legendW, qualityH, 0))
	canvases := []draw.Canvas{cs[0][0], cs[1][0]}
	if len(quality) > 0 {
		// The quality panels are shorter than the training ones, which
		// plot.Align cannot mix, so they are a second grid below (the
		// pads meet at 2*pad, as between rows), lined up with the first
		// on the step axis afterwards.
		rows := make([][]*plot.Plot, len(quality))
		for i, p := range quality {
			rows[i] = []*plot.Plot{p}
		}
		tiles.Rows = len(quality)
		qcs := plot.Align(rows, tiles, draw.Crop(dc, 0, -legendW, 0, qualityH-(dc.Max.Y-dc.Min.Y)))
		for _, row := range qcs {
			canvases = append(canvases, row[0])
		}
		alignX(panels, canvases)
	}
	for i, p := range panels {
		p.Draw(canvases[i])
		// The legend's top lines up with the top of the panel's data area.
		top := p.DataCanvas(canvases[i]).Max.Y
		lc := draw.Crop(dc, dc.Max.X-dc.Min.X-legendW+pad, 0, 0, top-dc.Max.Y)
		legends[i].Draw(lc)
	}
	return c, nil
}

// qualityPanels returns a panel and its legend for each metric of
// qualityMetrics that some line of ms holds, on steps lo to hi.
func qualityPanels(ms []rundir.Metric, lo, hi int) ([]*plot.Plot, []plot.Legend) {
	var ps []*plot.Plot
	var legs []plot.Legend
	for _, q := range qualityMetrics {
		logged := false
		for _, m := range ms {
			if q.value(m) != nil {
				logged = true
				break
			}
		}
		if !logged {
			continue
		}
		p := plot.New()
		name := q.name
		p.Y.Label.Text = q.name
		p.X.Min, p.X.Max = float64(lo), float64(hi)
		p.X.Label.Text = "step"
		p.Add(plotter.NewGrid())
		xys := evaluatedXYs(ms, q.value)
		if len(xys) == 0 {
			name += ", nothing finite logged"
		}
		if q.std != nil {
			if bars := stdBars(ms, q.value, q.std, q.c); bars != nil {
				p.Add(bars)
				name += ", bars ± std over subsets"
			}
		}
		p.Title.Text = "Image quality: " + name + " (lower is better)"
		l := &chunkedLine{xys: decimate(xys, maxPlotPoints), style: draw.LineStyle{Color: q.c, Width: vg.Points(1.5)}, dots: true}
		p.Add(l)
		padY(p)
		leg := plot.NewLegend()
		leg.Add(q.name, l)
		ps, legs = append(ps, p), append(legs, leg)
	}
	return ps, legs
}

// finite returns *v, and whether v is set and finite.
func finite(v *float64) (float64, bool) {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) {
		return 0, false
	}
	return *v, true
}

// evaluatedXYs returns (step, value) for each line of ms whose value is set
// and finite.
func evaluatedXYs(ms []rundir.Metric, value func(rundir.Metric) *float64) plotter.XYs {
	var xys plotter.XYs
	for _, m := range ms {
		if v, ok := finite(value(m)); ok {
			xys = append(xys, plotter.XY{X: float64(m.Step), Y: v})
		}
	}
	return xys
}

// stdBars returns error bars of ± std at each line where value and std are
// both set and finite, or nil if there are none.
func stdBars(ms []rundir.Metric, value, std func(rundir.Metric) *float64, c color.RGBA) plot.Plotter {
	var pts struct {
		plotter.XYs
		plotter.YErrors
	}
	for _, m := range ms {
		v, ok := finite(value(m))
		s, sok := finite(std(m))
		if ok && sok {
			pts.XYs = append(pts.XYs, plotter.XY{X: float64(m.Step), Y: v})
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{s, s})
		}
	}
	if len(pts.XYs) == 0 {
		return nil
	}
	bars, err := plotter.NewYErrorBars(pts)
	if err != nil {
		return nil // cannot happen: every value is finite
	}
	bars.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1)}
	return errorBars{bars}
}

// errorBars is plotter.YErrorBars without its glyph boxes: plot pads a
// panel's axes to fit glyph boxes, which would shift this panel's step
// axis against the others'.
type errorBars struct{ bars *plotter.YErrorBars }

var (
	_ plot.Plotter    = errorBars{}
	_ plot.DataRanger = errorBars{}
)

// Plot implements plot.Plotter.
func (e errorBars) Plot(c draw.Canvas, p *plot.Plot) { e.bars.Plot(c, p) }

// DataRange implements plot.DataRanger.
func (e errorBars) DataRange() (xmin, xmax, ymin, ymax float64) { return e.bars.DataRange() }

// padY widens p's y range by a little on each side, so markers on the
// highest and lowest values are not cut by the frame, and a single value
// (one evaluation so far) gets a range about it rather than plot's ±1,
// on which a KID of 0.01 cannot be read off.
func padY(p *plot.Plot) {
	lo, hi := p.Y.Min, p.Y.Max
	if lo > hi {
		return // no data: plot picks a range
	}
	d := (hi - lo) * 0.08
	if d == 0 {
		d = math.Abs(lo) * 0.1
	}
	p.Y.Min, p.Y.Max = lo-d, hi+d
}

// alignX crops each panel's canvas so that all the data areas span the same
// x range, the narrowest one, lining up their step axes.
func alignX(ps []*plot.Plot, cs []draw.Canvas) {
	left, right := cs[0].Min.X, cs[0].Max.X
	for i, p := range ps {
		d := p.DataCanvas(cs[i])
		left, right = max(left, d.Min.X), min(right, d.Max.X)
	}
	for i, p := range ps {
		d := p.DataCanvas(cs[i])
		cs[i] = draw.Crop(cs[i], left-d.Min.X, right-d.Max.X, 0, 0)
	}
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
