package merge

// ties (TIES-merging, Yadav et al.): keep each delta's floor(density·n) largest magnitudes
// (ties by lower index), elect a sign per element by the sum, add the agreeing deltas.
var ties = &taskVector{
	name: "ties", sparsify: topK, consensus: true,
	params: []Param{weightParam(), densityParam(), normalizeParam(true), rescaleParam(false),
		rescaleNormParam(), lambdaParam(), int8MaskParam()},
}
