package merge

import "math"

// Parameter declarations shared by several methods (design.md §5). Each method file lists
// the ones it takes.

var inf = math.Inf(1)

func weightParam() Param {
	return Param{Name: "weight", Kind: Float, Scope: PerModel, Required: true, Min: -inf, Max: inf,
		Doc: "how much of this model's delta (or, for linear, of the model) goes into the merge"}
}

func densityParam() Param {
	return Param{Name: "density", Kind: Float, Scope: PerModel, Default: 1.0, Min: 0, Max: 1,
		Doc: "fraction of the delta kept (DARE's drop rate p is 1 - density)"}
}

func normalizeParam(def bool) Param {
	return Param{Name: "normalize", Kind: Bool, Scope: Global, Default: def,
		Doc: "divide by the sum of the weights"}
}

func rescaleParam(def bool) Param {
	return Param{Name: "rescale", Kind: Bool, Scope: Global, Default: def,
		Doc: "rescale the kept delta elements (see rescale_norm)"}
}

func rescaleNormParam() Param {
	return Param{Name: "rescale_norm", Kind: Enum, Scope: Global, Default: "inverse", Enum: []string{"inverse", "l1"},
		Doc: "inverse: divide survivors by density (the DARE paper); l1: keep the delta's L1 norm"}
}

func lambdaParam() Param {
	return Param{Name: "lambda", Kind: Float, Scope: Global, Default: 1.0, Min: -inf, Max: inf,
		Doc: "scale of the merged delta before it is added to the base"}
}

func int8MaskParam() Param {
	return Param{Name: "int8_mask", Kind: Bool, Scope: Global, Default: false,
		Doc: "accepted for mergekit configs; no effect (masks are never stored)"}
}

func gammaParam() Param {
	return Param{Name: "gamma", Kind: Float, Scope: PerModel, Default: 0.01, Min: 0, Max: 1,
		Doc: "fraction of largest-magnitude delta elements dropped as outliers"}
}

func epsilonParam() Param {
	return Param{Name: "epsilon", Kind: Float, Scope: PerModel, Default: 0.15, Min: 0, Max: 1,
		Doc: "spread of keep probabilities around density, by magnitude rank within each row"}
}
