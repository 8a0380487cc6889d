package main

import (
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/internal/testimg"
)

// TestTuneCLI tunes a tiny DCGAN (quick candidate set, one timed run) into
// a temporary cache, then checks that train loads the table, that
// train -tune finds every shape of its step already there (vkgan tune
// records what train records), that bench names the variant that ran, and
// that a corrupt table is a warning, not an error.
func TestTuneCLI(t *testing.T) {
	hasDevice(t)
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	code, out, errOut := runCLI("tune", "-model", "dcgan", "-size", "16", "-batch", "2", "-width", "2", "-repeat", "1", "-near")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "tune: dcgan 16x16 batch 2 width 2 records")
	require.Contains(t, errOut, "tune: [1/")
	require.Contains(t, out, "shapes tuned in")
	require.Contains(t, out, "conv_bwd_data")
	files, err := filepath.Glob(filepath.Join(cache, "vkgan", "tune", "*.json"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	var table struct {
		Version int
		Entries map[string]struct{ Variant struct{ Kernel string } }
	}
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &table))
	require.Equal(t, 1, table.Version)
	require.NotEmpty(t, table.Entries)
	for k, e := range table.Entries {
		require.Equal(t, "igemm", e.Variant.Kernel, k)
	}

	data := t.TempDir()
	require.NoError(t, testimg.WritePNGs(data, 4, 16, 16, func(i int, img *image.RGBA) {
		for p := range img.Pix {
			img.Pix[p] = uint8(31*i + p)
		}
	}))
	trainArgs := []string{"train", "-data", data, "-size", "16", "-batch", "2", "-ngf", "2", "-ndf", "2", "-steps", "1", "-log-every", "1"}
	code, _, errOut = runCLI(append(trainArgs, "-out", filepath.Join(t.TempDir(), "run"))...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "GEMM tuning table for")
	require.Contains(t, errOut, "train: done")

	code, _, errOut = runCLI(append(trainArgs, "-tune", "-out", filepath.Join(t.TempDir(), "run"))...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "train: -tune: every GEMM shape was already in the table")
	require.NotContains(t, errOut, "tuned", "train recorded a GEMM shape vkgan tune did not")

	code, out, errOut = runCLI("bench", "-kernel", "matmul_nt", "-repeat", "1", "-json")
	require.Equal(t, 0, code, errOut)
	var res []struct{ Variant string }
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res, 1)
	require.True(t, strings.HasPrefix(res[0].Variant, "igemm wg"), res[0].Variant)

	require.NoError(t, os.WriteFile(files[0], []byte("{not json"), 0o644))
	code, out, errOut = runCLI("bench", "-kernel", "fill", "-repeat", "1")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "bench: warning: tuning table "+files[0]+" ignored: corrupt")
	require.Contains(t, out, "variant")
}

// TestTuneBadFlags: every bad flag at once, before a device is opened.
func TestTuneBadFlags(t *testing.T) {
	code, _, errOut := runCLI("tune", "-model", "resnet", "-size", "32,48", "-batch", "1", "-repeat", "0")
	require.Equal(t, 1, code)
	for _, want := range []string{`-model "resnet"`, `"48" is not one of`, "-batch 1", "-repeat 0"} {
		require.Contains(t, errOut, want)
	}
}
