package writeback

import (
	"os"

	"golang.org/x/sys/unix"
)

// start asks the kernel to begin writing back bytes [off, off+n) of f. Failure is not an
// error: the later fsync writes them and reports what goes wrong.
func start(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
