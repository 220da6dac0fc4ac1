package plan

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"freelunch/core/config"
	"freelunch/core/merge"
	"freelunch/core/safetensors"
	"freelunch/internal/testmodel"
)

// firstInput is a test method that outputs its first input; the planner, not the method,
// is under test here.
type firstInput struct{ name string }

func (m firstInput) Name() string                 { return m.name }
func (firstInput) Params() []merge.Param          { return nil }
func (firstInput) Check(*merge.Tensor) error      { return nil }
func (firstInput) Inputs() merge.InputRule        { return merge.InputRule{MinModels: 1} }
func (firstInput) New(*merge.Tensor) merge.Kernel { return copyKernel{} }

type copyKernel struct{}

func (copyKernel) NeedPass(int) bool                            { return false }
func (copyKernel) Observe(int, int64, [][]float32)              {}
func (copyKernel) Granule() int64                               { return 1 }
func (copyKernel) Merge(dst []float32, _ int64, in [][]float32) { copy(dst, in[0]) }

func init() { merge.Register(firstInput{"plan_test_first"}) }

func writeModels(t *testing.T, spec testmodel.Spec, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i, n := range names {
		if err := spec.Write(filepath.Join(dir, n), testmodel.Variant{Seed: uint64(i + 1), Scale: 0.01}); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSlicesStackLayers(t *testing.T) {
	spec := testmodel.Small
	spec.Layers = 3
	dir := writeModels(t, spec, "a", "b")
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	cfg := &config.Config{MergeMethod: "plan_test_first", Slices: []config.Slice{
		{Sources: []config.Source{{Model: a, LayerRange: [2]int{0, 2}}}},
		{Sources: []config.Source{{Model: b, LayerRange: [2]int{1, 3}}}},
	}}
	p, err := Build(cfg, safetensors.OSFS{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.OutLayers != 4 {
		t.Errorf("OutLayers = %d, want 4", p.OutLayers)
	}
	got := map[string]string{}
	for _, e := range p.Entries {
		got[e.Name] = e.Inputs[0].Model.Path + ":" + e.Inputs[0].Tensor.Name
	}
	want := map[string]string{
		"model.embed_tokens.weight":         a + ":model.embed_tokens.weight",
		"model.layers.0.mlp.up_proj.weight": a + ":model.layers.0.mlp.up_proj.weight",
		"model.layers.1.mlp.up_proj.weight": a + ":model.layers.1.mlp.up_proj.weight",
		"model.layers.2.mlp.up_proj.weight": b + ":model.layers.1.mlp.up_proj.weight",
		"model.layers.3.mlp.up_proj.weight": b + ":model.layers.2.mlp.up_proj.weight",
		"model.norm.weight":                 b + ":model.norm.weight",
		"lm_head.weight":                    b + ":lm_head.weight",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("output %s comes from %q, want %q", k, got[k], v)
		}
	}
	if n, want := len(p.Entries), 2+4*9+1; n != want {
		t.Errorf("%d output tensors, want %d", n, want)
	}
	if _, ok := got["model.layers.4.mlp.up_proj.weight"]; ok {
		t.Error("a fifth layer in the output")
	}
}

func TestPlanErrors(t *testing.T) {
	dir := writeModels(t, testmodel.Small, "a", "b")
	wide := testmodel.Small
	wide.Intermediate = 48
	if err := wide.Write(filepath.Join(dir, "wide"), testmodel.Variant{}); err != nil {
		t.Fatal(err)
	}
	short := testmodel.Small
	short.Layers = 1
	if err := short.Write(filepath.Join(dir, "short"), testmodel.Variant{}); err != nil {
		t.Fatal(err)
	}
	m := func(names ...string) []config.ModelEntry {
		var es []config.ModelEntry
		for _, n := range names {
			es = append(es, config.ModelEntry{Model: filepath.Join(dir, n)})
		}
		return es
	}
	cases := []struct {
		name string
		cfg  *config.Config
		want []string // substrings of the error
	}{
		{"shape", &config.Config{MergeMethod: "plan_test_first", Models: m("a", "wide")},
			[]string{"model.layers.0.mlp.gate_proj.weight", "[48 16]", "[40 16]", "wide"}},
		{"missing tensor", &config.Config{MergeMethod: "plan_test_first", Models: m("a", "short")},
			[]string{"model.layers.1.", "short", "has no tensor"}},
		{"missing model", &config.Config{MergeMethod: "plan_test_first", Models: m("a", "nope")},
			[]string{"nope"}},
		{"slice past the end", &config.Config{MergeMethod: "plan_test_first", Slices: []config.Slice{
			{Sources: []config.Source{{Model: filepath.Join(dir, "a"), LayerRange: [2]int{1, 3}}}}}},
			[]string{"[1, 3)", "2 layers"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := Build(c.cfg, safetensors.OSFS{}, Options{})
			if err == nil {
				p.Close()
				t.Fatal("Build succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestShards(t *testing.T) {
	dir := writeModels(t, testmodel.Small, "a")
	cfg := &config.Config{MergeMethod: "plan_test_first", Models: []config.ModelEntry{{Model: filepath.Join(dir, "a")}}}
	p, err := Build(cfg, safetensors.OSFS{}, Options{ShardSize: 3000})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(p.Shards) < 2 {
		t.Fatalf("%d shards, want several", len(p.Shards))
	}
	k := 0
	for si, s := range p.Shards {
		if !strings.HasSuffix(s.FileName, fmt.Sprintf("-of-%05d.safetensors", len(p.Shards))) {
			t.Errorf("shard name %s", s.FileName)
		}
		for _, spec := range s.Specs {
			if e := p.Entries[k]; e.Name != spec.Name || e.Shard != si {
				t.Errorf("entry %d %s in shard %d, spec %s in shard %d", k, e.Name, e.Shard, spec.Name, si)
			}
			k++
		}
	}
	if k != len(p.Entries) {
		t.Errorf("%d specs for %d entries", k, len(p.Entries))
	}
}

// TestIssue7LayerCount: a config.json layer count too large for an int (1e300) once
// became a negative count, which silently flattened every gradient to its first value.
// It is now ignored in favour of the tensors' largest layer number + 1.
func TestIssue7LayerCount(t *testing.T) {
	m, err := safetensors.OpenModel(fuzzFS(nil, nil, 0), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for cfg, want := range map[string]int{
		`{"num_hidden_layers": 1e300}`:            2,
		`{"num_hidden_layers": 1048577}`:          2,
		`{"num_hidden_layers": 1048576}`:          1 << 20,
		`{"num_hidden_layers": 5}`:                5,
		`{"num_hidden_layers": -3, "n_layer": 4}`: 4,
		`{"num_hidden_layers": 2.5}`:              2,
		`{"num_hidden_layers": "12"}`:             2,
		`not json`:                                2,
	} {
		if got := layerCount([]byte(cfg), m); got != want {
			t.Errorf("layerCount(%s) = %d, want %d", cfg, got, want)
		}
	}
}
