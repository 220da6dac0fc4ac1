package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"
)

// specSizes validates specs and returns each tensor's size in bytes and the total.
// Errors wrap ErrFormat and name the tensor and the value.
func specSizes(specs []TensorSpec) ([]int64, int64, error) {
	sizes := make([]int64, len(specs))
	seen := make(map[string]bool, len(specs))
	var total int64
	for i, s := range specs {
		switch {
		case s.Name == "__metadata__":
			return nil, 0, fmt.Errorf("%w: tensor name %q is reserved", ErrFormat, s.Name)
		case !utf8.ValidString(s.Name):
			return nil, 0, fmt.Errorf("%w: tensor name %q is not valid UTF-8", ErrFormat, s.Name)
		case seen[s.Name]:
			return nil, 0, fmt.Errorf("%w: tensor %q: duplicate name", ErrFormat, s.Name)
		case s.DType.Size() == 0:
			return nil, 0, fmt.Errorf("%w: tensor %q: invalid dtype %v", ErrFormat, s.Name, s.DType)
		}
		seen[s.Name] = true
		for _, d := range s.Shape {
			if d < 0 {
				return nil, 0, fmt.Errorf("%w: tensor %q: shape %v has a negative dimension", ErrFormat, s.Name, s.Shape)
			}
		}
		n, ok := byteSize(s.DType, s.Shape)
		if !ok || total+n < total {
			return nil, 0, fmt.Errorf("%w: tensor %q: shape %v of %v is too large", ErrFormat, s.Name, s.Shape, s.DType)
		}
		sizes[i] = n
		total += n
	}
	return sizes, total, nil
}

// appendQuoted appends s as a JSON string (no HTML escaping; s is valid UTF-8).
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// Header returns the complete header bytes (8-byte length + JSON padded with spaces to a multiple of 8)
// for specs in the given order with contiguous offsets, and metadata (may be nil).
//
// The JSON holds "__metadata__" first (keys sorted), then the tensors in spec order. Errors wrap
// ErrFormat: a duplicate, reserved ("__metadata__") or non-UTF-8 name, an invalid dtype, a negative
// dimension, a size that overflows int64, or non-UTF-8 metadata.
func Header(specs []TensorSpec, metadata map[string]string) ([]byte, error) {
	sizes, _, err := specSizes(specs)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 8, 8+64*len(specs)+64)
	b = append(b, '{')
	if metadata != nil {
		b = appendQuoted(b, "__metadata__")
		b = append(b, ":{"...)
		for i, k := range slices.Sorted(maps.Keys(metadata)) {
			v := metadata[k]
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("%w: metadata %q: not valid UTF-8", ErrFormat, k)
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = appendQuoted(b, k)
			b = append(b, ':')
			b = appendQuoted(b, v)
		}
		b = append(b, '}')
	}
	var off int64
	for i, s := range specs {
		if i > 0 || metadata != nil {
			b = append(b, ',')
		}
		b = appendQuoted(b, s.Name)
		b = append(b, `:{"dtype":`...)
		b = appendQuoted(b, s.DType.String())
		b = append(b, `,"shape":[`...)
		for j, d := range s.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, `],"data_offsets":[`...)
		b = strconv.AppendInt(b, off, 10)
		b = append(b, ',')
		off += sizes[i]
		b = strconv.AppendInt(b, off, 10)
		b = append(b, "]}"...)
	}
	b = append(b, '}')
	for len(b)%8 != 0 {
		b = append(b, ' ')
	}
	if len(b)-8 > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header of %d bytes exceeds the limit of %d", ErrHeaderTooLarge, len(b)-8, MaxHeaderSize)
	}
	binary.LittleEndian.PutUint64(b, uint64(len(b)-8))
	return b, nil
}

// A Writer writes one safetensors file: the header at NewWriter, then each tensor's bytes in
// order through Write, in chunks of any size. Close fails if any tensor got too few bytes;
// Write fails if it gets too many.
type Writer struct {
	w       io.Writer
	specs   []TensorSpec
	ends    []int64 // ends[i] is the data offset where tensor i ends
	total   int64   // data section size
	written int64   // data bytes written so far
	err     error   // sticky error of w
}

// NewWriter writes the header for specs to w and returns a Writer for the data.
// Errors are those of Header and of w.
func NewWriter(w io.Writer, specs []TensorSpec, metadata map[string]string) (*Writer, error) {
	sizes, total, err := specSizes(specs)
	if err != nil {
		return nil, err
	}
	hdr, err := Header(specs, metadata)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("safetensors: write header: %w", err)
	}
	ends := make([]int64, len(sizes))
	var off int64
	for i, n := range sizes {
		off += n
		ends[i] = off
	}
	return &Writer{w: w, specs: slices.Clone(specs), ends: ends, total: total}, nil
}

