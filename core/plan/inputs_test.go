package plan

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"freelunch/core/config"
	"freelunch/core/safetensors"
	"freelunch/internal/testmodel"
)

// TestMethodInputs checks how configs of slerp, nuslerp, model_stock and passthrough map
// to kernel inputs: which models a tensor gets, in which order, and which configs are
// refused (by the config parser or the planner).
func TestMethodInputs(t *testing.T) {
	dir := writeModels(t, testmodel.Small, "a", "b", "c")
	for _, c := range []struct {
		name, yaml string
		inputs     string // models of the first tensor, base first; "" when refused
		hasBase    bool
	}{
		{"passthrough one model", "merge_method: passthrough\nmodels:\n  - model: A\n", "a", false},
		{"passthrough base is the model", "merge_method: passthrough\nbase_model: A\nmodels:\n  - model: A\n", "a", false},
		{"passthrough base and another model", "merge_method: passthrough\nbase_model: B\nmodels:\n  - model: A\n", "", false},
		{"passthrough two models", "merge_method: passthrough\nmodels:\n  - model: A\n  - model: B\n", "", false},
		{"passthrough slice of the base", "merge_method: passthrough\nbase_model: A\nslices:\n  - sources:\n      - model: A\n        layer_range: [0, 2]\n", "a", false},
		{"slerp base listed", "merge_method: slerp\nbase_model: B\nparameters: {t: 0.5}\nmodels:\n  - model: A\n  - model: B\n", "b a", true},
		{"slerp base not listed", "merge_method: slerp\nbase_model: B\nparameters: {t: 0.5}\nmodels:\n  - model: A\n", "b a", true},
		{"slerp three models", "merge_method: slerp\nbase_model: B\nparameters: {t: 0.5}\nmodels:\n  - model: A\n  - model: C\n", "", false},
		{"slerp no base", "merge_method: slerp\nparameters: {t: 0.5}\nmodels:\n  - model: A\n  - model: B\n", "", false},
		{"slerp no t", "merge_method: slerp\nbase_model: B\nmodels:\n  - model: A\n", "", false},
		{"slerp t for some tensors only", "merge_method: slerp\nbase_model: B\nparameters:\n  t:\n    - filter: mlp\n      value: 0.5\nmodels:\n  - model: A\n", "", false},
		{"slerp t out of range", "merge_method: slerp\nbase_model: B\nparameters: {t: 1.5}\nmodels:\n  - model: A\n", "", false},
		{"nuslerp no base", "merge_method: nuslerp\nmodels:\n  - model: A\n    parameters: {weight: 1}\n  - model: C\n    parameters: {weight: 1}\n", "a c", false},
		{"nuslerp distinct base", "merge_method: nuslerp\nbase_model: B\nmodels:\n  - model: A\n    parameters: {weight: 1}\n  - model: C\n    parameters: {weight: 1}\n", "b a c", true},
		// mergekit: "NuSlerp base model can not be one of the two models to merge".
		{"nuslerp base among the two", "merge_method: nuslerp\nbase_model: A\nmodels:\n  - model: A\n    parameters: {weight: 1}\n  - model: C\n    parameters: {weight: 1}\n", "", false},
		{"nuslerp no weight", "merge_method: nuslerp\nmodels:\n  - model: A\n  - model: C\n    parameters: {weight: 1}\n", "", false},
		{"model_stock", "merge_method: model_stock\nbase_model: B\nmodels:\n  - model: A\n  - model: C\n", "b a c", true},
		{"model_stock one model", "merge_method: model_stock\nbase_model: B\nmodels:\n  - model: A\n", "", false},
		{"model_stock no base", "merge_method: model_stock\nmodels:\n  - model: A\n  - model: C\n", "", false},
		{"della", "merge_method: della\nbase_model: B\nmodels:\n  - model: A\n    parameters: {weight: 1, density: 0.5, epsilon: 0.2}\n", "b a", true},
		{"della density - epsilon <= 0", "merge_method: della\nbase_model: B\nmodels:\n  - model: A\n    parameters: {weight: 1, density: 0.1}\n", "", false},
		{"della density + epsilon > 1", "merge_method: della_linear\nbase_model: B\nmodels:\n  - model: A\n    parameters: {weight: 1, density: 0.9, epsilon: 0.2}\n", "", false},
		{"della default density", "merge_method: della\nbase_model: B\nmodels:\n  - model: A\n    parameters: {weight: 1}\n", "", false},
		{"breadcrumbs", "merge_method: breadcrumbs_ties\nbase_model: B\nmodels:\n  - model: A\n    parameters: {weight: 1, density: 0.5, gamma: 0}\n", "b a", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			yaml := strings.NewReplacer("A", filepath.Join(dir, "a"), "B", filepath.Join(dir, "b"), "C", filepath.Join(dir, "c")).Replace(c.yaml)
			cfg, err := config.Parse([]byte(yaml))
			var p *Plan
			if err == nil {
				p, err = Build(cfg, safetensors.OSFS{}, Options{})
			}
			if c.inputs == "" {
				if err == nil {
					p.Close()
					t.Fatalf("Build succeeded, want an error")
				}
				var ce *config.Error
				if !errors.Is(err, ErrPlan) && !errors.As(err, &ce) {
					t.Errorf("error %v is neither a config error nor ErrPlan", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			e := p.Entries[0]
			var got []string
			for _, in := range e.Inputs {
				got = append(got, filepath.Base(in.Model.Path))
			}
			if g := strings.Join(got, " "); g != c.inputs || e.Merge.HasBase != c.hasBase {
				t.Errorf("inputs %q (HasBase %v), want %q (HasBase %v)", g, e.Merge.HasBase, c.inputs, c.hasBase)
			}
		})
	}
}

// TestSelfStack stacks layers of one model twice (the usual frankenmerge): layers [0, 2)
// then [1, 2) of the same model give 3 output layers, the third a copy of layer 1.
func TestSelfStack(t *testing.T) {
	dir := writeModels(t, testmodel.Small, "a")
	a := filepath.Join(dir, "a")
	yaml := "merge_method: passthrough\nslices:\n  - sources:\n      - model: A\n        layer_range: [0, 2]\n  - sources:\n      - model: A\n        layer_range: [1, 2]\n"
	cfg, err := config.Parse([]byte(strings.ReplaceAll(yaml, "A", a)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Build(cfg, safetensors.OSFS{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.OutLayers != 3 {
		t.Errorf("OutLayers = %d, want 3", p.OutLayers)
	}
	from := map[string]string{}
	for _, e := range p.Entries {
		from[e.Name] = e.Inputs[0].Tensor.Name
	}
	for out, src := range map[string]string{
		"model.layers.0.mlp.up_proj.weight": "model.layers.0.mlp.up_proj.weight",
		"model.layers.1.mlp.up_proj.weight": "model.layers.1.mlp.up_proj.weight",
		"model.layers.2.mlp.up_proj.weight": "model.layers.1.mlp.up_proj.weight",
	} {
		if from[out] != src {
			t.Errorf("output %s comes from %q, want %q", out, from[out], src)
		}
	}
}
