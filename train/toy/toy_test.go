package toy

import (
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/engine"
	"vkgan/internal/devtest"
	"vkgan/vk"
)

func TestToyMixtures(t *testing.T) {
	for _, c := range []struct {
		name string
		k    int
		std  float64
	}{{MixRing8, 8, 0.01}, {MixGrid25, 25, 0.05}, {MixSpiral, 16, 0.02}} {
		m, err := NewMixture(c.name)
		require.NoError(t, err)
		require.Len(t, m.Centers, c.k)
		require.Equal(t, c.std, m.Std)
		// Modes are far apart against their spread, and inside the frame.
		for i, a := range m.Centers {
			require.Less(t, math.Max(math.Abs(a[0]), math.Abs(a[1])), m.Extent-5*m.Std)
			for j, b := range m.Centers {
				if i != j {
					require.Greater(t, math.Hypot(a[0]-b[0], a[1]-b[1]), 9*m.Std, "%s modes %d %d", c.name, i, j)
				}
			}
		}
	}
	m, _ := NewMixture(MixRing8)
	require.InDelta(t, 0, m.Centers[2][0], 1e-12)
	require.InDelta(t, 1, m.Centers[2][1], 1e-12)
	g, _ := NewMixture(MixGrid25)
	require.Equal(t, [2]float64{-4, -4}, g.Centers[0])
	require.Equal(t, [2]float64{4, 4}, g.Centers[24])
	_, err := NewMixture("moons")
	require.ErrorContains(t, err, "ring8")
}

func TestMeasureModes(t *testing.T) {
	m, _ := NewMixture(MixRing8)
	var s []float32
	add := func(mode int, dx float64, n int) {
		for i := 0; i < n; i++ {
			c := m.Centers[mode]
			s = append(s, float32(c[0]+dx), float32(c[1]))
		}
	}
	add(0, 0.02, 30)  // within 3 std (0.03)
	add(1, 0, 10)     // exact
	add(2, 0.031, 60) // just outside: counted by nearest mode only
	add(5, -0.029, 20)
	s = append(s, 0, 0) // the centre: no mode near
	st := m.MeasureModes(s)
	require.Equal(t, 121, st.Samples)
	require.Equal(t, 60, st.HighQual)
	require.Equal(t, 3, st.Modes)
	require.Equal(t, 8, st.ModesTotal)
	require.InDelta(t, 100*60.0/121, st.HQPercent, 1e-9)
	require.Equal(t, []int{30, 10, 0, 0, 0, 20, 0, 0}, st.PerMode)
	require.Equal(t, 60, st.NearestPerMode[2])
	// KL(q||u) with q = (1/2, 1/6, 1/3) over 8 modes.
	want := 0.5*math.Log(8*0.5) + 1.0/6*math.Log(8.0/6) + 1.0/3*math.Log(8.0/3)
	require.InDelta(t, want, st.ReverseKL, 1e-12)

	// Uniform over every mode: KL 0, all captured; one mode only: log K.
	s = nil
	for j := 0; j < 8; j++ {
		add(j, 0, 5)
	}
	st = m.MeasureModes(s)
	require.Equal(t, 8, st.Modes)
	require.InDelta(t, 0, st.ReverseKL, 1e-12)
	s = nil
	add(4, 0, 7)
	require.InDelta(t, math.Log(8), m.MeasureModes(s).ReverseKL, 1e-12)
	require.True(t, math.IsNaN(m.MeasureModes([]float32{9, 9}).ReverseKL))
}

