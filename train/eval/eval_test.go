package eval

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/engine"
	"vkgan/engine/quality"
	"vkgan/internal/devtest"
	"vkgan/internal/safetensors"
	"vkgan/vk"
)

var testDevice = devtest.New(func(onMessage func(string)) (*engine.Device, error) {
	return engine.Open(vk.Options{OnMessage: onMessage})
})

func TestMain(m *testing.M) { os.Exit(testDevice.Main(m)) }

func TestParseMetrics(t *testing.T) {
	for _, c := range []struct {
		in      string
		weights bool
		want    []string
		err     string
	}{
		{"", false, []string{SWD}, ""},
		{"", true, []string{SWD, KID, FID}, ""},
		{" FID, swd ,fid", false, []string{FID, SWD}, ""},
		{"swd,is", true, nil, `unknown metric "is"`},
	} {
		got, err := ParseMetrics(c.in, c.weights)
		if c.err != "" {
			require.ErrorContains(t, err, c.err)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, c.want, got, c.in)
	}
}

// blobs are n smooth random images of side x side (a few coloured discs).
func blobs(n, c, side int, seed uint64) Images {
	rng := rand.New(rand.NewPCG(seed, 7))
	pix := make([]float32, n*c*side*side)
	for i := range n {
		cx, cy, r := rng.Float64()*float64(side), rng.Float64()*float64(side), 2+rng.Float64()*float64(side)/3
		for ch := range c {
			v := float32(rng.Float64()*2 - 1)
			for y := range side {
				for x := range side {
					in := math.Hypot(float64(x)-cx, float64(y)-cy) < r
					p := float32(-1)
					if in {
						p = v
					}
					pix[((i*c+ch)*side+y)*side+x] = p
				}
			}
		}
	}
	return Images{Pix: pix, N: n, C: c, Size: side}
}

func TestRGB(t *testing.T) {
	grey := Images{Pix: []float32{-1, 0.5}, N: 1, C: 1, Size: 1}
	require.Equal(t, []float32{-1, -1, -1}, Images{Pix: grey.Pix[:1], N: 1, C: 1, Size: 1}.rgb())
	// Premultiplied RGBA over white: transparent is white, opaque as is,
	// half-transparent black is mid grey.
	rgba := Images{Pix: []float32{-1, -1, -1, -1, 0.2, -1, 0.6, 1, -1, -1, -1, 0}, N: 3, C: 4, Size: 1}
	require.InDeltaSlice(t, []float32{1, 1, 1, 0.2, -1, 0.6, 0, 0, 0}, rgba.rgb(), 1e-6)
}

func TestPick(t *testing.T) {
	s := blobs(10, 3, 16, 1)
	s.Hash = "h"
	a, b := s.pick(4, 5), s.pick(4, 5)
	require.Equal(t, a.Pix, b.Pix)
	require.Equal(t, 4, a.N)
	require.NotEqual(t, s.pick(4, 6).Pix, a.Pix)
	require.Equal(t, s.Pix, s.pick(20, 5).Pix, "asking for more keeps the set")
	require.NotEqual(t, "h", a.Hash, "a subset caches apart from its set")
}

func TestSWDOnly(t *testing.T) {
	d := testDevice.Get(t)
	ref := blobs(24, 3, 16, 1)
	ev, err := New(d, ref, Options{Metrics: []string{SWD}, N: 24, Seed: 3})
	require.NoError(t, err)
	defer ev.Release()
	self, err := ev.Compare(ref)
	require.NoError(t, err)
	require.InDelta(t, 0, *self.SWD, 1e-9)
	other, err := ev.Compare(blobs(24, 3, 16, 2))
	require.NoError(t, err)
	noise := blobs(24, 3, 16, 2)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range noise.Pix {
		noise.Pix[i] = float32(rng.Float64()*2 - 1)
	}
	far, err := ev.Compare(noise)
	require.NoError(t, err)
	require.Greater(t, *other.SWD, *self.SWD)
	require.Greater(t, *far.SWD, *other.SWD, "noise is further from blobs than other blobs are")
	require.Nil(t, far.KID)
	require.Equal(t, []string{"16"}, keys(far.SWDLevels))

	_, err = ev.Compare(blobs(4, 1, 16, 2))
	require.ErrorContains(t, err, "images of 1x16x16 against a reference of 3x16x16")
}

func keys(m map[string]float64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestNewErrors(t *testing.T) {
	d := testDevice.Get(t)
	ref := blobs(4, 3, 16, 1)
	_, err := New(d, blobs(1, 3, 16, 1), Options{Metrics: []string{SWD}, N: 4})
	require.ErrorContains(t, err, "reference set has 1 images")
	_, err = New(d, ref, Options{Metrics: []string{SWD}, N: 1})
	require.ErrorContains(t, err, "-n 1")
	_, err = New(d, ref, Options{Metrics: []string{KID}, N: 4})
	require.ErrorIs(t, err, quality.ErrNoInception)
}

// With (random) Inception weights, KID and FID come out finite, a set
// scores 0 FID against itself, and the reference features are cached.
func TestInceptionMetrics(t *testing.T) {
	d := testDevice.Get(t)
	weights := randomInceptionFile(t)

	ref := blobs(6, 3, 16, 1)
	ref.Hash = "blobs-1"
	cache := t.TempDir()
	opt := Options{Metrics: []string{SWD, KID, FID}, Inception: weights, N: 6, Seed: 1, Batch: 4, CacheDir: cache}
	ev, err := New(d, ref, opt)
	require.NoError(t, err)
	defer ev.Release()
	r, err := ev.Compare(blobs(6, 3, 16, 2))
	require.NoError(t, err)
	require.NotNil(t, r.KID)
	require.NotNil(t, r.FID)
	require.False(t, math.IsNaN(*r.KID) || math.IsNaN(*r.FID))
	require.Equal(t, quality.FIDMode, r.FIDMode)
	require.NotEmpty(t, r.Warnings, "6 samples for 2048 dimensions deserve a warning")
	files, err := filepath.Glob(filepath.Join(cache, "features-*.safetensors"))
	require.NoError(t, err)
	require.Len(t, files, 1, "the reference features are cached")

	self, err := ev.Compare(ref)
	require.NoError(t, err)
	t.Logf("FID %g against other blobs, %g against itself", *r.FID, *self.FID)
	require.Less(t, math.Abs(*self.FID), 1e-6*math.Abs(*r.FID))
}

// randomInceptionFile writes the FID Inception with Init's random weights
// as a safetensors file (the network's names and shapes do not depend on
// the image side).
func randomInceptionFile(t *testing.T) string {
	t.Helper()
	net, err := engine.FIDInception(16)
	require.NoError(t, err)
	params, stats := net.Init(rand.New(rand.NewPCG(1, 2)))
	var ts []safetensors.Tensor
	for _, s := range append(append([]engine.ParamSpec{}, net.Params...), net.Stats...) {
		v := params[s.Name]
		if v == nil {
			v = stats[s.Name]
		}
		ts = append(ts, safetensors.Tensor{Name: s.Name, DType: safetensors.F32, Shape: s.Shape, F32: v})
	}
	weights := filepath.Join(t.TempDir(), "inception.safetensors")
	require.NoError(t, safetensors.WriteFile(weights, ts, nil))
	return weights
}
