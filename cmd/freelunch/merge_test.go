package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"freelunch/core/dtype"
	"freelunch/core/safetensors"
	"freelunch/internal/reference"
	"freelunch/internal/testmodel"
)

// family writes a base and two fine-tunes with small deltas into dir and returns their paths.
func family(t *testing.T, dir string, spec testmodel.Spec) (base, ft1, ft2 string) {
	t.Helper()
	base, ft1, ft2 = filepath.Join(dir, "base"), filepath.Join(dir, "ft1"), filepath.Join(dir, "ft2")
	for _, m := range []struct {
		dir string
		v   testmodel.Variant
	}{{base, testmodel.Variant{}}, {ft1, testmodel.Variant{Seed: 11, Scale: 0.002}}, {ft2, testmodel.Variant{Seed: 22, Scale: 0.003}}} {
		if err := spec.Write(m.dir, m.v); err != nil {
			t.Fatal(err)
		}
	}
	return
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

func readModel(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	m, err := safetensors.OpenModel(safetensors.OSFS{}, path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	out := map[string][]float32{}
	for _, ten := range m.Tensors() {
		if !ten.DType.IsFloat() {
			continue
		}
		raw := make([]byte, ten.Size())
		if err := m.ReadAt(ten, raw, 0); err != nil {
			t.Fatal(err)
		}
		v := make([]float32, ten.NumElements())
		dtype.Decode(v, raw, ten.DType)
		out[ten.Name] = v
	}
	return out
}

// ulps returns the distance between got and the float64 reference want rounded to d,
// in units in the last place of d. The reference is rounded through float32, which can
// differ from a direct rounding only by one unit at a halfway point.
func ulps(got float32, want float64, d dtype.DType) int64 {
	enc := make([]byte, d.Size())
	w := []float32{0}
	dtype.Encode(enc, []float32{float32(want)}, d)
	dtype.Decode(w, enc, d)
	return ordered(got, d) - ordered(w[0], d)
}

// ordered maps a value of dtype d to an integer that counts representable values.
func ordered(v float32, d dtype.DType) int64 {
	bits := int64(math.Float32bits(v))
	shift := map[dtype.DType]int{dtype.F32: 0, dtype.BF16: 16, dtype.F16: 0}[d]
	if d == dtype.F16 {
		enc := make([]byte, 2)
		dtype.Encode(enc, []float32{v}, d)
		h := int64(enc[0]) | int64(enc[1])<<8
		if h&0x8000 != 0 {
			return -(h & 0x7fff)
		}
		return h
	}
	if bits&(1<<31) != 0 {
		return -((bits &^ (1 << 31)) >> shift)
	}
	return bits >> shift
}

func TestMergeEndToEnd(t *testing.T) {
	specs := map[string]testmodel.Spec{
		"bf16-single": testmodel.Small,
		"f32-sharded": func() testmodel.Spec {
			s := testmodel.Small
			s.DType, s.Shards, s.IntTensor = dtype.F32, 3, true
			return s
		}(),
	}
	type cfg struct {
		name, yaml string
		global     map[string]any
		args       []map[string]any // per fine-tune
		noBase     bool
	}
	cases := []cfg{
		{name: "linear", noBase: true, yaml: `
merge_method: linear
models:
  - model: FT1
    parameters: {weight: 0.6}
  - model: FT2
    parameters: {weight: 0.4}
`, args: []map[string]any{{"weight": 0.6}, {"weight": 0.4}}},
		{name: "task_arithmetic", yaml: `
merge_method: task_arithmetic
base_model: BASE
parameters:
  lambda: 0.9
models:
  - model: FT1
    parameters: {weight: 0.7}
  - model: FT2
    parameters: {weight: 0.5}
`, global: map[string]any{"lambda": 0.9}, args: []map[string]any{{"weight": 0.7}, {"weight": 0.5}}},
		{name: "ties", yaml: `
merge_method: ties
base_model: BASE
models:
  - model: FT1
    parameters: {weight: 1.0, density: 0.5}
  - model: FT2
    parameters: {weight: 0.8, density: 0.3}
`, args: []map[string]any{{"weight": 1.0, "density": 0.5}, {"weight": 0.8, "density": 0.3}}},
		{name: "dare_linear", yaml: `
merge_method: dare_linear
base_model: BASE
models:
  - model: FT1
    parameters: {weight: 0.5, density: 0.4}
  - model: FT2
    parameters: {weight: 0.5, density: 0.6}
`, args: []map[string]any{{"weight": 0.5, "density": 0.4}, {"weight": 0.5, "density": 0.6}}},
		{name: "dare_ties", yaml: `
merge_method: dare_ties
base_model: BASE
models:
  - model: FT1
    parameters: {weight: 0.6, density: 0.3}
  - model: FT2
    parameters: {weight: 0.4, density: 0.7}
`, args: []map[string]any{{"weight": 0.6, "density": 0.3}, {"weight": 0.4, "density": 0.7}}},
		{name: "dare_ties_l1", yaml: `
merge_method: dare_ties
base_model: BASE
parameters:
  rescale_norm: l1
models:
  - model: FT1
    parameters: {weight: 0.6, density: 0.3}
  - model: FT2
    parameters: {weight: 0.4, density: 0.7}
`, global: map[string]any{"rescale_norm": "l1"}, args: []map[string]any{{"weight": 0.6, "density": 0.3}, {"weight": 0.4, "density": 0.7}}},
		{name: "breadcrumbs", yaml: `
merge_method: breadcrumbs
base_model: BASE
models:
  - model: FT1
    parameters: {weight: 0.6, density: 0.5, gamma: 0.05}
  - model: FT2
    parameters: {weight: 0.4, density: 0.8}
`, args: []map[string]any{{"weight": 0.6, "density": 0.5, "gamma": 0.05}, {"weight": 0.4, "density": 0.8}}},
		{name: "breadcrumbs_ties", yaml: `
merge_method: breadcrumbs_ties
base_model: BASE
parameters: {normalize: true}
models:
  - model: FT1
    parameters: {weight: 1.0, density: 0.4, gamma: 0.0}
  - model: FT2
    parameters: {weight: 0.5, density: 0.6, gamma: 0.1}
`, global: map[string]any{"normalize": true}, args: []map[string]any{{"weight": 1.0, "density": 0.4, "gamma": 0.0}, {"weight": 0.5, "density": 0.6, "gamma": 0.1}}},
		{name: "della", yaml: `
merge_method: della
base_model: BASE
models:
  - model: FT1
    parameters: {weight: 0.7, density: 0.4, epsilon: 0.1}
  - model: FT2
    parameters: {weight: 0.5, density: 0.6}
`, args: []map[string]any{{"weight": 0.7, "density": 0.4, "epsilon": 0.1}, {"weight": 0.5, "density": 0.6}}},
		{name: "della_linear", yaml: `
merge_method: della_linear
base_model: BASE
parameters: {lambda: 1.5}
models:
  - model: FT1
    parameters: {weight: 0.7, density: 0.5, epsilon: 0.3}
  - model: FT2
    parameters: {weight: 0.5, density: 0.3, epsilon: 0.05}
`, global: map[string]any{"lambda": 1.5}, args: []map[string]any{{"weight": 0.7, "density": 0.5, "epsilon": 0.3}, {"weight": 0.5, "density": 0.3, "epsilon": 0.05}}},
	}
	for sname, spec := range specs {
		dir := t.TempDir()
		base, ft1, ft2 := family(t, dir, spec)
		in := map[string]map[string][]float32{"base": readModel(t, base), "ft1": readModel(t, ft1), "ft2": readModel(t, ft2)}
		for _, c := range cases {
			t.Run(sname+"/"+c.name, func(t *testing.T) {
				yaml := strings.NewReplacer("BASE", base, "FT1", ft1, "FT2", ft2).Replace(c.yaml)
				cfgPath := filepath.Join(t.TempDir(), "config.yml")
				os.WriteFile(cfgPath, []byte(yaml), 0o644)
				out := filepath.Join(t.TempDir(), "out")
				if _, stderr, err := runCLI(t, "merge", "--random-seed", "7", "--chunk-size", "100", "--out-shard-size", "20KiB", cfgPath, out); err != nil {
					t.Fatalf("merge: %v\n%s", err, stderr)
				}
				got := readModel(t, out)
				m, _ := safetensors.OpenModel(safetensors.OSFS{}, out)
				defer m.Close()
				for name, g := range got {
					ri := reference.Inputs{Method: c.name, Global: c.global, Args: c.args, Seed: 7, Index: []int{0, 1}, Name: name, Shape: m.Lookup(name).Shape}
					if ri.Method == "dare_ties_l1" {
						ri.Method = "dare_ties"
					}
					ri.Models = [][]float32{in["ft1"][name], in["ft2"][name]}
					if !c.noBase {
						ri.Base = in["base"][name]
					}
					want, err := reference.Merge(ri)
					if err != nil {
						t.Fatal(err)
					}
					d := m.Lookup(name).DType
					tol := int64(1)
					if d == dtype.F32 {
						tol = 4
					}
					bad := 0
					for i := range g {
						if u := ulps(g[i], want[i], d); u > tol || u < -tol {
							if bad < 3 {
								t.Errorf("%s[%d] = %v, want %v (%d ulps)", name, i, g[i], want[i], u)
							}
							bad++
						}
					}
					if bad > 0 {
						t.Errorf("%s: %d of %d elements off", name, bad, len(g))
					}
				}
				for _, f := range []string{"config.json", "README.md", "tokenizer_config.json"} {
					if _, err := os.Stat(filepath.Join(out, f)); err != nil {
						t.Errorf("output lacks %s: %v", f, err)
					}
				}
			})
		}
	}
}

func TestMergeUsage(t *testing.T) {
	for _, args := range [][]string{{"merge"}, {"merge", "a.yml"}, {"merge", "--chunk-size", "0", "a", "b"}, {"merge", "--out-shard-size", "x", "a", "b"}} {
		_, _, err := runCLI(t, args...)
		var o bytes.Buffer
		if code := exitCode(err, &o); code != 2 {
			t.Errorf("run(%q) exit %d, want 2 (%v)", args, code, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"5B": 5e9, "500M": 5e8, "2GiB": 2 << 30, "20KiB": 20 << 10, "1000": 1000, "1.5k": 1500} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "0", "5X"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded", in)
		}
	}
}
