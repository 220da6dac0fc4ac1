package merge

import (
	"fmt"
	"math"
)

// slerp is spherical linear interpolation between the base and one other model
// (design.md §5). It needs whole-tensor statistics: a first pass accumulates the dot
// product and both squared norms in float64 in element order; the merge pass then applies
// two per-tensor coefficients element by element.
//
// Reference loop, with a = base, b = the other model, over the flattened tensor:
//
//	cos := dot(a, b) / |a| / |b|       // a norm divides only when it is > 1e-8
//	if |cos| > 0.9995 { out = (1-t)·a + t·b }
//	else { θ := acos(cos); out = sin((1-t)θ)/sin θ · a + sin(tθ)/sin θ · b }
//
// t = 0 and t = 1 copy the base and the other model exactly (no statistics pass).
type slerp struct{}

func (slerp) Name() string { return "slerp" }

func (slerp) Params() []Param {
	return []Param{{
		Name: "t", Kind: Float, Scope: Global, Required: true, Min: 0, Max: 1,
		Doc: "interpolation factor: 0 gives the base, 1 the other model",
	}}
}

func (slerp) Inputs() InputRule { return InputRule{Base: Required, MinModels: 1, MaxModels: 1} }

// Check requires a value of t for the tensor: a filter list with no match and no
// catch-all leaves it unset, which must not silently mean t = 0.
func (slerp) Check(t *Tensor) error {
	if _, ok := t.Global["t"].(float64); !ok {
		return fmt.Errorf("parameter t has no value for this tensor: no filter matches it; add a last entry without a filter")
	}
	return nil
}

func (slerp) New(t *Tensor) Kernel { return &slerpKernel{t: t.Global.Float("t")} }

type slerpKernel struct {
	t           float64
	dot, aa, bb float64 // statistics, accumulated in element order
	c0, c1      float64 // coefficients of the base and the other model
}

func (k *slerpKernel) NeedPass(pass int) bool {
	switch {
	case k.t == 0 || k.t == 1:
		return false
	case pass == 0:
		return true
	}
	k.c0, k.c1 = slerpCoeffs(k.t, k.dot, k.aa, k.bb)
	return false
}

func (k *slerpKernel) Observe(_ int, _ int64, in [][]float32) {
	a, b := in[0], in[1]
	b = b[:len(a)]
	dot, aa, bb := k.dot, k.aa, k.bb
	for i, x := range a {
		x, y := float64(x), float64(b[i])
		dot += float64(x * y) // conversions keep multiply-adds unfused on every platform
		aa += float64(x * x)
		bb += float64(y * y)
	}
	k.dot, k.aa, k.bb = dot, aa, bb
}

// slerpCoeffs returns the coefficients of a and b from their dot product and squared
// norms (design.md §5, mergekit's slerp: lerp when |cos| > 0.9995).
func slerpCoeffs(t, dot, aa, bb float64) (c0, c1 float64) {
	cos := dot
	if na := math.Sqrt(aa); na > 1e-8 {
		cos /= na
	}
	if nb := math.Sqrt(bb); nb > 1e-8 {
		cos /= nb
	}
	if math.Abs(cos) > 0.9995 {
		return 1 - t, t
	}
	theta := math.Acos(cos)
	s := math.Sin(theta)
	return math.Sin((1-t)*theta) / s, math.Sin(t*theta) / s
}

func (k *slerpKernel) Granule() int64 { return 1 }

func (k *slerpKernel) Merge(dst []float32, _ int64, in [][]float32) {
	switch k.t {
	case 0:
		copy(dst, in[0])
		return
	case 1:
		copy(dst, in[1])
		return
	}
	a, b := in[0][:len(dst)], in[1][:len(dst)]
	c0, c1 := k.c0, k.c1
	for i := range dst {
		dst[i] = float32(float64(c0*float64(a[i])) + float64(c1*float64(b[i])))
	}
}
