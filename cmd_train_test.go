package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/internal/testimg"
)

// TestTrainSampleCLI trains a tiny DCGAN from a folder of images through
// the command line, resumes it, and writes a sample grid and an
// interpolation strip from its checkpoint.
func TestTrainSampleCLI(t *testing.T) {
	hasDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := t.TempDir()
	require.NoError(t, testimg.WritePNGs(data, 6, 20, 20, func(i int, img *image.RGBA) {
		for p := range img.Pix {
			img.Pix[p] = uint8(37*i + p)
		}
		img.Set(0, 0, color.White)
	}))
	run := filepath.Join(t.TempDir(), "run")
	common := []string{"-data", data, "-size", "32", "-batch", "4", "-nz", "8", "-ngf", "4", "-ndf", "4",
		"-log-every", "1", "-sample-every", "2", "-checkpoint-every", "2"}
	code, _, errOut := runCLI(append([]string{"train", "-steps", "2", "-out", run}, common...)...)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "train: done")
	code, _, errOut = runCLI("train", "-resume", run, "-steps", "4")
	require.Equal(t, 0, code, errOut)
	require.FileExists(t, filepath.Join(run, "samples", "step_0000004.png"))

	code, _, errOut = runCLI(append([]string{"train", "-steps", "2", "-out", run}, common...)...)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "-resume")

	grid := filepath.Join(t.TempDir(), "grid.png")
	code, out, errOut := runCLI("sample", "-run", run, "-n", "16", "-out", grid)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "step 4")
	cfg := decodePNG(t, grid)
	require.Equal(t, 4*32+5*2, cfg.Bounds().Dx(), "4x4 grid of 32-pixel images with 2-pixel borders")

	strip := filepath.Join(t.TempDir(), "strip.png")
	code, _, errOut = runCLI("sample", "-run", run, "-n", "5", "-interp", "-out", strip)
	require.Equal(t, 0, code, errOut)
	img := decodePNG(t, strip)
	require.Equal(t, 32+2*2, img.Bounds().Dy())

	code, _, errOut = runCLI("sample", "-run", t.TempDir(), "-out", grid)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "config.json")
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	return img
}

// TestConditionalCLI trains a tiny conditional model on a folder of class
// subfolders and draws a row per class, then one class.
func TestConditionalCLI(t *testing.T) {
	hasDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	data := t.TempDir()
	for i, class := range []string{"circles", "squares", "stars"} {
		dir := filepath.Join(data, class)
		require.NoError(t, os.Mkdir(dir, 0o755))
		require.NoError(t, testimg.WritePNGs(dir, 3, 20, 20, func(j int, img *image.RGBA) {
			for p := range img.Pix {
				img.Pix[p] = uint8(60*i + 7*j + p)
			}
		}))
	}
	run := filepath.Join(t.TempDir(), "run")
	code, _, errOut := runCLI("train", "-data", data, "-cond", "-class-dim", "4", "-loss", "hinge", "-sn", "-d-norm", "none",
		"-size", "32", "-batch", "4", "-nz", "8", "-ngf", "4", "-ndf", "4", "-steps", "2", "-out", run)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "3 classes: circles 3, squares 3, stars 3")

	grid := filepath.Join(t.TempDir(), "classes.png")
	code, _, errOut = runCLI("sample", "-run", run, "-class", "all", "-n", "5", "-out", grid)
	require.Equal(t, 0, code, errOut)
	img := decodePNG(t, grid)
	require.Equal(t, 5*32+6*2, img.Bounds().Dx(), "5 columns")
	require.Equal(t, 3*32+4*2, img.Bounds().Dy(), "a row per class")

	code, _, errOut = runCLI("sample", "-run", run, "-class", "squares", "-n", "4", "-out", grid)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = runCLI("sample", "-run", run, "-class", "dogs", "-out", grid)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `-class "dogs" is not one of the run's classes: all, circles, squares, stars`)

	code, _, errOut = runCLI("train", "-data", data, "-r1", "1", "-size", "32", "-steps", "1", "-out", filepath.Join(t.TempDir(), "r1"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "-d-norm none")
}
