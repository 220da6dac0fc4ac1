package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"freelunch/core/dtype"
	"freelunch/core/merge"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
)

// DefaultChunkSize is the default number of elements per chunk (--chunk-size).
const DefaultChunkSize = 1 << 20

// ErrNonFinite is wrapped by the error for a NaN or Inf in an input when
// Options.AllowNonFinite is false.
var ErrNonFinite = errors.New("non-finite input")

// Options control how a plan runs. None of them changes the output bytes.
type Options struct {
	ChunkSize      int  // elements per chunk; 0 means DefaultChunkSize
	Threads        int  // workers; 0 means runtime.NumCPU()
	AllowNonFinite bool // merge inputs holding NaN or Inf instead of failing
	CopyTokenizer  bool // copy the tokenizer and generation files of Plan.Tokenizer
	// Progress, if set, is called from a single goroutine after each chunk is written.
	Progress func(Progress)
	// Yield, if set, is called between chunks from the writing goroutine; the browser
	// uses it to let messages (cancel) in.
	Yield func()
}

// Progress is a snapshot of a running merge.
type Progress struct {
	BytesRead    int64 // input bytes read so far (every pass)
	BytesWritten int64 // output bytes written so far (shards)
	TotalBytes   int64 // output bytes of all shards
	TensorsDone  int
	Tensors      int
	Tensor       string // the tensor being written
}

// Result summarises a finished merge.
type Result struct {
	BytesRead    int64
	BytesWritten int64 // all files, shards and side files
	Files        []string
	NonFinite    int64    // NaN or Inf input elements seen (only with AllowNonFinite)
	Warnings     []string // e.g. integer tensors whose bytes differ between models
}

// A Sink receives the output files one after another: each Create ends the previous file.
type Sink interface {
	Create(name string) (io.Writer, error)
}

// unit is one chunk of one output tensor to merge or, when pass is set, elements of a
// tensor for a statistics pass to observe: one chunk of an unordered pass, or the whole
// tensor for an ordered one.
type unit struct {
	seq   int
	entry int
	off   int64 // first element
	n     int64 // elements
	pass  *passRun
}

// passRun is one statistics pass of one tensor: the dispatcher waits on done, which the
// worker observing the last of its units closes.
type passRun struct {
	pass int
	left atomic.Int64
	done chan struct{}
}

type result struct {
	seq, entry int
	buf        []byte
}

// tensorState is the per-tensor kernel, made and taken through its statistics passes by
// the dispatcher.
type tensorState struct {
	kernel merge.Kernel
	left   atomic.Int64 // chunks not yet merged; the kernel is dropped at 0
}

// Run executes p, writing every output file to sink. It stops when ctx is cancelled,
// returning ctx's cause. The output does not depend on ChunkSize or Threads.
func Run(ctx context.Context, p *plan.Plan, sink Sink, opts Options) (*Result, error) {
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.Threads <= 0 {
		opts.Threads = runtime.NumCPU()
	}
	// The side files are written after the shards, but whatever can fail in making them
	// (a malformed config.json, an unreadable tokenizer file) fails here, before the first
	// tensor byte is read (design.md §8), not at the end of a long merge.
	if err := checkSideFiles(p, opts); err != nil {
		return nil, err
	}
	r := &runner{p: p, opts: opts, states: make([]tensorState, len(p.Entries)), res: &Result{}}
	if err := r.run(ctx, sink); err != nil {
		return nil, err
	}
	if err := writeSideFiles(p, sink, opts, r.res); err != nil {
		return nil, err
	}
	r.res.BytesRead = r.read.Load()
	r.res.NonFinite = r.nonFinite.Load()
	return r.res, nil
}

type runner struct {
	p         *plan.Plan
	opts      Options
	states    []tensorState
	res       *Result
	read      atomic.Int64
	nonFinite atomic.Int64
	warnMu    sync.Mutex
}

