package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkOutFile reports, before any work, why path (from -flag of command
// cmd) cannot become a PNG file: it names a directory, or its folder does
// not exist. Other problems (permissions, a full disk) surface when the
// file is written.
func checkOutFile(cmd, flag, path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	if (err == nil && fi.IsDir()) || os.IsPathSeparator(path[len(path)-1]) {
		return fmt.Errorf("%s: -%s %q is a directory; give a PNG file name", cmd, flag, path)
	}
	dir := filepath.Dir(path)
	fi, err = os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: -%s %q: folder %q does not exist; create it first", cmd, flag, path, dir)
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%s: -%s %q: %q is a file, not a folder", cmd, flag, path, dir)
	}
	return nil
}
