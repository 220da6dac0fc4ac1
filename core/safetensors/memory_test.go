package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	"freelunch/core/dtype"
)

// countingReader is a ReaderAt that counts the bytes requested from it.
type countingReader struct {
	r         io.ReaderAt
	requested atomic.Int64
	largest   atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.requested.Add(int64(len(p)))
	for {
		l := c.largest.Load()
		if int64(len(p)) <= l || c.largest.CompareAndSwap(l, int64(len(p))) {
			break
		}
	}
	return c.r.ReadAt(p, off)
}

// allocated returns the bytes allocated while f runs (by f, if nothing else runs).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestHugeClaims opens small files whose headers claim huge sizes (header lengths, shapes,
// offsets up to 2^62 bytes): each fails with ErrFormat or ErrHeaderTooLarge, reads at most
// the file, and allocates a few KiB, not anything like the claimed size.
func TestHugeClaims(t *testing.T) {
	const e60 = "1152921504606846976"
	pad := func(b []byte) []byte { // to 1 KiB, as trailing data
		return append(b, make([]byte, 1024-len(b))...)
	}
	tests := []struct {
		name string
		file []byte
		size int64 // claimed size; 0 means len(file)
	}{
		{"2^60 data bytes", rawFile(`{"x":{"dtype":"U8","shape":[`+e60+`],"data_offsets":[0,`+e60+`]}}`, 900), 0},
		{"2^60 elements of F64", rawFile(`{"x":{"dtype":"F64","shape":[`+e60+`],"data_offsets":[0,0]}}`, 900), 0},
		{"2^60 offsets", rawFile(`{"x":{"dtype":"U8","shape":[0],"data_offsets":[`+e60+`,`+e60+`]}}`, 900), 0},
		{"header length 2^60", pad(binary.LittleEndian.AppendUint64(nil, 1<<60)), 0},
		{"header length at the limit", pad(binary.LittleEndian.AppendUint64(nil, MaxHeaderSize)), 0},
		{"size lies: header length 99 MB, 1 KiB present", pad(binary.LittleEndian.AppendUint64(nil, 99_000_000)), 1 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.size
			if size == 0 {
				size = int64(len(tt.file))
			}
			cr := &countingReader{r: bytes.NewReader(tt.file)}
			var err error
			n := allocated(func() { _, err = Open(cr, size, "huge") })
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrHeaderTooLarge) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("Open = %v, want a format error", err)
			}
			limit := uint64(16 << 10)
			if tt.size != 0 {
				limit = 256 << 10 // the first read chunk, then the reader ends
			}
			if n > limit {
				t.Errorf("Open allocated %d bytes, want at most %d", n, limit)
			}
			t.Logf("Open allocated %d bytes, requested %d bytes: %v", n, cr.requested.Load(), err)
			if tt.size == 0 && cr.requested.Load() > int64(len(tt.file)) {
				t.Errorf("Open requested %d bytes of a %d-byte file", cr.requested.Load(), len(tt.file))
			}
		})
	}
}