// chunkSize returns the chunk length for a tensor whose kernel has granule g: the
// largest multiple of g not above ChunkSize, and at least g.
func (r *runner) chunkSize(g int64) int64 {
	g = max(g, 1)
	return max(g, int64(r.opts.ChunkSize)/g*g)
}

// mergeBlock is the number of elements a worker decodes, merges and encodes at a time.
const mergeBlock = 1 << 13

// blockSize returns the block length for a kernel of granule g: the largest multiple of g
// not above mergeBlock, and at least g.
func (r *runner) blockSize(g int64) int64 {
	g = max(g, 1)
	return max(g, mergeBlock/g*g)
}

// dispatch makes each tensor's kernel when it reaches the tensor, has the workers take it
// through its statistics passes, and hands out its chunks in order, at most cap(tokens)
// ahead of the writer. It returns the unit count, or -1 when ctx is done.
func (r *runner) dispatch(ctx context.Context, work chan<- unit, tokens chan<- struct{}) int {
	seq := 0
	for i := range r.p.Entries {
		e := &r.p.Entries[i]
		st := &r.states[i]
		if e.N == 0 {
			continue // the writer needs no bytes for it
		}
		size := int64(r.opts.ChunkSize)
		if e.Merge != nil {
			st.kernel = r.p.Method.New(e.Merge)
			size = r.chunkSize(st.kernel.Granule())
			if !r.passes(ctx, work, i, size) {
				return -1
			}
		}
		st.left.Store((e.N + size - 1) / size)
		for off := int64(0); off < e.N; off += size {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return -1
			}
			select {
			case work <- unit{seq: seq, entry: i, off: off, n: min(size, e.N-off)}:
			case <-ctx.Done():
				return -1
			}
			seq++
		}
	}
	return seq
}

