package writeback

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestWriter writes files of several sizes in uneven pieces, through O_DIRECT (New, which
// must take it on Linux: the test's temporary folder is on a disk file system), through
// O_DIRECT from a misaligned buffer (refused with EINVAL: those blocks go through the page
// cache) and through the page cache, and reads them back: no way may change what a file
// holds.
func TestWriter(t *testing.T) {
	for _, size := range []int{0, 100, block, 2*block + 3*4096 + 123, 3*Every + 12345} {
		for _, mode := range []string{"direct", "misaligned", "cache"} {
			viaCache := mode == "cache"
			name := filepath.Join(t.TempDir(), "out")
			f, err := os.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			w := New(f)
			if viaCache {
				if w.d != nil {
					w.d.close()
				}
				w = &Writer{f: f}
			} else if runtime.GOOS == "linux" && w.d == nil {
				t.Fatalf("New did not open %s with O_DIRECT", name)
			}
			var orig []byte
			if mode == "misaligned" && w.d != nil {
				orig, w.d.buf[1] = w.d.buf[1], make([]byte, block+1)[1:]
			}
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(i * 7 / 3)
			}
			for p := want; len(p) > 0; {
				n := min(len(p), 5<<20+17)
				if k, err := w.Write(p[:n]); k != n || err != nil {
					t.Fatalf("Write = %d, %v; want %d, nil", k, err, n)
				}
				p = p[n:]
			}
			if viaCache && (w.off != int64(size) || w.off-w.started >= Every) {
				t.Errorf("after %d bytes written, writeback started for only %d", w.off, w.started)
			}
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			if orig != nil {
				w.d.buf[1] = orig // Close frees it
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("size %d, %s: file holds %d bytes, not the %d written", size, mode, len(got), len(want))
			}
		}
	}
}

// TestWriterError: a write that fails, at once or in the background, fails Write or
// Sync, as the file's own Write would.
func TestWriterError(t *testing.T) {
	// The file closed before New.
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	w := New(f)
	if _, err := w.Write([]byte("x")); err == nil && w.Sync() == nil {
		t.Error("Write and Sync to a closed file succeeded")
	}
	// The direct descriptor failing under a write in flight.
	if runtime.GOOS != "linux" {
		return
	}
	f, err = os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w = New(f)
	w.d.f.Close()
	data := make([]byte, 3*block)
	if _, err := w.Write(data); err == nil && w.Sync() == nil {
		t.Error("a failed direct write went unreported")
	}
}
