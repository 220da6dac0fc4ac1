//go:build js && wasm

package main

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"sync"
	"unsafe"

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
	read, err := safejs.Global().Get("__freelunchRead")
	if err != nil {
		return nil, err
	}
	release, err := safejs.Global().Get("__freelunchRelease")
	if err != nil {
		return nil, err
	}
	b := &fileBlob{name: name, file: f, read: read, release: release, size: int64(size), woken: make(chan struct{}, 1)}
	b.wake, err = safejs.FuncOf(func(safejs.Value, []safejs.Value) any {
		select {
		case b.woken <- struct{}{}:
		default:
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// fileBlob reads byte ranges of a browser File, never the whole file (design.md §10),
// through worker.js's __freelunchRead: FileReaderSync into windows of several MiB kept in
// JS, read ahead by a helper Worker, copied straight into p's bytes in the WebAssembly
// memory (worker.js says why). A call returns a number only, so no JS object per read
// waits on Go's garbage collector. When the window is still on its way, the call returns
// -1 and ReadAt waits for wake, letting the JS event loop run.
type fileBlob struct {
	name          string
	file          safejs.Value
	read, release safejs.Value
	wake          safejs.Func
	woken         chan struct{}
	size          int64
	mu            sync.Mutex
}

func (b *fileBlob) Size() int64 { return b.size }

// Close lets worker.js drop the file's windows.
func (b *fileBlob) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err := b.release.Invoke(b.file)
	b.wake.Release()
	return err
}

// ReadAt reads len(p) bytes at off. A short read at the end of the file returns io.EOF.
// It may be called concurrently.
func (b *fileBlob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", b.name, off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= b.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), b.size)
	b.mu.Lock()
	defer b.mu.Unlock()
	got := -1
	for got < 0 {
		r, err := b.read.Invoke(b.file, float64(off), float64(end), addr(p), b.wake.Value())
		runtime.KeepAlive(p)
		if err != nil {
			return 0, readError(b.name, err)
		}
		if got, err = r.Int(); err != nil {
			return 0, err
		}
		if got < 0 {
			<-b.woken
		}
	}
	if int64(got) != end-off {
		return got, fmt.Errorf("read %s: got %d bytes at %d, want %d", b.name, got, off, end-off)
	}
	if got < len(p) {
		return got, io.EOF
	}
	return got, nil
}

// addr is the offset of p's first byte in the WebAssembly memory, where worker.js reads
// or writes len(p) bytes during one synchronous call (Go's heap does not move; the
// caller keeps p alive until the call returns, as syscall/js's CopyBytesToGo does).
func addr(p []byte) float64 {
	if len(p) == 0 {
		return 0
	}
	return float64(uintptr(unsafe.Pointer(unsafe.SliceData(p))))
}

// readError turns the browser's NotReadableError (the file changed on disk after it was
// picked, design.md §10) into a sentence the user can act on.
func readError(name string, err error) error {
	if strings.Contains(err.Error(), "NotReadable") || strings.Contains(err.Error(), "could not be read") {
		return fmt.Errorf("%s changed on disk after it was added (or can no longer be read): remove the model and add it again", name)
	}
	return fmt.Errorf("read %s: %w", name, err)
}
