package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"freelunch/core/config"
	"freelunch/core/engine"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
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

// readConfigFile reads a config of at most 1 MiB.
func readConfigFile(name string) ([]byte, error) {
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
type dirSink struct {
	dir, tmp string
	f        io.WriteCloser
}

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
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".freelunch-tmp-")
	if err != nil {
		return nil, err
	}
	return &dirSink{dir: dir, tmp: tmp}, nil
}

func (s *dirSink) Create(name string) (io.Writer, error) {
	if err := s.closeFile(); err != nil {
		return nil, err
	}
	f, err := createOutput(filepath.Join(s.tmp, name))
	if err != nil {
		return nil, err
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

func (f outFile) Close() error { return f.rename(f.WriteCloser.Close()) }

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

// commit closes the last file and moves the folder into place.
func (s *dirSink) commit(overwrite bool) error {
	if err := s.closeFile(); err != nil {
		return err
	}
	if err := os.Chmod(s.tmp, 0o755); err != nil {
		return err
	}
	if err := checkOutDir(s.dir, overwrite); err != nil {
		return err
	}
	if _, err := os.Stat(s.dir); err == nil {
		if err := os.RemoveAll(s.dir); err != nil {
			return err
		}
	}
	return os.Rename(s.tmp, s.dir)
}

// abort removes the temporary folder.
func (s *dirSink) abort() {
	s.closeFile()
	os.RemoveAll(s.tmp)
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
