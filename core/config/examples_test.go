package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"

	"freelunch/core/dtype"
)

var methodLine = regexp.MustCompile(`(?m)^(\s*merge_method:\s*)(\w+)`)

// readExample reads testdata/name and points its merge_method at the test stub.
func readExample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return methodLine.ReplaceAll(data, []byte("${1}test_${2}"))
}

func TestParseExamples(t *testing.T) {
	f := func(x float64) Value { return Value{Scalar: x} }
	_ = f
	tests := []struct {
		file  string
		check func(t *testing.T, c *Config)
	}{
		{"gradient-slerp.yml", func(t *testing.T, c *Config) {
			want := &Config{
				MergeMethod: "test_slerp",
				BaseModel:   "psmathur/orca_mini_v3_13b",
				Slices: []Slice{{Line: 2, Parameters: Params{}, Sources: []Source{
					{Model: "psmathur/orca_mini_v3_13b", LayerRange: [2]int{0, 40}, Parameters: Params{}, Line: 3},
					{Model: "garage-bAInd/Platypus2-13B", LayerRange: [2]int{0, 40}, Parameters: Params{}, Line: 5},
				}}},
				Parameters: Params{"t": {Line: 11, Filters: []Filter{
					{Filter: "self_attn", Value: Value{Gradient: []float64{0, 0.5, 0.3, 0.7, 1}, Line: 12}},
					{Filter: "mlp", Value: Value{Gradient: []float64{1, 0.5, 0.7, 0.3, 0}, Line: 14}},
					{Value: Value{Scalar: 0.5, Line: 15}},
				}}},
				DType: dtype.F16,
			}
			want.Raw = c.Raw
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %+v\nwant %+v", c, want)
			}
		}},
		{"linear.yml", func(t *testing.T, c *Config) {
			if len(c.Models) != 3 || c.Models[1].Model != "WizardLM/WizardLM-13B-V1.2" || c.Models[1].Line != 5 {
				t.Fatalf("models = %+v", c.Models)
			}
			if got := c.Models[2].Parameters["weight"]; !reflect.DeepEqual(got, Value{Scalar: 0.5, Line: 10}) {
				t.Errorf("models[2] weight = %+v", got)
			}
		}},
		{"orcamini-platy-44layer.yml", func(t *testing.T, c *Config) {
			if len(c.Slices) != 2 || c.Slices[1].Sources[0].LayerRange != [2]int{20, 40} || c.Slices[1].Line != 5 {
				t.Fatalf("slices = %+v", c.Slices)
			}
		}},
		{"bio-merge.yml", func(t *testing.T, c *Config) {
			if c.Parameters["normalize"].Scalar != false || c.Parameters["int8_mask"].Scalar != true {
				t.Errorf("parameters = %+v", c.Parameters)
			}
		}},
		{"ties-gradients.yml", func(t *testing.T, c *Config) {
			w := c.Models[2].Parameters["weight"]
			if v, _ := w.Resolve("model.layers.3.mlp.up_proj.weight", 3, 40); v != 0.5 {
				t.Errorf("weight on mlp = %v, want 0.5", v)
			}
			if v, _ := w.Resolve("model.layers.3.self_attn.q_proj.weight", 3, 40); v != 0.0 {
				t.Errorf("weight on self_attn = %v, want 0", v)
			}
		}},
		{"dare-ties.yml", func(t *testing.T, c *Config) {
			if len(c.Models[0].Parameters) != 0 || c.BaseModel != c.Models[0].Model || c.DType != dtype.BF16 {
				t.Errorf("config = %+v", c)
			}
		}},
		{"model-card-slerp.yml", func(t *testing.T, c *Config) {
			if c.BaseModel != "nlpguy/T3QM7" || c.Slices[0].Sources[0].Model != "MatthieuJ/Jason1903_SLERP" {
				t.Errorf("config = %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := readExample(t, tt.file)
			c, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if string(c.Raw) != string(data) {
				t.Errorf("Raw differs from the input")
			}
			tt.check(t, c)
		})
	}
}
