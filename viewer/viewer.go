package viewer

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-gl/glfw/v3.3/glfw"

	"vkgan/engine"
	"vkgan/train/rundir"
	"vkgan/vk"
)

// Defaults of Options.
const (
	DefaultGrid   = 8   // 8x8 samples, like the run's sample grids
	MaxGrid       = 16  // + stops here
	minWindowSide = 512 // the default window scales the grid up to this
	walkFrames    = 90  // frames per leg of the latent walk (I)
	pollEvery     = 250 * time.Millisecond
)

// Options configure Run. The zero value views nothing (RunDir is
// required); other zero fields take the defaults noted.
type Options struct {
	RunDir string // run directory with config.json and checkpoint.json
	Grid   int    // samples per side, 1..16 (default 8)
	// Seed is the noise seed; with SeedSet false the run's own seed, so the
	// window shows what `vkgan sample -run RUN_DIR -n Grid*Grid` writes.
	Seed    uint64
	SeedSet bool
	Device  string // vk.Options.Device
	// Width and Height of the window (default: the grid scaled up by a
	// whole factor to at least 512 pixels).
	Width, Height int
	// Frames, when positive, closes the window after that many frames.
	Frames int
	// Screenshot, with Frames, writes the last frame as a PNG file.
	Screenshot string
	Log        io.Writer // messages (nil: os.Stderr)
	// OnMessage receives validation messages (VKGAN_VALIDATE=1); nil prints them.
	OnMessage func(string)
	// OnFrame, if set, is called after each presented frame (tests resize
	// the window from here).
	OnFrame func(f *Frame)

	// Train, when set, makes the window draw from G's live weights
	// (vkgan train -view): it runs in its own goroutine on the window's
	// device, and must call live after every training step. Config is the
	// run's configuration (config.json may not exist yet). Closing the
	// window cancels ctx; Run returns once Train has returned, with its
	// error. The window stays open after training ends until it is closed.
	Train  func(ctx context.Context, dev *engine.Device, live func(gan *engine.GAN, step int)) error
	Config *rundir.Config
	// Context, when done, closes the window (Ctrl-C in vkgan train -view).
	Context context.Context
}

// Stats describe a finished Run.
type Stats struct {
	Frames    int           // frames presented
	Recreates int           // swapchain rebuilds (resizes)
	Waits     int           // event waits while minimised
	Reloads   int           // checkpoint reloads
	Mean      time.Duration // mean frame time (a plain frame: copy and present)
	Median    time.Duration
	P95       time.Duration
	Extent    [2]int // final swapchain size
}

// Frame is what OnFrame sees: the frame number and the window.
type Frame struct {
	N int
	v *view
}

// SetSize resizes the window (its content area, in screen coordinates).
func (f *Frame) SetSize(w, h int) { f.v.win.SetSize(w, h) }

// Extent is the swapchain's current size.
func (f *Frame) Extent() (w, h int) { return f.v.sc.Extent() }

// Close asks the window to close after this frame.
func (f *Frame) Close() { f.v.win.SetShouldClose(true) }

// framebufferSize is the window's drawable size; a variable so tests can
// play a minimised window (Xvfb has no window manager to iconify one).
var framebufferSize = func(w *glfw.Window) (int, int) {
	if w.GetAttrib(glfw.Iconified) == glfw.True {
		return 0, 0
	}
	return w.GetFramebufferSize()
}

// view is the state of one window.
type view struct {
	opt   Options
	log   io.Writer
	win   *glfw.Window
	dev   *engine.Device
	cfg   rundir.Config
	gan   *engine.GAN
	paint *engine.Painter
	sc    *vk.Swapchain
	smp   *engine.Sampler
	class int            // a conditional G's class shown (C steps), -1: every class in turn
	pix   *engine.Tensor // BGRA8 window pixels
	rec   *engine.Recorder

	grid      int
	noiseSeed uint64
	z         []float32
	walk      int // frames into the latent walk; -1 when off
	walkA     []float32
	walkB     []float32
	rng       *rand.Rand
	step      int
	ckptMod   time.Time
	lastPoll  time.Time
	timeline  int // index into samples/*.png; -1 shows G live
	dirty     bool

	// Live mode (Options.Train): the training goroutine publishes its GAN
	// and step; the window picks them up between frames.
	liveGAN   atomic.Pointer[engine.GAN]
	liveStep  atomic.Int64
	detach    chan chan struct{} // training's GAN is going away: let go of it, then close
	trainDone chan error
	trainErr  error
	lastLive  time.Time
	ownGAN    bool // live mode: v.gan was made here after training ended
	shotNext  bool
	fullscrn  bool
	winPos    [4]int
	stats     Stats
	frameTime []time.Duration
}

