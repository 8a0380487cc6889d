package atomicfile

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

// Hooks let a test fail a write, or stop the process, at a chosen moment.
// Only tests set them (through TestHooks); every field may be nil.
type Hooks struct {
	// Writer wraps the writer that receives a file's bytes, so a test can
	// make writing fail midway.
	Writer func(io.Writer) io.Writer
	// Stage runs before each later stage of a write ("sync", "rename");
	// an error fails the write there.
	Stage func(stage string) error
	// BeforeChange runs before each change to the disk that BeforeChange
	// (the function) announces; the kill test stops the process there
	// with SIGKILL.
	BeforeChange func(what string)
}

// TestHooks are the hooks in force. They are package state so that the
// code under test needs no parameter for them; tests that set them must
// not run in parallel with other writers, and reset them when done:
//
//	t.Cleanup(func() { atomicfile.TestHooks = atomicfile.Hooks{} })
var TestHooks Hooks

// WriteFile writes data to path so that a crash at any moment leaves
// either the old file or the new one, whole: it writes a temporary file in
// the same directory, syncs it, renames it over path and syncs the
// directory. The file gets exactly perm (the umask does not apply).
// Temporary files have unique names, so one left behind by a killed run
// does not get in the way.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write is WriteFile with the content produced by fill, which writes to a
// buffered writer on the temporary file. An error from fill leaves the old
// file as it was and no temporary file behind.
func Write(path string, perm os.FileMode, fill func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	BeforeChange("create " + base)
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
	if TestHooks.Writer != nil {
		w = TestHooks.Writer(w)
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
	if err := stage("sync"); err != nil {
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
	if err := stage("rename"); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	BeforeChange("rename " + base)
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("train: write %s: %w", path, err)
	}
	// The rename is only durable once the directory entry is on disk.
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("train: write %s: sync directory: %w", path, err)
	}
	return nil
}

func stage(name string) error {
	if TestHooks.Stage == nil {
		return nil
	}
	return TestHooks.Stage(name)
}

// SyncDir makes the entries of dir (a file created, renamed or removed
// there) durable.
func SyncDir(dir string) error {
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

// BeforeChange announces a change to the disk that is about to happen (a
// file written, renamed or removed), named by what. It does nothing but
// call TestHooks.BeforeChange, so a test can stop the process at any of
// the changes a run makes: Write announces its own, and the run
// directory's code announces the rest.
func BeforeChange(what string) {
	if TestHooks.BeforeChange != nil {
		TestHooks.BeforeChange(what)
	}
}
