//go:build js && wasm

package main

import (
	"archive/zip"
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/hack-pad/safejs"
)

// errStorage is the error of a short OPFS write: the browser ran out of space for this
// origin, or the page is in a private window, where OPFS lives in memory (design.md §10).
var errStorage = errors.New("the browser's storage is full (or this is a private window, where it is small): free disk space or use a normal window, then merge again")

// await waits for promise p from a goroutine (never from a JS callback).
func await(p safejs.Value) (safejs.Value, error) {
	type result struct {
		v   safejs.Value
		err error
	}
	ch := make(chan result, 1)
	var then, catch safejs.Func
	var err error
	then, err = safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		ch <- result{v: arg0(args)}
		return nil
	})
	if err != nil {
		return safejs.Undefined(), err
	}
	defer then.Release()
	catch, err = safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		e := arg0(args)
		msg, _ := e.Call("toString")
		s, _ := msg.String()
		ch <- result{err: errors.New(s)}
		return nil
	})
	if err != nil {
		return safejs.Undefined(), err
	}
	defer catch.Release()
	if _, err := p.Call("then", then.Value(), catch.Value()); err != nil {
		return safejs.Undefined(), err
	}
	r := <-ch
	return r.v, r.err
}

func arg0(args []safejs.Value) safejs.Value {
	if len(args) == 0 {
		return safejs.Undefined()
	}
	return args[0]
}

// jsBuffer is a reusable Uint8Array the Go side copies output bytes into.
type jsBuffer struct{ arr safejs.Value }

func newJSBuffer(n int) (*jsBuffer, error) {
	u8, err := safejs.Global().Get("Uint8Array")
	if err != nil {
		return nil, err
	}
	arr, err := u8.New(n)
	if err != nil {
		return nil, err
	}
	return &jsBuffer{arr: arr}, nil
}

// view copies p into the buffer and returns a view of its first len(p) bytes.
func (b *jsBuffer) view(p []byte) (safejs.Value, error) {
	if _, err := safejs.CopyBytesToJS(b.arr, p); err != nil {
		return safejs.Undefined(), err
	}
	return b.arr.Call("subarray", 0, len(p))
}

const writeBuf = 1 << 20

// syncWriter writes sequentially through a FileSystemSyncAccessHandle, checking every
// write's returned count. worker.js's __freelunchWrite hands the handle a view of p's
// bytes in the WebAssembly memory: no copy into a JS buffer, no JS object per write.
type syncWriter struct {
	h, write safejs.Value
	at       int64
}

func (w *syncWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r, err := w.write.Invoke(w.h, addr(p), len(p), float64(w.at))
	runtime.KeepAlive(p)
	if err != nil {
		return 0, storageError(err)
	}
	got, err := r.Int()
	if err != nil {
		return 0, err
	}
	if got != len(p) {
		return 0, errStorage
	}
	w.at += int64(got)
	return got, nil
}

// errFolderFull is errStorage for "Save to folder": there, no room means the chosen
// folder's disk, not the browser's storage, is full.
var errFolderFull = errors.New("the disk of the chosen folder is full: free space there or choose a folder on another disk, then merge again")

// isQuota reports whether err is the browser's QuotaExceededError.
func isQuota(err error) bool {
	s := err.Error()
	return strings.Contains(s, "QuotaExceeded") || strings.Contains(s, "quota")
}

// storageError maps the browser's quota error to errStorage.
func storageError(err error) error {
	if isQuota(err) {
		return errStorage
	}
	return fmt.Errorf("write to browser storage: %w", err)
}

// folderError maps the browser's quota error, writing to the chosen folder, to errFolderFull.
func folderError(err error) error {
	if isQuota(err) {
		return errFolderFull
	}
	return fmt.Errorf("write to the chosen folder: %w", err)
}

// zipSink writes the output folder as one stored (uncompressed) zip into a
// FileSystemSyncAccessHandle: each file's header, then its bytes as the engine streams
// them, CRC and sizes in a data descriptor; archive/zip adds zip64 records where needed.
type zipSink struct {
	h      safejs.Value
	bw     *bufio.Writer
	zw     *zip.Writer
	prefix string
	now    time.Time
}