// Run opens the window and draws until it is closed (Q, Esc, the window's
// close button) or Options.Frames frames were shown. Without a display it
// returns an *ExitError with Code 2 wrapping ErrNoDisplay.
func Run(opt Options) (Stats, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if opt.RunDir == "" {
		return Stats{}, errors.New("viewer: a run directory is required")
	}
	if opt.Grid == 0 {
		opt.Grid = DefaultGrid
	}
	if opt.Grid < 1 || opt.Grid > MaxGrid {
		return Stats{}, fmt.Errorf("viewer: grid %d: need 1 to %d samples per side", opt.Grid, MaxGrid)
	}
	if opt.Screenshot != "" && opt.Frames <= 0 {
		return Stats{}, errors.New("viewer: a screenshot needs a frame count (-frames N)")
	}
	if err := initGLFW(opt.RunDir); err != nil {
		return Stats{}, err
	}
	defer glfw.Terminate()
	var cfg rundir.Config
	var err error
	if opt.Train != nil {
		if opt.Config == nil {
			return Stats{}, errors.New("viewer: live training needs its Config")
		}
		cfg = *opt.Config
	} else if cfg, err = rundir.ReadRunConfig(opt.RunDir, func(msg string) { fmt.Fprintf(logOrStderr(opt.Log), "viewer: warning: %s\n", msg) }); err != nil {
		return Stats{}, fmt.Errorf("viewer: %w", err)
	}
	v := &view{opt: opt, log: logOrStderr(opt.Log), cfg: cfg, grid: opt.Grid, walk: -1, timeline: -1, class: -1,
		frameTime: make([]time.Duration, 0, max(opt.Frames, 10000))}
	v.noiseSeed = cfg.Seed
	if opt.SeedSet {
		v.noiseSeed = opt.Seed
	}
	v.rng = rand.New(rand.NewPCG(v.noiseSeed, 0x3c6ef372fe94f82b))
	defer v.release()
	if err := v.open(); err != nil {
		return Stats{}, err
	}
	cancel := func() {}
	if opt.Train != nil {
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		v.trainDone = make(chan error, 1)
		v.detach = make(chan chan struct{}, 1)
		go func() {
			v.trainDone <- opt.Train(ctx, v.dev, func(g *engine.GAN, step int) {
				if g == nil {
					ack := make(chan struct{})
					v.detach <- ack
					<-ack
					return
				}
				v.liveGAN.Store(g)
				v.liveStep.Store(int64(step))
			})
		}()
	}
	err = v.loop()
	if v.trainDone != nil {
		// The window is gone: training writes its checkpoint and stops.
		cancel()
		for v.trainDone != nil {
			select {
			case ack := <-v.detach:
				v.letGo(ack)
			case terr := <-v.trainDone:
				v.trainDone, v.trainErr = nil, terr
			}
		}
		if err == nil {
			err = v.trainErr
		}
	}
	cancel()
	v.finishStats()
	if msgs := v.dev.ValidationMessages(); err == nil && len(msgs) > 0 && opt.OnMessage == nil {
		err = fmt.Errorf("viewer: %d validation messages, the first: %s", len(msgs), msgs[0])
	}
	return v.stats, err
}

