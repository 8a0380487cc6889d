package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestToyBadFlags checks that vkgan toy names every bad number and its
// value, all at once, before it opens a device or writes a file; none falls
// back to the protocol's value.
func TestToyBadFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "toy")
	code, _, errOut := runCLI("toy", "-out", out, "-lr-d", "NaN", "-lr-g", "-1", "-beta1", "-0.5", "-beta2", "1",
		"-batch", "-1", "-ema", "NaN", "-lr-decay", "NaN", "-noise", "NaN", "-noise-until", "-0.5",
		"-frame-every", "-1", "-log-every", "-2", "-steps", "-3")
	require.Equal(t, 1, code, errOut)
	for _, want := range []string{
		"train: toy: -lr-d NaN must be a positive number (0: the protocol's)",
		"train: toy: -lr-g -1 must be a positive number (0: the protocol's)",
		"train: toy: -beta1 -0.5 must be in [0, 1)",
		"train: toy: -beta2 1 must be in [0, 1)",
		"train: toy: -batch -1 must be in 1..1048576 (0: the protocol's)",
		"train: toy: -ema NaN must be in [0, 1) (0: off)",
		"train: toy: -lr-decay NaN must be a fraction of the steps in [0, 1]",
		"train: toy: -noise NaN must be in [0, 100) (0: none)",
		"train: toy: -noise-until -0.5 must be a fraction of the steps in (0, 1] (0: 0.5)",
		"train: toy: -frame-every -1 must be positive (0: 500)",
		"train: toy: -log-every -2 must be positive (0: 1000)",
		"train: toy: -steps -3 must be positive",
	} {
		assert.Contains(t, errOut, want)
	}
	assert.Equal(t, 12, strings.Count(errOut, "\n"), "one line per flag: %s", errOut)
	assert.NoDirExists(t, out, "nothing is written for a bad command line")

	// One bad flag is enough; -view waits for it too (no window opens).
	code, _, errOut = runCLI("toy", "-out", out, "-view", "-lr-d", "-0.001")
	require.Equal(t, 1, code)
	assert.Equal(t, "vkgan: train: toy: -lr-d -0.001 must be a positive number (0: the protocol's)\n", errOut)
	assert.NoDirExists(t, out)
}

func TestSampleOutChecks(t *testing.T) {
	run := t.TempDir() // no config.json: the -out checks come first
	dir := t.TempDir()
	code, _, errOut := runCLI("sample", "-run", run, "-out", dir)
	require.Equal(t, 1, code)
	assert.Equal(t, "vkgan: sample: -out \""+dir+"\" is a directory; give a PNG file name\n", errOut)

	code, _, errOut = runCLI("sample", "-run", run, "-out", "new-folder/")
	require.Equal(t, 1, code)
	assert.Contains(t, errOut, `sample: -out "new-folder/" is a directory; give a PNG file name`)

	missing := filepath.Join(dir, "no\nsuch", "s.png")
	code, _, errOut = runCLI("sample", "-run", run, "-out", missing, "-n", "1")
	require.Equal(t, 1, code)
	assert.Contains(t, errOut, "sample: -n 1 must be in 2..1024")
	assert.Contains(t, errOut, `folder "`+filepath.Join(dir, "no\\nsuch")+`" does not exist`)
	assert.Equal(t, 2, strings.Count(errOut, "\n"), "quoted names keep one line per error: %q", errOut)

	code, _, errOut = runCLI("sample", "-run", run, "-out", filepath.Join(dir, "s.png"))
	require.Equal(t, 1, code)
	assert.Equal(t, "vkgan: sample: -run \""+run+"\" holds no config.json; give the directory of a vkgan train run\n", errOut)
	_, err := os.Stat(filepath.Join(dir, "s.png"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestViewBadFlags checks the numbers before a window opens: with no
// display, a bad flag still says what to change, not "no display".
func TestViewBadFlags(t *testing.T) {
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	code, _, errOut := runCLI("view", "runs/x", "-frames", "-1", "-n", "0", "-width", "-5", "-height", "-6")
	require.Equal(t, 1, code, errOut)
	for _, want := range []string{
		"view: -frames -1 must be positive (0: until Q or Esc)",
		"view: -n 0 must be in 1..16",
		"view: -width -5 must be positive (0: the grid's size)",
		"view: -height -6 must be positive (0: the grid's size)",
	} {
		assert.Contains(t, errOut, want)
	}
	assert.NotContains(t, errOut, "display")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "17"}, "vkgan: view: -n 17 must be in 1..16\n"},
		{[]string{"-width", "640"}, "vkgan: view: -width 640 and -height 0: give both or neither\n"},
		{[]string{"-frames", "2", "-screenshot", t.TempDir()}, "is a directory; give a PNG file name\n"},
	} {
		code, _, errOut := runCLI(append([]string{"view", "runs/x"}, tc.args...)...)
		require.Equal(t, 1, code, "%v: %s", tc.args, errOut)
		assert.Contains(t, errOut, tc.want, "%v", tc.args)
	}
}
