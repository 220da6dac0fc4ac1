package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"freelunch/core/config"
	"freelunch/core/engine"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
	"freelunch/internal/writeback"
)

func init() { commands["merge"] = cmdMerge }

// ignoredFlags are mergekit-yaml flags that mean nothing here; they are accepted so that
// commands copied from model cards work.
var ignoredFlags = []string{"cuda", "lazy-unpickle", "low-cpu-memory", "allow-crimes", "trust-remote-code", "write-model-card"}

func cmdMerge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("random-seed", 0, "seed of the random stream (DARE, DELLA)")
	chunk := fs.Int("chunk-size", engine.DefaultChunkSize, "elements per chunk (memory, not results)")
	threads := fs.Int("threads", 0, "worker threads (0: all cores)")
	shardSize := fs.String("out-shard-size", "5B", "largest output shard: bytes, with k/M/B(illion) or KiB/MiB/GiB suffix")
	copyTok := fs.Bool("copy-tokenizer", true, "copy tokenizer and generation files from the tokenizer source")
	noCopyTok := fs.Bool("no-copy-tokenizer", false, "do not copy tokenizer files")
	dryRun := fs.Bool("dry-run", false, "print the plan and exit without merging")
	overwrite := fs.Bool("overwrite", false, "replace an existing non-empty OUT_DIR")
	quiet := fs.Bool("quiet", false, "print nothing but errors")
	verbose := fs.Bool("v", false, "print warnings and the files written")
	allowNonFinite := fs.Bool("allow-nonfinite", false, "merge inputs that hold NaN or Inf")
	checkDeltasFlag := fs.Bool("check-deltas", false, "analyze the deltas first; warn when a DARE density is unsafe for a model")
	ignored := map[string]*bool{}
	for _, name := range ignoredFlags {
		ignored[name] = fs.Bool(name, false, "accepted for mergekit compatibility; no effect")
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: freelunch merge [flags] CONFIG.yml OUT_DIR")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("merge takes CONFIG.yml and OUT_DIR, got %d arguments", len(pos))
	}
	cfgPath, outDir := pos[0], pos[1]
	if cfgPath == "" || outDir == "" {
		return usageError("merge takes CONFIG.yml and OUT_DIR, got an empty argument")
	}
	if *chunk < 1 {
		return usageError("--chunk-size must be at least 1, got %d", *chunk)
	}
	if *threads < 0 {
		return usageError("--threads must not be negative, got %d", *threads)
	}
	limit, err := parseSize(*shardSize)
	if err != nil {
		return usageError("--out-shard-size: %v", err)
	}
	for _, name := range ignoredFlags {
		if *ignored[name] && !*quiet {
			fmt.Fprintf(stderr, "note: --%s has no effect in freelunch\n", name)
		}
	}

	data, err := readConfigFile(cfgPath)
	if err != nil {
		return err
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return fmt.Errorf("%s: %w", cfgPath, err)
	}
	if err := checkOutDir(outDir, *overwrite); err != nil {
		return err
	}
	p, err := plan.Build(cfg, safetensors.OSFS{}, plan.Options{Seed: *seed, ShardSize: limit})
	if err != nil {
		return err
	}
	defer p.Close()
	if err := checkNotInput(outDir, p); err != nil {
		return err
	}
	if *checkDeltasFlag {
		if err := checkDeltas(ctx, p, *chunk, stderr, *quiet); err != nil {
			return err
		}
	}
	if *dryRun {
		fmt.Fprint(stdout, p.Summary(3))
		return nil
	}
	if !*quiet {
		for _, w := range p.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}

	sink, err := newDirSink(outDir)
	if err != nil {
		return err
	}
	opts := engine.Options{
		ChunkSize: *chunk, Threads: *threads, AllowNonFinite: *allowNonFinite,
		CopyTokenizer: *copyTok && !*noCopyTok,
	}
	var bar *progressBar
	if f, ok := stderr.(*os.File); ok && !*quiet && term.IsTerminal(int(f.Fd())) {
		bar = &progressBar{w: stderr, start: time.Now()}
		opts.Progress = bar.update
	}
	start := time.Now()
	res, err := engine.Run(ctx, p, sink, opts)
	if bar != nil {
		bar.clear()
	}
	if err == nil {
		err = sink.commit(*overwrite)
	}
	if err != nil {
		sink.abort()
		if ctx.Err() != nil {
			return fmt.Errorf("merge interrupted; nothing was written to %s", outDir)
		}
		return err
	}
	if !*quiet {
		for _, r := range sink.removed {
			fmt.Fprintf(stderr, "note: removed %s, left by a merge that did not finish\n", r)
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		if res.NonFinite > 0 {
			fmt.Fprintf(stderr, "warning: the inputs held %d NaN or Inf values (merged as --allow-nonfinite asked)\n", res.NonFinite)
		}
		if *verbose {
			for _, f := range res.Files {
				fmt.Fprintf(stderr, "wrote %s\n", filepath.Join(outDir, f))
			}
		}
		el := time.Since(start)
		fmt.Fprintf(stderr, "merged %d tensors with %s (seed %d) into %s: %s written in %s\n",
			len(p.Entries), p.Method.Name(), p.Seed, outDir, formatBytes(res.BytesWritten), el.Round(time.Millisecond))
	}
	return nil
}