func (v *view) open() error {
	w, h := v.opt.Width, v.opt.Height
	if w <= 0 || h <= 0 {
		gw, gh := v.gridShape().Pixels()
		f := max(1, (minWindowSide+gw-1)/gw)
		w, h = gw*f, gh*f
	}
	glfw.WindowHint(glfw.ClientAPI, glfw.NoAPI)
	win, err := glfw.CreateWindow(w, h, "vkgan view", nil, nil)
	if err != nil {
		return fmt.Errorf("viewer: glfw: %w", err)
	}
	v.win = win
	win.SetKeyCallback(v.onKey)
	win.SetCharCallback(v.onChar)
	dev, err := engine.Open(vk.Options{
		Device:             v.opt.Device,
		OnMessage:          v.opt.OnMessage,
		InstanceExtensions: win.GetRequiredInstanceExtensions(),
		Surface:            surfaceFor(win),
	})
	if err != nil {
		return err
	}
	v.dev = dev
	if v.opt.Train == nil {
		if v.gan, err = dev.NewGAN(v.cfg.GANConfig(), nil); err != nil {
			return err
		}
		if err := v.reload(); err != nil {
			return err
		}
	} else {
		v.win.SetTitle("vkgan train · starting")
	}
	if v.paint, err = dev.NewPainter(); err != nil {
		return err
	}
	fw, fh := framebufferSize(win)
	if fw == 0 || fh == 0 {
		fw, fh = w, h
	}
	if v.sc, err = dev.VK().NewSwapchain(fw, fh); err != nil {
		return err
	}
	if v.gan != nil {
		if err := v.newSampler(); err != nil {
			return err
		}
	}
	return v.resized()
}

// logOrStderr is where the viewer writes messages: the Options' Log, or
// stderr.
func logOrStderr(w io.Writer) io.Writer {
	if w == nil {
		return os.Stderr
	}
	return w
}

func (v *view) gridShape() engine.Grid {
	return engine.Grid{N: v.grid * v.grid, Channels: v.cfg.Channels, Size: v.cfg.Size, Cols: v.grid}
}

// reload loads G's weights from the run's current checkpoint and updates
// the title.
func (v *view) reload() error {
	info, err := rundir.LoadGenerator(v.opt.RunDir, v.gan, true, func(msg string) { fmt.Fprintf(v.log, "viewer: warning: %s\n", msg) })
	if err != nil {
		return fmt.Errorf("viewer: %w", err)
	}
	v.step = info.Step
	if st, err := os.Stat(filepath.Join(v.opt.RunDir, rundir.CheckpointFile)); err == nil {
		v.ckptMod = st.ModTime()
	}
	v.dirty = true
	v.setTitle()
	return nil
}

func (v *view) setTitle() {
	// A log not written yet, or unreadable, only leaves numbers out.
	ms, _ := rundir.ReadMetrics(filepath.Join(v.opt.RunDir, rundir.MetricsFile))
	title := windowTitle(filepath.Base(filepath.Clean(v.opt.RunDir)), v.step, ms, v.timeline)
	if v.class >= 0 && v.class < len(v.cfg.Classes) {
		title += " · class " + v.cfg.Classes[v.class]
	}
	v.win.SetTitle(title)
}

// applyClass gives a conditional G's samples the class shown: all of
// class v.class, or every class in turn.
func (v *view) applyClass() error {
	k := v.smp.Classes()
	if k == 0 {
		return nil
	}
	classes := make([]int, v.smp.Batch())
	for i := range classes {
		classes[i] = i % k
		if v.class >= 0 {
			classes[i] = v.class
		}
	}
	return v.smp.SetClasses(classes)
}

// windowTitle is the title for run at step: the last logged losses, the
// latest image-quality evaluation with the step it was taken at (it may be
// thousands of steps old, as -eval-every is sparse), and the saved grid
// shown (timeline, from 0; -1 for none).
func windowTitle(run string, step int, ms []rundir.Metric, timeline int) string {
	title := fmt.Sprintf("vkgan view %s · step %d", run, step)
	if len(ms) > 0 {
		m := ms[len(ms)-1]
		title += fmt.Sprintf(" · loss D %.3f G %.3f", m.LossD, m.LossG)
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if m := ms[i]; m.Evaluated() {
			title += " · " + evalText(m)
			break
		}
	}
	if timeline >= 0 {
		title += fmt.Sprintf(" · timeline %d", timeline+1)
	}
	return title
}

