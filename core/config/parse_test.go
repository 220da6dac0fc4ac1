package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"freelunch/core/dtype"
)

// TestParseErrors checks every class of error: it wraps ErrConfig, is an *Error, names the
// right line, and its text holds the line, the key and what is wrong.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		line int
		want []string // substrings of the message besides "line N"
	}{
		{"yaml syntax", "merge_method: test_ties\nmodels: [\n", 2, []string{"YAML syntax"}},
		{"yaml tab", "merge_method: test_ties\n\tmodels: []\n", 2, []string{"YAML syntax"}},
		{"empty", "", 0, []string{"empty config"}},
		{"comment only", "# nothing\n", 0, []string{"empty config"}},
		{"not a mapping", "- a\n- b\n", 1, []string{"must be a mapping"}},
		{"two documents", "merge_method: test_linear\nmodels: [{model: a, parameters: {weight: 1}}]\n---\nname: x\n", 3, []string{"more than one YAML document"}},
		{"unknown top key", `merge_method: test_linear
models:
  - model: a
    parameters: {weight: 1}
foo: 1
`, 5, []string{`unknown key "foo"`}},
		{"top key typo", `merge_method: test_linear
model:
  - model: a
`, 2, []string{`unknown key "model"`, `did you mean "models"?`}},
		{"duplicate top key", `merge_method: test_linear
dtype: float16
dtype: bfloat16
`, 3, []string{`key "dtype" given twice (lines 2 and 3)`}},
		{"chat_template", `merge_method: test_linear
chat_template: auto
`, 2, []string{"chat_template", "not supported"}},
		{"modules", "modules: {}\nmerge_method: test_linear\n", 1, []string{"modules", "not supported"}},
		{"merge key", `defaults: &d {weight: 1}
merge_method: test_linear
`, 1, []string{`unknown key "defaults"`}},
		{"yaml merge key", `merge_method: test_linear
models:
  - <<: {model: a}
    parameters: {weight: 1}
`, 3, []string{"models[0]", "merge keys"}},
		{"missing merge_method", "models:\n  - model: a\n", 1, []string{"merge_method", "missing"}},
		{"merge_method not a string", "merge_method: [a]\n", 1, []string{"merge_method", "expected a string"}},
		{"unknown method", "merge_method: test_tie\n", 1, []string{`unknown method "test_tie"`, `did you mean "test_ties"?`, "test_dare_ties", "test_linear"}},
		{"no models or slices", "merge_method: test_linear\ndtype: float16\n", 1, []string{"needs a models list or a slices list"}},
		{"models and slices", `merge_method: test_passthrough
models:
  - model: a
slices:
  - sources:
      - model: a
        layer_range: [0, 2]
`, 4, []string{"slices", "either models (line 2) or slices"}},
		{"empty models", "merge_method: test_linear\nmodels: []\n", 2, []string{"models", "empty list"}},
		{"models not a list", "merge_method: test_linear\nmodels: a\n", 2, []string{"models", "expected a list"}},
		{"bare string model", `merge_method: test_linear
models:
  - model: a
    parameters: {weight: 1}
  - b
`, 5, []string{"models[1]", `write "- model: b"`}},
		{"model entry typo", `merge_method: test_linear
models:
  - model: a
    paramters: {weight: 1}
`, 4, []string{"models[0]", `unknown key "paramters"`, `did you mean "parameters"?`}},
		{"model missing", `merge_method: test_linear
models:
  - parameters: {weight: 1}
`, 3, []string{"models[0]", "missing model"}},
		{"model twice", `merge_method: test_linear
models:
  - model: a
    parameters: {weight: 1}
  - model: b
    parameters: {weight: 1}
  - model: a
    parameters: {weight: 1}
`, 7, []string{"models[2].model", `"a" is listed twice (lines 3 and 7)`}},
		{"model twice through an alias", `merge_method: test_linear
models:
  - model: &m a
    parameters: {weight: 1}
  - model: *m
    parameters: {weight: 1}
`, 5, []string{"models[1].model", `"a" is listed twice (lines 3 and 5)`}},
		{"model empty string", "merge_method: test_linear\nmodels:\n  - model: \"\"\n", 3, []string{"models[0].model", "empty string"}},
		{"model path with a newline", "merge_method: test_linear\nmodels:\n  - model: \"a\\nb\"\n", 3, []string{"models[0].model", `"a\nb"`, "control characters"}},
		{"base path with an escape", "merge_method: test_linear\nbase_model: {model: {path: \"\\e[2Jx\"}}\nmodels:\n  - model: a\n", 2, []string{"base_model.model.path", `"\x1b[2Jx"`, "control characters"}},
		{"YAML tag with a NUL", "!%00", 1, []string{`got !\x00 ""`}},
		{"tagged scalar with an escape", "merge_method: test_linear\nmodels:\n  - model: a\n    parameters: {weight: !!float \"\\x1b[2J\"}\n", 4, []string{"models[0].parameters.weight", `\x1b[2J`}},
		{"model number", "merge_method: test_linear\nmodels:\n  - model: 12\n", 3, []string{"models[0].model", "expected a string"}},
		{"lora", "merge_method: test_linear\nmodels:\n  - model: a+b\n", 3, []string{"models[0].model", "LoRA"}},
		{"revision", "merge_method: test_linear\nmodels:\n  - model: a@main\n", 3, []string{"models[0].model", "revision"}},
		{"mapping lora", `merge_method: test_linear
models:
  - model:
      model: {path: a}
      lora: {path: b}
`, 5, []string{"models[0].model.lora", "not supported"}},
		{"mapping revision", `merge_method: test_linear
models:
  - model:
      model:
        path: a
        revision: main
`, 6, []string{"models[0].model.model.revision", "not supported"}},
		{"unknown parameter", `merge_method: test_ties
base_model: base
models:
  - model: base
  - model: x
    parameters:
      densty: 0.5
      weight: 1
`, 7, []string{"models[1].parameters", `unknown parameter "densty" for method test_ties`, `did you mean "density"?`}},
		{"unknown parameter no hint", `merge_method: test_slerp
base_model: a
parameters:
  gamma: 0.5
models: [{model: a}, {model: b}]
`, 4, []string{"parameters", `unknown parameter "gamma"`, "it takes t"}},
		{"global parameter per model", `merge_method: test_ties
base_model: base
models:
  - model: x
    parameters:
      weight: 1
      normalize: true
`, 7, []string{"models[0].parameters", `"normalize" is a global parameter`}},
		{"global parameter per source", `merge_method: test_ties
base_model: base
slices:
  - sources:
      - model: x
        layer_range: [0, 4]
        parameters: {weight: 1, lambda: 2}
`, 7, []string{"slices[0].sources[0].parameters", `"lambda" is a global parameter`}},
		{"duplicate parameter", `merge_method: test_linear
models:
  - model: x
    parameters:
      weight: 1
      weight: 2
`, 6, []string{"models[0].parameters", `"weight" given twice (lines 5 and 6)`}},
		{"bool for float", `merge_method: test_linear
models:
  - model: x
    parameters:
      weight: true
`, 5, []string{"models[0].parameters.weight", "expects a number", "boolean true"}},
		{"quoted number", `merge_method: test_linear
models:
  - model: x
    parameters:
      weight: "0.5"
`, 5, []string{"models[0].parameters.weight", "expects a number", `"0.5"`}},
		{"number for bool", `merge_method: test_linear
models:
  - model: x
    parameters: {weight: 1}
parameters:
  normalize: 1
`, 6, []string{"parameters.normalize", "true or false", "number 1"}},
		{"bad enum", `merge_method: test_ties
base_model: b
models:
  - model: x
    parameters: {weight: 1}
parameters:
  rescale_norm: l2
`, 7, []string{"parameters.rescale_norm", `"l2" is not one of inverse, l1`, `did you mean "l1"?`}},
		{"enum not string", `merge_method: test_ties
base_model: b
models:
  - model: x
    parameters: {weight: 1}
parameters:
  rescale_norm: 1
`, 7, []string{"parameters.rescale_norm", "one of inverse, l1"}},
		{"gradient for bool", `merge_method: test_ties
base_model: b
models:
  - model: x
    parameters: {weight: 1}
parameters:
  normalize: [true, false]
`, 7, []string{"parameters.normalize", "only allowed for numeric"}},
		{"scalar out of range", `merge_method: test_ties
base_model: b
models:
  - model: x
    parameters:
      weight: 1
      density: 1.5
`, 7, []string{"models[0].parameters.density", "value 1.5 out of range [0, 1]"}},
		{"negative out of range", `merge_method: test_ties
base_model: b
parameters:
  density: -0.1
models:
  - model: x
    parameters: {weight: 1}
`, 4, []string{"parameters.density", "value -0.1 out of range [0, 1]"}},
		{"open minimum", `merge_method: test_open
models:
  - model: x
    parameters: {x: 0}
`, 4, []string{"models[0].parameters.x", "value 0 out of range (0, 1]"}},
		{"nan", `merge_method: test_linear
models:
  - model: x
    parameters: {weight: .nan}
`, 4, []string{"models[0].parameters.weight", "not a finite number"}},
		{"inf", `merge_method: test_linear
models:
  - model: x
    parameters:
      weight: -.inf
`, 5, []string{"models[0].parameters.weight", "not a finite number"}},
		{"gradient element out of range", `merge_method: test_ties
base_model: b
models:
  - model: x
    parameters:
      weight: 1
      density:
        - 0.5
        - 0.7
        - 1.2
`, 10, []string{"models[0].parameters.density[2]", "value 1.2 out of range"}},
		{"gradient too short", `merge_method: test_ties
base_model: b
models:
  - model: x
    parameters: {weight: 1, density: [0.5]}
`, 5, []string{"models[0].parameters.density", "at least 2 numbers, got 1"}},
		{"empty list value", `merge_method: test_ties
base_model: b
models:
  - model: x
    parameters: {weight: 1, density: []}
`, 5, []string{"models[0].parameters.density", "empty list"}},
		{"gradient with string", `merge_method: test_ties
base_model: b
models:
  - model: x
    parameters: {weight: 1, density: [0.5, a]}
`, 5, []string{"models[0].parameters.density[1]", "expects a number"}},
		{"gradient with list", `merge_method: test_ties
base_model: b
models:
  - model: x
    parameters:
      weight: 1
      density: [0.5, [1]]
`, 7, []string{"models[0].parameters.density[1]", "a gradient holds numbers"}},
		{"filter value out of range", `merge_method: test_slerp
base_model: a
models: [{model: a}, {model: b}]
parameters:
  t:
    - filter: self_attn
      value: 0.5
    - filter: mlp
      value: [0, 0.5, 2]
    - value: 0.5
`, 9, []string{"parameters.t[1].value[2]", "value 2 out of range [0, 1]"}},
		{"filter scalar out of range", `merge_method: test_slerp
base_model: a
models: [{model: a}, {model: b}]
parameters:
  t:
    - filter: self_attn
      value: -1
`, 7, []string{"parameters.t[0].value", "value -1 out of range"}},
		{"filter unknown key", `merge_method: test_slerp
base_model: a
models: [{model: a}, {model: b}]
parameters:
  t:
    - pattern: self_attn
      value: 0.5
`, 6, []string{"parameters.t[0]", `unknown key "pattern"`}},
		{"filter missing value", `merge_method: test_slerp
base_model: a
models: [{model: a}, {model: b}]
parameters:
  t:
    - filter: self_attn
`, 6, []string{"parameters.t[0]", "missing value"}},
		{"filter not string", `merge_method: test_slerp
base_model: a
models: [{model: a}, {model: b}]
parameters:
  t:
    - filter: 3
      value: 0.5
`, 6, []string{"parameters.t[0].filter", "expected a string"}},
		{"filter mixed with scalar", `merge_method: test_slerp
base_model: a
models: [{model: a}, {model: b}]
parameters:
  t:
    - filter: mlp
      value: 0.5
    - 0.3
`, 8, []string{"parameters.t[1]", "expected a {filter, value} item"}},
		{"nested filter", `merge_method: test_slerp
base_model: a
models: [{model: a}, {model: b}]
parameters:
  t:
    - filter: mlp
      value: {filter: x, value: 1}
`, 7, []string{"parameters.t[0].value", "expected a value or a gradient"}},
		{"null parameter value", `merge_method: test_linear
models:
  - model: x
    parameters:
      weight:
`, 5, []string{"models[0].parameters.weight", "expects a number", "null"}},
		{"parameters not mapping", `merge_method: test_linear
models:
  - model: x
    parameters: [1]
`, 4, []string{"models[0].parameters", "expected a mapping"}},
		{"weight missing", `merge_method: test_ties
base_model: b
models:
  - model: b
  - model: x
    parameters: {weight: 1}
  - model: y
    parameters: {density: 0.5}
`, 7, []string{"models[2]", `model "y" has no weight`}},
		{"weight missing in slices", `merge_method: test_ties
base_model: b
slices:
  - sources:
      - model: b
        layer_range: [0, 4]
      - model: x
        layer_range: [0, 4]
`, 7, []string{"slices[0].sources[1]", `model "x" has no weight`}},
		{"global required missing", `merge_method: test_slerp
base_model: a
models: [{model: a}, {model: b}]
`, 1, []string{"parameters", "missing t"}},
		{"global required missing in a slice", `merge_method: test_slerp
base_model: a
slices:
  - sources:
      - {model: a, layer_range: [0, 2]}
      - {model: b, layer_range: [0, 2]}
    parameters: {t: 0.5}
  - sources:
      - {model: a, layer_range: [2, 4]}
      - {model: b, layer_range: [2, 4]}
`, 8, []string{"slices[1]", "missing t"}},
		{"base required", `merge_method: test_ties
models:
  - model: x
    parameters: {weight: 1}
`, 1, []string{"base_model", "needs a base model"}},
		{"too few models", `merge_method: test_ties
base_model: b
models:
  - model: b
`, 3, []string{"models", "at least 1 model(s) besides the base, got 0"}},
		{"too many models", `merge_method: test_slerp
base_model: a
parameters: {t: 0.5}
models: [{model: a}, {model: b}, {model: c}]
`, 4, []string{"models", "at most 1 model(s) besides the base, got 2"}},
		{"too many sources", `merge_method: test_passthrough
slices:
  - sources:
      - {model: a, layer_range: [0, 2]}
      - {model: b, layer_range: [0, 2]}
`, 3, []string{"slices[0].sources", "at most 1"}},
		{"empty slices", "merge_method: test_passthrough\nslices: []\n", 2, []string{"slices", "empty list"}},
		{"slice missing sources", "merge_method: test_passthrough\nslices:\n  - parameters: {}\n", 3, []string{"slices[0]", "missing sources"}},
		{"slice base_model", `merge_method: test_passthrough
slices:
  - sources:
      - {model: a, layer_range: [0, 2]}
    base_model: a
`, 5, []string{"slices[0].base_model", "not supported"}},
		{"slice residual_weight", `merge_method: test_passthrough
slices:
  - residual_weight: 0.5
    sources:
      - {model: a, layer_range: [0, 2]}
`, 3, []string{"slices[0].residual_weight", "not supported"}},
		{"source unknown key", `merge_method: test_passthrough
slices:
  - sources:
      - model: a
        layer_rang: [0, 2]
`, 5, []string{"slices[0].sources[0]", `unknown key "layer_rang"`, `did you mean "layer_range"?`}},
		{"source missing layer_range", `merge_method: test_passthrough
slices:
  - sources:
      - model: a
`, 4, []string{"slices[0].sources[0]", "missing layer_range"}},
		{"source model twice", `merge_method: test_ties
base_model: b
slices:
  - sources:
      - {model: a, layer_range: [0, 2], parameters: {weight: 1}}
      - {model: a, layer_range: [2, 4], parameters: {weight: 1}}
`, 6, []string{"slices[0].sources[1].model", `"a" is listed twice in this slice (lines 5 and 6)`}},
		{"source model twice through an alias", `merge_method: test_ties
base_model: b
slices:
  - sources:
      - {model: &m a, layer_range: [0, 2], parameters: {weight: 1}}
      - {model: *m, layer_range: [2, 4], parameters: {weight: 1}}
`, 6, []string{"slices[0].sources[1].model", `"a" is listed twice in this slice (lines 5 and 6)`}},
		{"layer_range reversed", `merge_method: test_passthrough
slices:
  - sources:
      - model: a
        layer_range: [4, 2]
`, 5, []string{"slices[0].sources[0].layer_range", "[4, 2) is empty"}},
		{"layer_range equal", `merge_method: test_passthrough
slices:
  - sources:
      - model: a
        layer_range: [2, 2]
`, 5, []string{"slices[0].sources[0].layer_range", "is empty"}},
		{"layer_range negative", `merge_method: test_passthrough
slices:
  - sources:
      - model: a
        layer_range:
          - -1
          - 2
`, 6, []string{"slices[0].sources[0].layer_range", "layer -1 out of range"}},
		{"layer_range float", `merge_method: test_passthrough
slices:
  - sources:
      - model: a
        layer_range: [0, 2.5]
`, 5, []string{"slices[0].sources[0].layer_range", "integers", "2.5"}},
		{"layer_range three", `merge_method: test_passthrough
slices:
  - sources:
      - model: a
        layer_range: [0, 2, 4]
`, 5, []string{"slices[0].sources[0].layer_range", "expected [start, end]"}},
		{"layer_range huge", `merge_method: test_passthrough
slices:
  - sources:
      - model: a
        layer_range: [0, 99999999999999999999]
`, 5, []string{"slices[0].sources[0].layer_range", "integers"}},
		{"layer_range too large", `merge_method: test_passthrough
slices:
  - sources:
      - model: a
        layer_range: [0, 2000000]
`, 5, []string{"slices[0].sources[0].layer_range", "layer 2000000 out of range"}},
		{"layer_range lengths differ", `merge_method: test_slerp
base_model: a
parameters: {t: 0.5}
slices:
  - sources:
      - model: a
        layer_range: [0, 4]
      - model: b
        layer_range: [0, 3]
`, 9, []string{"slices[0].sources[1].layer_range", "spans 3 layers but the slice's first source (line 6) spans 4"}},
		{"unknown dtype", "merge_method: test_linear\ndtype: float8\n", 2, []string{"dtype", `unknown dtype "float8"`}},
		{"unknown out_dtype", "merge_method: test_linear\nout_dtype: int64\n", 2, []string{"out_dtype", `unknown dtype "int64"`}},
		{"dtype not string", "merge_method: test_linear\ndtype: 16\n", 2, []string{"dtype", "expected a string"}},
		{"tokenizer union", "merge_method: test_linear\ntokenizer_source: union\n", 2, []string{"tokenizer_source", "union is not supported yet"}},
		{"tokenizer section union by default", "merge_method: test_linear\ntokenizer:\n  pad_to_multiple_of: 8\n", 3, []string{"tokenizer.pad_to_multiple_of", "not supported"}},
		{"tokenizer section without source", "merge_method: test_linear\ntokenizer: {}\n", 2, []string{"tokenizer", "union, is not supported yet"}},
		{"tokenizer section tokens", "merge_method: test_linear\ntokenizer:\n  source: base\n  tokens: {}\n", 4, []string{"tokenizer.tokens", "not supported"}},
		{"tokenizer and tokenizer_source", "merge_method: test_linear\ntokenizer_source: base\ntokenizer: {source: base}\n", 3, []string{"tokenizer", "not both"}},
		{"non-string key", "merge_method: test_linear\n[a]: 1\n", 2, []string{"keys must be plain names"}},
		{"alias bomb", aliasBomb(), 0, []string{"too large"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want an error", c)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("Parse error %v does not wrap ErrConfig", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error %T is not an *Error", err)
			}
			if tt.line != 0 && e.Line != tt.line {
				t.Errorf("Parse error %q: line %d, want %d", err, e.Line, tt.line)
			}
			msg := err.Error()
			want := tt.want
			if tt.line != 0 {
				want = append([]string{fmt.Sprintf("config: line %d: ", tt.line)}, want...)
			}
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("Parse error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

// aliasBomb returns a 40 KB document whose aliases expand to 2*10^6 values: 200 slices
// aliasing one slice whose parameter is 100 filters aliasing one 100-number gradient.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("merge_method: test_passthrough\nslices:\n  - &s\n    sources: [{model: a, layer_range: [0, 1]}]\n    parameters:\n      scale:\n        - &f {value: [1")
	b.WriteString(strings.Repeat(", 1", 99))
	b.WriteString("]}\n")
	b.WriteString(strings.Repeat("        - *f\n", 99))
	b.WriteString(strings.Repeat("  - *s\n", 199))
	return b.String()
}

// TestParseAccepts covers the valid forms that the examples do not.
func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, c *Config)
	}{
		{"dtype spellings", "merge_method: test_linear\nmodels: [{model: a, parameters: {weight: 1}}]\ndtype: torch.bfloat16\nout_dtype: F32\n", func(t *testing.T, c *Config) {
			if c.DType != dtype.BF16 || c.OutDType != dtype.F32 {
				t.Errorf("DType, OutDType = %v, %v; want BF16, F32", c.DType, c.OutDType)
			}
		}},
		{"unset is Invalid", "merge_method: test_linear\nmodels: [{model: a, parameters: {weight: 1}}]\ndtype: null\n", func(t *testing.T, c *Config) {
			if c.DType != dtype.Invalid || c.OutDType != dtype.Invalid || c.BaseModel != "" || c.TokenizerSource != "" {
				t.Errorf("config = %+v, want unset fields", c)
			}
		}},
		{"name ignored", "name: stage1\nmerge_method: test_linear\nmodels: [{model: a, parameters: {weight: 1}}]\n", func(t *testing.T, c *Config) {
			if c.MergeMethod != "test_linear" {
				t.Errorf("MergeMethod = %q", c.MergeMethod)
			}
		}},
		{"tokenizer_source base", "merge_method: test_linear\nmodels: [{model: a, parameters: {weight: 1}}]\ntokenizer_source: base\n", func(t *testing.T, c *Config) {
			if c.TokenizerSource != "base" {
				t.Errorf("TokenizerSource = %q", c.TokenizerSource)
			}
		}},
		{"tokenizer_source model", "merge_method: test_linear\nmodels: [{model: a, parameters: {weight: 1}}]\ntokenizer_source: some/model\n", func(t *testing.T, c *Config) {
			if c.TokenizerSource != "some/model" {
				t.Errorf("TokenizerSource = %q", c.TokenizerSource)
			}
		}},
		{"tokenizer section source", "merge_method: test_linear\nmodels: [{model: a, parameters: {weight: 1}}]\ntokenizer:\n  source: a\n", func(t *testing.T, c *Config) {
			if c.TokenizerSource != "a" {
				t.Errorf("TokenizerSource = %q", c.TokenizerSource)
			}
		}},
		{"weight at top level", "merge_method: test_ties\nbase_model: b\nparameters: {weight: 0.5, normalize: true}\nmodels: [{model: x}, {model: y}]\n", func(t *testing.T, c *Config) {
			if len(c.Models) != 2 || c.Parameters["weight"].Scalar != 0.5 || c.Parameters["normalize"].Scalar != true {
				t.Errorf("config = %+v", c)
			}
		}},
		{"weight per slice", `merge_method: test_ties
base_model: b
slices:
  - sources:
      - {model: b, layer_range: [0, 2]}
      - {model: x, layer_range: [0, 2]}
    parameters: {weight: 1, lambda: 0.5}
`, func(t *testing.T, c *Config) {
			if c.Slices[0].Parameters["lambda"].Scalar != 0.5 {
				t.Errorf("slice parameters = %+v", c.Slices[0].Parameters)
			}
		}},
		{"aliases", `merge_method: test_ties
base_model: b
models:
  - model: x
    parameters: &p {weight: 0.5, density: [0.25, 0.75]}
  - model: y
    parameters: *p
`, func(t *testing.T, c *Config) {
			want := Value{Gradient: []float64{0.25, 0.75}, Line: 5}
			for i, m := range c.Models {
				if got := m.Parameters["density"]; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("models[%d] density = %+v, want %+v", i, got, want)
				}
			}
		}},
		{"single filter mapping and star", `merge_method: test_linear
models:
  - model: x
    parameters:
      weight: {filter: mlp, value: 2}
  - model: y
    parameters:
      weight: [{filter: "*", value: 3}]
`, func(t *testing.T, c *Config) {
			w := c.Models[0].Parameters["weight"]
			if len(w.Filters) != 1 || w.Filters[0].Filter != "mlp" || w.Filters[0].Value.Scalar != 2.0 {
				t.Errorf("models[0] weight = %+v", w)
			}
			if f := c.Models[1].Parameters["weight"].Filters[0]; f.Filter != "" {
				t.Errorf("filter \"*\" stored as %q, want \"\"", f.Filter)
			}
		}},
		{"integers and exponents", `merge_method: test_linear
models:
  - model: x
    parameters: {weight: 2}
  - model: y
    parameters: {weight: -1.5e-1}
`, func(t *testing.T, c *Config) {
			if c.Models[0].Parameters["weight"].Scalar != 2.0 || c.Models[1].Parameters["weight"].Scalar != -0.15 {
				t.Errorf("weights = %+v, %+v", c.Models[0].Parameters, c.Models[1].Parameters)
			}
		}},
		{"null parameters", "merge_method: test_linear\nparameters:\nmodels: [{model: a, parameters: {weight: 1}}]\n", func(t *testing.T, c *Config) {
			if c.Parameters == nil || len(c.Parameters) != 0 {
				t.Errorf("Parameters = %#v, want empty", c.Parameters)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, c)
		})
	}
}
