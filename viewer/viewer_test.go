package viewer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-gl/glfw/v3.3/glfw"
	"github.com/stretchr/testify/require"

	"vkgan/engine"
	"vkgan/internal/testimg"
	"vkgan/train"
	"vkgan/train/grid"
	"vkgan/train/rundir"
	"vkgan/train/toy"
	"vkgan/vk"
)

func requireOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("VKGAN_REQUIRE_DEVICE") == "1" {
		t.Fatalf(format+" (VKGAN_REQUIRE_DEVICE=1)", args...)
	}
	t.Skipf(format, args...)
}

// startXvfb starts a private X server for the test and points DISPLAY at
// it; without Xvfb the test skips (or fails under VKGAN_REQUIRE_DEVICE=1).
func startXvfb(t *testing.T) {
	t.Helper()
	bin, err := exec.LookPath("Xvfb")
	if err != nil {
		requireOrSkip(t, "no Xvfb (Debian: xvfb)")
	}
	for n := 90 + rand.IntN(400); ; n++ {
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); err == nil {
			continue
		}
		cmd := exec.Command(bin, fmt.Sprintf(":%d", n), "-screen", "0", "1024x768x24", "-nolisten", "tcp")
		require.NoError(t, cmd.Start())
		sock := fmt.Sprintf("/tmp/.X11-unix/X%d", n)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if c, err := net.Dial("unix", sock); err == nil {
				c.Close()
				t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
				t.Setenv("DISPLAY", fmt.Sprintf(":%d", n))
				t.Setenv("WAYLAND_DISPLAY", "")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("Xvfb :%d did not start", n)
	}
}

func requireDevice(t *testing.T) {
	t.Helper()
	d, err := engine.Open(vk.Options{})
	if err != nil {
		requireOrSkip(t, "no Vulkan device: %v", err)
	}
	require.NoError(t, d.Close())
}

var (
	runOnce sync.Once
	runDir  string
	runErr  error
)

// tinyRun trains a tiny DCGAN for a few steps once per test binary and
// returns its run directory.
func tinyRun(t *testing.T) string {
	t.Helper()
	requireDevice(t)
	runOnce.Do(func() {
		base, err := os.MkdirTemp("", "vkgan-viewer-test")
		if err != nil {
			runErr = err
			return
		}
		data := filepath.Join(base, "data")
		if runErr = testimg.WritePNGs(data, 8, 32, 32, func(i int, img *image.RGBA) {
			for y := range 32 {
				for x := range 32 {
					img.Set(x, y, color.RGBA{uint8(x * 8), uint8(y*8 + i*20), uint8(i * 30), 255})
				}
			}
		}); runErr != nil {
			return
		}
		cfg := rundir.DefaultConfig()
		cfg.Data, cfg.Size, cfg.NGF, cfg.NDF, cfg.NZ, cfg.Batch = data, 32, 4, 4, 8, 4
		cfg.Steps, cfg.LogEvery, cfg.SampleEvery, cfg.CheckpointEvery, cfg.Seed = 4, 1, 2, 2, 9
		runDir = filepath.Join(base, "run")
		runErr = train.Run(context.Background(), cfg, train.RunOptions{Out: runDir, Log: &bytes.Buffer{}})
	})
	require.NoError(t, runErr)
	return runDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if runDir != "" {
		_ = os.RemoveAll(filepath.Dir(runDir))
	}
	os.Exit(code)
}

// noValidation fails the test on any validation message.
func noValidation(t *testing.T) func(string) {
	return func(m string) { t.Errorf("validation: %s", m) }
}

// sampleGrid is what `vkgan sample -run dir -n side*side -seed seed`
// draws, before scaling.
func sampleGrid(t *testing.T, dir string, side int, seed uint64) *image.RGBA {
	t.Helper()
	cfg, err := rundir.LoadConfig(filepath.Join(dir, rundir.ConfigFile))
	require.NoError(t, err)
	dev, err := engine.Open(vk.Options{OnMessage: noValidation(t)})
	require.NoError(t, err)
	defer dev.Close()
	gan, err := dev.NewGAN(cfg.GANConfig(), nil)
	require.NoError(t, err)
	_, err = rundir.LoadGenerator(dir, gan, true, func(m string) { t.Errorf("unexpected warning: %s", m) })
	require.NoError(t, err)
	n := side * side
	s, err := gan.NewSampler(n, false, true)
	require.NoError(t, err)
	pix, err := s.Sample(rundir.FixedNoise(seed, n, cfg.NZ))
	require.NoError(t, err)
	img, err := grid.Image(pix, n, cfg.Channels, cfg.Size, side)
	require.NoError(t, err)
	return img
}

