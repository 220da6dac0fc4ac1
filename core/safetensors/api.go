package safetensors

// API skeleton: signatures agreed between packages. Bodies are filled in by the
// safetensors work; everything here may gain fields, none may change meaning.

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"freelunch/core/dtype"
)

// Sentinel errors; callers use errors.Is.
var (
	ErrFormat         = errors.New("safetensors: invalid format")
	ErrHeaderTooLarge = errors.New("safetensors: header too large")
	ErrNotFound       = errors.New("safetensors: not found")
)

// MaxHeaderSize is the largest header length accepted (bytes of JSON).
const MaxHeaderSize = 100_000_000

// A FormatError reports a malformed file: which file, which tensor, where.
type FormatError struct {
	File, Tensor string // "" when unknown or header-level
	Offset       int64  // byte offset in File, -1 if none
	Msg          string
	Err          error // ErrFormat, ErrHeaderTooLarge, ...; returned by Unwrap
}

// Error formats e as "safetensors: FILE: tensor "NAME" at byte 0xOFF: MSG", leaving out
// the parts that are unknown.
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("safetensors: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	switch {
	case e.Tensor != "" && e.Offset >= 0:
		fmt.Fprintf(&b, "tensor %q at byte %#x: ", truncate(e.Tensor, 200), e.Offset)
	case e.Tensor != "":
		fmt.Fprintf(&b, "tensor %q: ", truncate(e.Tensor, 200))
	case e.Offset >= 0:
		fmt.Fprintf(&b, "at byte %#x: ", e.Offset)
	}
	b.WriteString(e.Msg)
	return b.String()
}
func (e *FormatError) Unwrap() error { return e.Err }

// TensorInfo describes one tensor of a file. Start and End are byte offsets
// relative to the start of the data section.
type TensorInfo struct {
	Name       string
	DType      dtype.DType
	Shape      []int64
	Start, End int64
}

// NumElements returns the product of Shape (1 for a scalar).
func (t *TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Size returns End-Start, the tensor's size in bytes.
func (t *TensorInfo) Size() int64 { return t.End - t.Start }

// File is an opened safetensors file: its validated header and a ReaderAt for the data.
// Tensors may be read concurrently.
type File struct {
	Name       string            // name used in errors
	Metadata   map[string]string // __metadata__, nil if absent
	Tensors    []TensorInfo      // sorted by Start
	DataOffset int64             // 8 + header length

	r     io.ReaderAt
	size  int64          // total file size
	index map[string]int // Tensors index by name
}

// Open validates the header of the safetensors file r of the given size; it reads only the header.
//
// The header must be an 8-byte little-endian length n (at most MaxHeaderSize and at most size-8),
// then n bytes of UTF-8 JSON: an object whose optional "__metadata__" maps strings to strings and
// whose other keys name tensors, each {"dtype", "shape", "data_offsets": [start, end]} with a known
// dtype, non-negative dimensions and end-start = elements × dtype size; the tensors, sorted by
// offset, must cover the data section after the header exactly. Trailing spaces (padding) after
// the JSON object are allowed; unpadded headers are too.
//
// A malformed file gives a *FormatError wrapping ErrHeaderTooLarge (length over MaxHeaderSize)
// or ErrFormat (anything else); it names the tensor and the offending value. A read error is
// returned wrapped, io.ErrUnexpectedEOF when r ends before size. Open allocates in proportion to
// the header, never to a length read from the file before it is checked against size.
func Open(r io.ReaderAt, size int64, name string) (*File, error) { return open(r, size, name) }

// Size returns the file size given to Open.
func (f *File) Size() int64 { return f.size }

// Lookup returns the named tensor, or nil.
func (f *File) Lookup(name string) *TensorInfo {
	i, ok := f.index[name]
	if !ok {
		return nil
	}
	return &f.Tensors[i]
}

// ReadTensorAt reads len(p) bytes of tensor t starting off bytes into the tensor.
// Reading past the tensor's end is an error.
// It reads through a single ReadAt into p and allocates nothing; an error names the file and
// the tensor, and a file shorter than its header says gives io.ErrUnexpectedEOF.
func (f *File) ReadTensorAt(t *TensorInfo, p []byte, off int64) error {
	n := int64(len(p))
	if off < 0 || off > t.Size() || n > t.Size()-off {
		return fmt.Errorf("safetensors: %s: tensor %q: read of %d bytes at %d is outside its %d bytes", f.Name, t.Name, n, off, t.Size())
	}
	if t.Start < 0 || t.End > f.size-f.DataOffset {
		return fmt.Errorf("safetensors: %s: tensor %q: data_offsets [%d, %d] are outside the data section", f.Name, t.Name, t.Start, t.End)
	}
	if n == 0 {
		return nil
	}
	if err := readFull(f.r, p, f.DataOffset+t.Start+off); err != nil {
		return fmt.Errorf("safetensors: %s: tensor %q: read %d bytes at %d: %w", f.Name, t.Name, n, off, err)
	}
	return nil
}

// TensorSpec is one output tensor of a Writer.
type TensorSpec struct {
	Name  string
	DType dtype.DType
	Shape []int64
}

// Shard is one output file of a sharded model.
type Shard struct {
	FileName string // "model.safetensors" or "model-00001-of-00003.safetensors"
	Specs    []TensorSpec
	Size     int64 // total file size including header
}

// FS opens the files of models: natively the OS (OSFS), in the browser the dropped files.
// Names are slash-separated paths as given by the user, joined with path.Join.
type FS interface {
	Open(name string) (Blob, error)
}

// Blob is an open file.
type Blob interface {
	io.ReaderAt
	Size() int64
	Close() error
}

// Tensor is a tensor of a Model: its info and the shard that holds it.
type Tensor struct {
	TensorInfo
	Shard string // shard file name ("model.safetensors" for a single file)
	file  *File
}

// Model is a model of design.md §2: a folder with model.safetensors or an index plus shards,
// or a single .safetensors file. Opening reads headers only.
type Model struct {
	Path string // as given to OpenModel
	Dir  string // folder holding the model's files ("" when a single file's folder is unknown)

	fsys    FS
	shards  []modelShard
	tensors []*Tensor
	byName  map[string]*Tensor
}

// modelShard is one open file of a Model.
type modelShard struct {
	name string // file name as in the index
	blob Blob
	file *File
}

// OSFS is the native FS: names are OS paths.
//
// Open opens a regular file with os.Open. Opening a folder fails with an error for which
// OpenModel then looks inside it; other FS implementations (the browser's dropped files) need
// not know folders at all: OpenModel tries the folder's index and model.safetensors by name.
type OSFS struct{}

// ShapeString formats a shape for a message, as fmt's %v does ("[4096 11008]"), but
// with at most 8 dimensions written out: a header may declare thousands, and an error
// must stay one readable line.
func ShapeString(shape []int64) string {
	const most = 8
	if len(shape) <= most {
		return fmt.Sprint(shape)
	}
	return fmt.Sprintf("%v … (%d dimensions)", shape[:most], len(shape))
}
