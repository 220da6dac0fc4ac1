package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"freelunch/core/analyze"
	"freelunch/core/plan"
)

// checkDeltas is merge --check-deltas: when the plan's method is DARE-based (dare_linear,
// dare_ties, della, della_linear), it runs the delta analysis over the base and the models
// merged with it, before any output is written, and warns on stderr for each model whose
// expected DARE perturbation at the config's densities, relative to the base's norm, exceeds
// analyze.MaxDARENoise (0.1). The rule is analyze.CheckDARE, which the page calls too. It
// returns only errors of the analysis (and cancellation).
func checkDeltas(ctx context.Context, p *plan.Plan, chunk int, stderr io.Writer, quiet bool) error {
	name := p.Method.Name()
	if !analyze.DropsAtRandom(name) {
		if !quiet {
			fmt.Fprintf(stderr, "note: --check-deltas: %s drops no deltas at random; nothing to check\n", name)
		}
		return nil
	}
	base, models := analyze.DAREInputs(p)
	if base == nil {
		return nil
	}
	opts := analyze.Options{ChunkSize: chunk}
	var bar *analyzeBar
	if !quiet {
		fmt.Fprintf(stderr, "check-deltas: comparing %d models with %s before merging\n", len(models), base.Path)
		if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			bar = &analyzeBar{w: stderr}
			opts.Progress = bar.update
		}
	}
	rep, err := analyze.Run(ctx, base, models, opts)
	if bar != nil {
		bar.clear()
	}
	if err != nil {
		return fmt.Errorf("--check-deltas: %w", err)
	}
	if quiet {
		return nil
	}
	warned := 0
	for _, r := range analyze.CheckDARE(p, rep) {
		if r.Unsafe() {
			warned++
			fmt.Fprintf(stderr, "warning: --check-deltas: %s\n", r.String())
		}
	}
	if warned == 0 {
		fmt.Fprintf(stderr, "check-deltas: %d models: DARE at the config's densities moves none by more than %g of the base's norm\n", len(models), analyze.MaxDARENoise)
	}
	return nil
}