// evalText is m's image-quality numbers two spaces apart, so that each
// stands apart from the next ("SWD 12.3  FID 45.6 (step 5000)"): SWD and
// FID to 0.1, KID, which is in hundredths, to 3 significant digits.
func evalText(m rundir.Metric) string {
	var parts []string
	if m.SWD != nil {
		parts = append(parts, fmt.Sprintf("SWD %.1f", *m.SWD))
	}
	if m.KID != nil {
		kid := fmt.Sprintf("KID %.3g", *m.KID)
		if m.KIDStd != nil {
			kid += fmt.Sprintf("±%.2g", *m.KIDStd)
		}
		parts = append(parts, kid)
	}
	if m.FID != nil {
		parts = append(parts, fmt.Sprintf("FID %.1f", *m.FID))
	}
	return fmt.Sprintf("%s (step %d)", strings.Join(parts, "  "), m.Step)
}

// pollLive picks up the training goroutine's GAN and redraws from its live
// weights at most every liveEvery, and notices when training ends.
func (v *view) pollLive() error {
	select {
	case ack := <-v.detach:
		v.letGo(ack)
	default:
	}
	if v.trainDone != nil {
		select {
		case err := <-v.trainDone:
			v.trainDone, v.trainErr = nil, err
			if err != nil {
				return err
			}
			// Training is over: keep showing its final checkpoint.
			if v.gan, err = v.dev.NewGAN(v.cfg.GANConfig(), nil); err != nil {
				return err
			}
			v.ownGAN = true
			if err := v.reload(); err != nil {
				return err
			}
			return v.newSampler()
		default:
		}
	}
	if v.trainDone == nil {
		return nil
	}
	if v.gan == nil {
		g := v.liveGAN.Load()
		if g == nil {
			return nil
		}
		v.gan = g
		if err := v.newSampler(); err != nil {
			return err
		}
	}
	if step := int(v.liveStep.Load()); step != v.step && time.Since(v.lastLive) >= liveEvery {
		v.step, v.lastLive, v.dirty = step, time.Now(), true
		v.setTitle()
	}
	return nil
}

// letGo drops the sampler on the training goroutine's GAN, which is about
// to be released, and acknowledges.
func (v *view) letGo(ack chan struct{}) {
	if v.smp != nil {
		_ = v.dev.VK().WaitIdle()
		v.smp.Release()
		v.smp = nil
	}
	v.gan = nil
	v.liveGAN.Store(nil)
	close(ack)
}

// liveEvery limits redraws from live weights: each runs G, which competes
// with training for the device.
const liveEvery = 250 * time.Millisecond

// newSampler makes G's sampler for the grid size. Batch norm uses the
// batch's statistics, as `vkgan sample` does, so a 1x1 grid still runs a
// batch of 2 and shows the first.
func (v *view) newSampler() error {
	if v.smp != nil {
		if err := v.dev.VK().WaitIdle(); err != nil {
			return err
		}
		v.smp.Release()
		v.smp = nil
	}
	smp, err := v.gan.NewSampler(max(v.grid*v.grid, 2), false, true)
	if err != nil {
		return err
	}
	v.smp = smp
	if err := v.applyClass(); err != nil {
		return err
	}
	v.z = rundir.FixedNoise(v.noiseSeed, smp.Batch(), v.cfg.NZ)
	v.walk = -1
	v.dirty = true
	return v.recordPaint()
}

// resized rebuilds what depends on the swapchain's size: the pixel buffer,
// the paint pass and the frames' command buffers.
func (v *view) resized() error {
	w, h := v.sc.Extent()
	if v.pix != nil {
		if err := v.dev.VK().WaitIdle(); err != nil {
			return err
		}
		v.pix.Release()
	}
	pix, err := v.dev.NewTensor(w * h)
	if err != nil {
		return err
	}
	v.pix = pix
	if err := v.sc.SetSource(pix.Buffer()); err != nil {
		return err
	}
	v.dirty = true
	return v.recordPaint()
}

