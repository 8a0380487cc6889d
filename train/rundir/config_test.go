package rundir

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vkgan/engine"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	require.NoError(t, c.Validate())
	assert.Equal(t, 64, c.Batch)
	assert.Equal(t, 100, c.NZ)
	assert.Equal(t, 2e-4, c.LRD)
	assert.Equal(t, 2e-4, c.LRG)
	assert.Equal(t, 0.5, c.Beta1)
	assert.Equal(t, 0.999, c.Beta2)
}

func TestConfigWithDefaults(t *testing.T) {
	c := Config{Data: "imgs", Size: 32, Seed: 7}.WithDefaults()
	want := DefaultConfig()
	want.Data, want.Size, want.Seed = "imgs", 32, 7
	// Zero is meaningful for the betas: WithDefaults keeps it.
	want.Beta1, want.Beta2 = 0, 0
	assert.Equal(t, want, c)
	require.NoError(t, c.Validate())
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"size", func(c *Config) { c.Size = 48 }, "train: -size 48: must be one of [16 32 64 128 256]"},
		{"batch", func(c *Config) { c.Batch = 1 }, "train: -batch 1: must be at least 2"},
		{"steps", func(c *Config) { c.Steps = 0 }, "train: -steps 0: must be at least 1"},
		{"nz", func(c *Config) { c.NZ = -1 }, "train: -nz -1: must be at least 1"},
		{"ngf", func(c *Config) { c.NGF = 0 }, "train: -ngf 0: must be at least 1"},
		{"ndf", func(c *Config) { c.NDF = 0 }, "train: -ndf 0: must be at least 1"},
		{"channels", func(c *Config) { c.Channels = 2 }, "train: -channels 2: must be 1 (grey), 3 (RGB) or 4 (RGBA)"},
		{"lr-d zero", func(c *Config) { c.LRD = 0 }, "train: -lr-d 0: must be a positive number"},
		{"lr-g nan", func(c *Config) { c.LRG = math.NaN() }, "train: -lr-g NaN: must be a positive number"},
		{"lr-g inf", func(c *Config) { c.LRG = math.Inf(1) }, "train: -lr-g +Inf: must be a positive number"},
		{"beta1", func(c *Config) { c.Beta1 = 1 }, "train: -beta1 1: must be in [0, 1)"},
		{"beta2", func(c *Config) { c.Beta2 = -0.1 }, "train: -beta2 -0.1: must be in [0, 1)"},
		{"label-smooth", func(c *Config) { c.LabelSmooth = 0.5 }, "train: -label-smooth 0.5: must be in [0, 0.5)"},
		{"d-steps", func(c *Config) { c.DSteps = 0 }, "train: -d-steps 0: must be at least 1"},
		{"ema", func(c *Config) { c.EMA = math.NaN() }, "train: -ema NaN: must be in [0, 1)"},
		{"log-every", func(c *Config) { c.LogEvery = 0 }, "train: -log-every 0: must be at least 1"},
		{"sample-every", func(c *Config) { c.SampleEvery = -5 }, "train: -sample-every -5: must be at least 1"},
		{"checkpoint-every", func(c *Config) { c.CheckpointEvery = 0 }, "train: -checkpoint-every 0: must be at least 1"},
		{"data", func(c *Config) { c.Data = "" }, "train: -data is empty"},
		{"category", func(c *Config) { c.Data, c.Category = "imgs", "Animals & Nature" }, `needs -data emoji, not "imgs"`},
		{"loss", func(c *Config) { c.Loss = "wgan" }, "train: -loss wgan: must be one of [bce hinge ls]"},
		{"d-norm", func(c *Config) { c.DNorm = "layer" }, "train: -d-norm layer: must be batch or none"},
		{"r1 nan", func(c *Config) { c.R1, c.DNorm = math.NaN(), "none" }, "train: -r1 NaN: must be a non-negative number"},
		{"r1 with batch norm", func(c *Config) { c.R1 = 0.1 }, "add -d-norm none"},
		{"r1-every", func(c *Config) { c.R1Every = -1 }, "train: -r1-every -1: must be at least 0"},
		{"augment", func(c *Config) { c.Augment = "color,rotate" }, "train: -augment color,rotate:"},
		{"label-smooth with hinge", func(c *Config) { c.Loss, c.LabelSmooth = "hinge", 0.1 }, "the hinge loss has none"},
		{"class-dim", func(c *Config) { c.Cond, c.ClassDim = true, 0 }, "train: -class-dim 0: must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}

	t.Run("zero is valid where meaningful", func(t *testing.T) {
		t.Parallel()
		c := DefaultConfig()
		c.Beta1, c.Beta2, c.LabelSmooth, c.EMA, c.Seed = 0, 0, 0, 0, 0
		assert.NoError(t, c.Validate())
	})

	t.Run("every recipe at once", func(t *testing.T) {
		t.Parallel()
		c := DefaultConfig()
		c.Loss, c.DNorm, c.SN, c.SNG, c.R1, c.R1Every, c.Augment, c.Flip = "hinge", "none", true, true, 0.1, 4, "color,translation,cutout", true
		require.NoError(t, c.Validate())
		g := c.GANConfig()
		assert.Equal(t, engine.HingeLoss{}, g.Loss)
		assert.True(t, g.Model.NoDNorm && g.Model.SN && g.Model.SNG)
		assert.Equal(t, engine.Augment{Color: true, Translation: true, Cutout: true, Flip: true}, g.Augment)
		assert.Equal(t, float32(0.1), g.R1)
		assert.Equal(t, 4, g.R1Every)
	})

	t.Run("all problems at once", func(t *testing.T) {
		t.Parallel()
		c := DefaultConfig()
		c.Size, c.Batch = 24, 0
		err := c.Validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "-size 24")
		assert.Contains(t, err.Error(), "-batch 0")
	})

	t.Run("zero config", func(t *testing.T) {
		t.Parallel()
		var c Config
		assert.Error(t, c.Validate())
	})
}

func TestConfigSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ConfigFile)
	c := DefaultConfig()
	c.Data, c.Category, c.Size, c.Seed = "emoji", "Smileys & Emotion", 32, math.MaxUint64
	c.LRD, c.LRG, c.Beta1, c.EMA, c.LabelSmooth, c.DSteps = 4e-4, 1e-4, 0, 0.999, 0.1, 2
	c.Device = "llvmpipe"
	require.NoError(t, c.Save(path))

	got, err := LoadConfig(path)
	require.NoError(t, err)
	assert.Equal(t, c, got)

	// Saving again replaces the file and leaves no temporary behind.
	c.Steps = 123
	require.NoError(t, c.Save(path))
	got, err = LoadConfig(path)
	require.NoError(t, err)
	assert.Equal(t, 123, got.Steps)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, ConfigFile, entries[0].Name())
}

func TestParseConfig(t *testing.T) {
	t.Parallel()

	// Omitted fields take their defaults; an explicit zero stays zero.
	c, err := ParseConfig([]byte(`{"data": "imgs", "size": 32, "beta1": 0}`))
	require.NoError(t, err)
	want := DefaultConfig()
	want.Data, want.Size, want.Beta1 = "imgs", 32, 0
	assert.Equal(t, want, c)

	for _, tc := range []struct {
		name, json, want string
	}{
		{"unknown field", `{"batchsize": 32}`, `unknown field "batchsize"`},
		{"wrong type", `{"size": "big"}`, "train: config:"},
		{"not json", `size=32`, "train: config:"},
		{"trailing", `{"size": 32} {}`, "unexpected data after the JSON object"},
		{"empty", ``, "train: config:"},
		{"invalid value", `{"size": 48}`, "train: -size 48: must be one of [16 32 64 128 256]"},
		{"negative seed", `{"seed": -1}`, "train: config:"},
	} {
		_, err := ParseConfig([]byte(tc.json))
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), tc.want, tc.name)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	_, err := LoadConfig(filepath.Join(dir, "missing.json"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"size": 7}`), 0o644))
	_, err = LoadConfig(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad)
	assert.Contains(t, err.Error(), "-size 7")

	// Save into a folder that does not exist fails cleanly.
	c := DefaultConfig()
	assert.Error(t, c.Save(filepath.Join(dir, "no", "such", "dir", ConfigFile)))
}
