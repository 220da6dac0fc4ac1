package merge

// della_linear: DELLA's MagPrune without sign consensus.
var dellaLinear = &taskVector{
	name: "della_linear", sparsify: magprune,
	params: []Param{weightParam(), densityParam(), epsilonParam(), normalizeParam(false), rescaleParam(true),
		rescaleNormParam(), lambdaParam(), int8MaskParam()},
}
