package safetensors

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"

	"freelunch/core/dtype"
)

// readChunk is the largest single ReadAt issued while reading a header or a side file;
// firstChunk is the first. Reads grow with the bytes already read, and the buffer doubles as
// they arrive, so a size that lies (a ReaderAt shorter than claimed) costs at most about four
// times the bytes that are there, never the claimed length.
const (
	readChunk  = 1 << 20
	firstChunk = 64 << 10
)

// lfsPrefix starts every Git LFS pointer file.
const lfsPrefix = "version https://git-lfs"

// formatErr returns a *FormatError wrapping ErrFormat.
func formatErr(file, tensor string, off int64, format string, args ...any) *FormatError {
	return &FormatError{File: file, Tensor: tensor, Offset: off, Msg: fmt.Sprintf(format, args...), Err: ErrFormat}
}

// readFull reads len(p) bytes at off from r; a short read is io.ErrUnexpectedEOF.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readBounded reads n bytes at off in chunks of at most readChunk, growing the buffer
// only as data arrives.
func readBounded(r io.ReaderAt, n, off int64) ([]byte, error) {
	buf := make([]byte, 0, min(n, firstChunk))
	for int64(len(buf)) < n {
		k := int(min(n-int64(len(buf)), readChunk, int64(max(len(buf), firstChunk))))
		if len(buf)+k > cap(buf) { // double, so that all the buffers sum to less than 4n
			nb := make([]byte, len(buf), min(n, int64(max(2*cap(buf), len(buf)+k))))
			copy(nb, buf)
			buf = nb
		}
		chunk := buf[len(buf) : len(buf)+k]
		if err := readFull(r, chunk, off+int64(len(buf))); err != nil {
			return nil, err
		}
		buf = buf[:len(buf)+k]
	}
	return buf, nil
}

// open implements Open.
func open(r io.ReaderAt, size int64, name string) (*File, error) {
	if size < 8 {
		return nil, formatErr(name, "", -1, "file is %d bytes, too short for the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if err := readFull(r, lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: %s: read header length: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize || n > uint64(size-8) {
		hint := ""
		switch {
		case isLFSPointer(r, size, lenBuf[:]):
			hint = " (looks like a Git LFS pointer, not the model file: fetch it with git lfs pull)"
		case string(lenBuf[:4]) == "GGUF" || string(lenBuf[:4]) == "FUGG":
			hint = " (looks like a GGUF file, not safetensors)"
		}
		if n > MaxHeaderSize {
			return nil, &FormatError{File: name, Offset: -1, Err: ErrHeaderTooLarge,
				Msg: fmt.Sprintf("header length %d exceeds the limit of %d bytes%s", n, MaxHeaderSize, hint)}
		}
		return nil, formatErr(name, "", -1, "header length %d exceeds the %d bytes after it%s", n, size-8, hint)
	}
	hdr, err := readBounded(r, int64(n), 8)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: read header: %w", name, err)
	}
	f, err := parseHeader(hdr, size, name)
	if err != nil {
		return nil, err
	}
	f.r = r
	return f, nil
}

// isLFSPointer reports whether the file starts like a Git LFS pointer.
func isLFSPointer(r io.ReaderAt, size int64, first8 []byte) bool {
	if size < int64(len(lfsPrefix)) || string(first8) != lfsPrefix[:8] {
		return false
	}
	buf := make([]byte, len(lfsPrefix))
	return readFull(r, buf, 0) == nil && string(buf) == lfsPrefix
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// describe names a JSON token for an error message.
func describe(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return strconv.Quote(v.String())
	case string:
		return "the string " + strconv.Quote(truncate(v, 64))
	case json.Number:
		return "the number " + truncate(string(v), 32)
	case bool:
		return strconv.FormatBool(v)
	}
	return fmt.Sprint(tok)
}

// numElements returns the product of shape, and false if it overflows int64.
func numElements(shape []int64) (int64, bool) {
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			// A zero dimension makes the product 0 whatever the rest is,
			// but an overflowing prefix is still rejected: no reader can index it.
			return 0, false
		}
		n = lo
	}
	return int64(n), true
}

// byteSize returns the product of shape times d's size, and false if it overflows int64.
func byteSize(d dtype.DType, shape []int64) (int64, bool) {
	n, ok := numElements(shape)
	if !ok {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(n), uint64(d.Size()))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}

// checkLayout sorts f.Tensors by offset and checks that they tile the data section of
// dataSize bytes exactly.
func (f *File) checkLayout(dataSize int64) error {
	slices.SortStableFunc(f.Tensors, func(a, b TensorInfo) int {
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.End, b.End)
	})
	for i, t := range f.Tensors {
		f.index[t.Name] = i
	}
	var pos int64
	for i := range f.Tensors {
		t := &f.Tensors[i]
		switch {
		case t.End > dataSize:
			return formatErr(f.Name, t.Name, -1,
				"data_offsets [%d, %d] end past the data section of %d bytes (file truncated?)", t.Start, t.End, dataSize)
		case t.Start > pos:
			return formatErr(f.Name, t.Name, f.DataOffset+pos,
				"data_offsets [%d, %d] leave bytes %d to %d of the data section unused", t.Start, t.End, pos, t.Start)
		case t.Start < pos:
			prev := f.Tensors[i-1].Name
			return formatErr(f.Name, t.Name, f.DataOffset+t.Start,
				"data_offsets [%d, %d] overlap tensor %q, which ends at %d", t.Start, t.End, prev, pos)
		}
		pos = t.End
	}
	if pos != dataSize {
		return formatErr(f.Name, "", f.DataOffset+pos,
			"tensors cover %d bytes but the data section has %d: %d trailing bytes", pos, dataSize, dataSize-pos)
	}
	return nil
}
