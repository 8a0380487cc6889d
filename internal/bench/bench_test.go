package bench

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"vkgan/engine"
	"vkgan/vk"
)

func TestCaseTable(t *testing.T) {
	cs := Cases()
	seen := map[string]bool{}
	for _, c := range cs {
		assert.False(t, seen[c.Name()], "duplicate case %q", c.Name())
		seen[c.Name()] = true
		assert.NotNil(t, c.Op, c.Name())
		assert.NotEmpty(t, c.Tensors, c.Name())
	}
	for _, name := range []string{
		"matmul 1024x1024x1024", "matmul_tn 1024x1024x1024", "matmul_nt 1024x1024x1024",
		"conv 64x3x64x64->64 k4s2p1", "conv 64x512x4x4->1 k4s1p0",
		"conv_bwd_data 64x128x16x16->256 k4s2p1", "conv_bwd_weights 64x256x8x8->512 k4s2p1",
		"deconv 64x100x1x1->512 k4s1p0", "deconv 64x64x32x32->3 k4s2p1", "fill 16M",
	} {
		assert.True(t, seen[name], "missing case %q", name)
	}
}

func find(t *testing.T, name string) Case {
	t.Helper()
	for _, c := range Cases() {
		if c.Name() == name {
			return c
		}
	}
	t.Fatalf("no case %q", name)
	return Case{}
}

func TestWorkCounts(t *testing.T) {
	for _, tc := range []struct {
		name         string
		flops, bytes float64
	}{
		{"matmul 1024x1024x1024", 2 << 30, 3 * 4 << 20},
		// D layer 1: y [64,64,32,32], x [64,3,64,64], w [64,3,4,4].
		{"conv 64x3x64x64->64 k4s2p1", 2 * 64 * 64 * 32 * 32 * 3 * 16, 4 * (64*64*32*32 + 64*3*64*64 + 64*3*16)},
		{"conv_bwd_weights 64x3x64x64->64 k4s2p1", 2 * 64 * 64 * 32 * 32 * 3 * 16, 4 * (64*64*32*32 + 64*3*64*64 + 64*3*16)},
		// D's last layer: 4x4 -> 1x1.
		{"conv 64x512x4x4->1 k4s1p0", 2 * 64 * 1 * 1 * 512 * 16, 4 * (64 + 64*512*16 + 512*16)},
		// G's first layer: 1x1 -> 4x4, each input pixel scattered into 16 outputs.
		{"deconv 64x100x1x1->512 k4s1p0", 2 * 64 * 100 * 512 * 16, 4 * (64*512*16 + 64*100 + 100*512*16)},
		// G's last layer: 32x32 -> 64x64.
		{"deconv 64x64x32x32->3 k4s2p1", 2 * 64 * 64 * 32 * 32 * 3 * 16, 4 * (64*3*64*64 + 64*64*32*32 + 64*3*16)},
		{"fill 16M", 0, 4 << 24},
	} {
		c := find(t, tc.name)
		assert.Equal(t, tc.flops, c.Flops, "%s FLOPs", tc.name)
		assert.Equal(t, tc.bytes, c.Bytes(), "%s bytes", tc.name)
	}
}

func TestFilter(t *testing.T) {
	cs := Cases()
	assert.Len(t, Filter(cs, "matmul"), 3)
	assert.Len(t, Filter(cs, "deconv"), 5)
	assert.Len(t, Filter(cs, "conv_bwd"), 10)
	assert.Len(t, Filter(cs, ""), len(cs))
	assert.Empty(t, Filter(cs, "nope"))
}

func TestMaxCPUMHz(t *testing.T) {
	mhz, ok := maxCPUMHz(strings.NewReader("processor\t: 0\ncpu MHz\t\t: 1200.000\nflags\t: fma avx2\n\nprocessor\t: 1\ncpu MHz\t\t: 3400.5\n"))
	require.True(t, ok)
	assert.Equal(t, 3400.5, mhz)
	_, ok = maxCPUMHz(strings.NewReader("processor : 0\nBogoMIPS : 50.00\n")) // arm64 has no cpu MHz
	assert.False(t, ok)
}

func TestPeak(t *testing.T) {
	t.Setenv(PeakEnv, "")
	_, _, ok, err := Peak(vk.DeviceInfo{Type: vk.Discrete})
	require.NoError(t, err)
	assert.False(t, ok, "a GPU's peak is unknown without "+PeakEnv)
	if _, err := os.Stat("/proc/cpuinfo"); err == nil {
		g, how, ok, err := Peak(vk.DeviceInfo{Type: vk.CPU})
		require.NoError(t, err)
		if ok {
			assert.Positive(t, g)
			assert.Contains(t, how, "FLOP/cycle")
		}
	}
	t.Setenv(PeakEnv, "1234.5")
	g, how, ok, err := Peak(vk.DeviceInfo{Type: vk.Discrete})
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 1234.5, g)
	assert.Equal(t, PeakEnv, how)
	for _, bad := range []string{"fast", "-3", "0"} {
		t.Setenv(PeakEnv, bad)
		_, _, _, err := Peak(vk.DeviceInfo{Type: vk.CPU})
		assert.Error(t, err, bad)
	}
}

func TestMedian(t *testing.T) {
	assert.Equal(t, 0.0, median(nil))
	assert.Equal(t, 2.0, median([]float64{3, 1, 2}))
	assert.Equal(t, 2.5, median([]float64{4, 1, 3, 2}))
}

func TestRunOnDevice(t *testing.T) {
	d, err := engine.Open(vk.Options{})
	if err != nil {
		if os.Getenv("VKGAN_REQUIRE_DEVICE") == "1" {
			t.Fatalf("no Vulkan device and VKGAN_REQUIRE_DEVICE=1: %v", err)
		}
		t.Skipf("no Vulkan device: %v", err)
	}
	defer func() {
		assert.Empty(t, d.ValidationMessages())
		require.NoError(t, d.Close())
	}()
	fill := Case{Kernel: "fill", Shape: "1000", Tensors: [][]int{{1000}}, Flops: 1000,
		Op: func(r *engine.Recorder, ts []*engine.Tensor, _ *engine.Counter) error { return r.Fill(ts[0], 1) }}
	res, err := Run(d, fill, 3, 1, 100)
	require.NoError(t, err)
	assert.Equal(t, "fill", res.Kernel)
	assert.Equal(t, d.Info().Name, res.Device)
	assert.Positive(t, res.Ms)
	assert.InDelta(t, 4000/(res.Ms/1e3)/1e9, res.GBps, 1e-9)
	require.NotNil(t, res.Fraction)
	assert.InDelta(t, res.GFLOPS/100, *res.Fraction, 1e-12)
	assert.Empty(t, res.Variant, "fill runs no GEMM")

	// A GEMM case names the variant that ran.
	res, err = Run(d, gemm("matmul_nt", 33, 17, 9, false, true), 1, 1, 0)
	require.NoError(t, err)
	assert.Regexp(t, `^igemm wg\d+ tm\d+`, res.Variant)

	// A failing op is an error for that case, not a panic.
	broken := Case{Kernel: "broken", Shape: "1", Tensors: [][]int{{1}},
		Op: func(r *engine.Recorder, ts []*engine.Tensor, _ *engine.Counter) error {
			return errors.New("engine: broken: not implemented")
		}}
	_, err = Run(d, broken, 1, 1, 0)
	assert.ErrorContains(t, err, "not implemented")
	_, err = Run(d, fill, 0, 1, 0)
	assert.Error(t, err, "repeat 0")
}
