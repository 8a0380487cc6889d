// Package atomicfile writes files so that a crash, a kill or a full disk
// at any moment leaves either the old file or the new one, whole: the
// content goes to a temporary file in the same directory, which is
// synced, renamed over the target, and the directory synced.
//
// It also holds the hooks through which tests fail a write midway or stop
// the process between two changes to the disk (Hooks, BeforeChange): every
// file a run writes goes through here, so one hook sees them all.
//
// Error messages keep the "train: " prefix that vkgan's commands have
// always printed for these failures.
package atomicfile