func newZipSink(h safejs.Value, prefix string) (*zipSink, error) {
	write, err := safejs.Global().Get("__freelunchWrite")
	if err != nil {
		return nil, err
	}
	// Truncate only a file that has bytes: on ext4, truncating a file to 0 (even an empty
	// one) makes its close start writing all of it back to the disk, which held the end of
	// every page merge (0.18 s after 1 GB, 0.35-0.38 s after 3 GB; BENCHMARKS.md, eleventh
	// session). The page names a new file for each merge; other callers of the protocol
	// may not.
	size, err := h.Call("getSize")
	if err != nil {
		return nil, storageError(err)
	}
	if n, err := size.Float(); err != nil || n != 0 {
		if _, err := h.Call("truncate", 0); err != nil {
			return nil, storageError(err)
		}
	}
	bw := bufio.NewWriterSize(&syncWriter{h: h, write: write}, writeBuf)
	return &zipSink{h: h, bw: bw, zw: zip.NewWriter(bw), prefix: prefix, now: time.Now()}, nil
}

func (s *zipSink) Create(name string) (io.Writer, error) {
	return s.zw.CreateHeader(&zip.FileHeader{Name: s.prefix + name, Method: zip.Store, Modified: s.now})
}

// finish writes the central directory; the caller closes the handle. The handle is not
// flushed: the zip is a download's temporary copy, which the browser reads back from the
// page cache, and flush() would make the page wait for the disk (about 0.6-0.9 s of a 1G
// merge's 6.5-9 s, BENCHMARKS.md, tenth session) for nothing a user would miss: after a
// crash the page purges the file anyway. Each write() already says when storage is full.
func (s *zipSink) finish() error {
	if err := s.zw.Close(); err != nil {
		return err
	}
	return s.bw.Flush()
}

// dirSink writes each output file into a folder the user picked (showDirectoryPicker),
// through FileSystemWritableFileStream; the files are removed again if the merge fails.
type dirSink struct {
	dir   safejs.Value
	buf   *jsBuffer
	cur   *streamWriter
	names []string
}

func newDirSink(dir safejs.Value) (*dirSink, error) {
	buf, err := newJSBuffer(writeBuf)
	if err != nil {
		return nil, err
	}
	return &dirSink{dir: dir, buf: buf}, nil
}

func (s *dirSink) Create(name string) (io.Writer, error) {
	if err := s.closeFile(); err != nil {
		return nil, err
	}
	opts, err := safejs.ValueOf(map[string]any{"create": true})
	if err != nil {
		return nil, err
	}
	p, err := s.dir.Call("getFileHandle", name, opts)
	if err != nil {
		return nil, err
	}
	fh, err := await(p)
	if err != nil {
		if isQuota(err) {
			return nil, errFolderFull
		}
		return nil, fmt.Errorf("create %s in the chosen folder: %w", name, err)
	}
	p, err = fh.Call("createWritable")
	if err != nil {
		return nil, err
	}
	ws, err := await(p)
	if err != nil {
		if isQuota(err) {
			return nil, errFolderFull
		}
		return nil, fmt.Errorf("open %s in the chosen folder for writing: %w", name, err)
	}
	s.names = append(s.names, name)
	s.cur = &streamWriter{ws: ws, buf: s.buf}
	s.cur.bw = bufio.NewWriterSize(writerFunc(s.cur.write), writeBuf)
	return s.cur.bw, nil
}

func (s *dirSink) closeFile() error {
	if s.cur == nil {
		return nil
	}
	c := s.cur
	s.cur = nil
	if err := c.bw.Flush(); err != nil {
		return err
	}
	p, err := c.ws.Call("close")
	if err != nil {
		return folderError(err)
	}
	if _, err = await(p); err != nil {
		return folderError(err)
	}
	return nil
}

func (s *dirSink) finish() error { return s.closeFile() }

// abort removes the files written so far.
func (s *dirSink) abort() {
	if s.cur != nil {
		if p, err := s.cur.ws.Call("abort"); err == nil {
			await(p)
		}
		s.cur = nil
	}
	for _, name := range s.names {
		if p, err := s.dir.Call("removeEntry", name); err == nil {
			await(p)
		}
	}
}

type streamWriter struct {
	ws  safejs.Value
	buf *jsBuffer
	bw  *bufio.Writer
}

func (w *streamWriter) write(p []byte) (int, error) {
	done := 0
	for len(p) > 0 {
		n := min(len(p), writeBuf)
		v, err := w.buf.view(p[:n])
		if err != nil {
			return done, err
		}
		// Wait for each write before the buffer is reused.
		pr, err := w.ws.Call("write", v)
		if err != nil {
			return done, folderError(err)
		}
		if _, err := await(pr); err != nil {
			return done, folderError(err)
		}
		done += n
		p = p[n:]
	}
	return done, nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
