package merge

// dare_ties: DARE's random drop, then TIES's sign consensus by sum.
var dareTies = &taskVector{
	name: "dare_ties", sparsify: dareDrop, consensus: true,
	params: []Param{weightParam(), densityParam(), normalizeParam(false), rescaleParam(true),
		rescaleNormParam(), lambdaParam(), int8MaskParam()},
}
