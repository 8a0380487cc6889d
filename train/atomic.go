package train

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// Test hooks. testHookWriter wraps the writer that receives the file's bytes,
// so a test can make writing fail midway; testHookAtomic runs before each
// later stage ("sync", "rename") and can fail it.
var (
	testHookWriter func(io.Writer) io.Writer
	testHookAtomic func(stage string) error
)

// WriteFileAtomic writes data to path so that a crash at any moment leaves
// either the old file or the new one, whole: it writes a temporary file in
// the same directory, syncs it, renames it over path and syncs the directory.
// The file gets exactly perm (the umask does not apply). Temporary files have
// unique names, so one left behind by a killed run does not get in the way.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeAtomic is WriteFileAtomic with the content produced by fill, which
// writes to a buffered writer on the temporary file.
func writeAtomic(path string, perm os.FileMode, fill func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	writeStep("create " + base)
	f, err := os.CreateTemp(dir, base+".*.tmp")
	if err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()

	bw := bufio.NewWriterSize(f, 1<<20)
	var w io.Writer = bw
	if testHookWriter != nil {
		w = testHookWriter(w)
	}
	if err := fill(w); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	if err := atomicStage("sync"); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	// Without this sync a crash after the rename can leave a renamed but
	// empty file: the rename may reach the disk before the data.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("train: write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	if err := atomicStage("rename"); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	writeStep("rename " + base)
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	// The rename is only durable once the directory entry is on disk.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("train: write %s: sync directory: %w", path, err)
	}
	return nil
}

func atomicStage(stage string) error {
	if testHookAtomic == nil {
		return nil
	}
	return testHookAtomic(stage)
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		// Directories cannot be opened for syncing there; NTFS journals renames.
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some file systems cannot sync a directory and say so with EINVAL;
	// there is nothing more we can do on them.
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return err
	}
	return nil
}

// testHookWriteStep, when set, is called before each step that changes a
// run directory (a file written, renamed or removed), named by what. The
// kill test stops the process there with SIGKILL.
var testHookWriteStep func(what string)

func writeStep(what string) {
	if testHookWriteStep != nil {
		testHookWriteStep(what)
	}
}
