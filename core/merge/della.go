package merge

// della (DELLA-merging, Deep et al.): MagPrune drops delta elements at random with keep
// probabilities that grow with magnitude rank within each row, rescales survivors by their
// own probability, then TIES's sign consensus by sum.
var della = &taskVector{
	name: "della", sparsify: magprune, consensus: true,
	params: []Param{weightParam(), densityParam(), epsilonParam(), normalizeParam(true), rescaleParam(true),
		rescaleNormParam(), lambdaParam(), int8MaskParam()},
}