func readPNG(t *testing.T, path string) *image.RGBA {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	rgba, ok := img.(*image.RGBA)
	if !ok {
		rgba = image.NewRGBA(img.Bounds())
		for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
			for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
				rgba.Set(x, y, img.At(x, y))
			}
		}
	}
	return rgba
}

func requireSameImage(t *testing.T, want, got *image.RGBA) {
	t.Helper()
	require.Equal(t, want.Bounds(), got.Bounds())
	diff := 0
	first := ""
	for y := range want.Bounds().Dy() {
		for x := range want.Bounds().Dx() {
			if want.RGBAAt(x, y) != got.RGBAAt(x, y) {
				if diff == 0 {
					first = fmt.Sprintf("(%d,%d): got %v, want %v", x, y, got.RGBAAt(x, y), want.RGBAAt(x, y))
				}
				diff++
			}
		}
	}
	require.Zero(t, diff, "%d pixels differ, the first at %s", diff, first)
}

func TestScreenshotMatchesSample(t *testing.T) {
	startXvfb(t)
	dir := tinyRun(t)
	for _, c := range []struct {
		grid, w, h int
		seed       uint64
		seedSet    bool
	}{
		{3, 0, 0, 0, false}, // the run's seed, the default window
		{4, 301, 203, 7, true},
	} {
		shot := filepath.Join(t.TempDir(), "shot.png")
		st, err := Run(Options{RunDir: dir, Grid: c.grid, Seed: c.seed, SeedSet: c.seedSet, Width: c.w, Height: c.h,
			Frames: 3, Screenshot: shot, Log: &bytes.Buffer{}, OnMessage: noValidation(t)})
		require.NoError(t, err)
		require.Equal(t, 3, st.Frames)
		seed := c.seed
		if !c.seedSet {
			cfg, err := rundir.LoadConfig(filepath.Join(dir, rundir.ConfigFile))
			require.NoError(t, err)
			seed = cfg.Seed
		}
		got := readPNG(t, shot)
		want := Scale(sampleGrid(t, dir, c.grid, seed), got.Bounds().Dx(), got.Bounds().Dy())
		if c.w > 0 {
			require.Equal(t, image.Rect(0, 0, c.w, c.h), got.Bounds())
		}
		requireSameImage(t, want, got)
	}
}

func TestResizeRebuildsSwapchain(t *testing.T) {
	startXvfb(t)
	dir := tinyRun(t)
	shot := filepath.Join(t.TempDir(), "shot.png")
	st, err := Run(Options{RunDir: dir, Grid: 2, Width: 200, Height: 160, Frames: 12, Screenshot: shot, Log: &bytes.Buffer{},
		OnMessage: noValidation(t),
		OnFrame: func(f *Frame) {
			switch f.N {
			case 3:
				f.SetSize(333, 250)
			case 7:
				f.SetSize(150, 190)
			}
		}})
	require.NoError(t, err)
	require.GreaterOrEqual(t, st.Recreates, 2)
	require.Equal(t, [2]int{150, 190}, st.Extent)
	got := readPNG(t, shot)
	require.Equal(t, image.Rect(0, 0, 150, 190), got.Bounds())
	cfg, err := rundir.LoadConfig(filepath.Join(dir, rundir.ConfigFile))
	require.NoError(t, err)
	requireSameImage(t, Scale(sampleGrid(t, dir, 2, cfg.Seed), 150, 190), got)
}

func TestMinimisedWaitsWithoutSpinning(t *testing.T) {
	startXvfb(t)
	dir := tinyRun(t)
	// Xvfb has no window manager to iconify a window: play one by
	// reporting a 0x0 framebuffer for a while.
	var mu sync.Mutex
	minimised := false
	real := framebufferSize
	t.Cleanup(func() { framebufferSize = real })
	framebufferSize = func(w *glfw.Window) (int, int) {
		mu.Lock()
		defer mu.Unlock()
		if minimised {
			return 0, 0
		}
		return real(w)
	}
	start := time.Time{}
	var waited time.Duration
	st, err := Run(Options{RunDir: dir, Grid: 2, Width: 120, Height: 120, Frames: 6, Log: &bytes.Buffer{},
		OnMessage: noValidation(t),
		OnFrame: func(f *Frame) {
			if f.N == 2 {
				mu.Lock()
				minimised = true
				mu.Unlock()
				start = time.Now()
				go func() {
					time.Sleep(1500 * time.Millisecond)
					mu.Lock()
					minimised = false
					mu.Unlock()
					glfw.PostEmptyEvent()
				}()
			}
			if f.N == 3 {
				waited = time.Since(start)
			}
		}})
	require.NoError(t, err)
	require.Equal(t, 6, st.Frames)
	require.GreaterOrEqual(t, waited, 1400*time.Millisecond)
	// Blocking waits: at most one per second plus the wake-up, not
	// thousands.
	require.LessOrEqual(t, st.Waits, 3)
	require.GreaterOrEqual(t, st.Waits, 1)
}