// TestOpenReadsOnlyHeader checks that Open requests exactly the header bytes.
func TestOpenReadsOnlyHeader(t *testing.T) {
	hdr, err := Header([]TensorSpec{{"x", dtype.F32, []int64{1000}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	file := append(hdr, make([]byte, 4000)...)
	cr := &countingReader{r: bytes.NewReader(file)}
	if _, err := Open(cr, int64(len(file)), "x"); err != nil {
		t.Fatal(err)
	}
	if got := cr.requested.Load(); got != int64(len(hdr)) {
		t.Errorf("Open requested %d bytes, want the %d of the header", got, len(hdr))
	}
}

// TestLargeSparseFile writes a header for a 6 GiB tensor and extends the file sparsely to its
// full size. Opening it allocates in proportion to the header, and reading the tensor in 1 MiB
// chunks through one buffer allocates nothing per chunk: memory holds one chunk.
func TestLargeSparseFile(t *testing.T) {
	const big = 6 << 30
	specs := []TensorSpec{{"small", dtype.F32, []int64{3}}, {"big", dtype.BF16, []int64{3 << 30}}, {"tail", dtype.U8, []int64{5}}}
	hdr, err := Header(specs, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "big.safetensors")
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Write(hdr); err != nil {
		t.Fatal(err)
	}
	size := int64(len(hdr)) + 12 + big + 5
	if err := fh.Truncate(size); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	if _, err := fh.WriteAt([]byte{1, 2, 3, 4, 5}, size-5); err != nil {
		t.Fatal(err)
	}

	var m *Model
	n := allocated(func() { m, err = OpenModel(OSFS{}, filepath.ToSlash(p)) })
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Logf("OpenModel of a %d-byte file with a %d-byte header allocated %d bytes", size, len(hdr), n)
	if n > 64<<10 {
		t.Errorf("OpenModel allocated %d bytes for a %d-byte header", n, len(hdr))
	}

	tn := m.Lookup("big")
	if tn == nil || tn.Size() != big {
		t.Fatalf("tensor big = %+v", tn)
	}
	chunk := make([]byte, 1<<20)
	// Read 16 chunks at the start, the middle and the end of the 6 GiB tensor, each into the
	// same buffer.
	offs := []int64{}
	for _, base := range []int64{0, big/2 - 8<<20, big - 16<<20} {
		for i := range int64(16) {
			offs = append(offs, base+i<<20)
		}
	}
	// Natively a read allocates nothing; under js/wasm the file system bridge allocates a few
	// small objects per call. Either way no read allocates anything like a chunk.
	n = allocated(func() {
		for _, off := range offs {
			if err := m.ReadAt(tn, chunk, off); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Logf("%d ReadAt calls of 1 MiB allocated %d bytes in all", len(offs), n)
	if perRead := n / uint64(len(offs)); perRead > 4<<10 {
		t.Errorf("ReadAt of a 1 MiB chunk allocated %d bytes per call, want a few at most", perRead)
	}
	if !bytes.Equal(chunk, make([]byte, len(chunk))) {
		t.Error("sparse chunk is not zero")
	}
	tail := make([]byte, 5)
	if err := m.ReadAt(m.Lookup("tail"), tail, 0); err != nil || !bytes.Equal(tail, []byte{1, 2, 3, 4, 5}) {
		t.Errorf("tail = %v, %v", tail, err)
	}
}

// TestLargeHeader opens a header of about 3 MB (read in growing chunks) with 20,000 tensors.
func TestLargeHeader(t *testing.T) {
	specs := make([]TensorSpec, 20000)
	for i := range specs {
		specs[i] = TensorSpec{Name: fmt.Sprintf("model.layers.%d.some.rather.long.tensor.name.to.make.the.header.big.weight", i),
			DType: dtype.U8, Shape: []int64{int64(i % 3), 1}}
	}
	hdr, err := Header(specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := len(specs) // 0+1+2 per 3 tensors
	file := append(hdr, make([]byte, data)...)
	total := int64(0)
	for i := range specs {
		total += int64(i % 3)
	}
	file = file[:int64(len(hdr))+total]
	cr := &countingReader{r: bytes.NewReader(file)}
	f, err := Open(cr, int64(len(file)), "big-header")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(specs) || cr.largest.Load() > readChunk || cr.requested.Load() != int64(len(hdr)) {
		t.Errorf("Open: %d tensors, largest read %d, requested %d of a %d-byte header", len(f.Tensors), cr.largest.Load(), cr.requested.Load(), len(hdr))
	}
}

// BenchmarkOpen opens a header of 100 tensors.
func BenchmarkOpen(b *testing.B) {
	specs := make([]TensorSpec, 100)
	for i := range specs {
		specs[i] = TensorSpec{Name: fmt.Sprintf("model.layers.%d.mlp.weight", i), DType: dtype.BF16, Shape: []int64{4, 8}}
	}
	hdr, err := Header(specs, map[string]string{"format": "pt"})
	if err != nil {
		b.Fatal(err)
	}
	file := append(hdr, make([]byte, 64*100)...)
	b.SetBytes(int64(len(hdr)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(bytes.NewReader(file), int64(len(file)), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}
