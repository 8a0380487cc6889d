//go:build unix

// Package rss reports the process's peak resident set size, the figure
// compared with PyTorch's (resource.getrusage) in the benchmarks.
package rss

import (
	"runtime"
	"syscall"
)

// Peak is the process's peak resident set size in bytes, or 0 when the
// system does not say.
func Peak() uint64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil || ru.Maxrss <= 0 {
		return 0
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return uint64(ru.Maxrss) // bytes there, kilobytes elsewhere
	}
	return uint64(ru.Maxrss) << 10
}