// ErrTooMuchData is returned (wrapped) by Writer.Write when it is given bytes past the last tensor.
var ErrTooMuchData = errors.New("safetensors: more data than the tensors hold")

// ErrTooLittleData is returned (wrapped) by Writer.Close when a tensor did not get all its bytes.
var ErrTooLittleData = errors.New("safetensors: less data than the tensors hold")

// tensorAt returns the index of the tensor holding data offset off (len(specs) past the end).
func (w *Writer) tensorAt(off int64) int {
	i, _ := slices.BinarySearchFunc(w.ends, off, func(end, off int64) int {
		if end <= off {
			return -1
		}
		return 1
	})
	return i
}

// Write writes the next bytes of tensor data (tensors in spec order, no padding).
// Given more bytes than remain, it writes none of p and returns an error wrapping ErrTooMuchData.
// Errors of the underlying writer are returned wrapped and are sticky.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if int64(len(p)) > w.total-w.written {
		last := "no tensors"
		if len(w.specs) > 0 {
			last = fmt.Sprintf("the last tensor %q ends at %d", w.specs[len(w.specs)-1].Name, w.total)
		}
		return 0, fmt.Errorf("%w: write of %d bytes at data offset %d, but %s", ErrTooMuchData, len(p), w.written, last)
	}
	n, err := w.w.Write(p)
	w.written += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("safetensors: write tensor data: %w", err)
		return n, w.err
	}
	return n, nil
}

// Close reports an error if fewer bytes than the specs need were written. It does not close w.
// The error wraps ErrTooLittleData and names the first tensor that is short.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.written < w.total {
		i := w.tensorAt(w.written)
		start := int64(0)
		if i > 0 {
			start = w.ends[i-1]
		}
		return fmt.Errorf("%w: tensor %q got %d of its %d bytes", ErrTooLittleData, w.specs[i].Name, w.written-start, w.ends[i]-start)
	}
	return nil
}

// SplitShards splits specs (in order) into shards whose data sections do not exceed maxBytes
// (a tensor larger than maxBytes gets a shard of its own). One shard is named model.safetensors.
//
// Several shards are named model-00001-of-0000N.safetensors and so on (five digits, as Hugging
// Face writes them). Every shard's header carries metadata. Errors are those of Header, and an
// error for maxBytes < 1.
func SplitShards(specs []TensorSpec, maxBytes int64, metadata map[string]string) ([]Shard, error) {
	if maxBytes < 1 {
		return nil, fmt.Errorf("safetensors: shard size %d is not positive", maxBytes)
	}
	sizes, _, err := specSizes(specs)
	if err != nil {
		return nil, err
	}
	var shards []Shard
	var cur int64
	for i, s := range specs {
		if len(shards) == 0 || (len(shards[len(shards)-1].Specs) > 0 && cur+sizes[i] > maxBytes) {
			shards = append(shards, Shard{})
			cur = 0
		}
		sh := &shards[len(shards)-1]
		sh.Specs = append(sh.Specs, s)
		cur += sizes[i]
	}
	if len(shards) == 0 {
		shards = append(shards, Shard{})
	}
	for i := range shards {
		sh := &shards[i]
		if len(shards) == 1 {
			sh.FileName = "model.safetensors"
		} else {
			sh.FileName = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		}
		hdr, err := Header(sh.Specs, metadata)
		if err != nil {
			return nil, err
		}
		_, data, _ := specSizes(sh.Specs)
		sh.Size = int64(len(hdr)) + data
	}
	return shards, nil
}

// IndexName is the file name of a sharded model's index.
const IndexName = "model.safetensors.index.json"

// SingleName is the file name of an unsharded model.
const SingleName = "model.safetensors"

// IndexJSON returns model.safetensors.index.json for shards: metadata.total_size (sum of tensor
// bytes) and weight_map. Only meaningful for more than one shard.
//
// The weight_map keys are sorted and the JSON is indented by two spaces, as transformers writes it.
// Shards must have passed SplitShards or Header (IndexJSON does not validate them).
func IndexJSON(shards []Shard) []byte {
	var total int64
	type entry struct{ name, file string }
	var entries []entry
	for _, sh := range shards {
		for _, s := range sh.Specs {
			n, _ := byteSize(s.DType, s.Shape)
			total += n
			entries = append(entries, entry{s.Name, sh.FileName})
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return cmp.Compare(a.name, b.name) })
	var b bytes.Buffer
	b.WriteString("{\n  \"metadata\": {\n    \"total_size\": ")
	b.WriteString(strconv.FormatInt(total, 10))
	b.WriteString("\n  },\n  \"weight_map\": {")
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		b.Write(appendQuoted(nil, e.name))
		b.WriteString(": ")
		b.Write(appendQuoted(nil, e.file))
	}
	if len(entries) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("}\n}\n")
	return b.Bytes()
}
