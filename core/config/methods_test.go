package config

import (
	"math"

	"freelunch/core/merge"
)

// The config parser validates against the method registry, which has no real methods on
// this branch. These stubs declare the parameters of mergekit's methods (names, kinds,
// scopes, defaults and ranges as design.md §5 gives them) under test_ names that can
// never clash with the real ones. Only their declarations are used: the parser never
// calls Check or New.

var (
	inf    = math.Inf(1)
	weight = merge.Param{Name: "weight", Kind: merge.Float, Scope: merge.PerModel, Required: true, Min: -inf, Max: inf}
	// density is a fraction kept.
	density   = merge.Param{Name: "density", Kind: merge.Float, Scope: merge.PerModel, Default: 1.0, Min: 0, Max: 1}
	normalize = func(def bool) merge.Param {
		return merge.Param{Name: "normalize", Kind: merge.Bool, Scope: merge.Global, Default: def}
	}
	rescale = func(def bool) merge.Param {
		return merge.Param{Name: "rescale", Kind: merge.Bool, Scope: merge.Global, Default: def}
	}
	rescaleNrm = merge.Param{Name: "rescale_norm", Kind: merge.Enum, Scope: merge.Global, Default: "inverse", Enum: []string{"inverse", "l1"}}
	int8Mask   = merge.Param{Name: "int8_mask", Kind: merge.Bool, Scope: merge.Global, Default: false}
	lambda     = merge.Param{Name: "lambda", Kind: merge.Float, Scope: merge.Global, Default: 1.0, Min: -inf, Max: inf}
	epsilon    = merge.Param{Name: "epsilon", Kind: merge.Float, Scope: merge.PerModel, Default: 0.15, Min: 0, Max: 1}
)

type stub struct {
	name   string
	params []merge.Param
	inputs merge.InputRule
}

func (s stub) Name() string                   { return s.name }
func (s stub) Params() []merge.Param          { return s.params }
func (s stub) Inputs() merge.InputRule        { return s.inputs }
func (s stub) Check(*merge.Tensor) error      { return nil }
func (s stub) New(*merge.Tensor) merge.Kernel { return nil }

func init() {
	taskVector := func(name string, extra ...merge.Param) stub {
		ps := []merge.Param{weight, density, normalize(false), rescale(false), rescaleNrm, int8Mask, lambda}
		return stub{name, append(ps, extra...), merge.InputRule{Base: merge.Required, MinModels: 1}}
	}
	for _, m := range []merge.Method{
		stub{"test_linear", []merge.Param{weight, normalize(true)}, merge.InputRule{MinModels: 1}},
		taskVector("test_ties"),
		taskVector("test_dare_ties"),
		taskVector("test_della", epsilon),
		stub{"test_slerp", []merge.Param{
			{Name: "t", Kind: merge.Float, Scope: merge.Global, Required: true, Min: 0, Max: 1},
		}, merge.InputRule{Base: merge.Required, MinModels: 1, MaxModels: 1}},
		stub{"test_passthrough", []merge.Param{
			{Name: "scale", Kind: merge.Float, Scope: merge.PerModel, Default: 1.0, Min: -inf, Max: inf},
		}, merge.InputRule{MinModels: 1, MaxModels: 1}},
		stub{"test_open", []merge.Param{
			{Name: "x", Kind: merge.Float, Scope: merge.PerModel, Default: 0.5, Min: 0, MinOpen: true, Max: 1},
		}, merge.InputRule{MinModels: 1}},
	} {
		merge.Register(m)
	}
}