func (v *view) recordPaint() error {
	v.rec.Release()
	v.rec = nil
	if v.pix == nil || v.smp == nil {
		return nil
	}
	rec, err := v.dev.Record()
	if err != nil {
		return err
	}
	v.rec = rec
	w, h := v.sc.Extent()
	return v.paint.Paint(rec, v.pix, v.smp.Output(), v.gridShape(), w, h)
}

// redraw refreshes the pixel buffer: G and the paint pass, or a saved
// sample grid for the timeline.
func (v *view) redraw() error {
	v.dirty = false
	if v.timeline >= 0 {
		return v.drawSaved()
	}
	if v.smp == nil || v.rec == nil { // live mode before the first step
		return nil
	}
	if err := v.smp.Generate(v.z); err != nil {
		return err
	}
	return v.rec.Submit()
}

func (v *view) loop() error {
	var last time.Time
	for !v.win.ShouldClose() {
		if v.opt.Context != nil && v.opt.Context.Err() != nil {
			break
		}
		glfw.PollEvents()
		if err := v.poll(); err != nil {
			return err
		}
		if v.opt.Train != nil && v.gan == nil && v.trainDone != nil {
			// Training is still setting up (building pipelines, recording
			// its step): make no Vulkan calls here until it publishes its
			// GAN. Presenting while another thread creates pipelines
			// crashed inside the driver under the validation layer.
			glfw.WaitEventsTimeout(0.02)
			continue
		}
		fw, fh := framebufferSize(v.win)
		if fw == 0 || fh == 0 {
			// Minimised: block until something happens, waking once a
			// second to notice a new checkpoint.
			v.stats.Waits++
			glfw.WaitEventsTimeout(1)
			last = time.Time{}
			continue
		}
		if w, h := v.sc.Extent(); w != fw || h != fh {
			if err := v.recreate(fw, fh); err != nil {
				return err
			}
		}
		if v.walk >= 0 {
			v.stepWalk()
		}
		if v.dirty {
			if err := v.redraw(); err != nil {
				return err
			}
		}
		final := v.opt.Frames > 0 && v.stats.Frames+1 >= v.opt.Frames
		var err error
		switch {
		case (final && v.opt.Screenshot != "") || v.shotNext:
			err = v.presentShot(final)
		default:
			err = v.sc.Present()
		}
		if errors.Is(err, vk.ErrOutOfDate) {
			fw, fh = framebufferSize(v.win)
			if err = v.recreate(fw, fh); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		now := time.Now()
		if !last.IsZero() && len(v.frameTime) < cap(v.frameTime) {
			v.frameTime = append(v.frameTime, now.Sub(last))
		}
		last = now
		v.stats.Frames++
		if v.opt.OnFrame != nil {
			v.opt.OnFrame(&Frame{N: v.stats.Frames, v: v})
			last = time.Now()
		}
		if final {
			break
		}
	}
	return nil
}

func (v *view) recreate(w, h int) error {
	if w == 0 || h == 0 {
		return nil
	}
	if err := v.sc.Recreate(w, h); err != nil {
		return err
	}
	v.stats.Recreates++
	return v.resized()
}

// poll reloads the checkpoint when checkpoint.json changed (training still
// going), at most every pollEvery; in live mode it follows training.
func (v *view) poll() error {
	if v.opt.Train != nil {
		return v.pollLive()
	}
	if time.Since(v.lastPoll) < pollEvery {
		return nil
	}
	v.lastPoll = time.Now()
	st, err := os.Stat(filepath.Join(v.opt.RunDir, rundir.CheckpointFile))
	if err != nil || st.ModTime().Equal(v.ckptMod) {
		return nil
	}
	if err := v.reload(); err != nil {
		// A checkpoint being replaced may be read half-way; try next poll.
		fmt.Fprintf(v.log, "viewer: reload: %v\n", err)
		return nil
	}
	v.stats.Reloads++
	return nil
}

// presentShot presents and reads the frame back; it writes the PNG to
// Options.Screenshot on the final frame, else into the run directory (S).
func (v *view) presentShot(final bool) error {
	w, h := v.sc.Extent()
	buf := make([]byte, 4*w*h)
	if err := v.sc.PresentAndRead(buf); err != nil {
		return err
	}
	v.shotNext = false
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(buf); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = buf[i+2], buf[i+1], buf[i], 0xff
	}
	path := v.opt.Screenshot
	if !final || path == "" {
		path = filepath.Join(v.opt.RunDir, fmt.Sprintf("view_step%07d_%s.png", v.step, time.Now().Format("20060102-150405")))
	}
	if err := writePNG(path, img); err != nil {
		return err
	}
	fmt.Fprintf(v.log, "viewer: wrote %q\n", path)
	return nil
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("viewer: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("viewer: %q: %w", path, err)
	}
	return f.Close()
}

