package merge

// dare_linear (Yu et al., the DARE paper): drop each delta element with probability
// 1 − density on the §4 stream, rescale the survivors, add the weighted deltas.
var dareLinear = &taskVector{
	name: "dare_linear", sparsify: dareDrop,
	params: []Param{weightParam(), densityParam(), normalizeParam(false), rescaleParam(true),
		rescaleNormParam(), lambdaParam(), int8MaskParam()},
}
