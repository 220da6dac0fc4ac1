package analyze

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"freelunch/core/dtype"
	"freelunch/core/safetensors"
	"freelunch/internal/testmodel"
)

// family is a generated F32 family big enough for sample statistics: 114,688 matrix
// elements (sd 0.02) and 320 norm elements (near 1), two shards and an I64 tensor.
var family = testmodel.Spec{Layers: 2, Hidden: 64, Intermediate: 128, Vocab: 256, DType: dtype.F32, Shards: 2, IntTensor: true, Seed: 7}

// Members of the family: name, variant, delta sd (0 for unrelated), expected verdict.
var members = []struct {
	name    string
	v       testmodel.Variant
	verdict string
}{
	{"ft1", testmodel.Variant{Seed: 1, Scale: 0.0005}, VerdictFineTune},
	{"ft2", testmodel.Variant{Seed: 2, Scale: 0.0005}, VerdictFineTune},
	{"ft1x2", testmodel.Variant{Seed: 1, Scale: 0.001}, VerdictFineTune}, // ft1's delta, doubled
	{"large", testmodel.Variant{Seed: 3, Scale: 0.005}, VerdictLarge},
	{"unrelated", testmodel.Variant{Seed: 4, Unrelated: true}, VerdictNotBase},
}

func writeFamily(t *testing.T) (dir string, paths []string) {
	t.Helper()
	dir = t.TempDir()
	if err := family.Write(filepath.Join(dir, "base"), testmodel.Variant{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if err := family.Write(filepath.Join(dir, m.name), m.v); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, filepath.Join(dir, m.name))
	}
	return dir, paths
}

// halfNormalQuantile returns the q quantile of |Z|, Z ~ N(0, 1).
func halfNormalQuantile(q float64) float64 { return math.Sqrt2 * math.Erfinv(q) }

// TestFamily checks the stats of generated fine-tunes against the distribution of their
// deltas (normal, sd Scale), and the verdicts.
func TestFamily(t *testing.T) {
	dir, paths := writeFamily(t)
	ms := open(t, safetensors.OSFS{}, append([]string{filepath.Join(dir, "base")}, paths...)...)
	r := run(t, ms, 4096)

	if len(r.Skipped) != 1 || r.Skipped[0].Tensor != "model.position_ids" {
		t.Errorf("Skipped = %+v, want the I64 model.position_ids only", r.Skipped)
	}
	// ‖B‖² ≈ 114688·0.02² + 320·(1 + 0.1²).
	normB := math.Sqrt(114688*0.0004 + 320*1.01)
	for i, m := range members {
		mr := &r.Models[i]
		t.Logf("%s: rel_norm %.4g, dare_noise(0.9) %.4g, quantiles %.3g, verdict %q", m.name, mr.Overall.RelNorm(), mr.Overall.DARENoise(0.9), mr.Overall.Quantiles, mr.Verdict)
		if mr.Verdict != m.verdict {
			t.Errorf("%s: verdict %q, want %q (rel_norm %.4g, dare_noise(0.9) %.4g)", m.name, mr.Verdict, m.verdict, mr.Overall.RelNorm(), mr.Overall.DARENoise(0.9))
		}
		if m.v.Unrelated {
			continue
		}
		s := mr.Overall
		sd := m.v.Scale
		n := float64(s.N)
		if s.N != 115008 {
			t.Errorf("%s: N = %d, want 115008", m.name, s.N)
		}
		for k, q := range Quantiles[:3] {
			want := sd * halfNormalQuantile(q)
			if got := s.Quantiles[k]; math.Abs(got-want) > 0.03*want {
				t.Errorf("%s: quantile %v = %.4g, want %.4g ± 3%%", m.name, q, got, want)
			}
		}
		for k, th := range Within {
			p := math.Erf(th / (sd * math.Sqrt2))
			if got, tol := s.FracWithin(k), 5*math.Sqrt(p*(1-p)/n)+1e-5; math.Abs(got-p) > tol {
				t.Errorf("%s: frac within %v = %.5f, want %.5f ± %.2g", m.name, th, got, p, tol)
			}
		}
		wantRel := sd * math.Sqrt(n) / normB
		if got := s.RelNorm(); math.Abs(got-wantRel) > 0.03*wantRel {
			t.Errorf("%s: rel_norm = %.4g, want %.4g ± 3%%", m.name, got, wantRel)
		}
		for _, p := range DropRates {
			if got, want := s.DARENoise(p), math.Sqrt(p/(1-p))*s.RelNorm(); math.Abs(got-want) > 1e-12 {
				t.Errorf("%s: dare_noise(%v) = %v, want %v", m.name, p, got, want)
			}
		}
	}
	for _, p := range r.Pairs {
		a, b := members[p.A].name, members[p.B].name
		if members[p.A].v.Unrelated || members[p.B].v.Unrelated {
			continue
		}
		cos, conf := p.Overall.Cosine(), p.Overall.SignConflict()
		if a == "ft1" && b == "ft1x2" { // the same delta direction
			if cos < 0.9999 || conf > 0.001 {
				t.Errorf("%s/%s: cosine %v, sign conflict %v; want ≈ 1 and ≈ 0", a, b, cos, conf)
			}
			continue
		}
		// Independent deltas: cosine ≈ 0 (sd 1/√n ≈ 0.003), signs disagree half the time.
		if math.Abs(cos) > 0.015 || math.Abs(conf-0.5) > 0.01 {
			t.Errorf("%s/%s: cosine %v, sign conflict %v; want ≈ 0 and ≈ 0.5", a, b, cos, conf)
		}
	}
}

