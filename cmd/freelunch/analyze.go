package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"freelunch/core/analyze"
	"freelunch/core/safetensors"
)

func init() { commands["analyze"] = runAnalyze }

const analyzeUsage = `usage: freelunch analyze --base BASE [--json] [--tensors] [--chunk-size N] [--threads N] MODEL...

Compares each MODEL with BASE, streaming every tensor once in bounded memory: per model,
per tensor and overall the largest |delta|, its quantiles (50, 90, 99, 99.9%), the fraction
within 0.002 and 0.005, the relative norm |delta|/|base|, and the expected perturbation DARE
adds at drop rates 0.5, 0.9 and 0.99; per pair of models the cosine of their deltas and the
rate at which non-zero deltas disagree in sign; and a verdict per model.

Flags:
  --base BASE       the base model (folder, index or .safetensors); required
  --json            print JSON: {"models": [...], "pairs": [...]}
  --tensors         also print a table per model with every tensor
  --chunk-size N    elements per chunk (memory, not results; default 1048576)
  --threads N       worker threads (not results; default: all cores)
`

// runAnalyze is "freelunch analyze --base BASE [--json] MODEL...". Flags may come before,
// between or after the models.
func runAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned and printed once by main
	fs.Usage = func() {}
	base := fs.String("base", "", "base model")
	asJSON := fs.Bool("json", false, "print JSON")
	perTensor := fs.Bool("tensors", false, "print every tensor")
	chunk := fs.Int("chunk-size", analyze.DefaultChunkSize, "elements per chunk")
	threads := fs.Int("threads", 0, "worker threads")
	paths, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, analyzeUsage)
		return err
	}
	if err != nil {
		return err // a usage error already
	}
	if *base == "" {
		return usageError("analyze: --base BASE is required")
	}
	if len(paths) == 0 {
		return usageError("analyze: give at least one MODEL to compare with %s", *base)
	}
	if *chunk < 1 {
		return usageError("analyze: --chunk-size must be at least 1, got %d", *chunk)
	}
	if *threads < 0 {
		return usageError("analyze: --threads must not be negative, got %d", *threads)
	}
	b, err := safetensors.OpenModel(safetensors.OSFS{}, filepath.ToSlash(*base))
	if err != nil {
		return err
	}
	defer b.Close()
	var models []*safetensors.Model
	defer func() {
		for _, m := range models {
			m.Close()
		}
	}()
	for _, p := range paths {
		m, err := safetensors.OpenModel(safetensors.OSFS{}, filepath.ToSlash(p))
		if err != nil {
			return err
		}
		models = append(models, m)
	}
	opts := analyze.Options{ChunkSize: *chunk, Threads: *threads}
	var bar *analyzeBar
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar = &analyzeBar{w: stderr}
		opts.Progress = bar.update
	}
	rep, err := analyze.Run(ctx, b, models, opts)
	if bar != nil {
		bar.clear()
	}
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("analyze interrupted")
		}
		return err
	}
	printAnalyzeNotes(stderr, rep)
	if *asJSON {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", data)
		return err
	}
	return printAnalyzeTable(stdout, rep, *perTensor)
}

// printAnalyzeNotes prints the skipped tensors and the non-finite elements left out.
func printAnalyzeNotes(w io.Writer, rep *analyze.Report) {
	const most = 20
	for i, s := range rep.Skipped {
		if i == most {
			fmt.Fprintf(w, "note: and %d more tensors not compared\n", len(rep.Skipped)-most)
			break
		}
		fmt.Fprintf(w, "note: tensor %s not compared: %s\n", printable(s.Tensor), s.Reason)
	}
	for _, m := range rep.Models {
		if m.Overall.NonFinite > 0 {
			fmt.Fprintf(w, "warning: %s: %d elements where it or the base is NaN or Inf were left out\n", m.Model, m.Overall.NonFinite)
		}
	}
}

// g formats a statistic: 4 significant digits, "-" when undefined.
func g(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	if math.IsInf(x, 1) {
		return "inf"
	}
	return fmt.Sprintf("%.4g", x)
}

// pct formats a fraction as a percentage.
func pct(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*x)
}

const statsHeader = "REL_NORM\tMAX|d|\tP50\tP90\tP99\tP99.9\t<=0.002\t<=0.005\tDARE@0.5\tDARE@0.9\tDARE@0.99"

func statsRow(s *analyze.Stats) string {
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s",
		g(s.RelNorm()), g(maxAbs(s)), g(s.Quantiles[0]), g(s.Quantiles[1]), g(s.Quantiles[2]), g(s.Quantiles[3]),
		pct(s.FracWithin(0)), pct(s.FracWithin(1)), g(s.DARENoise(0.5)), g(s.DARENoise(0.9)), g(s.DARENoise(0.99)))
}

func maxAbs(s *analyze.Stats) float64 {
	if s.N == 0 {
		return math.NaN()
	}
	return s.MaxAbs
}

// printAnalyzeTable prints one row per model, the pairs, and with perTensor a table per model.
func printAnalyzeTable(w io.Writer, rep *analyze.Report, perTensor bool) error {
	n := 0
	if len(rep.Models) > 0 {
		n = len(rep.Models[0].Tensors)
	}
	fmt.Fprintf(w, "base %s: %d tensors compared, %d not\n\n", rep.Base, n, len(rep.Skipped))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\t"+statsHeader+"\tVERDICT")
	for i := range rep.Models {
		m := &rep.Models[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Model, statsRow(&m.Overall), m.Verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Pairs) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MODEL A\tMODEL B\tCOSINE\tSIGN_CONFLICT")
		for _, p := range rep.Pairs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rep.Models[p.A].Model, rep.Models[p.B].Model, g(p.Overall.Cosine()), pct(p.Overall.SignConflict()))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if perTensor {
		for i := range rep.Models {
			m := &rep.Models[i]
			fmt.Fprintf(w, "\n%s:\n", m.Model)
			tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TENSOR\t"+statsHeader)
			for j := range m.Tensors {
				fmt.Fprintf(tw, "%s\t%s\n", printable(m.Tensors[j].Name), statsRow(&m.Tensors[j].Stats))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(w, "\nDARE@p: expected DARE perturbation at drop rate p, relative to the base's norm: sqrt(p/(1-p))*REL_NORM.\n"+
		"Above %g at p = 0.9, deltas are too large for aggressive DARE; REL_NORM of %g or more: not derived from this base.\n",
		analyze.MaxDARENoise, analyze.UnrelatedRelNorm)
	return nil
}

// analyzeBar draws one progress line on a terminal.
type analyzeBar struct {
	w    io.Writer
	last time.Time
}

func (b *analyzeBar) update(p analyze.Progress) {
	now := time.Now()
	if now.Sub(b.last) < 100*time.Millisecond {
		return
	}
	b.last = now
	frac := 0.0
	if p.Elements > 0 {
		frac = float64(p.ElementsDone) / float64(p.Elements)
	}
	name := p.Tensor
	if len(name) > 40 {
		name = "…" + name[len(name)-39:]
	}
	fmt.Fprintf(b.w, "\r\033[Kanalyzing %5.1f%% tensor %d/%d %s", 100*frac, p.TensorsDone+1, p.Tensors, name)
}

func (b *analyzeBar) clear() { fmt.Fprint(b.w, "\r\033[K") }
