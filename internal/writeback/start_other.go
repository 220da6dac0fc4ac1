//go:build !linux

package writeback

import "os"

// start does nothing here: the later fsync writes everything back.
func start(f *os.File, off, n int64) {}
