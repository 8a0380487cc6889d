package main

import (
	"encoding/json"
	"image"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"vkgan/engine/quality"
	"vkgan/internal/testimg"
	"vkgan/train/eval"
	"vkgan/train/rundir"
)

// vkgan eval scores a run's generator (a table, or one JSON object) and
// compares two folders; bad flags and missing weights say what to do.
func TestEvalCommand(t *testing.T) {
	hasDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(quality.InceptionEnv, "")
	run := filepath.Join(t.TempDir(), "run")
	args := append([]string{"train", "-steps", "2", "-out", run}, tinyTrainArgs(t)...)
	code, _, errOut := runCLI(args...)
	require.Equal(t, 0, code, errOut)

	code, out, errOut := runCLI("eval", "-run", run, "-n", "8")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "SWD only")
	require.Contains(t, errOut, "pt_inception-2015-12-05-6726825d.pth")
	require.Contains(t, out, "8 samples of G at step 2")
	require.Contains(t, out, "SWD x1e3")
	require.NotContains(t, out, "FID")

	code, out, errOut = runCLI("eval", "-run", run, "-n", "8", "-json", "-seed", "3")
	require.Equal(t, 0, code, errOut)
	var r eval.Result
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.Equal(t, 8, r.N)
	require.NotNil(t, r.SWD)
	require.Len(t, r.SWDLevels, 2, "32x32 images: levels 32 and 16")

	a, b := t.TempDir(), t.TempDir()
	for i, dir := range []string{a, b} {
		require.NoError(t, testimg.WritePNGs(dir, 5, 16, 16, func(k int, img *image.RGBA) {
			for p := range img.Pix {
				img.Pix[p] = uint8(40*k + 7*p*(i+1))
			}
		}))
	}
	code, out, errOut = runCLI("eval", "-data", a, "-ref", b, "-size", "16")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "5 images of")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval"}, "give -run DIR"},
		{[]string{"eval", "-run", run, "-ref", b}, "give -run DIR"},
		{[]string{"eval", "-ref", b}, "-ref needs -data DIR"},
		{[]string{"eval", "-run", run, "-n", "1"}, "-n 1 must be at least 2"},
		{[]string{"eval", "-run", run, "-metrics", "is"}, `unknown metric "is"`},
		{[]string{"eval", "-run", run, "-metrics", "fid"}, "download https://github.com/mseitzer/pytorch-fid"},
		{[]string{"eval", "-run", t.TempDir()}, "holds no config.json"},
		{[]string{"eval", "-run", run, "-inception", filepath.Join(b, "none.pth")}, "none.pth"},
	} {
		code, _, errOut := runCLI(c.args...)
		require.NotEqual(t, 0, code, "%v", c.args)
		require.Contains(t, errOut, c.want, "%v", c.args)
	}
}

// vkgan eval scores the same G's average as the training loop's last
// evaluation: same weights, seed and count give the same SWD, bit for bit.
func TestEvalMatchesTrainingEval(t *testing.T) {
	hasDevice(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(quality.InceptionEnv, "")
	run := filepath.Join(t.TempDir(), "run")
	args := append([]string{"train", "-steps", "3", "-out", run, "-seed", "5", "-ema", "0.9", "-eval-every", "3", "-eval-n", "8"}, tinyTrainArgs(t)...)
	code, _, errOut := runCLI(args...)
	require.Equal(t, 0, code, errOut)
	ms, err := rundir.ReadMetrics(filepath.Join(run, rundir.MetricsFile))
	require.NoError(t, err)
	last := ms[len(ms)-1]
	require.Equal(t, 3, last.Step)
	require.NotNil(t, last.SWD)

	code, out, errOut := runCLI("eval", "-run", run, "-n", "8", "-seed", "5", "-json")
	require.Equal(t, 0, code, errOut)
	var r eval.Result
	require.NoError(t, json.Unmarshal([]byte(out), &r), out)
	require.Equal(t, *last.SWD, *r.SWD, "the command and the training loop score the same average of G")
}