func (v *view) onKey(_ *glfw.Window, key glfw.Key, _ int, action glfw.Action, _ glfw.ModifierKey) {
	if action != glfw.Press {
		return
	}
	switch key {
	case glfw.KeyQ, glfw.KeyEscape:
		v.win.SetShouldClose(true)
	case glfw.KeySpace:
		v.noiseSeed = v.rng.Uint64()
		v.z = rundir.FixedNoise(v.noiseSeed, max(v.grid*v.grid, 2), v.cfg.NZ)
		v.walk, v.timeline, v.dirty = -1, -1, true
	case glfw.KeyI:
		if v.walk >= 0 {
			v.walk = -1
			return
		}
		v.walk, v.timeline = 0, -1
		v.walkA = append([]float32(nil), v.z...)
		v.walkB = v.randomZ()
	case glfw.KeyT:
		v.nextSaved()
	case glfw.KeyS:
		v.shotNext = true
	case glfw.KeyC:
		if k := len(v.cfg.Classes); v.cfg.Cond && k > 0 && v.smp != nil {
			v.class++
			if v.class == k {
				v.class = -1
			}
			if err := v.applyClass(); err != nil {
				fmt.Fprintf(v.log, "viewer: %v\n", err)
			}
			v.dirty = true
			v.setTitle()
		}
	case glfw.KeyF:
		v.toggleFullscreen()
	case glfw.KeyKPAdd:
		v.setGrid(v.grid + 1)
	case glfw.KeyKPSubtract:
		v.setGrid(v.grid - 1)
	}
}

func (v *view) onChar(_ *glfw.Window, r rune) {
	switch r {
	case '+', '=':
		v.setGrid(v.grid + 1)
	case '-':
		v.setGrid(v.grid - 1)
	}
}

func (v *view) setGrid(n int) {
	n = min(max(n, 1), MaxGrid)
	if n == v.grid {
		return
	}
	v.grid = n
	if v.gan == nil {
		return
	}
	if err := v.newSampler(); err != nil {
		fmt.Fprintf(v.log, "viewer: grid %dx%d: %v\n", n, n, err)
	}
}

func (v *view) randomZ() []float32 {
	z := make([]float32, len(v.z))
	for i := range z {
		z[i] = float32(v.rng.NormFloat64())
	}
	return z
}

// stepWalk moves every sample's latent along the great circle from walkA
// to walkB, starting a new leg at the end of one.
func (v *view) stepWalk() {
	nz := v.cfg.NZ
	if v.walk >= walkFrames {
		v.walkA, v.walkB, v.walk = v.walkB, v.randomZ(), 0
	}
	t := float64(v.walk) / walkFrames
	for k := 0; k+nz <= len(v.z); k += nz {
		slerp(v.z[k:k+nz], v.walkA[k:k+nz], v.walkB[k:k+nz], t)
	}
	v.walk++
	v.dirty = true
}

// slerp writes the spherical interpolation of a and b at t into dst.
func slerp(dst, a, b []float32, t float64) {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	omega := math.Acos(math.Max(-1, math.Min(1, dot/math.Sqrt(na*nb))))
	wa, wb := 1-t, t
	if s := math.Sin(omega); s > 1e-6 {
		wa, wb = math.Sin((1-t)*omega)/s, math.Sin(t*omega)/s
	}
	for i := range dst {
		dst[i] = float32(wa*float64(a[i]) + wb*float64(b[i]))
	}
}