func TestToyFrame(t *testing.T) {
	m, _ := NewMixture(MixRing8)
	dr := newToyDrawer(m, 2, 1)
	pts := dr.gridPoints()
	require.Len(t, pts, 2*toyFieldGrid*toyFieldGrid)
	// A field higher right of x = 0 than left of it.
	field := make([]float32, toyFieldGrid*toyFieldGrid)
	for i := range field {
		field[i] = 0.5
		if pts[2*i] > 0 {
			field[i] = 0.75
		}
	}
	field[0] = 0.25 // the ramp spans the frame's own range
	samples := []float32{1, 0, -1, 0}
	img := dr.draw(field, samples)
	require.Equal(t, toyFrameSize, img.Rect.Dx())
	require.Equal(t, toyBlue, img.RGBAAt(toyFrameSize-3, 3))
	require.Equal(t, lerpRGBA(toyWhite, toyBlue, 0.5), img.RGBAAt(3, toyFrameSize/2))
	// Green rings around both samples, a red ring at the held-out mode
	// (0, 1), and dark dots of the collected data.
	count := map[color.RGBA]int{}
	for y := 0; y < toyFrameSize; y++ {
		for x := 0; x < toyFrameSize; x++ {
			count[img.RGBAAt(x, y)]++
		}
	}
	require.Greater(t, count[toyGreen], 20)
	require.Greater(t, count[toyRed], 20)
	require.Greater(t, count[toyDot], 100)
	x, y := dr.toPixel(1, 0)
	require.Equal(t, toyGreen, img.RGBAAt(int(x+toyCircleR), int(y)))

	path := filepath.Join(t.TempDir(), "a.gif")
	require.NoError(t, writeToyGIF(path, []*toyFrame{{img}, {img}}))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	an, err := gif.DecodeAll(f)
	require.NoError(t, err)
	require.Len(t, an.Image, 2)
	require.Equal(t, toyFrameSize/2, an.Image[0].Rect.Dx())
}

func TestToyConfigs(t *testing.T) {
	e, _, err := EngineConfig(Config{Data: MixGrid25})
	require.NoError(t, err)
	require.Equal(t, 512, e.Batch)
	require.Equal(t, 256, e.G.In)
	require.Equal(t, 2, e.D.In)
	require.Len(t, e.Centers, 50)
	e, _, err = EngineConfig(Config{Data: MixRing8, Protocol: ProtocolLarge, Pack: 3, Holdout: 2})
	require.NoError(t, err)
	require.Equal(t, 6, e.D.In)
	require.Equal(t, 0, e.Batch%96) // batch 100 rounded to a multiple of 32 and 3
	require.Equal(t, float32(0.8), e.AdamG.Beta1)
	// -lr-decay 0.4 of 25,000 steps: both rates fall to zero over steps
	// (15000, 25000]; -noise anneals to zero at half the run by default.
	e, _, err = EngineConfig(Config{Data: MixRing8, LRDecay: 0.4, Noise: 0.3})
	require.NoError(t, err)
	require.Equal(t, engine.LRDecay{Start: 15000, End: 25000}, e.AdamD.Decay)
	require.Equal(t, e.AdamD.Decay, e.AdamG.Decay)
	require.Equal(t, float32(0.3), e.InstanceNoise)
	require.Equal(t, 12500, e.NoiseUntil)
	e, _, err = EngineConfig(Config{Data: MixRing8, Steps: 100, LRDecay: 1, Noise: 1, NoiseUntil: 0.25})
	require.NoError(t, err)
	require.Equal(t, engine.LRDecay{Start: 0, End: 100}, e.AdamG.Decay)
	require.Equal(t, 25, e.NoiseUntil)
	e, _, err = EngineConfig(Config{Data: MixRing8, Steps: 3, LRDecay: 0.1})
	require.NoError(t, err)
	require.Equal(t, engine.LRDecay{Start: 2, End: 3}, e.AdamD.Decay, "a decay too short to round to a step still covers the last one")
	for _, c := range []Config{{Data: "x"}, {Data: MixRing8, Protocol: "huge"}, {Data: MixRing8, Pack: -1}, {Data: MixRing8, Holdout: 8},
		{Data: MixRing8, LRDecay: 1.5}, {Data: MixRing8, LRDecay: -0.1}, {Data: MixRing8, Noise: -1}, {Data: MixRing8, Noise: 1, NoiseUntil: 2},
		{Data: MixRing8, Pack: 2, DRS: true}} {
		_, _, err := EngineConfig(c)
		require.Error(t, err, "%+v", c)
	}
}

