package writeback

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestWriter writes a little more than three writeback steps in uneven pieces and reads
// the file back: starting writeback must not change what the file holds.
func TestWriter(t *testing.T) {
	name := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w := New(f)
	want := make([]byte, 3*Every+12345)
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
	if w.off != int64(len(want)) || w.off-w.started >= Every {
		t.Errorf("after %d bytes written, writeback started for only %d", w.off, w.started)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("file holds %d bytes, not the %d written", len(got), len(want))
	}
}

// TestWriterError: a write to a closed file fails as the file's own Write does.
func TestWriterError(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := New(f).Write([]byte("x")); err == nil {
		t.Error("Write to a closed file succeeded")
	}
}
