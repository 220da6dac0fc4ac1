package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// errIsDir is the error of OSFS.Open for a folder.
var errIsDir = errors.New("is a folder")

// errNotRegular is the error of OSFS.Open for a named pipe, socket or device.
var errNotRegular = errors.New("not a regular file (a pipe, socket or device)")

// OpenModel opens the model at p in fsys: a folder, an index file, or a .safetensors file.
//
// A p ending in ".json" is an index; one ending in ".safetensors" is a single file. Any other p
// is opened as a file if fsys can open it as one (a safetensors file without the extension);
// otherwise it is a folder, holding model.safetensors.index.json (sharded) or else
// model.safetensors. An index's shards must be plain file names in the index's folder; every
// tensor of its weight_map must be in the shard it names, and every tensor of a shard must be
// listed for that shard.
//
// OpenModel reads the index and every shard's header, and keeps the shards open until Close;
// tensor data is read only by ReadAt. Errors wrap ErrNotFound (and fs.ErrNotExist) for missing
// files, and are *FormatError (ErrFormat, ErrHeaderTooLarge) for malformed ones.
func OpenModel(fsys FS, p string) (*Model, error) {
	m := &Model{Path: p, fsys: fsys, byName: map[string]*Tensor{}}
	var err error
	switch {
	case strings.HasSuffix(p, ".json"):
		m.Dir = path.Dir(p)
		err = m.openIndex(p)
	case strings.HasSuffix(p, ".safetensors"):
		m.Dir = path.Dir(p)
		err = m.openSingle(p)
	default:
		err = m.openOther(p)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// notFound wraps an error of FS.Open: when the file does not exist, the result also
// wraps ErrNotFound (keeping err's message).
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrNotFound) {
		return &multiError{msg: err.Error(), errs: []error{ErrNotFound, err}}
	}
	return err
}

// multiError is an error with its own message that wraps several errors.
type multiError struct {
	msg  string
	errs []error
}

func (e *multiError) Error() string   { return e.msg }
func (e *multiError) Unwrap() []error { return e.errs }

