//go:build js && wasm

package main

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/hack-pad/safejs"

	"freelunch/core/safetensors"
)

// fileFS is a safetensors.FS over the File objects the page posted, by their
// slash-separated paths ("llama-base/model.safetensors", "tune.safetensors").
type fileFS map[string]safejs.Value

// newFileFS reads the page's [{path, file}] array.
func newFileFS(list safejs.Value) (fileFS, error) {
	fsys := fileFS{}
	if list.IsUndefined() || list.IsNull() {
		return fsys, nil
	}
	n, err := list.Length()
	if err != nil {
		return nil, err
	}
	for i := range n {
		item, err := list.Index(i)
		if err != nil {
			return nil, err
		}
		p, err := item.Get("path")
		if err != nil {
			return nil, err
		}
		name, err := p.String()
		if err != nil {
			return nil, err
		}
		f, err := item.Get("file")
		if err != nil {
			return nil, err
		}
		fsys[path.Clean(name)] = f
	}
	return fsys, nil
}

// Open opens name; a name no posted file has gives an error wrapping fs.ErrNotExist,
// as safetensors.OSFS does.
func (fsys fileFS) Open(name string) (safetensors.Blob, error) {
	f, ok := fsys[path.Clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	sz, err := f.Get("size")
	if err != nil {
		return nil, err
	}
	size, err := sz.Float()
	if err != nil {
		return nil, err
	}
	rd, err := safejs.Global().Get("FileReaderSync")
	if err != nil {
		return nil, err
	}
	r, err := rd.New()
	if err != nil {
		return nil, fmt.Errorf("open %s: FileReaderSync (a Worker-only API): %w", name, err)
	}
	return &fileBlob{name: name, file: f, reader: r, size: int64(size)}, nil
}

// fileBlob reads exact byte ranges of a browser File with FileReaderSync, never the
// whole file (design.md §10: synchronous, a plain ReadAt for Go).
type fileBlob struct {
	name   string
	file   safejs.Value
	reader safejs.Value
	size   int64
}

func (b *fileBlob) Size() int64  { return b.size }
func (b *fileBlob) Close() error { return nil }

// ReadAt reads len(p) bytes at off. A short read at the end of the file returns io.EOF.
func (b *fileBlob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", b.name, off)
	}
	if off >= b.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), b.size)
	part, err := b.file.Call("slice", float64(off), float64(end))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", b.name, err)
	}
	buf, err := b.reader.Call("readAsArrayBuffer", part)
	if err != nil {
		return 0, readError(b.name, err)
	}
	u8, err := safejs.Global().Get("Uint8Array")
	if err != nil {
		return 0, err
	}
	arr, err := u8.New(buf)
	if err != nil {
		return 0, err
	}
	n, err := safejs.CopyBytesToGo(p[:end-off], arr)
	if err != nil {
		return n, err
	}
	if int64(n) != end-off {
		return n, fmt.Errorf("read %s: got %d bytes at %d, want %d", b.name, n, off, end-off)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readError turns the browser's NotReadableError (the file changed on disk after it was
// picked, design.md §10) into a sentence the user can act on.
func readError(name string, err error) error {
	if strings.Contains(err.Error(), "NotReadable") || strings.Contains(err.Error(), "could not be read") {
		return fmt.Errorf("%s changed on disk after it was added (or can no longer be read): remove the model and add it again", name)
	}
	return fmt.Errorf("read %s: %w", name, err)
}
