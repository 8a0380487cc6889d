//go:build !unix

package rss

// Peak is 0 where the process's peak resident set size is not available.
func Peak() uint64 { return 0 }
