package torchfile

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGenerated regenerates the fixtures with Debian's torch, when it is
// installed, and checks that they match the committed ones: expected.json
// and the zip files byte for byte (torch writes them deterministically),
// the legacy files by what they decode to (their storage keys are memory
// addresses). A failure here means gen.py or torch changed: rerun gen.py
// into testdata and commit.
func TestGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Python")
	}
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import torch").Run(); err != nil {
		t.Skipf("%s with torch not available: %v", py, err)
	}
	t.Parallel()
	dir := t.TempDir()
	out, err := exec.Command(py, "testdata/gen.py", dir).CombinedOutput()
	require.NoError(t, err, "gen.py: %s", out)

	names := func(d string) []string {
		m, err := filepath.Glob(filepath.Join(d, "*"))
		require.NoError(t, err)
		var s []string
		for _, p := range m {
			fi, err := os.Stat(p)
			require.NoError(t, err)
			if b := filepath.Base(p); b != "gen.py" && fi.Mode().IsRegular() {
				s = append(s, b)
			}
		}
		return s
	}
	require.Equal(t, names("testdata"), names(dir), "gen.py writes other files than testdata holds")
	for _, n := range names(dir) {
		if filepath.Ext(n) == ".pt" && !strings.HasSuffix(n, "_zip.pt") {
			continue
		}
		want, err := os.ReadFile(filepath.Join("testdata", n))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(dir, n))
		require.NoError(t, err)
		if !bytes.Equal(want, got) {
			t.Errorf("testdata/%s differs from what gen.py writes now", n)
		}
	}
	checkFixtures(t, dir)
}
