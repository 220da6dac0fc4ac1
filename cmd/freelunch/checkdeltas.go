package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"

	"golang.org/x/term"

	"freelunch/core/analyze"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
)

// dareMethods are the methods that drop delta elements at random and rescale the survivors.
var dareMethods = map[string]bool{"dare_linear": true, "dare_ties": true, "della": true, "della_linear": true}

// dareUse gathers, for one model merged with DARE, what the check needs over the tensors
// the plan merges it into.
type dareUse struct {
	model         *safetensors.Model
	noise2        float64 // Σ NoiseFactor(ρ)²·‖δ‖² over its tensors
	delta2, base2 float64 // Σ ‖δ‖², Σ ‖B‖²
	minD, maxD    float64 // densities used
	rescale       bool    // rescale of the last tensor seen (a global parameter)
	seen          bool
}

// checkDeltas is merge --check-deltas: when the plan's method is DARE-based (dare_linear,
// dare_ties, della, della_linear), it runs the delta analysis over the base and the models
// merged with it, before any output is written, and warns on stderr for each model whose
// expected DARE perturbation at the config's densities, relative to the base's norm, exceeds
// analyze.MaxDARENoise (0.1): sqrt(Σ_t f(ρ_t)²‖δ_t‖²) / sqrt(Σ_t ‖B_t‖²) over the tensors the
// plan merges the model into, with f = analyze.NoiseFactor (sqrt((1−ρ)/ρ) with rescale,
// sqrt(1−ρ) without). For DELLA ρ is the density; the per-element probabilities ρ ± ε
// average to it. It returns only errors of the analysis (and cancellation).
func checkDeltas(ctx context.Context, p *plan.Plan, chunk int, stderr io.Writer, quiet bool) error {
	name := p.Method.Name()
	if !dareMethods[name] {
		if !quiet {
			fmt.Fprintf(stderr, "note: --check-deltas: %s drops no deltas at random; nothing to check\n", name)
		}
		return nil
	}
	var base *safetensors.Model
	var uses []*dareUse
	byModel := map[*safetensors.Model]*dareUse{}
	for _, e := range p.Entries {
		if e.Merge == nil || !e.Merge.HasBase {
			continue
		}
		base = e.Inputs[0].Model
		for k := 1; k < len(e.Inputs); k++ {
			m := e.Inputs[k].Model
			if m == base || byModel[m] != nil {
				continue
			}
			byModel[m] = &dareUse{model: m, minD: math.Inf(1), maxD: math.Inf(-1)}
			uses = append(uses, byModel[m])
		}
	}
	if base == nil || len(uses) == 0 {
		return nil
	}
	models := make([]*safetensors.Model, len(uses))
	for i, u := range uses {
		models[i] = u.model
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
	reports := map[*safetensors.Model]*analyze.ModelReport{}
	for i := range uses {
		reports[uses[i].model] = &rep.Models[i]
	}
	for _, e := range p.Entries {
		if e.Merge == nil || !e.Merge.HasBase {
			continue
		}
		rescale := true
		if v, ok := e.Merge.Global["rescale"].(bool); ok {
			rescale = v
		}
		for k := 1; k < len(e.Inputs); k++ {
			u := byModel[e.Inputs[k].Model]
			if u == nil {
				continue
			}
			ts := reports[u.model].Tensor(e.Inputs[k].Tensor.Name)
			if ts == nil { // not compared: not float, or missing from another model
				continue
			}
			rho := e.Merge.Args[k].Float("density")
			f := analyze.NoiseFactor(rho, rescale)
			u.noise2 += f * f * ts.NormDelta * ts.NormDelta
			u.delta2 += ts.NormDelta * ts.NormDelta
			u.base2 += ts.NormBase * ts.NormBase
			u.minD, u.maxD = min(u.minD, rho), max(u.maxD, rho)
			u.rescale, u.seen = rescale, true
		}
	}
	if quiet {
		return nil
	}
	warned := 0
	for _, u := range uses {
		if !u.seen || u.base2 == 0 {
			continue
		}
		noise := math.Sqrt(u.noise2 / u.base2)
		if noise <= analyze.MaxDARENoise {
			continue
		}
		warned++
		rel := math.Sqrt(u.delta2 / u.base2)
		density := fmt.Sprintf("density %g", u.minD)
		if u.maxD != u.minD {
			density = fmt.Sprintf("densities %g to %g", u.minD, u.maxD)
		}
		// The smallest uniform density that keeps the noise at the limit.
		c := (analyze.MaxDARENoise / rel) * (analyze.MaxDARENoise / rel)
		safe := 1 - c
		if u.rescale {
			safe = 1 / (1 + c)
		}
		advice := "leave DARE out for it"
		if safe > 0 && safe < 1 {
			advice = fmt.Sprintf("use a density of at least %.2g or leave DARE out for it", math.Ceil(safe*100)/100)
		}
		fmt.Fprintf(stderr, "warning: --check-deltas: %s: %s with %s is expected to move its weights by %.3g of the base's norm (its deltas are %.3g of it; analyze says %q); above %g is not safe: %s\n",
			u.model.Path, p.Method.Name(), density, noise, rel, reports[u.model].Verdict, analyze.MaxDARENoise, advice)
	}
	if warned == 0 {
		fmt.Fprintf(stderr, "check-deltas: %d models: DARE at the config's densities moves none by more than %g of the base's norm\n", len(uses), analyze.MaxDARENoise)
	}
	return nil
}
