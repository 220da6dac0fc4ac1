package safetensors

// API skeleton: signatures agreed between packages. Bodies are filled in by the
// safetensors work; everything here may gain fields, none may change meaning.

import (
	"errors"
	"io"

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

func (e *FormatError) Error() string { panic("TODO") }
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
func (t *TensorInfo) NumElements() int64 { panic("TODO") }

// Size returns End-Start, the tensor's size in bytes.
func (t *TensorInfo) Size() int64 { return t.End - t.Start }

// File is an opened safetensors file: its validated header and a ReaderAt for the data.
// Tensors may be read concurrently.
type File struct {
	Name       string            // name used in errors
	Metadata   map[string]string // __metadata__, nil if absent
	Tensors    []TensorInfo      // sorted by Start
	DataOffset int64             // 8 + header length
	// unexported: r io.ReaderAt, size, index by name
}

// Open validates the header of the safetensors file r of the given size; it reads only the header.
func Open(r io.ReaderAt, size int64, name string) (*File, error) { panic("TODO") }

// Lookup returns the named tensor, or nil.
func (f *File) Lookup(name string) *TensorInfo { panic("TODO") }

// ReadTensorAt reads len(p) bytes of tensor t starting off bytes into the tensor.
// Reading past the tensor's end is an error.
func (f *File) ReadTensorAt(t *TensorInfo, p []byte, off int64) error { panic("TODO") }

// TensorSpec is one output tensor of a Writer.
type TensorSpec struct {
	Name  string
	DType dtype.DType
	Shape []int64
}

// Header returns the complete header bytes (8-byte length + JSON padded with spaces to a multiple of 8)
// for specs in the given order with contiguous offsets, and metadata (may be nil).
func Header(specs []TensorSpec, metadata map[string]string) ([]byte, error) { panic("TODO") }

// A Writer writes one safetensors file: the header at NewWriter, then each tensor's bytes in
// order through Write, in chunks of any size. Close fails if any tensor got too few bytes;
// Write fails if it gets too many.
type Writer struct{}

// NewWriter writes the header for specs to w and returns a Writer for the data.
func NewWriter(w io.Writer, specs []TensorSpec, metadata map[string]string) (*Writer, error) {
	panic("TODO")
}

// Write writes the next bytes of tensor data (tensors in spec order, no padding).
func (w *Writer) Write(p []byte) (int, error) { panic("TODO") }

// Close reports an error if fewer bytes than the specs need were written. It does not close w.
func (w *Writer) Close() error { panic("TODO") }

// Shard is one output file of a sharded model.
type Shard struct {
	FileName string // "model.safetensors" or "model-00001-of-00003.safetensors"
	Specs    []TensorSpec
	Size     int64 // total file size including header
}

// SplitShards splits specs (in order) into shards whose data sections do not exceed maxBytes
// (a tensor larger than maxBytes gets a shard of its own). One shard is named model.safetensors.
func SplitShards(specs []TensorSpec, maxBytes int64, metadata map[string]string) ([]Shard, error) {
	panic("TODO")
}

// IndexJSON returns model.safetensors.index.json for shards: metadata.total_size (sum of tensor
// bytes) and weight_map. Only meaningful for more than one shard.
func IndexJSON(shards []Shard) []byte { panic("TODO") }

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
	// unexported fields
}

// OpenModel opens the model at p in fsys: a folder, an index file, or a .safetensors file.
func OpenModel(fsys FS, p string) (*Model, error) { panic("TODO") }

// Tensors returns the model's tensors in model order (shards in order, each in data order).
func (m *Model) Tensors() []*Tensor { panic("TODO") }

// Lookup returns the named tensor, or nil.
func (m *Model) Lookup(name string) *Tensor { panic("TODO") }

// ReadAt reads len(p) bytes of t starting off bytes into the tensor.
func (m *Model) ReadAt(t *Tensor, p []byte, off int64) error { panic("TODO") }

// ReadFile reads a small file next to the model (config.json, tokenizer files), at most
// limit bytes; errors wrap ErrNotFound (fs.ErrNotExist) when it does not exist.
func (m *Model) ReadFile(name string, limit int64) ([]byte, error) { panic("TODO") }

// Metadata returns the __metadata__ of the model's first shard.
func (m *Model) Metadata() map[string]string { panic("TODO") }

// Close closes the model's open files.
func (m *Model) Close() error { panic("TODO") }

// OSFS is the native FS: names are OS paths.
type OSFS struct{}

func (OSFS) Open(name string) (Blob, error) { panic("TODO") }
