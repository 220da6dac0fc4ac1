package merge

// breadcrumbs (Model Breadcrumbs, Davari and Belilovsky): keep a window of each delta's
// magnitudes, dropping the floor(gamma·n) largest as outliers and the smallest down to
// floor(density·n) kept, then add the weighted deltas. With gamma 0 the window runs to the
// largest element (mergekit zeroes the whole delta there).
var breadcrumbs = &taskVector{
	name: "breadcrumbs", sparsify: outliers,
	params: []Param{weightParam(), densityParam(), gammaParam(), normalizeParam(false), rescaleParam(false),
		rescaleNormParam(), lambdaParam(), int8MaskParam()},
}
