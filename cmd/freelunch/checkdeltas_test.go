package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"freelunch/core/analyze"
	"freelunch/core/safetensors"
)

// TestCheckDeltas runs merge --check-deltas over analyzeFamily's fine-tune (relative delta
// norm about 0.005) and large-delta model (about 0.05) at several densities, and checks
// which models are warned about, that the warning comes before the merge and carries the
// expected perturbation computed from analyze's report.
func TestCheckDeltas(t *testing.T) {
	dir := analyzeFamily(t)
	p := func(n string) string { return filepath.Join(dir, n) }

	// The expected perturbation of "large" at density 0.1 with rescale: every float tensor
	// is merged at one density, so it is NoiseFactor(0.1)·(overall relative norm).
	var ms []*safetensors.Model
	for _, n := range []string{"base", "ft", "large"} {
		m, err := safetensors.OpenModel(safetensors.OSFS{}, p(n))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		ms = append(ms, m)
	}
	rep, err := analyze.Run(context.Background(), ms[0], ms[1:], analyze.Options{})
	if err != nil {
		t.Fatal(err)
	}
	largeNoise := analyze.NoiseFactor(0.1, true) * rep.Models[1].Overall.RelNorm()
	if ftNoise := analyze.NoiseFactor(0.1, true) * rep.Models[0].Overall.RelNorm(); largeNoise <= analyze.MaxDARENoise || ftNoise > analyze.MaxDARENoise {
		t.Fatalf("family: DARE noise at density 0.1: ft %v, large %v; the test needs ft under %v and large over it", ftNoise, largeNoise, analyze.MaxDARENoise)
	}

	for i, tc := range []struct {
		method, ftDensity, largeDensity, extra string
		flags                                  []string
		warn                                   []string // models warned about
		note                                   string   // expected in stderr when nothing is warned
	}{
		{"dare_linear", "0.1", "0.1", "", []string{"--check-deltas"}, []string{"large"}, ""},
		{"dare_ties", "0.01", "0.1", "", []string{"--check-deltas", "--dry-run"}, []string{"large"}, ""},
		{"dare_ties", "0.1", "0.9", "", []string{"--check-deltas"}, nil, "check-deltas: 2 models"},
		// Without rescaling the error is sqrt(1-ρ)·‖δ‖: under the limit for "large" at 0.1.
		{"dare_linear", "0.1", "0.1", "  rescale: false\n", []string{"--check-deltas"}, nil, "check-deltas: 2 models"},
		{"ties", "0.1", "0.1", "", []string{"--check-deltas"}, nil, "ties drops no deltas at random"},
		{"dare_linear", "0.1", "0.1", "", nil, nil, ""},
	} {
		cfg := fmt.Sprintf("merge_method: %s\nbase_model: %s\nmodels:\n"+
			"  - model: %s\n    parameters: {weight: 0.5, density: %s}\n"+
			"  - model: %s\n    parameters: {weight: 0.5, density: %s}\nparameters:\n  lambda: 1.0\n%s",
			tc.method, p("base"), p("ft"), tc.ftDensity, p("large"), tc.largeDensity, tc.extra)
		cfgPath := filepath.Join(dir, fmt.Sprintf("cfg%d.yml", i))
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, fmt.Sprintf("out%d", i))
		args := append([]string{"merge", cfgPath, out}, tc.flags...)
		_, stderr, err := runCLI(t, args...)
		if err != nil {
			t.Errorf("%v: %v\n%s", args, err, stderr)
			continue
		}
		warnings := strings.Count(stderr, "warning: --check-deltas:")
		if warnings != len(tc.warn) {
			t.Errorf("%s ft %s large %s %v: %d warnings, want %v:\n%s", tc.method, tc.ftDensity, tc.largeDensity, tc.flags, warnings, tc.warn, stderr)
		}
		for _, m := range tc.warn {
			w := "warning: --check-deltas: " + p(m) + ": "
			at := strings.Index(stderr, w)
			if at < 0 {
				t.Errorf("%s: no warning for %s:\n%s", tc.method, m, stderr)
				continue
			}
			if want := fmt.Sprintf("by %.3g of the base's norm", largeNoise); !strings.Contains(stderr[at:], want) {
				t.Errorf("%s: warning for %s lacks %q:\n%s", tc.method, m, want, stderr)
			}
			if merged := strings.Index(stderr, "merged "); merged >= 0 && merged < at {
				t.Errorf("%s: the warning comes after the merge:\n%s", tc.method, stderr)
			}
		}
		if tc.note != "" && !strings.Contains(stderr, tc.note) {
			t.Errorf("%s %v: stderr lacks %q:\n%s", tc.method, tc.flags, tc.note, stderr)
		}
	}
}
