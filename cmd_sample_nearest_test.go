package main

import (
	"fmt"
	"image"
	"image/color"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/internal/testimg"
	"vkgan/train/grid"
)

// TestSampleNearestCLI trains a tiny DCGAN for two steps and draws its
// samples beside their nearest training images in pixel space: a PNG of
// 1+k columns by n rows, and a report naming the space and the files.
func TestSampleNearestCLI(t *testing.T) {
	hasDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("VKGAN_INCEPTION", "") // pixel space, whatever the machine has
	data := t.TempDir()
	require.NoError(t, testimg.WritePNGs(data, 6, 20, 20, func(i int, img *image.RGBA) {
		for p := range img.Pix {
			img.Pix[p] = uint8(41*i + p)
		}
		img.Set(0, 0, color.White)
	}))
	run := filepath.Join(t.TempDir(), "run")
	code, _, errOut := runCLI("train", "-steps", "2", "-out", run, "-data", data, "-size", "32", "-batch", "4",
		"-nz", "8", "-ngf", "4", "-ndf", "4", "-log-every", "1", "-sample-every", "2", "-checkpoint-every", "2")
	require.Equal(t, 0, code, errOut)

	out := filepath.Join(t.TempDir(), "nearest.png")
	code, stdout, errOut := runCLI("sample", "-run", run, "-nearest", "-k", "3", "-n", "4", "-out", out)
	require.Equal(t, 0, code, errOut)
	img := decodePNG(t, out)
	const side, k, n = 32, 3, 4
	require.Equal(t, (1+k)*(side+grid.Border)+grid.Border, img.Bounds().Dx(), "1+k columns")
	require.Equal(t, n*(side+grid.Border)+grid.Border, img.Bounds().Dy(), "n rows")
	require.Contains(t, stdout, "4 samples of step 2, each beside its 3 nearest of 6 training images by L2 distance in pixel space (3x32x32")
	require.Contains(t, errOut, "nearest by pixels")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 1+n, stdout)
	for i, l := range lines[1:] {
		require.True(t, strings.HasPrefix(l, fmt.Sprintf("  row %d: ", i+1)), l)
		require.Equal(t, k, strings.Count(l, ".png"), "k file names: %s", l)
	}

	// -n defaults to 8 rows with -nearest, -k to 5.
	code, _, errOut = runCLI("sample", "-run", run, "-nearest", "-out", out)
	require.Equal(t, 0, code, errOut)
	img = decodePNG(t, out)
	require.Equal(t, 6*(side+grid.Border)+grid.Border, img.Bounds().Dx())
	require.Equal(t, 8*(side+grid.Border)+grid.Border, img.Bounds().Dy())

	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"-nearest", "-interp"}, "-nearest and -interp"},
		{[]string{"-nearest", "-k", "0"}, "-k 0 must be in 1..32"},
		{[]string{"-nearest", "-k", "33"}, "-k 33 must be in 1..32"},
		{[]string{"-k", "3"}, "-k is for -nearest"},
		{[]string{"-nearest", "-k", "7"}, "-k 7 but the run's data"},
		{[]string{"-nearest", "-inception", filepath.Join(data, "none.pth")}, "Inception weights"},
	} {
		code, _, errOut := runCLI(append([]string{"sample", "-run", run, "-out", out}, c.args...)...)
		require.Equal(t, 1, code, "%v", c.args)
		require.Contains(t, errOut, c.err, "%v", c.args)
	}
}