// openOther opens a p that names neither an index nor a .safetensors file.
func (m *Model) openOther(p string) error {
	b, err := m.fsys.Open(p)
	if err == nil {
		m.Dir = path.Dir(p)
		return m.addShard(path.Base(p), p, b)
	}
	isDir := errors.Is(err, errIsDir)
	if !errors.Is(err, fs.ErrNotExist) && !isDir {
		return fmt.Errorf("safetensors: open model: %w", err)
	}
	m.Dir = p
	idx := path.Join(p, IndexName)
	if b, err := m.fsys.Open(idx); err == nil {
		b.Close()
		return m.openIndex(idx)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("safetensors: open model: %w", err)
	}
	single := path.Join(p, SingleName)
	if b, err := m.fsys.Open(single); err == nil {
		return m.addShard(SingleName, single, b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("safetensors: open model: %w", err)
	}
	if isDir {
		return &multiError{
			msg:  fmt.Sprintf("safetensors: %s: the folder holds neither %s nor %s", p, IndexName, SingleName),
			errs: []error{ErrNotFound, fs.ErrNotExist},
		}
	}
	return &multiError{
		msg:  fmt.Sprintf("safetensors: %s: no such file, nor a folder holding %s or %s", p, IndexName, SingleName),
		errs: []error{ErrNotFound, fs.ErrNotExist},
	}
}

// openSingle opens the model as the single file p.
func (m *Model) openSingle(p string) error {
	b, err := m.fsys.Open(p)
	if err != nil {
		return fmt.Errorf("safetensors: open model: %w", notFound(err))
	}
	return m.addShard(path.Base(p), p, b)
}

// addShard validates the header of b (named shard, at path p) and adds its tensors to m.
// It takes ownership of b.
func (m *Model) addShard(shard, p string, b Blob) error {
	f, err := Open(b, b.Size(), p)
	if err != nil {
		b.Close()
		return err
	}
	m.shards = append(m.shards, modelShard{name: shard, blob: b, file: f})
	for i := range f.Tensors {
		t := &Tensor{TensorInfo: f.Tensors[i], Shard: shard, file: f}
		m.tensors = append(m.tensors, t)
		m.byName[t.Name] = t
	}
	return nil
}

// indexEntry is one weight_map entry of an index.
type indexEntry struct {
	Tensor, Shard string
	Offset        int64 // of the entry in the index file
}

// openIndex opens the index at p and its shards.
func (m *Model) openIndex(p string) error {
	b, err := m.fsys.Open(p)
	if err != nil {
		return fmt.Errorf("safetensors: open model: %w", notFound(err))
	}
	data, err := readAll(b, p, MaxHeaderSize)
	b.Close()
	if err != nil {
		return err
	}
	entries, err := parseIndex(data, p)
	if err != nil {
		return err
	}
	// Group by shard; shards in name order.
	byShard := map[string][]indexEntry{}
	for _, e := range entries {
		byShard[e.Shard] = append(byShard[e.Shard], e)
	}
	names := make([]string, 0, len(byShard))
	for s := range byShard {
		names = append(names, s)
	}
	slices.Sort(names)
	for _, s := range names {
		listed := byShard[s]
		sp := path.Join(m.Dir, s)
		b, err := m.fsys.Open(sp)
		if err != nil {
			more := ""
			if len(listed) > 1 {
				more = fmt.Sprintf(" and %d more tensors", len(listed)-1)
			}
			return fmt.Errorf("safetensors: %s: shard %q (holding %q%s): %w", p, s, listed[0].Tensor, more, notFound(err))
		}
		first := len(m.tensors)
		if err := m.addShard(s, sp, b); err != nil {
			return err
		}
		f := m.shards[len(m.shards)-1].file
		want := make(map[string]bool, len(listed))
		for _, e := range listed {
			want[e.Tensor] = true
			if f.Lookup(e.Tensor) == nil {
				return &FormatError{File: sp, Tensor: e.Tensor, Offset: -1, Err: ErrFormat,
					Msg: fmt.Sprintf("missing from the shard, but %s lists it there", path.Base(p))}
			}
		}
		for _, t := range m.tensors[first:] {
			if !want[t.Name] {
				where := "does not list it"
				for _, e := range entries {
					if e.Tensor == t.Name {
						where = fmt.Sprintf("maps it to %q", e.Shard)
						break
					}
				}
				return &FormatError{File: sp, Tensor: t.Name, Offset: -1, Err: ErrFormat,
					Msg: fmt.Sprintf("in the shard, but %s %s", path.Base(p), where)}
			}
		}
	}
	return nil
}

// readAll reads all of b, failing if it is larger than limit bytes.
func readAll(b Blob, name string, limit int64) ([]byte, error) {
	if size := b.Size(); size > limit {
		return nil, fmt.Errorf("safetensors: %s: file is %d bytes, more than the limit of %d", name, size, limit)
	}
	data, err := readBounded(b, b.Size(), 0)
	if err != nil {
		return nil, fmt.Errorf("safetensors: read %s: %w", name, err)
	}
	return data, nil
}

// validShardName reports whether s is a plain file name: not empty, ".", "..", and without a
// path separator of any OS or a NUL.
func validShardName(s string) bool {
	// Control characters are not path separators, but no tool names a shard with them,
	// and error messages print the name: a newline or an escape must not reach them.
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\") &&
		!strings.ContainsFunc(s, unicode.IsControl)
}

// parseIndex parses a model.safetensors.index.json: an object with a "weight_map" object mapping
// tensor names to shard file names. Other keys ("metadata") are skipped. The entries come back
// in file order.
func parseIndex(data []byte, name string) ([]indexEntry, error) {
	if !utf8.Valid(data) {
		return nil, formatErr(name, "", -1, "index is not valid UTF-8")
	}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return nil, formatErr(name, "", 0, "index starts with a UTF-8 byte order mark, which JSON does not allow")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok := func(tensor string) (json.Token, error) {
		off := dec.InputOffset()
		t, err := dec.Token()
		if err != nil {
			var se *json.SyntaxError
			switch {
			case errors.As(err, &se):
				return nil, formatErr(name, tensor, se.Offset, "index JSON: %v", err)
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				return nil, formatErr(name, tensor, off, "index JSON ends early")
			}
			return nil, formatErr(name, tensor, off, "index JSON: %v", err)
		}
		return t, nil
	}
	t, err := tok("")
	if err != nil {
		return nil, err
	}
	if t != json.Delim('{') {
		return nil, formatErr(name, "", 0, "index is %s, want an object with a weight_map", describe(t))
	}
	var entries []indexEntry
	seenMap := false
	for dec.More() {
		keyOff := dec.InputOffset()
		t, err := tok("")
		if err != nil {
			return nil, err
		}
		if t.(string) != "weight_map" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, formatErr(name, "", keyOff, "index JSON: %v", err)
			}
			continue
		}
		if seenMap {
			return nil, formatErr(name, "", keyOff, "duplicate key \"weight_map\"")
		}
		seenMap = true
		t, err = tok("")
		if err != nil {
			return nil, err
		}
		if t != json.Delim('{') {
			return nil, formatErr(name, "", dec.InputOffset(), "weight_map is %s, want an object of tensor name to shard file", describe(t))
		}
		seen := map[string]bool{}
		for dec.More() {
			off := dec.InputOffset()
			t, err := tok("")
			if err != nil {
				return nil, err
			}
			tensor := t.(string)
			if seen[tensor] {
				return nil, formatErr(name, tensor, off, "duplicate weight_map entry")
			}
			seen[tensor] = true
			t, err = tok(tensor)
			if err != nil {
				return nil, err
			}
			shard, ok := t.(string)
			if !ok {
				return nil, formatErr(name, tensor, dec.InputOffset(), "weight_map value is %s, want a shard file name", describe(t))
			}
			if !validShardName(shard) {
				return nil, formatErr(name, tensor, dec.InputOffset(), "shard %q is not a plain file name in the index's folder", truncate(shard, 256))
			}
			entries = append(entries, indexEntry{Tensor: tensor, Shard: shard, Offset: off})
		}
		if _, err := tok(""); err != nil {
			return nil, err
		}
	}
	if _, err := tok(""); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, formatErr(name, "", dec.InputOffset(), "unexpected data after the index JSON object")
	}
	if !seenMap {
		return nil, formatErr(name, "", -1, "no weight_map")
	}
	if len(entries) == 0 {
		return nil, formatErr(name, "", -1, "weight_map is empty")
	}
	return entries, nil
}

