package analyze

import (
	"fmt"
	"math"

	freeplan "freelunch/core/plan" // "plan" is taken by this package's own plan type
	"freelunch/core/safetensors"
)

// dareMethods are the methods that drop delta elements at random and rescale the survivors.
var dareMethods = map[string]bool{"dare_linear": true, "dare_ties": true, "della": true, "della_linear": true}

// DropsAtRandom reports whether the merge method drops delta elements at random (DARE and
// DELLA: dare_linear, dare_ties, della, della_linear), the methods [CheckDARE] checks.
func DropsAtRandom(method string) bool { return dareMethods[method] }

// DAREInputs returns the base and the models a DARE-based plan merges with it, in the
// order the plan first uses them: what [Run] must compare for [CheckDARE]. It returns a
// nil base when the plan's method does not drop at random or merges nothing with a base.
func DAREInputs(p *freeplan.Plan) (base *safetensors.Model, models []*safetensors.Model) {
	if !DropsAtRandom(p.Method.Name()) {
		return nil, nil
	}
	seen := map[*safetensors.Model]bool{}
	for _, e := range p.Entries {
		if e.Merge == nil || !e.Merge.HasBase {
			continue
		}
		base = e.Inputs[0].Model
		for k := 1; k < len(e.Inputs); k++ {
			m := e.Inputs[k].Model
			if m == base || seen[m] {
				continue
			}
			seen[m] = true
			models = append(models, m)
		}
	}
	if len(models) == 0 {
		return nil, nil
	}
	return base, models
}

// A DARERisk is what DARE at a plan's densities is expected to do to one model's weights.
type DARERisk struct {
	Model  string // the model's path, as in the plan and the Report
	Method string
	// MinDensity and MaxDensity bound the densities the plan uses for the model.
	MinDensity, MaxDensity float64
	Rescale                bool // the plan's rescale (of the last tensor; a global parameter)
	// Noise is the expected perturbation relative to the base's norm, over the tensors the
	// plan merges the model into: sqrt(Σ_t f(ρ_t)²‖δ_t‖²) / sqrt(Σ_t ‖B_t‖²), with
	// f = [NoiseFactor].
	Noise float64
	// RelNorm is ‖δ‖/‖B‖ over the same tensors.
	RelNorm float64
	Verdict string // the analysis' verdict on the model
}

// Unsafe reports whether Noise is above MaxDARENoise.
func (r *DARERisk) Unsafe() bool { return r.Noise > MaxDARENoise }

// SafeDensity returns the smallest uniform density whose perturbation stays within
// MaxDARENoise (rounded up to a hundredth), or 0 when no density below 1 does. It is
// meant for an unsafe model (RelNorm > 0).
func (r *DARERisk) SafeDensity() float64 {
	c := (MaxDARENoise / r.RelNorm) * (MaxDARENoise / r.RelNorm)
	safe := 1 - c
	if r.Rescale {
		safe = 1 / (1 + c)
	}
	if !(safe > 0 && safe < 1) {
		return 0
	}
	return math.Ceil(safe*100) / 100
}

// String says it in a sentence, for a warning:
//
//	PATH: dare_ties with density 0.1 is expected to move its weights by 0.15 of the base's
//	norm (its deltas are 0.05 of it; analyze says "…"); above 0.1 is not safe: use a density
//	of at least 0.2 or leave DARE out for it
func (r *DARERisk) String() string {
	density := fmt.Sprintf("density %g", r.MinDensity)
	if r.MaxDensity != r.MinDensity {
		density = fmt.Sprintf("densities %g to %g", r.MinDensity, r.MaxDensity)
	}
	s := fmt.Sprintf("%s: %s with %s is expected to move its weights by %.3g of the base's norm (its deltas are %.3g of it; analyze says %q)",
		r.Model, r.Method, density, r.Noise, r.RelNorm, r.Verdict)
	if !r.Unsafe() {
		return s + fmt.Sprintf("; within %g", MaxDARENoise)
	}
	advice := "leave DARE out for it"
	if safe := r.SafeDensity(); safe > 0 {
		advice = fmt.Sprintf("use a density of at least %.2g or leave DARE out for it", safe)
	}
	return s + fmt.Sprintf("; above %g is not safe: %s", MaxDARENoise, advice)
}

// CheckDARE is the rule of merge --check-deltas and of the page's warning: for a plan whose
// method drops deltas at random ([DropsAtRandom]) and a Report of the same base (rep.Base
// equal to the plan's base path), it returns per model merged with DARE, in the order of
// [DAREInputs], the expected perturbation at the plan's densities ([DARERisk]); the caller
// warns for those that are [DARERisk.Unsafe]. For DELLA ρ is the density; the per-element
// probabilities ρ ± ε average to it. Rescale defaults to true, as in the methods.
//
// Models missing from rep, and tensors it did not compare (not float, or missing from
// another model), are left out; a model with no compared tensor gets no DARERisk. It
// returns nil for other methods and for a Report of another base.
func CheckDARE(p *freeplan.Plan, rep *Report) []DARERisk {
	base, models := DAREInputs(p)
	if base == nil || rep == nil || rep.Base != base.Path {
		return nil
	}
	type use struct {
		noise2, delta2, base2 float64
		minD, maxD            float64
		rescale, seen         bool
		report                *ModelReport
		tensors               map[string]*TensorStats
	}
	uses := map[*safetensors.Model]*use{}
	for _, m := range models {
		for i := range rep.Models {
			if r := &rep.Models[i]; r.Model == m.Path {
				u := &use{minD: math.Inf(1), maxD: math.Inf(-1), report: r, tensors: map[string]*TensorStats{}}
				for j := range r.Tensors {
					u.tensors[r.Tensors[j].Name] = &r.Tensors[j]
				}
				uses[m] = u
				break
			}
		}
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
			u := uses[e.Inputs[k].Model]
			if u == nil {
				continue
			}
			ts := u.tensors[e.Inputs[k].Tensor.Name]
			if ts == nil {
				continue
			}
			rho := e.Merge.Args[k].Float("density")
			f := NoiseFactor(rho, rescale)
			u.noise2 += f * f * ts.NormDelta * ts.NormDelta
			u.delta2 += ts.NormDelta * ts.NormDelta
			u.base2 += ts.NormBase * ts.NormBase
			u.minD, u.maxD = min(u.minD, rho), max(u.maxD, rho)
			u.rescale, u.seen = rescale, true
		}
	}
	var out []DARERisk
	for _, m := range models {
		u := uses[m]
		if u == nil || !u.seen || u.base2 == 0 {
			continue
		}
		out = append(out, DARERisk{
			Model: m.Path, Method: p.Method.Name(), MinDensity: u.minD, MaxDensity: u.maxD,
			Rescale: u.rescale, Noise: math.Sqrt(u.noise2 / u.base2), RelNorm: math.Sqrt(u.delta2 / u.base2),
			Verdict: u.report.Verdict,
		})
	}
	return out
}
