package config

// API skeleton: signatures agreed between packages; bodies are filled in by the config work.

import (
	"errors"

	"freelunch/core/dtype"
)

// ErrConfig is wrapped by every validation error (errors.Is(err, ErrConfig)).
var ErrConfig = errors.New("config: invalid")

// Config is a parsed, validated mergekit config.
type Config struct {
	MergeMethod     string
	BaseModel       string // "" when absent
	Models          []ModelEntry
	Slices          []Slice
	Parameters      Params      // top-level parameters
	DType           dtype.DType // Invalid when unset
	OutDType        dtype.DType // Invalid when unset
	TokenizerSource string      // "" (unset), "base", or a model path
	Raw             []byte      // the file, verbatim
}

// ModelEntry is one item of `models`.
type ModelEntry struct {
	Model      string
	Parameters Params
	Line       int // line of the entry in the file
}

// Slice is one item of `slices`.
type Slice struct {
	Sources    []Source
	Parameters Params
	Line       int
}

// Source is one item of a slice's `sources`.
type Source struct {
	Model      string
	LayerRange [2]int // [start, end)
	Parameters Params
	Line       int
}

// Params maps parameter names to values as written.
type Params map[string]Value

// Value is a parameter value: a scalar (float64, bool or string), a gradient, or a filter list.
type Value struct {
	Scalar   any       // float64, bool or string; nil for gradient or filter list
	Gradient []float64 // len >= 2 when a gradient
	Filters  []Filter  // when a filter list
	Line     int       // line in the file
}

// Filter is one {filter, value} item; Filter "" matches every tensor.
type Filter struct {
	Filter string
	Value  Value // a scalar or a gradient
}

// Parse parses and validates a mergekit YAML config against the method registry
// (core/merge). Errors wrap ErrConfig and name the key and its line; see [Error].
// Parse never panics on any input.
func Parse(data []byte) (*Config, error) { return parse(data) }

// Resolve evaluates v for the tensor name at layer (of layers); layer < 0 means the tensor
// is outside numbered layers (gradient t = 0). The first matching filter wins; ok is false
// when no filter matches.
//
// A gradient g of n values is evaluated at t = layer/(layers-1) (t = 0 when layers <= 1 or
// layer < 0; t is clamped to [0, 1]): s = t*(n-1), i = floor(s), f = s-i, and the result is
// (1-f)*g[i] + f*g[i+1] in float64, as mergekit computes it. Scalars (float64, bool,
// string) resolve to themselves. The zero Value resolves to (nil, false).
func (v Value) Resolve(name string, layer, layers int) (val any, ok bool) {
	return v.resolve(name, layer, layers)
}

// LayerOf returns the layer number of a tensor name (the first ".<integer>." component), or -1.
// More exactly: the first dot-separated component made only of ASCII digits, so
// "model.layers.12.mlp.up_proj.weight" gives 12, "layers.0.x" gives 0 and "lm_head.weight"
// gives -1. A component too large for an int is skipped.
func LayerOf(name string) int { return layerOf(name) }