func TestNoDisplay(t *testing.T) {
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	_, err := Run(Options{RunDir: "some/run"})
	var ee *ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	require.Equal(t, 2, ee.Code)
	require.ErrorIs(t, err, ErrNoDisplay)
	require.NotContains(t, err.Error(), "\n")
	require.Contains(t, err.Error(), "vkgan sample -run some/run -out FILE.png")
}

func TestBadDisplay(t *testing.T) {
	if _, err := exec.LookPath("Xvfb"); err != nil {
		requireOrSkip(t, "no Xvfb")
	}
	t.Setenv("DISPLAY", ":4242")
	_, err := Run(Options{RunDir: "r"})
	var ee *ExitError
	require.True(t, errors.As(err, &ee), "%v", err)
	require.Equal(t, 2, ee.Code)
	require.NotContains(t, err.Error(), "\n")
}

// rssKiB reads the process's resident set size.
func rssKiB(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			require.NoError(t, err)
			return n
		}
	}
	t.Skip("no VmRSS")
	return 0
}

func TestSoakResidentMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 frames")
	}
	startXvfb(t)
	dir := tinyRun(t)
	const warm, frames = 500, 5000
	var before, after int
	st, err := Run(Options{RunDir: dir, Grid: 2, Width: 96, Height: 96, Frames: frames, Log: &bytes.Buffer{},
		OnMessage: noValidation(t),
		OnFrame: func(f *Frame) {
			switch f.N {
			case warm:
				before = rssKiB(t)
			case frames:
				after = rssKiB(t)
			}
		}})
	require.NoError(t, err)
	require.Equal(t, frames, st.Frames)
	t.Logf("RSS %d KiB after %d frames, %d KiB after %d: %+d KiB; frame mean %v median %v p95 %v",
		before, warm, after, frames, after-before, st.Mean, st.Median, st.P95)
	require.Less(t, after-before, 2048, "RSS grew by %d KiB over %d frames", after-before, frames-warm)
}

func TestKeysAndReload(t *testing.T) {
	startXvfb(t)
	dir := tinyRun(t)
	ckpt := filepath.Join(dir, rundir.CheckpointFile)
	shot := filepath.Join(t.TempDir(), "shot.png")
	before, _ := filepath.Glob(filepath.Join(dir, "view_*.png"))
	st, err := Run(Options{RunDir: dir, Grid: 2, Width: 160, Height: 160, Frames: 40, Screenshot: shot, Log: &bytes.Buffer{},
		OnMessage: noValidation(t),
		OnFrame: func(f *Frame) {
			v := f.v
			switch f.N {
			case 2:
				v.onKey(v.win, glfw.KeySpace, 0, glfw.Press, 0)
			case 3:
				v.onKey(v.win, glfw.KeyI, 0, glfw.Press, 0) // latent walk on
			case 6:
				v.onKey(v.win, glfw.KeyT, 0, glfw.Press, 0) // first saved grid
			case 8:
				v.onKey(v.win, glfw.KeyS, 0, glfw.Press, 0)
			case 10:
				v.onChar(v.win, '-')
				v.onChar(v.win, '-') // stops at 1x1
				require.Equal(t, 1, v.grid)
				v.onChar(v.win, '+')
				v.onChar(v.win, '+')
				require.Equal(t, 3, v.grid)
			case 12:
				// Back to the run's noise, then a "new" checkpoint.
				cfg, _ := rundir.LoadConfig(filepath.Join(dir, rundir.ConfigFile))
				v.noiseSeed = cfg.Seed
				v.z = rundir.FixedNoise(v.noiseSeed, v.smp.Batch(), v.cfg.NZ)
				v.timeline, v.walk, v.dirty = -1, -1, true
				later := time.Now().Add(time.Second)
				require.NoError(t, os.Chtimes(ckpt, later, later))
			}
			if f.N > 12 {
				time.Sleep(15 * time.Millisecond) // let a poll come round
			}
		}})
	require.NoError(t, err)
	require.Equal(t, 1, st.Reloads)
	after, _ := filepath.Glob(filepath.Join(dir, "view_*.png"))
	require.Len(t, after, len(before)+1, "S wrote no screenshot into the run directory")
	for _, p := range after {
		_ = os.Remove(p)
	}
	cfg, err := rundir.LoadConfig(filepath.Join(dir, rundir.ConfigFile))
	require.NoError(t, err)
	requireSameImage(t, Scale(sampleGrid(t, dir, 3, cfg.Seed), 160, 160), readPNG(t, shot))
}

