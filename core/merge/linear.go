package merge

import "math"

// linear: the weighted average Σ w_k X_k (÷ Σ w_k when normalize). The base, if given, is
// one more input with its own weight.
type linear struct{}

func (linear) Name() string { return "linear" }
func (linear) Params() []Param {
	return []Param{weightParam(), normalizeParam(true)}
}
func (linear) Inputs() InputRule   { return InputRule{Base: Optional, MinModels: 1, BaseIsInput: true} }
func (linear) Check(*Tensor) error { return nil }

func (linear) New(t *Tensor) Kernel {
	k := &linearKernel{w: make([]float64, len(t.Args)), div: 1}
	var sum float64
	for j, a := range t.Args {
		k.w[j] = a.Float("weight")
		sum += k.w[j]
	}
	if t.Global.Bool("normalize") && math.Abs(sum) >= 1e-8 {
		k.div = sum
	}
	return k
}

type linearKernel struct {
	w   []float64 // per input
	div float64
}

func (*linearKernel) NeedPass(int) bool               { return false }
func (*linearKernel) Observe(int, int64, [][]float32) {}
func (*linearKernel) Granule() int64                  { return 1 }

func (k *linearKernel) Merge(dst []float32, _ int64, in [][]float32) {
	for i := range dst {
		var sum float64
		for j, x := range in {
			sum += float64(k.w[j] * float64(x[i])) // no fused multiply-add anywhere
		}
		dst[i] = float32(sum / k.div)
	}
}
