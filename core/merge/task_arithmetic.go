package merge

// task_arithmetic (Ilharco et al.): base + λ·Σ w_k (X_k − B), no sparsification.
var taskArithmetic = &taskVector{
	name: "task_arithmetic", sparsify: noSparsify,
	params: []Param{weightParam(), normalizeParam(false), lambdaParam(), int8MaskParam()},
}
