package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

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

// headerParser holds the state of parsing one header.
type headerParser struct {
	dec  *json.Decoder
	hdr  []byte
	name string // file name for errors
	last int64  // file offset where the last token read starts
}

// off returns the file offset of the decoder's position.
func (p *headerParser) off() int64 { return 8 + p.dec.InputOffset() }

// errAt returns a FormatError at the start of the last token read.
func (p *headerParser) errAt(tensor, format string, args ...any) *FormatError {
	return formatErr(p.name, tensor, p.last, format, args...)
}

// token returns the next JSON token; syntax errors and EOF become FormatErrors.
func (p *headerParser) token(tensor string) (json.Token, error) {
	off := p.off()
	i := off - 8
	for i < int64(len(p.hdr)) && strings.IndexByte(" \t\r\n:,", p.hdr[i]) >= 0 {
		i++
	}
	p.last = 8 + i
	tok, err := p.dec.Token()
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return nil, formatErr(p.name, tensor, 8+se.Offset, "header JSON: %v", err)
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return nil, formatErr(p.name, tensor, off, "header JSON ends early")
		default:
			return nil, formatErr(p.name, tensor, off, "header JSON: %v", err)
		}
	}
	return tok, nil
}

// parseHeader parses and validates the JSON header hdr of a file of the given total size.
func parseHeader(hdr []byte, size int64, name string) (*File, error) {
	if !utf8.Valid(hdr) {
		i := 0
		for i < len(hdr) {
			r, w := utf8.DecodeRune(hdr[i:])
			if r == utf8.RuneError && w == 1 {
				break
			}
			i += w
		}
		return nil, formatErr(name, "", 8+int64(i), "header is not valid UTF-8")
	}
	if len(hdr) == 0 || hdr[0] != '{' {
		return nil, formatErr(name, "", 8, "header does not start with '{': not a safetensors JSON header")
	}
	dataSize := size - 8 - int64(len(hdr))
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	p := &headerParser{dec: dec, hdr: hdr, name: name}
	f := &File{Name: name, DataOffset: 8 + int64(len(hdr)), size: size, index: map[string]int{}}
	if _, err := p.token(""); err != nil { // '{', checked above
		return nil, err
	}
	seenMeta := false
	for dec.More() {
		tok, err := p.token("")
		if err != nil {
			return nil, err
		}
		key, keyOff := tok.(string), p.last // object keys are always strings
		if key == "__metadata__" {
			if seenMeta {
				return nil, formatErr(name, "", keyOff, "duplicate key \"__metadata__\"")
			}
			seenMeta = true
			if f.Metadata, err = p.metadata(); err != nil {
				return nil, err
			}
			continue
		}
		if _, dup := f.index[key]; dup {
			return nil, formatErr(name, key, keyOff, "duplicate tensor name")
		}
		t, err := p.tensor(key)
		if err != nil {
			return nil, err
		}
		f.index[key] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	if _, err := p.token(""); err != nil { // '}'
		return nil, err
	}
	rest := hdr[dec.InputOffset():]
	if i := bytes.IndexFunc(rest, func(r rune) bool { return !strings.ContainsRune(" \t\r\n", r) }); i >= 0 {
		return nil, formatErr(name, "", p.off()+int64(i), "unexpected data %q after the header JSON object", truncate(string(rest[i:]), 16))
	}
	if err := f.checkLayout(dataSize); err != nil {
		return nil, err
	}
	return f, nil
}

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// metadata parses the value of __metadata__: null or an object of strings.
func (p *headerParser) metadata() (map[string]string, error) {
	const what = "__metadata__"
	tok, err := p.token("")
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if tok != json.Delim('{') {
		return nil, p.errAt("", "%s is %s, want an object of strings", what, describe(tok))
	}
	m := map[string]string{}
	for p.dec.More() {
		tok, err := p.token("")
		if err != nil {
			return nil, err
		}
		k, keyOff := tok.(string), p.last
		if _, dup := m[k]; dup {
			return nil, formatErr(p.name, "", keyOff, "%s: duplicate key %q", what, k)
		}
		tok, err = p.token("")
		if err != nil {
			return nil, err
		}
		v, ok := tok.(string)
		if !ok {
			return nil, p.errAt("", "%s[%q] is %s, want a string", what, k, describe(tok))
		}
		m[k] = v
	}
	if _, err := p.token(""); err != nil {
		return nil, err
	}
	return m, nil
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

// tensor parses one tensor entry {"dtype": ..., "shape": [...], "data_offsets": [s, e]}.
func (p *headerParser) tensor(name string) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	tok, err := p.token(name)
	if err != nil {
		return t, err
	}
	if tok != json.Delim('{') {
		return t, p.errAt(name, "entry is %s, want an object with dtype, shape and data_offsets", describe(tok))
	}
	var haveDType, haveShape, haveOffsets bool
	for p.dec.More() {
		tok, err := p.token(name)
		if err != nil {
			return t, err
		}
		key, keyOff := tok.(string), p.last
		dup := false
		switch key {
		case "dtype":
			dup, haveDType = haveDType, true
		case "shape":
			dup, haveShape = haveShape, true
		case "data_offsets":
			dup, haveOffsets = haveOffsets, true
		default:
			return t, formatErr(p.name, name, keyOff, "unknown key %q (want dtype, shape, data_offsets)", truncate(key, 64))
		}
		if dup {
			return t, formatErr(p.name, name, keyOff, "duplicate key %q", key)
		}
		switch key {
		case "dtype":
			tok, err := p.token(name)
			if err != nil {
				return t, err
			}
			s, ok := tok.(string)
			if !ok {
				return t, p.errAt(name, "dtype is %s, want a string", describe(tok))
			}
			if t.DType, err = dtype.Parse(s); err != nil {
				return t, p.errAt(name, "dtype %q unknown", truncate(s, 64))
			}
		case "shape":
			if t.Shape, err = p.ints(name, "shape", -1); err != nil {
				return t, err
			}
		case "data_offsets":
			offs, err := p.ints(name, "data_offsets", 2)
			if err != nil {
				return t, err
			}
			t.Start, t.End = offs[0], offs[1]
		}
	}
	endOff := p.off()
	if _, err := p.token(name); err != nil {
		return t, err
	}
	for _, k := range []struct {
		have bool
		key  string
	}{{haveDType, "dtype"}, {haveShape, "shape"}, {haveOffsets, "data_offsets"}} {
		if !k.have {
			return t, formatErr(p.name, name, endOff, "missing %s", k.key)
		}
	}
	if t.Shape == nil {
		t.Shape = []int64{}
	}
	if t.Start > t.End {
		return t, formatErr(p.name, name, endOff, "data_offsets [%d, %d] end before they start", t.Start, t.End)
	}
	want, ok := byteSize(t.DType, t.Shape)
	if !ok {
		return t, formatErr(p.name, name, endOff, "shape %v of %v is too large (more than 2^63 bytes)", t.Shape, t.DType)
	}
	if got := t.End - t.Start; got != want {
		return t, formatErr(p.name, name, endOff, "data_offsets [%d, %d] span %d bytes, but shape %v of %v needs %d",
			t.Start, t.End, got, t.Shape, t.DType, want)
	}
	return t, nil
}

// ints parses an array of non-negative integers; want is its required length, or -1 for any.
func (p *headerParser) ints(tensor, what string, want int) ([]int64, error) {
	tok, err := p.token(tensor)
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('[') {
		return nil, p.errAt(tensor, "%s is %s, want an array of non-negative integers", what, describe(tok))
	}
	v := []int64{}
	for p.dec.More() {
		tok, err := p.token(tensor)
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, p.errAt(tensor, "%s[%d] is %s, want a non-negative integer", what, len(v), describe(tok))
		}
		s := string(num)
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil || strings.HasPrefix(s, "-") {
			reason := "not an integer"
			switch {
			case strings.HasPrefix(s, "-"):
				reason = "negative"
			case errors.Is(err, strconv.ErrRange):
				reason = "too large"
			}
			return nil, p.errAt(tensor, "%s[%d] = %s is %s", what, len(v), truncate(s, 32), reason)
		}
		if want >= 0 && len(v) == want {
			return nil, p.errAt(tensor, "%s has more than %d elements", what, want)
		}
		v = append(v, x)
	}
	if _, err := p.token(tensor); err != nil {
		return nil, err
	}
	if want >= 0 && len(v) != want {
		return nil, p.errAt(tensor, "%s has %d elements, want %d", what, len(v), want)
	}
	return v, nil
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