// nextSaved steps the timeline through the run's saved sample grids, then
// back to G live.
func (v *view) nextSaved() {
	files := v.savedGrids()
	v.walk = -1
	v.timeline++
	if v.timeline >= len(files) {
		v.timeline = -1
	}
	v.dirty = true
	v.setTitle()
}

func (v *view) savedGrids() []string {
	files, _ := filepath.Glob(filepath.Join(v.opt.RunDir, rundir.SamplesDir, "step_*.png"))
	sort.Strings(files) // zero-padded step numbers sort by step
	return files
}

// drawSaved uploads a saved sample grid, scaled to the window on the
// host: the timeline shows files, so this one path goes through the CPU.
func (v *view) drawSaved() error {
	files := v.savedGrids()
	if v.timeline >= len(files) {
		v.timeline = -1
		return v.redraw()
	}
	f, err := os.Open(files[v.timeline])
	if err != nil {
		return fmt.Errorf("viewer: %w", err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("viewer: %q: %w", files[v.timeline], err)
	}
	w, h := v.sc.Extent()
	scaled := Scale(img, w, h)
	buf := make([]byte, 4*w*h)
	for i := 0; i < len(buf); i += 4 {
		buf[i], buf[i+1], buf[i+2], buf[i+3] = scaled.Pix[i+2], scaled.Pix[i+1], scaled.Pix[i], 0xff
	}
	return v.pix.Buffer().Write(0, buf)
}

// Scale draws img into a w x h picture the way the window does: into
// engine.Fit's rectangle, nearest neighbour (window pixel x+i shows image
// column i*iw/dw), black around it.
func Scale(img image.Image, w, h int) *image.RGBA {
	b := img.Bounds()
	iw, ih := b.Dx(), b.Dy()
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 3; i < len(out.Pix); i += 4 {
		out.Pix[i] = 0xff
	}
	x0, y0, dw, dh := engine.Fit(iw, ih, w, h)
	for j := range dh {
		sy := b.Min.Y + j*ih/dh
		for i := range dw {
			r, g, bl, _ := img.At(b.Min.X+i*iw/dw, sy).RGBA()
			o := out.PixOffset(x0+i, y0+j)
			out.Pix[o], out.Pix[o+1], out.Pix[o+2] = uint8(r>>8), uint8(g>>8), uint8(bl>>8)
		}
	}
	return out
}

func (v *view) toggleFullscreen() {
	if v.fullscrn {
		p := v.winPos
		v.win.SetMonitor(nil, p[0], p[1], p[2], p[3], 0)
		v.fullscrn = false
		return
	}
	m := glfw.GetPrimaryMonitor()
	if m == nil {
		return
	}
	mode := m.GetVideoMode()
	x, y := v.win.GetPos()
	w, h := v.win.GetSize()
	v.winPos = [4]int{x, y, w, h}
	v.win.SetMonitor(m, 0, 0, mode.Width, mode.Height, mode.RefreshRate)
	v.fullscrn = true
}

func (v *view) finishStats() {
	if v.sc != nil {
		w, h := v.sc.Extent()
		v.stats.Extent = [2]int{w, h}
	}
	ft := append([]time.Duration(nil), v.frameTime...)
	if len(ft) == 0 {
		return
	}
	sort.Slice(ft, func(i, j int) bool { return ft[i] < ft[j] })
	var sum time.Duration
	for _, d := range ft {
		sum += d
	}
	v.stats.Mean = sum / time.Duration(len(ft))
	v.stats.Median = ft[len(ft)/2]
	v.stats.P95 = ft[len(ft)*95/100]
}

// release frees everything in reverse order of creation; the device's
// Close would free the device objects anyway, but the window must go after
// the surface.
func (v *view) release() {
	if v.dev != nil {
		_ = v.dev.VK().WaitIdle()
		v.rec.Release()
		v.smp.Release()
		v.pix.Release()
		v.paint.Release()
		v.sc.Release()
		if v.ownGAN || v.opt.Train == nil {
			v.gan.Release()
		}
		if err := v.dev.Close(); err != nil {
			fmt.Fprintf(v.log, "viewer: closing the device: %v\n", err)
		}
	}
	if v.win != nil {
		v.win.Destroy()
	}
}