// parseInterspersed parses flags that may stand before, between or after the positional
// arguments (mergekit-yaml config.yml ./out --cuda).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseSize parses a byte count with an optional suffix: k/K (10^3), M (10^6), B or G
// (10^9, mergekit's "5B"), KiB, MiB, GiB.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"B", 1e9}, {"G", 1e9}}
	mult := int64(1)
	num := s
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("%q is not a positive size like 5B, 500M or 2GiB", s)
	}
	return int64(f * float64(mult)), nil
}

// readConfigFile reads a config of at most 1 MiB, from a regular file only: opening a
// named pipe would wait for a writer, and Ctrl-C could not end that wait.
func readConfigFile(name string) ([]byte, error) {
	if fi, err := os.Stat(name); err == nil && !fi.IsDir() && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s: not a regular file (a pipe, socket or device)", name)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%s: a config larger than 1 MiB is not a mergekit config", name)
	}
	return data, nil
}

// checkOutDir reports an error if dir exists and is not empty, unless overwrite.
func checkOutDir(dir string, overwrite bool) error {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("output %s exists and is not a folder", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 && !overwrite {
		return fmt.Errorf("output folder %s exists and is not empty; use --overwrite to replace it", dir)
	}
	return nil
}

// checkNotInput reports an error if the output folder is, or holds, a model the merge
// reads: --overwrite would delete it.
func checkNotInput(dir string, p *plan.Plan) error {
	out, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for _, m := range p.Models {
		for _, in := range []string{m.Dir, m.Path} {
			if in == "" {
				continue
			}
			abs, err := filepath.Abs(in)
			if err != nil {
				return err
			}
			if rel, err := filepath.Rel(out, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return fmt.Errorf("output folder %s holds the input model %s; choose another OUT_DIR", dir, m.Path)
			}
		}
	}
	return nil
}

// dirSink writes output files into a temporary folder next to the output folder and
// renames it into place by commit, so a failed merge leaves nothing that looks like a model.
//
// A merge killed by SIGKILL (or a crash, or a power cut) cannot remove its temporary
// folder, so the next merge to the same OUT_DIR does. Each merge holds a lock on its
// temporary folder (lockFolder) from its creation to commit or abort; the kernel drops
// the lock when the process dies, so a folder named like ours whose lock can be taken
// belongs to no live merge. Creating and locking a folder happen under a lock on the
// parent folder, and so does the search for unlocked ones: no merge can find another's
// folder in the instant between its creation and its lock.
type dirSink struct {
	dir, tmp string
	f        io.WriteCloser
	lock     *os.File // holds the lock on tmp; nil where folders cannot be locked
	removed  []string // stale temporary folders removed by newDirSink
}

// tmpInfix is in the name of every temporary output folder: "."+base(OUT_DIR)+tmpInfix
// and the decimal digits os.MkdirTemp adds.
const tmpInfix = ".freelunch-tmp-"

// Errors of lockFolder: another open file holds the lock; this system has no folder locks.
var (
	errLocked  = errors.New("folder is locked")
	errNoLocks = errors.New("folder locks are not supported on " + runtime.GOOS)
)

// createOutput creates one output file. It is a variable so that tests can simulate a
// full disk with a writer that fails part way.
var createOutput = func(name string) (io.WriteCloser, error) {
	return os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
}

func newDirSink(dir string) (*dirSink, error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	prefix := "." + filepath.Base(dir) + tmpInfix
	// Without the parent's lock (no folder locks here, or another process kept it for
	// lockWait) nothing is judged stale.
	plock, err := lockParent(parent)
	var stale []*os.File
	if err == nil {
		stale = lockStale(parent, prefix)
	}
	tmp, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		for _, f := range stale {
			f.Close()
		}
		if plock != nil {
			plock.Close()
		}
		return nil, err
	}
	s := &dirSink{dir: dir, tmp: tmp}
	s.lock, _ = lockFolder(tmp) // nil if folders cannot be locked here: then no merge removes it either
	if plock != nil {
		plock.Close()
	}
	// The stale folders stay locked while they are removed, so no other merge looks at
	// them meanwhile; the parent's lock is not needed for that.
	for _, f := range stale {
		if os.RemoveAll(f.Name()) == nil {
			s.removed = append(s.removed, f.Name())
		}
		f.Close()
	}
	return s, nil
}

// lockWait bounds the wait for the lock on OUT_DIR's parent folder, which a merge holds
// only while it looks for stale folders and makes its own (milliseconds).
const lockWait = 10 * time.Second

