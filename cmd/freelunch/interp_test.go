package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"freelunch/core/dtype"
	"freelunch/core/safetensors"
	"freelunch/internal/reference"
	"freelunch/internal/testmodel"
)

// TestMergeInterpolation merges generated models with slerp, nuslerp, model_stock,
// passthrough, breadcrumbs and della through the CLI and checks every output tensor against the float64
// reference within design.md §3's tolerance.
func TestMergeInterpolation(t *testing.T) {
	specs := map[string]testmodel.Spec{
		"bf16-single": testmodel.Small,
		"f32-sharded": func() testmodel.Spec {
			s := testmodel.Small
			s.DType, s.Shards, s.IntTensor = dtype.F32, 3, true
			return s
		}(),
	}
	type cfg struct {
		name, method, yaml string
		base               string   // reference base input ("" for none)
		models             []string // reference model inputs
		global             map[string]any
		args               []map[string]any // per model input
		index              []int            // §4 model numbers of the model inputs
	}
	cases := []cfg{
		{name: "slerp", method: "slerp", base: "base", models: []string{"ft1"}, yaml: `
merge_method: slerp
base_model: BASE
models:
  - model: BASE
  - model: FT1
parameters:
  t: 0.3
`, global: map[string]any{"t": 0.3}},
		// An unrelated model: cos near 0, far from the lerp threshold.
		{name: "slerp-unrelated", method: "slerp", base: "base", models: []string{"unrel"}, yaml: `
merge_method: slerp
base_model: BASE
models:
  - model: UNREL
parameters:
  t: 0.6
`, global: map[string]any{"t": 0.6}},
		{name: "nuslerp", method: "nuslerp", models: []string{"ft1", "unrel"}, yaml: `
merge_method: nuslerp
models:
  - model: FT1
    parameters: {weight: 0.3}
  - model: UNREL
    parameters: {weight: 0.5}
`, args: []map[string]any{{"weight": 0.3}, {"weight": 0.5}}},
		{name: "nuslerp-base-rows", method: "nuslerp", base: "base", models: []string{"ft1", "ft2"}, yaml: `
merge_method: nuslerp
base_model: BASE
parameters:
  nuslerp_flatten: false
models:
  - model: FT1
    parameters: {weight: 1.0}
  - model: FT2
    parameters: {weight: 2.0}
`, global: map[string]any{"nuslerp_flatten": false}, args: []map[string]any{{"weight": 1.0}, {"weight": 2.0}}},
		{name: "nuslerp-row-wise", method: "nuslerp", models: []string{"unrel", "ft2"}, yaml: `
merge_method: nuslerp
parameters:
  nuslerp_flatten: false
  nuslerp_row_wise: true
models:
  - model: UNREL
    parameters: {weight: 0.7}
  - model: FT2
    parameters: {weight: -0.7}
`, global: map[string]any{"nuslerp_flatten": false, "nuslerp_row_wise": true}, args: []map[string]any{{"weight": 0.7}, {"weight": -0.7}}},
		{name: "model_stock", method: "model_stock", base: "base", models: []string{"ft1", "ft2", "ft3"}, yaml: `
merge_method: model_stock
base_model: BASE
models:
  - model: FT1
  - model: FT2
  - model: FT3
`, args: []map[string]any{{}, {}, {}}},
		{name: "model_stock-filter-wise", method: "model_stock", base: "base", models: []string{"ft1", "ft2"}, yaml: `
merge_method: model_stock
base_model: BASE
parameters:
  filter_wise: true
models:
  - model: FT1
  - model: FT2
`, global: map[string]any{"filter_wise": true}, args: []map[string]any{{}, {}}},
		{name: "passthrough", method: "passthrough", models: []string{"ft2"}, yaml: `
merge_method: passthrough
models:
  - model: FT2
    parameters: {scale: 0.37}
`, args: []map[string]any{{"scale": 0.37}}},
		{name: "breadcrumbs", method: "breadcrumbs", base: "base", models: []string{"ft1", "ft2"}, index: []int{0, 1}, yaml: `
merge_method: breadcrumbs
base_model: BASE
models:
  - model: FT1
    parameters: {weight: 0.6, density: 0.4, gamma: 0.05}
  - model: FT2
    parameters: {weight: 0.5, density: 0.7}
`, args: []map[string]any{{"weight": 0.6, "density": 0.4, "gamma": 0.05}, {"weight": 0.5, "density": 0.7}}},
		{name: "breadcrumbs_ties", method: "breadcrumbs_ties", base: "base", models: []string{"ft1", "ft2"}, index: []int{1, 2}, yaml: `
merge_method: breadcrumbs_ties
base_model: BASE
parameters:
  rescale: true
models:
  - model: BASE
  - model: FT1
    parameters: {weight: 1.0, density: 0.5, gamma: 0}
  - model: FT2
    parameters: {weight: 0.7, density: 0.3, gamma: 0.1}
`, global: map[string]any{"rescale": true}, args: []map[string]any{{"weight": 1.0, "density": 0.5, "gamma": 0.0}, {"weight": 0.7, "density": 0.3, "gamma": 0.1}}},
		{name: "della", method: "della", base: "base", models: []string{"ft1", "ft2"}, index: []int{0, 1}, yaml: `
merge_method: della
base_model: BASE
parameters:
  lambda: 0.9
models:
  - model: FT1
    parameters: {weight: 0.6, density: 0.4, epsilon: 0.1}
  - model: FT2
    parameters: {weight: 0.5, density: 0.7, epsilon: 0.3}
`, global: map[string]any{"lambda": 0.9}, args: []map[string]any{{"weight": 0.6, "density": 0.4, "epsilon": 0.1}, {"weight": 0.5, "density": 0.7, "epsilon": 0.3}}},
		{name: "della_linear-l1", method: "della_linear", base: "base", models: []string{"ft1", "ft2"}, index: []int{0, 1}, yaml: `
merge_method: della_linear
base_model: BASE
parameters:
  rescale_norm: l1
models:
  - model: FT1
    parameters: {weight: 0.6, density: 0.5}
  - model: FT2
    parameters: {weight: 0.5, density: 0.35, epsilon: 0.2}
`, global: map[string]any{"rescale_norm": "l1"}, args: []map[string]any{{"weight": 0.6, "density": 0.5}, {"weight": 0.5, "density": 0.35, "epsilon": 0.2}}},
	}
	for sname, spec := range specs {
		dir := t.TempDir()
		base, ft1, ft2 := family(t, dir, spec)
		ft3, unrel := filepath.Join(dir, "ft3"), filepath.Join(dir, "unrel")
		if err := spec.Write(ft3, testmodel.Variant{Seed: 33, Scale: 0.004}); err != nil {
			t.Fatal(err)
		}
		if err := spec.Write(unrel, testmodel.Variant{Seed: 44, Unrelated: true}); err != nil {
			t.Fatal(err)
		}
		paths := map[string]string{"base": base, "ft1": ft1, "ft2": ft2, "ft3": ft3, "unrel": unrel}
		in := map[string]map[string][]float32{}
		for k, p := range paths {
			in[k] = readModel(t, p)
		}
		for _, c := range cases {
			t.Run(sname+"/"+c.name, func(t *testing.T) {
				yaml := strings.NewReplacer("BASE", base, "FT1", ft1, "FT2", ft2, "FT3", ft3, "UNREL", unrel).Replace(c.yaml)
				cfgPath := filepath.Join(t.TempDir(), "config.yml")
				os.WriteFile(cfgPath, []byte(yaml), 0o644)
				out := filepath.Join(t.TempDir(), "out")
				if _, stderr, err := runCLI(t, "merge", "--random-seed", "7", "--chunk-size", "100", "--out-shard-size", "20KiB", cfgPath, out); err != nil {
					t.Fatalf("merge: %v\n%s", err, stderr)
				}
				got := readModel(t, out)
				m, err := safetensors.OpenModel(safetensors.OSFS{}, out)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if len(got) != len(in["base"]) {
					t.Errorf("output has %d float tensors, want %d", len(got), len(in["base"]))
				}
				for name, g := range got {
					ten := m.Lookup(name)
					ri := reference.Inputs{Method: c.method, Global: c.global, Args: c.args, Name: name, Shape: ten.Shape, Seed: 7, Index: c.index}
					if c.base != "" {
						ri.Base = in[c.base][name]
					}
					for _, k := range c.models {
						ri.Models = append(ri.Models, in[k][name])
					}
					want, err := reference.Merge(ri)
					if err != nil {
						t.Fatal(err)
					}
					checkULPs(t, name, g, want, ten.DType)
				}
			})
		}
	}
}