// Tensors returns the model's tensors in model order (shards in order, each in data order).
// Shards are in file name order. The slice is a copy; the Tensors are shared.
func (m *Model) Tensors() []*Tensor { return slices.Clone(m.tensors) }

// Lookup returns the named tensor, or nil.
func (m *Model) Lookup(name string) *Tensor { return m.byName[name] }

// ReadAt reads len(p) bytes of t starting off bytes into the tensor.
// Errors are those of File.ReadTensorAt. Tensors may be read concurrently.
func (m *Model) ReadAt(t *Tensor, p []byte, off int64) error {
	if t == nil || t.file == nil {
		return errors.New("safetensors: ReadAt of a tensor that is not from an open model")
	}
	return t.file.ReadTensorAt(&t.TensorInfo, p, off)
}

// ReadFile reads a small file next to the model (config.json, tokenizer files), at most
// limit bytes; errors wrap ErrNotFound (fs.ErrNotExist) when it does not exist.
//
// name is a slash-separated path relative to m.Dir without ".." (fs.ValidPath). A file larger
// than limit is an error, and is not read.
func (m *Model) ReadFile(name string, limit int64) ([]byte, error) {
	if !fs.ValidPath(name) || strings.Contains(name, "\\") {
		return nil, fmt.Errorf("safetensors: read %q: not a relative path inside the model folder", name)
	}
	p := name
	if m.Dir != "" {
		p = path.Join(m.Dir, name)
	}
	b, err := m.fsys.Open(p)
	if err != nil {
		return nil, fmt.Errorf("safetensors: read: %w", notFound(err))
	}
	defer b.Close()
	return readAll(b, p, limit)
}

// Metadata returns the __metadata__ of the model's first shard.
func (m *Model) Metadata() map[string]string {
	if len(m.shards) == 0 {
		return nil
	}
	return m.shards[0].file.Metadata
}

// Shards returns the file names of the model's shards in model order.
func (m *Model) Shards() []string {
	names := make([]string, len(m.shards))
	for i, s := range m.shards {
		names[i] = s.name
	}
	return names
}

// Close closes the model's open files. It returns the first error.
func (m *Model) Close() error {
	var first error
	for _, s := range m.shards {
		if err := s.blob.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.shards = nil
	return first
}

// osBlob is an *os.File with its size.
type osBlob struct {
	*os.File
	size int64
}

func (b osBlob) Size() int64 { return b.size }

// Open opens the file name. A folder, a named pipe, a socket or a device gives an error
// (a *fs.PathError); a missing file one wrapping fs.ErrNotExist.
func (OSFS) Open(name string) (Blob, error) {
	// Opening a named pipe blocks until a writer comes, and Ctrl-C cannot end that wait:
	// look before opening (and again after, for what was swapped in between).
	if fi, err := os.Stat(name); err == nil && !fi.IsDir() && !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: errIsDir}
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: errNotRegular}
	}
	return osBlob{File: f, size: fi.Size()}, nil
}

// MemFS is an FS of in-memory files by slash-separated name, for tests and small tools.
// Folders are implicit: a name with no entry does not exist.
type MemFS map[string][]byte

// Open opens the named file; a missing name gives an error wrapping fs.ErrNotExist.
func (m MemFS) Open(name string) (Blob, error) {
	data, ok := m[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return memBlob{bytes.NewReader(data)}, nil
}

type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error { return nil }
