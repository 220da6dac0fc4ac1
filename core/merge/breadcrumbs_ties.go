package merge

// breadcrumbs_ties: breadcrumbs' magnitude window, then TIES's sign consensus by sum.
var breadcrumbsTies = &taskVector{
	name: "breadcrumbs_ties", sparsify: outliers, consensus: true,
	params: []Param{weightParam(), densityParam(), gammaParam(), normalizeParam(false), rescaleParam(false),
		rescaleNormParam(), lambdaParam(), int8MaskParam()},
}