// lockParent locks the folder parent, waiting up to lockWait for another merge to let it go.
func lockParent(parent string) (*os.File, error) {
	deadline := time.Now().Add(lockWait)
	for {
		f, err := lockFolder(parent)
		if !errors.Is(err, errLocked) || time.Now().After(deadline) {
			return f, err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockStale locks and returns the temporary folders in parent named prefix+digits whose
// lock no live process holds: they were left by merges that died.
func lockStale(parent, prefix string) []*os.File {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var stale []*os.File
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || !e.IsDir() {
			continue // not ours, or a symbolic link
		}
		if f, err := lockFolder(filepath.Join(parent, e.Name())); err == nil {
			stale = append(stale, f)
		}
	}
	return stale
}

func (s *dirSink) Create(name string) (io.Writer, error) {
	if err := s.closeFile(); err != nil {
		return nil, err
	}
	f, err := createOutput(filepath.Join(s.tmp, name))
	if err != nil {
		return nil, err
	}
	if osf, ok := f.(*os.File); ok {
		// Start the file's writeback as it is written, so that its fsync at Close
		// finds little left to do.
		f = writeback.New(osf)
	}
	s.f = outFile{f, filepath.Join(s.dir, name)}
	return s.f, nil
}

// outFile is an output file in the temporary folder. Its errors name the file's final
// path: the temporary folder is gone by the time the user reads them.
type outFile struct {
	io.WriteCloser
	final string
}

func (f outFile) Write(p []byte) (int, error) {
	n, err := f.WriteCloser.Write(p)
	return n, f.rename(err)
}

// Close flushes the file to stable storage (one fsync per file) and closes it, so that
// the folder renamed into place by commit never holds a file whose data a crash can lose.
func (f outFile) Close() error {
	var err error
	if s, ok := f.WriteCloser.(interface{ Sync() error }); ok {
		err = s.Sync()
	}
	if cerr := f.WriteCloser.Close(); err == nil {
		err = cerr
	}
	return f.rename(err)
}

func (f outFile) rename(err error) error {
	if pe := (*os.PathError)(nil); errors.As(err, &pe) {
		return &os.PathError{Op: pe.Op, Path: f.final, Err: pe.Err}
	}
	return err
}

func (s *dirSink) closeFile() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// commit closes the last file and moves the folder into place. The files (at their
// Close) and the temporary folder are flushed to stable storage before the rename and
// the parent folder after it, so that after a crash OUT_DIR is either absent or complete.
func (s *dirSink) commit(overwrite bool) error {
	if err := s.closeFile(); err != nil {
		return err
	}
	if err := os.Chmod(s.tmp, 0o755); err != nil {
		return err
	}
	if err := syncDir(s.tmp); err != nil {
		return fmt.Errorf("sync %s: %w", s.dir, unwrapPath(err))
	}
	if err := checkOutDir(s.dir, overwrite); err != nil {
		return err
	}
	if _, err := os.Stat(s.dir); err == nil {
		if err := os.RemoveAll(s.dir); err != nil {
			return err
		}
	}
	if err := os.Rename(s.tmp, s.dir); err != nil {
		return err
	}
	parent := filepath.Dir(filepath.Clean(s.dir))
	if err := syncDir(parent); err != nil {
		// The rename may not survive a crash: do not leave a model that may vanish.
		os.RemoveAll(s.dir)
		s.unlock()
		return fmt.Errorf("sync the folder holding %s: %w; the output was removed", s.dir, unwrapPath(err))
	}
	s.unlock()
	return nil
}

// unlock lets go of the temporary folder's lock.
func (s *dirSink) unlock() {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

// syncDir flushes the entries of the folder dir to stable storage. It is a variable so
// that tests can make it fail. Windows cannot flush a folder opened for reading
// (FlushFileBuffers needs write access), so there it does nothing; a file system that
// does not sync folders (EINVAL, as some network and FUSE file systems answer) is not
// an error either.
var syncDir = func(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil
	}
	return err
}

// unwrapPath returns the error inside a *os.PathError, for a message that names the
// path itself.
func unwrapPath(err error) error {
	if pe := (*os.PathError)(nil); errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// abort removes the temporary folder.
func (s *dirSink) abort() {
	s.closeFile()
	os.RemoveAll(s.tmp)
	s.unlock()
}

// progressBar draws one line on a terminal: percent, MB/s, ETA and the current tensor.
type progressBar struct {
	w     io.Writer
	start time.Time
	last  time.Time
}

func (b *progressBar) update(p engine.Progress) {
	now := time.Now()
	if now.Sub(b.last) < 100*time.Millisecond && p.TensorsDone < p.Tensors {
		return
	}
	b.last = now
	frac := 0.0
	if p.TotalBytes > 0 {
		frac = float64(p.BytesWritten) / float64(p.TotalBytes)
	}
	el := now.Sub(b.start).Seconds()
	rate := float64(p.BytesRead) / 1e6 / max(el, 1e-9)
	eta := "--"
	if frac > 0.01 {
		eta = (time.Duration(el*(1-frac)/frac) * time.Second).Round(time.Second).String()
	}
	name := p.Tensor
	if len(name) > 40 {
		name = "…" + name[len(name)-39:]
	}
	const width = 24
	n := int(frac * width)
	fmt.Fprintf(b.w, "\r\033[K[%s%s] %5.1f%% %7.1f MB/s ETA %s %s",
		strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, rate, eta, name)
}

func (b *progressBar) clear() { fmt.Fprint(b.w, "\r\033[K") }

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
