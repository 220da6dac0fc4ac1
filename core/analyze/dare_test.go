package analyze

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"freelunch/core/config"
	freeplan "freelunch/core/plan"
	"freelunch/core/safetensors"
)

// TestCheckDARE checks the rule of merge --check-deltas and of the page's warning on the
// generated family: with one density for every tensor, a model's Noise is
// NoiseFactor(ρ)·(its overall RelNorm), "large" (RelNorm about 0.05) is unsafe at density
// 0.1 and safe at its SafeDensity, the fine-tunes (about 0.005) are safe; other methods and
// a report of another base give nothing.
func TestCheckDARE(t *testing.T) {
	dir, paths := writeFamily(t)
	ms := open(t, safetensors.OSFS{}, append([]string{filepath.Join(dir, "base")}, paths...)...)
	rep, err := Run(context.Background(), ms[0], ms[1:], Options{})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]*ModelReport{}
	for i := range rep.Models {
		byPath[rep.Models[i].Model] = &rep.Models[i]
	}
	build := func(method string, density float64, extra string) *freeplan.Plan {
		t.Helper()
		y := fmt.Sprintf("merge_method: %s\nbase_model: %s\nmodels:\n", method, filepath.Join(dir, "base"))
		for _, p := range []string{paths[0], paths[3]} { // ft1, large
			y += fmt.Sprintf("  - model: %s\n    parameters: {weight: 0.5, density: %g}\n", p, density)
		}
		y += extra
		cfg, err := config.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		p, err := freeplan.Build(cfg, safetensors.OSFS{}, freeplan.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}

	for _, tc := range []struct {
		method  string
		density float64
		extra   string
		rescale bool
		unsafe  []bool // ft1, large
	}{
		{"dare_linear", 0.1, "", true, []bool{false, true}},
		{"dare_ties", 0.9, "", true, []bool{false, false}},
		{"della", 0.1, "parameters: {epsilon: 0.05}\n", true, []bool{false, true}},
		{"dare_linear", 0.1, "parameters: {rescale: false}\n", false, []bool{false, false}},
	} {
		p := build(tc.method, tc.density, tc.extra)
		got := CheckDARE(p, rep)
		if len(got) != 2 {
			t.Fatalf("%s %g: CheckDARE = %d risks, want 2", tc.method, tc.density, len(got))
		}
		for i, r := range got {
			m := byPath[r.Model]
			want := NoiseFactor(tc.density, tc.rescale) * m.Overall.RelNorm()
			if r.Unsafe() != tc.unsafe[i] || math.Abs(r.Noise-want) > 1e-9*want || r.Verdict != m.Verdict ||
				r.MinDensity != tc.density || r.MaxDensity != tc.density || r.Method != tc.method {
				t.Errorf("%s %g %s: got %+v, want unsafe %v, noise %v", tc.method, tc.density, filepath.Base(r.Model), r, tc.unsafe[i], want)
			}
			if r.Unsafe() {
				safe := r.SafeDensity()
				if n := NoiseFactor(safe, r.Rescale) * r.RelNorm; n > MaxDARENoise {
					t.Errorf("%s: SafeDensity %v gives noise %v", r.Model, safe, n)
				}
				if n := NoiseFactor(safe-0.02, r.Rescale) * r.RelNorm; n <= MaxDARENoise {
					t.Errorf("%s: SafeDensity %v is not the smallest: %v gives %v", r.Model, safe, safe-0.02, n)
				}
			}
		}
	}
	if got := CheckDARE(build("ties", 0.1, ""), rep); got != nil {
		t.Errorf("ties: CheckDARE = %+v, want nil", got)
	}
	other := *rep
	other.Base = "elsewhere"
	if got := CheckDARE(build("dare_linear", 0.1, ""), &other); got != nil {
		t.Errorf("a report of another base: CheckDARE = %+v, want nil", got)
	}
}
