// Package dirlock takes an exclusive lock on a directory for the life of a
// process, so that two programs never write one run directory at once.
//
// The lock is the kernel's (flock on a file in the directory), not a pid
// file: it goes away with the process however the process ends, kill -9
// included, and nothing stale is left to clean up. The file also holds the
// holder's pid and command line, so a second writer can say who has it.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileName is the lock file inside a locked directory. It stays there after
// the lock is released: removing it would race with a process that has just
// opened it.
const FileName = ".lock"

// ErrLocked is wrapped by the error Acquire returns when another process
// holds the lock.
var ErrLocked = errors.New("dirlock: directory in use")

// Lock is a held lock. Release it, or let the process end.
type Lock struct {
	f *os.File
}

// HeldError says which process holds a directory's lock.
type HeldError struct {
	Dir    string
	Holder string // "pid 123: vkgan train -out runs/x", or "" when unknown
}

func (e *HeldError) Error() string {
	who := "another process"
	if e.Holder != "" {
		who = e.Holder
	}
	return fmt.Sprintf("%q is in use by %s; wait for it to finish or stop it", e.Dir, who)
}

func (e *HeldError) Unwrap() error { return ErrLocked }

// Acquire creates dir if needed and locks it without waiting: when another
// process holds the lock it returns a *HeldError at once.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("dirlock: lock %q: %w", path, err)
	}
	if held {
		b, _ := os.ReadFile(path)
		f.Close()
		return nil, &HeldError{Dir: dir, Holder: strings.TrimSpace(string(b))}
	}
	// Who holds it, for the message a second writer gets.
	who := "pid " + strconv.Itoa(os.Getpid()) + ": " + strings.Join(os.Args, " ")
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(who+"\n"), 0)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock. It is safe on nil and more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Closing the descriptor releases the flock.
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("dirlock: %w", err)
	}
	return nil
}