// TestLiveTraining is vkgan train -view: training runs beside the window
// on its device, the window draws from G's live weights, and closing the
// window stops training with a checkpoint.
func TestLiveTraining(t *testing.T) {
	startXvfb(t)
	requireDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := t.TempDir()
	require.NoError(t, testimg.WritePNGs(data, 6, 32, 32, func(i int, img *image.RGBA) {
		for p := range img.Pix {
			img.Pix[p] = uint8(41*i + 3*p)
		}
	}))
	cfg := rundir.DefaultConfig()
	cfg.Data, cfg.Size, cfg.NGF, cfg.NDF, cfg.NZ, cfg.Batch, cfg.Steps = data, 32, 4, 4, 8, 4, 100000
	cfg.LogEvery, cfg.SampleEvery, cfg.CheckpointEvery = 5, 1000, 1000
	run := filepath.Join(t.TempDir(), "run")
	var steps atomic.Int64
	_, err := Run(Options{RunDir: run, Config: &cfg, Grid: 2, OnMessage: noValidation(t), Log: &bytes.Buffer{},
		OnFrame: func(f *Frame) {
			if steps.Load() >= 6 && f.N > 20 {
				f.Close()
			}
		},
		Train: func(ctx context.Context, dev *engine.Device, live func(*engine.GAN, int)) error {
			return train.Run(ctx, cfg, train.RunOptions{Out: run, Device: dev, Log: &bytes.Buffer{}, OnValidation: noValidation(t),
				OnStep: func(g *engine.GAN, step int) {
					steps.Store(int64(step))
					live(g, step)
				}})
		}})
	require.NoError(t, err)
	info, err := rundir.ReadCheckpointInfo(run)
	require.NoError(t, err)
	require.GreaterOrEqual(t, info.Step, 6, "closing the window stops training with a checkpoint")
	require.Less(t, info.Step, cfg.Steps)
}

// TestShowImages is vkgan toy -view: a short toy run on the window's
// device, its frames shown as they are drawn.
func TestShowImages(t *testing.T) {
	startXvfb(t)
	requireDevice(t)
	var shown atomic.Int64
	out := t.TempDir()
	err := ShowImages(ImageOptions{Title: "toy", OnMessage: noValidation(t), Frames: 5,
		Work: func(ctx context.Context, dev *engine.Device, show func(image.Image)) error {
			_, err := toy.Run(ctx, toy.Config{Data: toy.MixRing8, Steps: 20, Seed: 1, Holdout: -1},
				toy.Options{Out: out, FrameEvery: 10, Log: &bytes.Buffer{}, Device: dev, OnValidation: noValidation(t),
					OnFrame: func(img image.Image, _ int) {
						shown.Add(1)
						show(img)
					}})
			return err
		}})
	require.NoError(t, err)
	require.EqualValues(t, 3, shown.Load(), "frames at steps 0, 10 and 20")
	require.FileExists(t, filepath.Join(out, "toy.json"))
}

