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

// openDirect opens f's file again for writing with O_DIRECT, or returns nil when that is
// refused.
func openDirect(f *os.File) *os.File {
	df, err := os.OpenFile(f.Name(), os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return df
}

// errInvalid is the error of a direct write the file system does not take.
var errInvalid error = unix.EINVAL

// alloc returns n bytes of memory outside the Go heap (so that the buffers do not raise
// the garbage collector's target), at a page boundary, as O_DIRECT needs; nil if the
// system refuses them.
func alloc(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil
	}
	return b
}

func free(b []byte) { unix.Munmap(b) }
