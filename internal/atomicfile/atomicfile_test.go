package atomicfile

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	require.NoError(t, WriteFile(path, []byte("one"), 0o600))
	require.NoError(t, WriteFile(path, []byte("two"), 0o644))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "two", string(b))
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
	}
	assert.Equal(t, []string{"config.json"}, dirNames(t, dir))

	err = WriteFile(filepath.Join(dir, "no", "such", "dir"), []byte("x"), 0o644)
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Contains(t, err.Error(), "train: write ")
}

// A bare file name writes into the working directory.
func TestWriteFileRelative(t *testing.T) {
	t.Chdir(t.TempDir())
	require.NoError(t, WriteFile("rel.txt", []byte("r"), 0o644))
	b, err := os.ReadFile("rel.txt")
	require.NoError(t, err)
	assert.Equal(t, "r", string(b))
}