// TestToyConfigValidate checks that every bad number is an error naming
// its flag and value, never a silent fall-back to the protocol's value.
func TestToyConfigValidate(t *testing.T) {
	t.Parallel()
	nan, inf := math.NaN(), math.Inf(1)
	for _, tc := range []struct {
		set  func(c *Config)
		want string
	}{
		{func(c *Config) { c.LRD = nan }, "train: toy: -lr-d NaN must be a positive number (0: the protocol's)"},
		{func(c *Config) { c.LRD = -1 }, "train: toy: -lr-d -1 must be a positive number (0: the protocol's)"},
		{func(c *Config) { c.LRG = inf }, "train: toy: -lr-g +Inf must be a positive number (0: the protocol's)"},
		{func(c *Config) { c.LRG = -1e-4 }, "train: toy: -lr-g -0.0001 must be a positive number"},
		{func(c *Config) { c.Beta1 = new(-0.5) }, "train: toy: -beta1 -0.5 must be in [0, 1)"},
		{func(c *Config) { c.Beta1 = new(nan) }, "train: toy: -beta1 NaN must be in [0, 1)"},
		{func(c *Config) { c.Beta2 = new(1.0) }, "train: toy: -beta2 1 must be in [0, 1)"},
		{func(c *Config) { c.Beta2 = new(nan) }, "train: toy: -beta2 NaN must be in [0, 1)"},
		{func(c *Config) { c.Batch = -1 }, "train: toy: -batch -1 must be in 1..1048576 (0: the protocol's)"},
		{func(c *Config) { c.Batch = math.MaxInt }, "train: toy: -batch 9223372036854775807 must be in 1..1048576"},
		{func(c *Config) { c.EMA = nan }, "train: toy: -ema NaN must be in [0, 1)"},
		{func(c *Config) { c.EMA = 1 }, "train: toy: -ema 1 must be in [0, 1)"},
		{func(c *Config) { c.LRDecay = nan }, "train: toy: -lr-decay NaN must be a fraction of the steps in [0, 1]"},
		{func(c *Config) { c.Noise = nan }, "train: toy: -noise NaN must be in [0, 100)"},
		{func(c *Config) { c.NoiseUntil = nan }, "train: toy: -noise-until NaN must be a fraction of the steps in (0, 1] (0: 0.5)"},
		{func(c *Config) { c.NoiseUntil = -0.5 }, "train: toy: -noise-until -0.5 must be"},
		{func(c *Config) { c.Steps = -3 }, "train: toy: -steps -3 must be positive"},
		{func(c *Config) { c.Pack = 17 }, "train: toy: -pack 17 must be in 1..16"},
		{func(c *Config) { c.Holdout = -2 }, "train: toy: -holdout -2 must be -1 (none) or a mode in 0..7"},
	} {
		c := Config{Data: MixRing8, Holdout: -1}
		tc.set(&c)
		err := c.Validate()
		require.ErrorContains(t, err, tc.want)
		_, _, err = EngineConfig(c)
		require.ErrorContains(t, err, tc.want, "ToyEngineConfig validates")
	}

	// Every bad setting at once, one line each.
	err := Config{Data: MixRing8, Holdout: -1, LRD: nan, Beta2: new(-1.0), Batch: -2}.Validate()
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 3, err.Error())
	for i, flag := range []string{"-lr-d", "-beta2", "-batch"} {
		require.Contains(t, lines[i], flag)
	}

	// Zero keeps the protocol's (and vkgan toy's defaults are valid).
	require.NoError(t, Config{Data: MixRing8, Holdout: -1}.Validate())
	require.NoError(t, Config{Data: MixRing8, Pack: 1, Steps: 25000, Holdout: -1, NoiseUntil: 0.5}.Validate())
	e, _, err := EngineConfig(Config{Data: MixRing8, Protocol: ProtocolLarge, Holdout: -1})
	require.NoError(t, err)
	require.Equal(t, float32(1e-4), e.AdamD.LR)
	require.Equal(t, float32(0.8), e.AdamD.Beta1)
	require.Equal(t, engine.DefaultAdam().Beta2, e.AdamD.Beta2)
	require.Equal(t, 128, e.Batch)

	// An explicit beta1 of 0 is 0, not the protocol's.
	e, _, err = EngineConfig(Config{Data: MixRing8, Protocol: ProtocolLarge, Holdout: -1, Beta1: new(0.0), Beta2: new(0.9)})
	require.NoError(t, err)
	require.Zero(t, e.AdamD.Beta1)
	require.Zero(t, e.AdamG.Beta1)
	require.Equal(t, float32(0.9), e.AdamG.Beta2)
}

// TestToyOptionsValidate checks the frame and log intervals.
func TestToyOptionsValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, Options{}.Validate())
	require.NoError(t, Options{FrameEvery: 500, LogEvery: 1000}.Validate())
	err := Options{FrameEvery: -1, LogEvery: -5}.Validate()
	require.ErrorContains(t, err, "train: toy: -frame-every -1 must be positive (0: 500)")
	require.ErrorContains(t, err, "train: toy: -log-every -5 must be positive (0: 1000)")
	// Run checks the options before it opens a device or writes a file.
	dir := filepath.Join(t.TempDir(), "out")
	_, err = Run(context.Background(), Config{Data: MixRing8, Holdout: -1, LRD: math.NaN()}, Options{Out: dir, LogEvery: -1})
	require.ErrorContains(t, err, "-lr-d NaN")
	require.ErrorContains(t, err, "-log-every -1")
	require.NoDirExists(t, dir)
}