func TestWindowTitle(t *testing.T) {
	t.Parallel()
	f := func(v float64) *float64 { return &v }
	logged := []rundir.Metric{
		{Step: 4000, LossD: 1.2, LossG: 0.8},
		{Step: 5000, LossD: 1.1, LossG: 0.9, SWD: f(12.34), KID: f(0.012345), KIDStd: f(0.00041), FID: f(45.61)},
		{Step: 5500, LossD: 1.0, LossG: 1.0},
	}
	for _, c := range []struct {
		name     string
		ms       []rundir.Metric
		timeline int
		want     string
	}{
		{"no log", nil, -1, "vkgan view run · step 6000"},
		{"no evaluation", logged[:1], -1, "vkgan view run · step 6000 · loss D 1.200 G 0.800"},
		{"latest evaluation, lines after it", logged, -1,
			"vkgan view run · step 6000 · loss D 1.000 G 1.000 · SWD 12.3  KID 0.0123±0.00041  FID 45.6 (step 5000)"},
		{"timeline", logged[:2], 1,
			"vkgan view run · step 6000 · loss D 1.100 G 0.900 · SWD 12.3  KID 0.0123±0.00041  FID 45.6 (step 5000) · timeline 2"},
		{"some metrics", []rundir.Metric{{Step: 100, LossD: 1, LossG: 2, SWD: f(7), FID: f(300)}}, -1,
			"vkgan view run · step 6000 · loss D 1.000 G 2.000 · SWD 7.0  FID 300.0 (step 100)"},
		{"kid without std", []rundir.Metric{{Step: 100, LossD: 1, LossG: 2, KID: f(0.5)}}, -1,
			"vkgan view run · step 6000 · loss D 1.000 G 2.000 · KID 0.5 (step 100)"},
		{"the latest, even NaN", []rundir.Metric{{Step: 100, LossD: 1, LossG: 2, SWD: f(50)}, {Step: 200, LossD: 1, LossG: 2, SWD: f(math.NaN())}}, -1,
			"vkgan view run · step 6000 · loss D 1.000 G 2.000 · SWD NaN (step 200)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Equal(t, c.want, windowTitle("run", 6000, c.ms, c.timeline))
		})
	}
}

// TestClassKey: on a conditional run, C shows one class, then the next,
// and after the last, every class in turn again; the window shows G's
// samples of the class chosen.
func TestClassKey(t *testing.T) {
	startXvfb(t)
	requireDevice(t)
	base := t.TempDir()
	for i, class := range []string{"dark", "light"} {
		require.NoError(t, testimg.WritePNGs(filepath.Join(base, "data", class), 4, 32, 32, func(j int, img *image.RGBA) {
			for p := range img.Pix {
				img.Pix[p] = uint8(200*i + 10*j)
			}
		}))
	}
	cfg := rundir.DefaultConfig()
	cfg.Data, cfg.Size, cfg.NGF, cfg.NDF, cfg.NZ, cfg.Batch, cfg.Cond, cfg.ClassDim = filepath.Join(base, "data"), 32, 4, 4, 8, 4, true, 2
	cfg.Steps, cfg.Seed = 2, 9
	dir := filepath.Join(base, "run")
	require.NoError(t, train.Run(context.Background(), cfg, train.RunOptions{Out: dir, Log: &bytes.Buffer{}}))

	shot := filepath.Join(t.TempDir(), "shot.png")
	var classes []int
	_, err := Run(Options{RunDir: dir, Grid: 2, Width: 96, Height: 96, Frames: 8, Screenshot: shot, Log: &bytes.Buffer{},
		OnMessage: noValidation(t),
		OnFrame: func(f *Frame) {
			v := f.v
			if f.N >= 2 && f.N <= 5 {
				v.onKey(v.win, glfw.KeyC, 0, glfw.Press, 0)
				classes = append(classes, v.class)
			}
		}})
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, -1, 0}, classes)

	// The last frames show class 0 ("dark") alone.
	cfg, err = rundir.LoadConfig(filepath.Join(dir, rundir.ConfigFile))
	require.NoError(t, err)
	require.Equal(t, []string{"dark", "light"}, cfg.Classes)
	dev, err := engine.Open(vk.Options{OnMessage: noValidation(t)})
	require.NoError(t, err)
	defer dev.Close()
	gan, err := dev.NewGAN(cfg.GANConfig(), nil)
	require.NoError(t, err)
	defer gan.Release()
	_, err = rundir.LoadGenerator(dir, gan, true, func(m string) { t.Errorf("unexpected warning: %s", m) })
	require.NoError(t, err)
	s, err := gan.NewSampler(4, false, true)
	require.NoError(t, err)
	defer s.Release()
	require.NoError(t, s.SetClasses([]int{0, 0, 0, 0}))
	pix, err := s.Sample(rundir.FixedNoise(cfg.Seed, 4, cfg.NZ))
	require.NoError(t, err)
	img, err := grid.Image(pix, 4, cfg.Channels, cfg.Size, 2)
	require.NoError(t, err)
	requireSameImage(t, Scale(img, 96, 96), readPNG(t, shot))
}
