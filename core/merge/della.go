package merge

// della (DELLA-merging, Deep et al.): per row, rank the delta magnitudes and keep each
// element with a probability rising with its rank from density − epsilon to density +
// epsilon (MagPrune), dividing survivors by their own probability; then TIES's sign
// consensus by sum.
var della = &taskVector{
	name: "della", sparsify: magprune, consensus: true,
	params: []Param{weightParam(), densityParam(), epsilonParam(), normalizeParam(true), rescaleParam(true),
		rescaleNormParam(), lambdaParam(), int8MaskParam()},
}