// TestRunToy trains a few steps of each protocol and checks the files.
func TestRunToy(t *testing.T) {
	requireDevice(t)
	var mu sync.Mutex
	var msgs []string
	for _, c := range []Config{
		{Data: MixRing8, Steps: 50, Seed: 7, Holdout: -1},
		{Data: MixGrid25, Protocol: ProtocolLarge, Pack: 2, Steps: 4, Seed: 2, Holdout: 3},
		{Data: MixRing8, Steps: 30, Seed: 3, Holdout: -1, LRD: 1e-3, EMA: 0.9},
		{Data: MixGrid25, Steps: 30, Seed: 4, Holdout: -1, LRDecay: 0.5, Noise: 0.5, DRS: true},
	} {
		dir := t.TempDir()
		var log strings.Builder
		shown := 0
		res, err := Run(context.Background(), c, Options{Out: dir, FrameEvery: 20, LogEvery: 25, Log: &log,
			OnValidation: func(s string) { mu.Lock(); msgs = append(msgs, s); mu.Unlock() },
			OnFrame:      func(image.Image, int) { shown++ }})
		require.NoError(t, err)
		require.Equal(t, c.Steps, res.Steps)
		require.Contains(t, log.String(), "loss D")
		b, err := os.ReadFile(filepath.Join(dir, "toy.json"))
		require.NoError(t, err)
		var j map[string]any
		require.NoError(t, json.Unmarshal(b, &j))
		for _, k := range []string{"modes", "modes_total", "high_quality_pct", "reverse_kl", "steps", "seed", "ms_per_step"} {
			require.Contains(t, j, k)
		}
		require.EqualValues(t, c.Seed, j["seed"])
		require.InDelta(t, c.LRDecay, j["lr_decay"], 1e-9)
		require.InDelta(t, c.Noise, j["instance_noise"], 1e-6)
		if c.EMA > 0 {
			// The averaged G is evaluated; G's own weights are reported beside it.
			require.Contains(t, j, "raw_modes")
			require.Contains(t, j, "raw_high_quality_pct")
			require.InDelta(t, c.EMA, j["ema"], 1e-6)
		} else {
			require.NotContains(t, j, "raw_modes")
		}
		if c.DRS {
			d := res.DRS
			require.NotNil(t, d)
			require.Contains(t, j, "drs")
			require.Equal(t, drsCandidatesPerSample*res.EvalSamples, d.Candidates)
			require.Positive(t, d.Accepted, "the candidate at the largest logit is always kept")
			require.Equal(t, min(d.Accepted, res.EvalSamples), d.Samples)
			csv, err := os.ReadFile(filepath.Join(dir, "samples_drs.csv"))
			require.NoError(t, err)
			require.Len(t, strings.Split(strings.TrimSpace(string(csv)), "\n"), 1+d.Samples)
			_, err = os.Stat(d.Frame)
			require.NoError(t, err)
		} else {
			require.Nil(t, res.DRS)
			require.NotContains(t, j, "drs")
		}
		frames, err := filepath.Glob(filepath.Join(dir, "frames", "step-*.png"))
		require.NoError(t, err)
		want := 2 + (c.Steps-1)/20
		require.Len(t, frames, want)
		if c.DRS {
			want++ // the kept samples' picture
		}
		require.Equal(t, want, shown, "frames shown")
		f, err := os.Open(frames[len(frames)-1])
		require.NoError(t, err)
		_, err = png.Decode(f)
		f.Close()
		require.NoError(t, err)
		_, err = os.Stat(filepath.Join(dir, "toy.gif"))
		require.NoError(t, err)
		csv, err := os.ReadFile(filepath.Join(dir, "samples.csv"))
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
		require.Equal(t, "x,y", lines[0])
		require.Len(t, lines, 1+res.EvalSamples)
	}
	require.Empty(t, msgs)
}

// requireDevice skips without a Vulkan device unless VKGAN_REQUIRE_DEVICE=1.
func requireDevice(t *testing.T) {
	t.Helper()
	d, err := engine.Open(vk.Options{OnMessage: func(m string) { t.Errorf("validation: %s", m) }})
	devtest.SkipWithout(t, err)
	require.NoError(t, d.Close())
}
