package main

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"freelunch/core/analyze"
	"freelunch/core/safetensors"
	"freelunch/internal/testmodel"
)

// analyzeFamily writes testmodel.Small's base (with an I64 tensor, skipped by analyze), a
// small-delta fine-tune, a large-delta one and an unrelated model into a temporary folder.
func analyzeFamily(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	spec := testmodel.Small
	spec.IntTensor = true
	for name, v := range map[string]testmodel.Variant{
		"base":      {},
		"ft":        {Seed: 1, Scale: 0.0005},
		"large":     {Seed: 2, Scale: 0.005},
		"unrelated": {Seed: 3, Unrelated: true},
	} {
		if err := spec.Write(filepath.Join(dir, name), v); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func keysOf(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestAnalyzeJSON checks analyze --json against issue 8's shape and the verdicts of the
// family, with flags after the models.
func TestAnalyzeJSON(t *testing.T) {
	dir := analyzeFamily(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	out, errOut, err := runCLI(t, "analyze", p("ft"), "--base", p("base"), p("large"), p("unrelated"), "--json", "--chunk-size", "100")
	if err != nil {
		t.Fatalf("analyze: %v\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "model.position_ids not compared") {
		t.Errorf("stderr %q does not note the skipped I64 tensor", errOut)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &top); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if got := keysOf(top); !slices.Equal(got, []string{"models", "pairs"}) {
		t.Errorf("top-level keys %v, want models, pairs", got)
	}
	var models []map[string]json.RawMessage
	json.Unmarshal(top["models"], &models)
	want := map[string]string{"ft": analyze.VerdictFineTune, "large": analyze.VerdictLarge, "unrelated": analyze.VerdictNotBase}
	wantStats := []string{"dare_noise", "frac_within_0.002", "frac_within_0.005", "max_abs", "quantiles", "rel_norm"}
	if len(models) != 3 {
		t.Fatalf("%d models, want 3", len(models))
	}
	for i, m := range models {
		if got := keysOf(m); !slices.Equal(got, []string{"model", "overall", "tensors", "verdict"}) {
			t.Errorf("model %d keys %v, want model, overall, tensors, verdict", i, got)
		}
		var path, verdict string
		json.Unmarshal(m["model"], &path)
		json.Unmarshal(m["verdict"], &verdict)
		if verdict != want[filepath.Base(path)] {
			t.Errorf("%s: verdict %q, want %q", path, verdict, want[filepath.Base(path)])
		}
		var overall map[string]json.RawMessage
		json.Unmarshal(m["overall"], &overall)
		if got := keysOf(overall); !slices.Equal(got, wantStats) {
			t.Errorf("%s: overall keys %v, want %v", path, got, wantStats)
		}
		var q, d map[string]json.RawMessage
		json.Unmarshal(overall["quantiles"], &q)
		json.Unmarshal(overall["dare_noise"], &d)
		if got := keysOf(q); !slices.Equal(got, []string{"0.5", "0.9", "0.99", "0.999"}) {
			t.Errorf("%s: quantiles keys %v", path, got)
		}
		if got := keysOf(d); !slices.Equal(got, []string{"0.5", "0.9", "0.99"}) {
			t.Errorf("%s: dare_noise keys %v", path, got)
		}
		var tensors map[string]map[string]json.RawMessage
		json.Unmarshal(m["tensors"], &tensors)
		if len(tensors) != len(testmodel.Small.Tensors()) {
			t.Errorf("%s: %d tensors, want the %d float ones", path, len(tensors), len(testmodel.Small.Tensors()))
		}
		if got := keysOf(tensors["lm_head.weight"]); !slices.Equal(got, wantStats) {
			t.Errorf("%s: lm_head.weight keys %v, want %v", path, got, wantStats)
		}
	}
	var pairs []struct {
		Models       []string       `json:"models"`
		Cosine       *float64       `json:"cosine"`
		SignConflict *float64       `json:"sign_conflict"`
		Tensors      map[string]any `json:"tensors"`
	}
	json.Unmarshal(top["pairs"], &pairs)
	if len(pairs) != 3 || pairs[0].Cosine == nil || pairs[0].SignConflict == nil || len(pairs[0].Models) != 2 ||
		pairs[0].Models[0] != p("ft") || pairs[0].Models[1] != p("large") || len(pairs[0].Tensors) != len(testmodel.Small.Tensors()) {
		t.Errorf("pairs = %s", top["pairs"][:min(300, len(top["pairs"]))])
	}
}

// TestAnalyzeTable checks the human table: a row per model with its verdict, and the pairs.
func TestAnalyzeTable(t *testing.T) {
	dir := analyzeFamily(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	out, errOut, err := runCLI(t, "analyze", "--base", p("base"), "--tensors", p("ft"), p("unrelated"))
	if err != nil {
		t.Fatalf("analyze: %v\n%s", err, errOut)
	}
	for _, want := range []string{
		p("ft") + " ", analyze.VerdictFineTune, analyze.VerdictNotBase, "COSINE", "SIGN_CONFLICT",
		"model.layers.1.mlp.down_proj.weight",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestAnalyzeErrors(t *testing.T) {
	dir := analyzeFamily(t)
	p := func(n string) string { return filepath.Join(dir, n) }
	other := testmodel.Small
	other.Hidden = 8
	if err := other.Write(p("narrow"), testmodel.Variant{Seed: 1, Scale: 0.001}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		usage bool
		want  []string
	}{
		{[]string{"analyze", p("ft")}, true, []string{"--base"}},
		{[]string{"analyze", "--base", p("base")}, true, []string{"MODEL"}},
		{[]string{"analyze", "--base", p("base"), "--chunk-size", "0", p("ft")}, true, []string{"--chunk-size"}},
		{[]string{"analyze", "--base", p("base"), p("nothere")}, false, []string{"nothere"}},
		{[]string{"analyze", "--base", p("base"), p("ft"), p("narrow")}, false,
			[]string{filepath.Join(p("narrow"), safetensors.SingleName), `"model.embed_tokens.weight"`, "[64, 8]", "[64, 16]"}},
	} {
		_, _, err := runCLI(t, tc.args...)
		if err == nil {
			t.Errorf("%v: no error", tc.args)
			continue
		}
		if errors.Is(err, errUsage) != tc.usage {
			t.Errorf("%v: error %v, usage error %v, want %v", tc.args, err, !tc.usage, tc.usage)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %s", tc.args, err, w)
			}
		}
	}
}
