// Package devtest shares one Vulkan device among a package's tests. The
// device is opened on first use; without one a test skips, or fails when
// VKGAN_REQUIRE_DEVICE=1. A validation message fails the test during
// which it arrived, or the package at teardown.
package devtest

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// Shared is a package's test device of type D.
type Shared[D interface{ Close() error }] struct {
	open   func(onMessage func(string)) (D, error)
	once   sync.Once
	dev    D
	err    error
	opened bool
	mu     sync.Mutex
	msgs   []string
}

// New returns a Shared whose device open makes, passing it the function
// that collects validation messages.
func New[D interface{ Close() error }](open func(onMessage func(string)) (D, error)) *Shared[D] {
	return &Shared[D]{open: open}
}

// Collect records a validation message; pass it as the OnMessage of any
// other device a test opens.
func (s *Shared[D]) Collect(msg string) {
	s.mu.Lock()
	s.msgs = append(s.msgs, msg)
	s.mu.Unlock()
}

// Take returns the messages collected since the last call.
func (s *Shared[D]) Take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.msgs
	s.msgs = nil
	return m
}

// Get returns the device, opening it on the first call, and fails t at
// its end if a validation message arrives meanwhile.
func (s *Shared[D]) Get(t testing.TB) D {
	t.Helper()
	s.once.Do(func() {
		s.dev, s.err = s.open(s.Collect)
		s.opened = s.err == nil
	})
	SkipWithout(t, s.err)
	t.Cleanup(func() {
		if msgs := s.Take(); len(msgs) > 0 {
			t.Errorf("validation layer reported %d message(s):\n%s", len(msgs), strings.Join(msgs, "\n"))
		}
	})
	return s.dev
}

// Main runs the tests, closes the device and returns the exit code:
// call os.Exit(shared.Main(m)) from TestMain.
func (s *Shared[D]) Main(m *testing.M) int {
	code := m.Run()
	if !s.opened {
		return code
	}
	if err := s.dev.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "closing test device:", err)
		code = 1
	}
	if msgs := s.Take(); len(msgs) > 0 {
		fmt.Fprintf(os.Stderr, "validation messages at teardown:\n%s\n", strings.Join(msgs, "\n"))
		code = 1
	}
	return code
}

// SkipWithout skips t when err says a device could not be opened, or
// fails it when VKGAN_REQUIRE_DEVICE=1.
func SkipWithout(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("VKGAN_REQUIRE_DEVICE") == "1" {
		t.Fatalf("no Vulkan device and VKGAN_REQUIRE_DEVICE=1: %v", err)
	}
	t.Skipf("no Vulkan device: %v", err)
}
