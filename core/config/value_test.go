package config

import (
	"math"
	"testing"

	"freelunch/core/dtype"
)

func TestResolveGradient(t *testing.T) {
	// Expected values by hand: with 9 layers, t = j/8 and s = t*4 = j/2, so odd layers sit
	// halfway between two neighbours. All values are exact in binary.
	g := Value{Gradient: []float64{0, 0.5, 0.25, 0.75, 1}}
	tests := []struct {
		layer, layers int
		want          float64
	}{
		{0, 9, 0},
		{1, 9, 0.25},
		{2, 9, 0.5},
		{3, 9, 0.375},
		{4, 9, 0.25},
		{5, 9, 0.5},
		{6, 9, 0.75},
		{7, 9, 0.875},
		{8, 9, 1},
		{-1, 9, 0}, // outside numbered layers: t = 0
		{9, 9, 1},  // past the last layer: t clamped to 1
		{0, 1, 0},  // one layer: t = 0
		{0, 0, 0},
	}
	for _, tt := range tests {
		got, ok := g.Resolve("model.layers.x.mlp.weight", tt.layer, tt.layers)
		if !ok || got != tt.want {
			t.Errorf("Resolve(layer %d of %d) = %v, %v; want %v, true", tt.layer, tt.layers, got, ok, tt.want)
		}
	}

	// Two values over 5 layers: layer 1 has t = 0.25, so 0.75*1 + 0.25*3 = 1.5.
	two := Value{Gradient: []float64{1, 3}}
	for layer, want := range []float64{1, 1.5, 2, 2.5, 3} {
		if got, _ := two.Resolve("x", layer, 5); got != want {
			t.Errorf("[1, 3].Resolve(layer %d of 5) = %v, want %v", layer, got, want)
		}
	}

	// mergekit's gradient-slerp t for self_attn at layer 10 of 40: t = 10/39, s = 40/39,
	// between 0.5 and 0.3 at fraction 1/39: (38*0.5 + 0.3)/39 = 19.3/39.
	slerp := Value{Gradient: []float64{0, 0.5, 0.3, 0.7, 1}}
	got, _ := slerp.Resolve("model.layers.10.self_attn.q_proj.weight", 10, 40)
	if want := 19.3 / 39; math.Abs(got.(float64)-want) > 1e-15 {
		t.Errorf("Resolve(layer 10 of 40) = %v, want %v", got, want)
	}
}

func TestResolveFilters(t *testing.T) {
	v := Value{Filters: []Filter{
		{Filter: "self_attn", Value: Value{Scalar: 0.1}},
		{Filter: "mlp", Value: Value{Gradient: []float64{0, 1}}},
		{Value: Value{Scalar: 0.3}},
	}}
	tests := []struct {
		name  string
		layer int
		want  any
	}{
		{"model.layers.0.self_attn.q_proj.weight", 0, 0.1},
		{"model.layers.2.mlp.down_proj.weight", 2, 0.5}, // gradient inside a filter: layer 2 of 5
		{"model.layers.4.mlp.down_proj.weight", 4, 1.0},
		{"model.layers.1.self_attn.mlp", 1, 0.1}, // both match: the first filter wins
		{"model.embed_tokens.weight", -1, 0.3},   // the filter-less item matches everything
		{"lm_head.weight", -1, 0.3},
	}
	for _, tt := range tests {
		got, ok := v.Resolve(tt.name, tt.layer, 5)
		if !ok || got != tt.want {
			t.Errorf("Resolve(%q) = %v, %v; want %v, true", tt.name, got, ok, tt.want)
		}
	}

	noFallback := Value{Filters: []Filter{{Filter: "mlp", Value: Value{Scalar: true}}}}
	if got, ok := noFallback.Resolve("model.layers.0.self_attn.q_proj.weight", 0, 5); ok {
		t.Errorf("Resolve without a matching filter = %v, true; want nil, false", got)
	}
	if got, ok := noFallback.Resolve("model.layers.0.mlp.up_proj.weight", 0, 5); !ok || got != true {
		t.Errorf("Resolve(bool filter) = %v, %v; want true, true", got, ok)
	}
	if got, ok := (Value{}).Resolve("x", 0, 1); ok {
		t.Errorf("zero Value Resolve = %v, true; want nil, false", got)
	}
	if got, ok := (Value{Scalar: "l1"}).Resolve("x", 3, 4); !ok || got != "l1" {
		t.Errorf("string Resolve = %v, %v; want l1, true", got, ok)
	}
}

