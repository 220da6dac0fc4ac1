package merge

// breadcrumbs (Model Breadcrumbs, Davari & Belilovsky): keep a window of each delta's
// magnitudes, dropping the smallest and the gamma largest outliers, then add.
var breadcrumbs = &taskVector{
	name: "breadcrumbs", sparsify: outliers,
	params: []Param{weightParam(), densityParam(), gammaParam(), normalizeParam(false), rescaleParam(false),
		rescaleNormParam(), lambdaParam(), int8MaskParam()},
}