// checkULPs checks got against the float64 reference want within design.md §3's
// tolerance for dtype d (1 ulp for F16 and BF16, 4 for F32).
func checkULPs(t *testing.T, name string, got []float32, want []float64, d dtype.DType) {
	t.Helper()
	tol := int64(1)
	if d == dtype.F32 {
		tol = 4
	}
	bad := 0
	for i := range got {
		if u := ulps(got[i], want[i], d); u > tol || u < -tol {
			if bad < 3 {
				t.Errorf("%s[%d] = %v, want %v (%d ulps)", name, i, got[i], want[i], u)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d elements off", name, bad, len(got))
	}
}

// TestPassthroughSlices stacks layers [0, 2) of one model on layers [1, 3) of another
// (issue 4): 4 output layers renumbered from 0, num_hidden_layers 4 in config.json, the
// embeddings from the first slice's model, the final norm and lm_head from the last, and
// every tensor's bytes equal to its source's. Slice parameters apply per slice: a scale
// gradient [1, 0.5] ramps over the first slice's two layers (the embeddings, outside
// layers, take its start), a filter halves o_proj in the second.
func TestPassthroughSlices(t *testing.T) {
	spec := testmodel.Small
	spec.Layers = 3
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := spec.Write(a, testmodel.Variant{Seed: 5, Scale: 0.01}); err != nil {
		t.Fatal(err)
	}
	if err := spec.Write(b, testmodel.Variant{Seed: 6, Unrelated: true}); err != nil {
		t.Fatal(err)
	}
	yaml := `
merge_method: passthrough
slices:
  - sources:
      - model: A
        layer_range: [0, 2]
    parameters:
      scale: [1, 0.5]
  - sources:
      - model: B
        layer_range: [1, 3]
    parameters:
      scale:
        - filter: o_proj
          value: 0.5
        - value: 1
dtype: bfloat16
`
	cfgPath := filepath.Join(dir, "config.yml")
	os.WriteFile(cfgPath, []byte(strings.NewReplacer("A", a, "B", b).Replace(yaml)), 0o644)
	out := filepath.Join(dir, "out")
	if _, stderr, err := runCLI(t, "merge", "--chunk-size", "7", cfgPath, out); err != nil {
		t.Fatalf("merge: %v\n%s", err, stderr)
	}
	var conf map[string]any
	raw, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &conf); err != nil {
		t.Fatal(err)
	}
	if n, _ := conf["num_hidden_layers"].(float64); n != 4 {
		t.Errorf("config.json num_hidden_layers = %v, want 4", conf["num_hidden_layers"])
	}

	src := map[string]*safetensors.Model{}
	for k, p := range map[string]string{"a": a, "b": b, "out": out} {
		m, err := safetensors.OpenModel(safetensors.OSFS{}, p)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		src[k] = m
	}
	bytesOf := func(m *safetensors.Model, name string) []byte {
		t.Helper()
		ten := m.Lookup(name)
		if ten == nil {
			t.Fatalf("%s has no tensor %q", m.Path, name)
		}
		buf := make([]byte, ten.Size())
		if err := m.ReadAt(ten, buf, 0); err != nil {
			t.Fatal(err)
		}
		return buf
	}
	// want: output name -> (source model, source name, halved).
	type from struct {
		model, name string
		half        bool
	}
	want := map[string]from{
		"model.embed_tokens.weight": {"a", "model.embed_tokens.weight", false},
		"model.norm.weight":         {"b", "model.norm.weight", false},
		"lm_head.weight":            {"b", "lm_head.weight", false},
	}
	layerOf := map[int]from{0: {"a", "0", false}, 1: {"a", "1", false}, 2: {"b", "1", false}, 3: {"b", "2", false}}
	for _, ten := range spec.Tensors() {
		for out, f := range layerOf {
			if strings.HasPrefix(ten.Name, "model.layers.0.") {
				suffix := strings.TrimPrefix(ten.Name, "model.layers.0.")
				half := (f.model == "b" && strings.Contains(suffix, "o_proj")) || out == 1
				want["model.layers."+strconv.Itoa(out)+"."+suffix] = from{f.model, "model.layers." + f.name + "." + suffix, half}
			}
		}
	}
	outModel := src["out"]
	if n := len(outModel.Tensors()); n != len(want) {
		t.Errorf("output has %d tensors, want %d", n, len(want))
	}
	for name, f := range want {
		got := bytesOf(outModel, name)
		exp := bytesOf(src[f.model], f.name)
		if f.half {
			// BF16 halving is exact for these normal values: scale the decoded source.
			v := make([]float32, len(exp)/2)
			dtype.Decode(v, exp, dtype.BF16)
			for i := range v {
				v[i] *= 0.5
			}
			dtype.Encode(exp, v, dtype.BF16)
		}
		if !bytes.Equal(got, exp) {
			t.Errorf("output %s differs from %s's %s (halved: %v)", name, f.model, f.name, f.half)
		}
	}
}

// TestSlerpSlicesGradient runs the usual SLERP frankenmerge config: one slice over the
// base and another model with a gradient for t. Over 3 layers, t = [0, 1] ramps 0, 0.5,
// 1 for the attention tensors: layer 0's are the base bit for bit, layer 2's the other
// model's bit for bit, layer 1's the reference at t = 0.5; every other tensor has t = 0.5.
func TestSlerpSlicesGradient(t *testing.T) {
	spec := testmodel.Small
	spec.Layers = 3
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := spec.Write(a, testmodel.Variant{}); err != nil {
		t.Fatal(err)
	}
	if err := spec.Write(b, testmodel.Variant{Seed: 9, Unrelated: true}); err != nil {
		t.Fatal(err)
	}
	yaml := `
slices:
  - sources:
      - model: A
        layer_range: [0, 3]
      - model: B
        layer_range: [0, 3]
merge_method: slerp
base_model: A
parameters:
  t:
    - filter: self_attn
      value: [0, 1]
    - value: 0.5
`
	cfgPath := filepath.Join(dir, "config.yml")
	os.WriteFile(cfgPath, []byte(strings.NewReplacer("A", a, "B", b).Replace(yaml)), 0o644)
	out := filepath.Join(dir, "out")
	if _, stderr, err := runCLI(t, "merge", "--chunk-size", "50", cfgPath, out); err != nil {
		t.Fatalf("merge: %v\n%s", err, stderr)
	}
	ins := map[string]map[string][]float32{"a": readModel(t, a), "b": readModel(t, b)}
	got := readModel(t, out)
	if len(got) != len(ins["a"]) {
		t.Errorf("output has %d tensors, want %d", len(got), len(ins["a"]))
	}
	for name, g := range got {
		tt := 0.5
		if strings.Contains(name, "self_attn") {
			tt = map[string]float64{"0": 0, "1": 0.5, "2": 1}[strings.Split(name, ".")[2]]
		}
		want, err := reference.Merge(reference.Inputs{Method: "slerp", Base: ins["a"][name], Models: [][]float32{ins["b"][name]},
			Global: map[string]any{"t": tt}, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if tt == 0 || tt == 1 {
			for i := range g {
				if float64(g[i]) != want[i] {
					t.Fatalf("%s (t = %v) [%d] = %v, want exactly %v", name, tt, i, g[i], want[i])
				}
			}
			continue
		}
		checkULPs(t, name, g, want, dtype.BF16)
	}
}