// passes runs the statistics passes of entry i's kernel: the chunks of an unordered pass
// go to the workers one by one (so every worker observes at once), an ordered pass to one
// worker whole. It returns false when ctx is done.
func (r *runner) passes(ctx context.Context, work chan<- unit, i int, size int64) bool {
	e := &r.p.Entries[i]
	k := r.states[i].kernel
	pk, _ := k.(merge.PassKernel)
	for pass := 0; k.NeedPass(pass); pass++ {
		pr := &passRun{pass: pass, done: make(chan struct{})}
		step := e.N // ordered: one unit
		if pk != nil && pk.Unordered(pass) {
			step = size
		}
		pr.left.Store((e.N + step - 1) / step)
		for off := int64(0); off < e.N; off += step {
			select {
			case work <- unit{seq: -1, entry: i, off: off, n: min(step, e.N-off), pass: pr}:
			case <-ctx.Done():
				return false
			}
		}
		select {
		case <-pr.done:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func (r *runner) run(ctx context.Context, sink Sink) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	inflight := 2*r.opts.Threads + 1
	tokens := make(chan struct{}, inflight)
	work := make(chan unit)
	results := make(chan result, inflight)
	bufs := make(chan []byte, inflight)
	total := make(chan int, 1)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(work)
		total <- r.dispatch(ctx, work, tokens)
	}()
	for w := 0; w < r.opts.Threads; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk := &worker{r: r}
			for u := range work {
				if u.pass != nil {
					if err := wk.observe(ctx, u); err != nil {
						cancel(err)
						return
					}
					if u.pass.left.Add(-1) == 0 {
						close(u.pass.done)
					}
					continue
				}
				var buf []byte
				select {
				case buf = <-bufs:
				default:
				}
				out, err := wk.do(ctx, u, buf)
				if err != nil {
					cancel(err)
					return
				}
				select {
				case results <- result{seq: u.seq, entry: u.entry, buf: out}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	err := r.write(ctx, sink, results, total, tokens, bufs)
	if err != nil {
		cancel(err)
	}
	wg.Wait()
	return err
}

// write writes the shards, taking the units' bytes in order as they arrive.
func (r *runner) write(ctx context.Context, sink Sink, results <-chan result, total <-chan int, tokens <-chan struct{}, bufs chan<- []byte) error {
	p := r.p
	var totalBytes int64
	for _, s := range p.Shards {
		totalBytes += s.Size
	}
	var (
		pending = map[int]result{}
		units   = -1 // known once the dispatcher is done
		shard   = -1
		sw      *safetensors.Writer
		cw      *countWriter
		written int64 // bytes of closed shards
	)
	// advance closes the open shard and opens the following ones up to shard to.
	advance := func(to int) error {
		for shard < to {
			if sw != nil {
				if err := sw.Close(); err != nil {
					return fmt.Errorf("write %s: %w", p.Shards[shard].FileName, err)
				}
				written += cw.n
				r.res.Files = append(r.res.Files, p.Shards[shard].FileName)
				r.res.BytesWritten += cw.n
			}
			shard++
			if shard == len(p.Shards) {
				sw = nil
				return nil
			}
			w, err := sink.Create(p.Shards[shard].FileName)
			if err != nil {
				return err
			}
			cw = &countWriter{w: w}
			sw, err = safetensors.NewWriter(cw, p.Shards[shard].Specs, map[string]string{"format": "pt"})
			if err != nil {
				return fmt.Errorf("write %s: %w", p.Shards[shard].FileName, err)
			}
		}
		return nil
	}
	for next := 0; ; next++ {
		res, ok := pending[next]
		for !ok && next != units {
			select {
			case res = <-results:
				pending[res.seq] = res
			case units = <-total:
				if units < 0 {
					return context.Cause(ctx)
				}
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			res, ok = pending[next]
		}
		if !ok {
			break // every unit is written
		}
		delete(pending, next)
		e := &p.Entries[res.entry]
		if err := advance(e.Shard); err != nil {
			return err
		}
		if _, err := sw.Write(res.buf); err != nil {
			return fmt.Errorf("write %s: tensor %q: %w", p.Shards[shard].FileName, e.Name, err)
		}
		select {
		case bufs <- res.buf[:0]:
		default:
		}
		<-tokens
		if r.opts.Progress != nil {
			r.opts.Progress(Progress{
				BytesRead: r.read.Load(), BytesWritten: written + cw.n, TotalBytes: totalBytes,
				TensorsDone: res.entry, Tensors: len(p.Entries), Tensor: e.Name,
			})
		}
		if r.opts.Yield != nil {
			r.opts.Yield()
		}
	}
	if err := advance(len(p.Shards)); err != nil {
		return err
	}
	if r.opts.Progress != nil {
		r.opts.Progress(Progress{BytesRead: r.read.Load(), BytesWritten: written, TotalBytes: totalBytes,
			TensorsDone: len(p.Entries), Tensors: len(p.Entries)})
	}
	return nil
}

// worker owns the buffers of one goroutine.
type worker struct {
	r       *runner
	raw     [][]byte
	in      [][]float32
	view    [][]float32 // in, resliced to the current block
	rawView [][]byte    // raw, resliced to the current chunk
	dst     []float32
}

// buffers sizes the worker's buffers for k inputs: raw bytes for chunks of n elements,
// float32s for blocks of m.
func (w *worker) buffers(k int, n, m int64) {
	for len(w.raw) < k {
		w.raw = append(w.raw, nil)
		w.in = append(w.in, nil)
	}
	for i := 0; i < k; i++ {
		if int64(cap(w.in[i])) < m {
			w.in[i] = make([]float32, m)
		}
		if int64(cap(w.raw[i])) < 8*n {
			w.raw[i] = make([]byte, 8*n)
		}
	}
	if int64(cap(w.dst)) < m {
		w.dst = make([]float32, m)
	}
}

// do computes unit u into buf (grown as needed) and returns the output bytes.
func (w *worker) do(ctx context.Context, u unit, buf []byte) ([]byte, error) {
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	r := w.r
	e := &r.p.Entries[u.entry]
	st := &r.states[u.entry]
	outSize := int64(e.DType.Size())
	need := int(u.n * outSize)
	if cap(buf) < need {
		buf = make([]byte, need)
	}
	buf = buf[:need]

	if e.Merge == nil {
		w.buffers(len(e.Inputs), u.n, 0)
		return buf, w.copyChunk(e, u, buf)
	}
	// Read the chunk of every input, then decode, merge and encode it a block at a time,
	// so that the float32 buffers stay in the core's cache between the three steps.
	sub := r.blockSize(st.kernel.Granule())
	w.buffers(len(e.Inputs), u.n, sub)
	for k := range e.Inputs {
		if err := w.read(e, k, u.off, u.n); err != nil {
			return nil, err
		}
	}
	for lo := int64(0); lo < u.n; lo += sub {
		n := min(sub, u.n-lo)
		in := w.view[:0]
		for k := range e.Inputs {
			in = append(in, w.in[k][:n])
			if err := w.decode(e, k, lo, in[k], true); err != nil {
				return nil, err
			}
		}
		w.view = in
		dst := w.dst[:n]
		st.kernel.Merge(dst, u.off+lo, in)
		dtype.Encode(buf[lo*outSize:(lo+n)*outSize], dst, e.DType)
	}
	if st.left.Add(-1) == 0 {
		st.kernel = nil
	}
	return buf, nil
}

// observe feeds the elements of u, chunk by chunk in order, to its kernel's pass,
// reading only the inputs the pass still needs.
func (w *worker) observe(ctx context.Context, u unit) error {
	e := &w.r.p.Entries[u.entry]
	k := w.r.states[u.entry].kernel
	pk, _ := k.(merge.PassKernel)
	bo, _ := k.(merge.BF16Observer)
	size := w.r.chunkSize(k.Granule())
	for off, end := u.off, u.off+u.n; off < end; off += size {
		if err := context.Cause(ctx); err != nil {
			return err
		}
		n := min(size, end-off)
		w.buffers(len(e.Inputs), n, n)
		raw := w.rawView[:0]
		reads, bf16 := false, bo != nil
		for i, in := range e.Inputs {
			if pk != nil && !pk.Reads(u.pass.pass, i) {
				raw = append(raw, nil)
				continue
			}
			if err := w.read(e, i, off, n); err != nil {
				return err
			}
			raw = append(raw, w.raw[i][:n*int64(in.Tensor.DType.Size())])
			reads = true
			bf16 = bf16 && in.Tensor.DType == dtype.BF16
		}
		w.rawView = raw
		if !reads {
			return nil // the pass learnt all it needed from earlier chunks
		}
		if bf16 && bo.ObserveBF16(u.pass.pass, off, raw) {
			continue
		}
		in := w.view[:0]
		for i, r := range raw {
			if r == nil {
				in = append(in, nil)
				continue
			}
			in = append(in, w.in[i][:n])
			if err := w.decode(e, i, 0, in[i], false); err != nil {
				return err
			}
		}
		w.view = in
		k.Observe(u.pass.pass, off, in)
	}
	return nil
}

// read reads elements [off, off+n) of input k of e into w.raw[k].
func (w *worker) read(e *plan.Entry, k int, off, n int64) error {
	in := e.Inputs[k]
	size := int64(in.Tensor.DType.Size())
	raw := w.raw[k][:n*size]
	if err := in.Model.ReadAt(in.Tensor, raw, off*size); err != nil {
		return fmt.Errorf("read %s: tensor %q: %w", in.Model.Path, in.Tensor.Name, err)
	}
	w.r.read.Add(int64(len(raw)))
	return nil
}

// decode decodes the len(dst) elements of input k of e that read left at element lo of
// w.raw[k]. With check, NaN and Inf are looked for, and fail the merge or are counted.
// Statistics passes do not check: the merge pass reads every element once more, so each
// non-finite element is reported (or counted) once, whatever the method's passes.
func (w *worker) decode(e *plan.Entry, k int, lo int64, dst []float32, check bool) error {
	d := e.Inputs[k].Tensor.DType
	size := int64(d.Size())
	raw := w.raw[k][lo*size : (lo+int64(len(dst)))*size]
	if !check {
		dtype.Decode(dst, raw, d)
		return nil
	}
	if dtype.DecodeFinite(dst, raw, d) {
		return nil
	}
	if bad, _ := countNonFinite(dst); bad > 0 {
		if !w.r.opts.AllowNonFinite {
			return nonFiniteError(e, k, w.in[k], w.raw[k])
		}
		w.r.nonFinite.Add(int64(bad))
	}
	return nil
}

// nonFiniteError returns the error for input k of e, which holds a NaN or Inf. It reads
// the input's whole tensor again, chunk by chunk through dst and raw (so memory stays
// bounded), to give the count and the first position in the tensor rather than in the
// chunk where a worker met one: chunks are loaded out of order by several workers.
func nonFiniteError(e *plan.Entry, k int, dst []float32, raw []byte) error {
	in := e.Inputs[k]
	d := in.Tensor.DType
	size := int64(d.Size())
	dst, raw = dst[:cap(dst)], raw[:cap(raw)]
	step := min(int64(len(dst)), int64(len(raw))/size) // at least the chunk's length
	var total int64
	first := int64(-1)
	for off := int64(0); off < e.N; off += step {
		n := min(step, e.N-off)
		b := raw[:n*size]
		if err := in.Model.ReadAt(in.Tensor, b, off*size); err != nil {
			return fmt.Errorf("read %s: tensor %q: %w", in.Model.Path, in.Tensor.Name, err)
		}
		if dtype.DecodeFinite(dst[:n], b, d) {
			continue
		}
		c, f := countNonFinite(dst[:n])
		if c > 0 && first < 0 {
			first = off + int64(f)
		}
		total += int64(c)
	}
	values := "values"
	if total == 1 {
		values = "value"
	}
	return fmt.Errorf("%w: model %s: tensor %q holds %d NaN/Inf %s (first at element %d); merge anyway with --allow-nonfinite",
		ErrNonFinite, in.Model.Path, in.Tensor.Name, total, values, first)
}

// countNonFinite returns how many elements of x are NaN or ±Inf and the index of the first.
func countNonFinite(x []float32) (n, first int) {
	first = -1
	for i, v := range x {
		if math.Float32bits(v)&0x7f800000 == 0x7f800000 {
			if n == 0 {
				first = i
			}
			n++
		}
	}
	return n, first
}

// copyChunk copies a chunk of a non-float tensor from the reference model into buf and
// compares the other models' bytes with it.
func (w *worker) copyChunk(e *plan.Entry, u unit, buf []byte) error {
	size := int64(e.DType.Size())
	ref := e.Inputs[0]
	if err := ref.Model.ReadAt(ref.Tensor, buf, u.off*size); err != nil {
		return fmt.Errorf("read %s: tensor %q: %w", ref.Model.Path, ref.Tensor.Name, err)
	}
	w.r.read.Add(int64(len(buf)))
	for k := 1; k < len(e.Inputs); k++ {
		in := e.Inputs[k]
		raw := w.raw[k][:len(buf)]
		if err := in.Model.ReadAt(in.Tensor, raw, u.off*size); err != nil {
			return fmt.Errorf("read %s: tensor %q: %w", in.Model.Path, in.Tensor.Name, err)
		}
		w.r.read.Add(int64(len(raw)))
		if string(raw) != string(buf) {
			w.warnOnce(e.Name, fmt.Sprintf("tensor %q (%s) differs between %s and %s; the output copies %s",
				e.Name, e.DType, ref.Model.Path, in.Model.Path, ref.Model.Path))
		}
	}
	return nil
}

func (w *worker) warnOnce(key, msg string) {
	r := w.r
	r.warnMu.Lock()
	defer r.warnMu.Unlock()
	for _, m := range r.res.Warnings {
		if m == msg {
			return
		}
	}
	r.res.Warnings = append(r.res.Warnings, msg)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