// TestJSONShape checks the JSON of a report against issue 8's shape.
func TestJSONShape(t *testing.T) {
	fsys := safetensors.MemFS{}
	writeFile(t, fsys, "b.safetensors", []tdata{
		{name: "w", dt: dtype.F32, shape: []int64{3}, vals: []float32{1, 2, 3}},
		{name: "zero", dt: dtype.F32, shape: []int64{2}, vals: []float32{0, 0}},
	})
	writeFile(t, fsys, "m1.safetensors", []tdata{
		{name: "w", dt: dtype.F32, shape: []int64{3}, vals: []float32{1, 2, 3.5}},
		{name: "zero", dt: dtype.F32, shape: []int64{2}, vals: []float32{0, 1}},
	})
	writeFile(t, fsys, "m2.safetensors", []tdata{
		{name: "w", dt: dtype.F32, shape: []int64{3}, vals: []float32{1, 2, 3}},
		{name: "zero", dt: dtype.F32, shape: []int64{2}, vals: []float32{0, 0}},
	})
	r := run(t, open(t, fsys, "b.safetensors", "m1.safetensors", "m2.safetensors"), 0)
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Models []struct {
			Model   string                                `json:"model"`
			Verdict string                                `json:"verdict"`
			Overall map[string]json.RawMessage            `json:"overall"`
			Tensors map[string]map[string]json.RawMessage `json:"tensors"`
		} `json:"models"`
		Pairs []struct {
			Models       []string `json:"models"`
			Cosine       *float64 `json:"cosine"`
			SignConflict *float64 `json:"sign_conflict"`
		} `json:"pairs"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	if len(got.Models) != 2 || got.Models[0].Model != "m1.safetensors" || len(got.Pairs) != 1 ||
		strings.Join(got.Pairs[0].Models, ",") != "m1.safetensors,m2.safetensors" {
		t.Fatalf("JSON %s: wrong models or pairs", data)
	}
	// m2 has a zero delta: the cosine is undefined (null), so is the sign conflict.
	if got.Pairs[0].Cosine != nil || got.Pairs[0].SignConflict != nil {
		t.Errorf("pair with a zero delta: cosine %v, sign_conflict %v, want null", got.Pairs[0].Cosine, got.Pairs[0].SignConflict)
	}
	keys := []string{"max_abs", "quantiles", "frac_within_0.002", "frac_within_0.005", "rel_norm", "dare_noise"}
	for _, m := range got.Models {
		if len(m.Overall) != len(keys) {
			t.Errorf("%s overall has %d keys, want %v", m.Model, len(m.Overall), keys)
		}
		for _, k := range keys {
			if _, ok := m.Overall[k]; !ok {
				t.Errorf("%s overall lacks %q", m.Model, k)
			}
		}
		var q, d map[string]float64
		json.Unmarshal(m.Overall["quantiles"], &q)
		json.Unmarshal(m.Overall["dare_noise"], &d)
		if len(q) != 4 || len(d) != 3 {
			t.Errorf("%s: quantiles %v, dare_noise %v; want keys 0.5 0.9 0.99 0.999 and 0.5 0.9 0.99", m.Model, q, d)
		}
		for _, k := range []string{"0.5", "0.9", "0.99", "0.999"} {
			if _, ok := q[k]; !ok {
				t.Errorf("%s: quantiles lack %q", m.Model, k)
			}
		}
		if len(m.Tensors) != 2 {
			t.Errorf("%s: %d tensors, want w and zero", m.Model, len(m.Tensors))
		}
	}
	// m1's "zero" tensor: base norm 0, delta norm 1: rel_norm is infinite, written null.
	if s := string(got.Models[0].Tensors["zero"]["rel_norm"]); s != "null" {
		t.Errorf("rel_norm over a zero base = %s, want null", s)
	}
	if s := string(got.Models[0].Tensors["w"]["max_abs"]); s != "0.5" {
		t.Errorf("m1 w max_abs = %s, want 0.5", s)
	}
}

// TestUnrelatedSmall checks the share rule: in testmodel.Small (hidden 16) the norm weights,
// near 1, hold most of ‖B‖, so an unrelated model's overall rel_norm stays under 0.5 while
// its matrices (most of the elements) are at about √2.
func TestUnrelatedSmall(t *testing.T) {
	dir := t.TempDir()
	for name, v := range map[string]testmodel.Variant{
		"base": {}, "ft": {Seed: 1, Scale: 0.0002}, "unrelated": {Seed: 2, Unrelated: true},
	} {
		if err := testmodel.Small.Write(filepath.Join(dir, name), v); err != nil {
			t.Fatal(err)
		}
	}
	ms := open(t, safetensors.OSFS{}, filepath.Join(dir, "base"), filepath.Join(dir, "ft"), filepath.Join(dir, "unrelated"))
	r := run(t, ms, 100)
	ft, un := &r.Models[0], &r.Models[1]
	if ft.Verdict != VerdictFineTune {
		t.Errorf("ft: verdict %q, want %q", ft.Verdict, VerdictFineTune)
	}
	if rel := un.Overall.RelNorm(); rel >= UnrelatedRelNorm {
		t.Errorf("unrelated: overall rel_norm %v; the test wants it under %v to exercise the share rule", rel, UnrelatedRelNorm)
	}
	if got := un.Tensor("lm_head.weight").RelNorm(); got < 1.2 || got > 1.6 {
		t.Errorf("unrelated: lm_head rel_norm %v, want about √2", got)
	}
	if un.Verdict != VerdictNotBase {
		t.Errorf("unrelated: verdict %q, want %q", un.Verdict, VerdictNotBase)
	}
}
