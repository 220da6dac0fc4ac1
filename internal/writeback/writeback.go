// Package writeback starts the disk writes of a file's data while the file is still being
// written, so that the fsync at its end (which the merge needs before it renames its output
// into place) finds little left to do.
//
// Without it Linux keeps a freshly written file in the page cache for up to 30 seconds, or
// until a tenth of memory is dirty, before writing it back: a merge of a few GB would then
// wait at its end for the whole output to reach the disk, about 1.5 s per GB on the
// development machine, after the arithmetic was over.
package writeback

import "os"

// Every is the number of bytes after which a Writer starts the writeback of what it wrote.
const Every = 32 << 20

// A Writer writes to a file and, every Every bytes, starts the writeback of those bytes
// without waiting for it (sync_file_range(2) with SYNC_FILE_RANGE_WRITE on Linux; nothing
// elsewhere). It changes nothing in what is written; Sync is still needed for durability.
type Writer struct {
	f       *os.File
	off     int64 // bytes written
	started int64 // bytes whose writeback was started
}

// New returns a Writer that writes to f from its current offset, taken as 0.
func New(f *os.File) *Writer { return &Writer{f: f} }

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.started >= Every {
		start(w.f, w.started, w.off-w.started)
		w.started = w.off
	}
	return n, err
}

// Sync flushes the file to stable storage.
func (w *Writer) Sync() error { return w.f.Sync() }

// Close closes the file.
func (w *Writer) Close() error { return w.f.Close() }
