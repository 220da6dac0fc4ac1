//go:build js && wasm

package main

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sort"
	"time"

	"freelunch/core/analyze"
	"freelunch/core/config"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
)

// histPerOctave is the resolution of the page's histogram of |δ|: 4 bins per power of two
// (about 100 bars for deltas spread from 1e-8 to 0.1).
const histPerOctave = 4

// runAnalyze is the page's Analyze: core/analyze over the posted base (req.Base) and models
// (req.Models), with progress and cancel as a merge has. It returns the CLI's JSON report
// ("report") and, per model, what the page draws and keeps:
//
//   - "bins": the log-scale histogram of |δ| over every compared tensor, as [lo, hi, count]
//     (exact zeros first as [0, 0, count]);
//   - "layers": relative norms per layer, [{layer, relNorm}], layer -1 for tensors outside
//     the numbered layers (embeddings, final norm, head), last;
//   - "norms": per compared tensor [‖δ‖, ‖B‖], which the page sends back with each plan so
//     that the DARE check (analyze.CheckDARE) runs without reading the models again.
//
// and "cosine", the matrix of overall cosines between the models' deltas (null when
// undefined), "skipped", the tensors left out and why, and "limits", the verdicts'
// thresholds (the relative norms of "not derived" and of "too large for aggressive DARE").
func runAnalyze(ctx context.Context, fsys fileFS, req request) (map[string]any, error) {
	if req.Base == "" || len(req.Models) == 0 {
		return nil, errors.New("analyze needs a base model and at least one other model")
	}
	base, err := safetensors.OpenModel(fsys, req.Base)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	var models []*safetensors.Model
	defer func() {
		for _, m := range models {
			m.Close()
		}
	}()
	for _, name := range req.Models {
		m, err := safetensors.OpenModel(fsys, name)
		if err != nil {
			return nil, err
		}
		models = append(models, m)
	}

	start := time.Now()
	var lastPost time.Time
	rep, err := analyze.Run(ctx, base, models, analyze.Options{
		ChunkSize: req.ChunkSize, Threads: 1,
		Progress: func(pr analyze.Progress) {
			now := time.Now()
			if now.Sub(lastPost) < 100*time.Millisecond && pr.TensorsDone < pr.Tensors {
				return
			}
			lastPost = now
			post(map[string]any{"type": "progress", "id": req.ID,
				"elementsDone": pr.ElementsDone, "elements": pr.Elements, "bytesRead": pr.BytesRead,
				"tensorsDone": pr.TensorsDone, "tensors": pr.Tensors, "tensor": pr.Tensor,
				"seconds": now.Sub(start).Seconds()})
		},
		Yield: yielder(),
	})
	if err != nil {
		return nil, err
	}
	js, err := rep.MarshalJSON()
	if err != nil {
		return nil, err
	}

	var out []any
	for i := range rep.Models {
		m := &rep.Models[i]
		var bins [][3]any
		for _, b := range m.Histogram.Bins(histPerOctave) {
			bins = append(bins, [3]any{b.Lo, b.Hi, b.Count})
		}
		norms := map[string][2]any{}
		for _, t := range m.Tensors {
			norms[t.Name] = [2]any{finite(t.NormDelta), finite(t.NormBase)}
		}
		out = append(out, map[string]any{
			"model": m.Model, "verdict": m.Verdict, "relNorm": finite(m.Overall.RelNorm()),
			"bins": bins, "layers": layerNorms(m.Tensors), "norms": norms,
		})
	}
	n := len(rep.Models)
	cosine := make([][]any, n)
	for i := range cosine {
		cosine[i] = make([]any, n)
		cosine[i][i] = 1.0
	}
	for _, p := range rep.Pairs {
		c := finite(p.Overall.Cosine())
		cosine[p.A][p.B], cosine[p.B][p.A] = c, c
	}
	var skipped []any
	for _, s := range rep.Skipped {
		skipped = append(skipped, map[string]any{"tensor": s.Tensor, "reason": s.Reason})
	}
	return map[string]any{
		"report": json.RawMessage(js), "base": rep.Base, "models": out, "cosine": cosine,
		"skipped": skipped, "seconds": time.Since(start).Seconds(),
		"limits": map[string]any{"maxDareNoise": analyze.MaxDARENoise, "unrelatedRelNorm": analyze.UnrelatedRelNorm,
			"largeRelNorm": analyze.MaxDARENoise / analyze.NoiseFactor(1-analyze.DropRates[1], true)},
	}, nil
}

// layerNorms groups a model's per-tensor stats by layer, with the rule the planner uses for
// slices (config.LayerOf: the first all-digit component of the name, so
// "model.layers.12.mlp.up_proj.weight" is layer 12), and returns each layer's relative norm
// sqrt(Σ‖δ_t‖²)/sqrt(Σ‖B_t‖²) over its tensors: the same quantity as the overall RelNorm,
// restricted to the layer, so that no per-tensor data is read again. Tensors outside any
// layer (layer -1: embeddings, final norm, head) form one group, listed last.
func layerNorms(ts []analyze.TensorStats) []any {
	type sums struct{ d2, b2 float64 }
	by := map[int]*sums{}
	for _, t := range ts {
		l := config.LayerOf(t.Name)
		if by[l] == nil {
			by[l] = &sums{}
		}
		by[l].d2 += t.NormDelta * t.NormDelta
		by[l].b2 += t.NormBase * t.NormBase
	}
	var keys []int
	for l := range by {
		keys = append(keys, l)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if (a < 0) != (b < 0) {
			return b < 0
		}
		return a < b
	})
	var out []any
	for _, l := range keys {
		s := by[l]
		rel := 0.0
		switch {
		case s.b2 > 0:
			rel = math.Sqrt(s.d2) / math.Sqrt(s.b2)
		case s.d2 > 0:
			rel = math.Inf(1)
		}
		out = append(out, map[string]any{"layer": l, "relNorm": finite(rel)})
	}
	return out
}

// analysis is what the page sends back with a plan after Analyze: the base, and per model
// its verdict and per-tensor [‖δ‖, ‖B‖] (runAnalyze's "norms"), for the models whose files
// have not changed since.
type analysis struct {
	Base   string `json:"base"`
	Models []struct {
		Model   string                 `json:"model"`
		Verdict string                 `json:"verdict"`
		Norms   map[string][2]*float64 `json:"norms"`
	} `json:"models"`
}

// dareRisks runs analyze.CheckDARE, the rule of merge --check-deltas, on the plan and the
// page's analysis, and returns per model merged with DARE the check and its sentence.
func dareRisks(p *plan.Plan, raw json.RawMessage) ([]any, error) {
	var a analysis
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	rep := &analyze.Report{Base: a.Base}
	for _, m := range a.Models {
		mr := analyze.ModelReport{Model: m.Model, Verdict: m.Verdict}
		for name, n := range m.Norms {
			if n[0] == nil || n[1] == nil { // not finite: no meaningful share of the norm
				continue
			}
			mr.Tensors = append(mr.Tensors, analyze.TensorStats{Name: name,
				Stats: analyze.Stats{NormDelta: *n[0], NormBase: *n[1]}})
		}
		rep.Models = append(rep.Models, mr)
	}
	var out []any
	for _, r := range analyze.CheckDARE(p, rep) {
		out = append(out, map[string]any{
			"model": r.Model, "unsafe": r.Unsafe(), "noise": finite(r.Noise), "relNorm": finite(r.RelNorm),
			"minDensity": r.MinDensity, "maxDensity": r.MaxDensity, "safeDensity": r.SafeDensity(),
			"verdict": r.Verdict, "message": r.String(),
		})
	}
	return out, nil
}