func TestResolveParam(t *testing.T) {
	model := Params{"weight": {Filters: []Filter{{Filter: "mlp", Value: Value{Scalar: 1.0}}}}}
	slice := Params{"weight": {Scalar: 2.0}}
	top := Params{"weight": {Scalar: 3.0}, "density": {Gradient: []float64{0, 1}}}
	tests := []struct {
		name   string
		param  string
		tensor string
		sets   []Params
		want   any
		ok     bool
	}{
		{"per-model first", "weight", "model.layers.1.mlp.up_proj.weight", []Params{model, slice, top}, 1.0, true},
		{"falls through an unmatched filter", "weight", "model.layers.1.self_attn.o_proj.weight", []Params{model, slice, top}, 2.0, true},
		{"top level last", "weight", "model.layers.1.self_attn.o_proj.weight", []Params{model, nil, top}, 3.0, true},
		{"gradient at top", "density", "model.layers.1.self_attn.o_proj.weight", []Params{model, slice, top}, 0.5, true},
		{"absent everywhere", "lambda", "x", []Params{model, slice, top}, nil, false},
	}
	for _, tt := range tests {
		got, ok := ResolveParam(tt.param, tt.tensor, LayerOf(tt.tensor), 3, tt.sets...)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: ResolveParam(%q, %q) = %v, %v; want %v, %v", tt.name, tt.param, tt.tensor, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLayerOf(t *testing.T) {
	tests := []struct {
		name string
		want int
	}{
		{"model.layers.12.mlp.up_proj.weight", 12},
		{"transformer.h.3.attn.c_attn.weight", 3},
		{"model.blocks.7.ffn.weight", 7},
		{"lm_head.weight", -1},
		{"model.embed_tokens.weight", -1},
		{"layers.0.x", 0},
		{"model.layers.3", 3},
		{"12", 12},
		{"model.layers.07.x", 7},
		{"model.layers.2.experts.5.w1.weight", 2}, // the first number wins
		{"a.+1.b", -1},
		{"a.-1.b", -1},
		{"a.1e3.b", -1},
		{"a.0x1.b", -1},
		{"a.٣.b", -1}, // not an ASCII digit
		{"a.99999999999999999999999.5", 5},
		{"a..b", -1},
		{"", -1},
		{"layer12.weight", -1},
	}
	for _, tt := range tests {
		if got := LayerOf(tt.name); got != tt.want {
			t.Errorf("LayerOf(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestParseDType(t *testing.T) {
	tests := []struct {
		name string
		want dtype.DType
		ok   bool
	}{
		{"bfloat16", dtype.BF16, true},
		{"bf16", dtype.BF16, true},
		{"BF16", dtype.BF16, true},
		{"torch.bfloat16", dtype.BF16, true},
		{"float16", dtype.F16, true},
		{"fp16", dtype.F16, true},
		{"F16", dtype.F16, true},
		{"half", dtype.F16, true},
		{"float32", dtype.F32, true},
		{"fp32", dtype.F32, true},
		{"F32", dtype.F32, true},
		{"torch.float32", dtype.F32, true},
		{"float64", dtype.Invalid, false},
		{"int64", dtype.Invalid, false},
		{"Float16", dtype.Invalid, false},
		{"", dtype.Invalid, false},
	}
	for _, tt := range tests {
		if got, ok := ParseDType(tt.name); got != tt.want || ok != tt.ok {
			t.Errorf("ParseDType(%q) = %d, %v; want %d, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
