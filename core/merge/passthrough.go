package merge

import (
	"fmt"
	"math"
)

// passthrough copies one input per tensor, multiplied by its model's scale (default 1,
// which copies the values exactly). With slices it stacks layer ranges of several models
// (frankenmerges); with models it takes exactly one model. A base_model, if given, is
// just another input: it must be the one model (or the source of a slice), as in mergekit,
// where a second input to passthrough is an error.
type passthrough struct{}

func (passthrough) Name() string { return "passthrough" }

func (passthrough) Params() []Param {
	return []Param{{Name: "scale", Kind: Float, Scope: PerModel, Default: 1.0, Min: math.Inf(-1), Max: math.Inf(1),
		Doc: "factor the tensor is multiplied by"}}
}

// Inputs: MinModels is 0 because the config counts models besides the base, and the one
// input may be the base itself; Check then requires exactly one input per tensor.
func (passthrough) Inputs() InputRule {
	return InputRule{Base: Optional, MinModels: 0, MaxModels: 1, BaseIsInput: true}
}

func (passthrough) Check(t *Tensor) error {
	if len(t.Args) != 1 {
		return fmt.Errorf("merge_method passthrough takes exactly one model per tensor, got %d", len(t.Args))
	}
	return nil
}

func (passthrough) New(t *Tensor) Kernel { return passKernel{scale: t.Args[0].Float("scale")} }

type passKernel struct{ scale float64 }

func (passKernel) NeedPass(int) bool               { return false }
func (passKernel) Observe(int, int64, [][]float32) {}
func (passKernel) Granule() int64                  { return 1 }

func (k passKernel) Merge(dst []float32, _ int64, in [][]float32) {
	x := in[0][:len(dst)]
	if k.scale == 1 {
		copy(dst, x)
		return
	}
	for i, v := range x {
		dst[i] = float32(k.scale * float64(v))
	}
}
