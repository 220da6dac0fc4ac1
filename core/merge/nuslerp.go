package merge

import "math"

// nuslerp is mergekit's NuSLERP (design.md §5): spherical interpolation of two models
// with t = w2/(w1+w2) (0.5 when |w1+w2| < 1e-6), or of their deltas from a distinct base
// that is then added back. The vectors interpolated are:
//
//   - nuslerp_flatten (default): the whole tensor, one vector. A first pass accumulates
//     the dot product and squared norms in float64 in element order.
//   - otherwise, each vector along the last dimension (each row of length shape[-1]):
//     chunks hold whole rows (Granule is the row length) and each row's statistics are
//     computed where it is merged, with no extra pass.
//   - otherwise with nuslerp_row_wise, each vector along dimension 0 (the elements i with
//     the same i mod (n/shape[0])): a first pass accumulates per-vector statistics, so the
//     kernel holds 3 float64 per vector (n/shape[0] of them).
//
// A tensor of rank 0 or 1 is one vector whatever the options. Per vector, with a, b the
// two models' vectors (or deltas):
//
//	cos := clamp(dot(a, b) / (max(|a|, 1e-7) · max(|b|, 1e-7)), -1, 1); θ := acos(cos)
//	if |sin θ| < 1e-8 { out = (1-t)·a + t·b }
//	else { out = (sin((1-t)θ)·a + sin(tθ)·b) / sin θ }
type nuslerp struct{}

func (nuslerp) Name() string { return "nuslerp" }

func (nuslerp) Params() []Param {
	return []Param{
		{Name: "weight", Kind: Float, Scope: PerModel, Required: true, Min: math.Inf(-1), Max: math.Inf(1),
			Doc: "relative weight of the model; t = w2/(w1+w2)"},
		{Name: "nuslerp_flatten", Kind: Bool, Scope: Global, Default: true,
			Doc: "interpolate the whole tensor as one vector"},
		{Name: "nuslerp_row_wise", Kind: Bool, Scope: Global, Default: false,
			Doc: "without flatten: interpolate the vectors along dimension 0 instead of the last"},
	}
}

func (nuslerp) Inputs() InputRule { return InputRule{Base: Optional, MinModels: 2, MaxModels: 2} }

func (nuslerp) Check(*Tensor) error { return nil }

func (nuslerp) New(t *Tensor) Kernel {
	off := 0
	if t.HasBase {
		off = 1
	}
	k := &nuslerpKernel{t: nuslerpT(t.Args[off].Float("weight"), t.Args[off+1].Float("weight")), base: t.HasBase, stride: 1}
	switch rank := len(t.Shape); {
	case t.Global.Bool("nuslerp_flatten") || rank <= 1 || t.N == 0:
	case t.Global.Bool("nuslerp_row_wise"):
		k.stride = t.N / t.Shape[0]
	default:
		k.row = t.Shape[rank-1]
	}
	if k.row == 0 {
		k.dot = make([]float64, k.stride)
		k.aa = make([]float64, k.stride)
		k.bb = make([]float64, k.stride)
	}
	return k
}

// nuslerpT returns the interpolation factor of two models' weights.
func nuslerpT(w1, w2 float64) float64 {
	if math.Abs(w1+w2) < 1e-6 {
		return 0.5
	}
	return w2 / (w1 + w2)
}

// nuslerpCoeffs returns the coefficients of a and b from their dot product and squared
// norms.
func nuslerpCoeffs(t, dot, aa, bb float64) (c0, c1 float64) {
	cos := dot / (max(math.Sqrt(aa), 1e-7) * max(math.Sqrt(bb), 1e-7))
	cos = max(-1, min(1, cos))
	theta := math.Acos(cos)
	s := math.Sin(theta)
	if math.Abs(s) < 1e-8 {
		return 1 - t, t
	}
	return math.Sin((1-t)*theta) / s, math.Sin(t*theta) / s
}

type nuslerpKernel struct {
	t    float64
	base bool // in[0] is the base: interpolate the deltas and add it back
	// row > 0: vectors are rows of this length, merged whole. Otherwise vector j holds the
	// elements i with i mod stride = j; dot, aa, bb are its statistics, replaced by its
	// coefficients (in aa and bb) once the pass is done.
	row, stride int64
	dot, aa, bb []float64
}

func (k *nuslerpKernel) NeedPass(pass int) bool {
	if k.row > 0 {
		return false
	}
	if pass == 0 {
		return true
	}
	for j := range k.dot {
		k.aa[j], k.bb[j] = nuslerpCoeffs(k.t, k.dot[j], k.aa[j], k.bb[j])
	}
	return false
}

// split returns the base (nil without one) and the two models' chunks, all len n.
func (k *nuslerpKernel) split(in [][]float32, n int) (base, a, b []float32) {
	if k.base {
		return in[0][:n], in[1][:n], in[2][:n]
	}
	return nil, in[0][:n], in[1][:n]
}

func (k *nuslerpKernel) Observe(_ int, off int64, in [][]float32) {
	base, a, b := k.split(in, len(in[0]))
	j := off % k.stride
	dot, aa, bb := k.dot, k.aa, k.bb
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		if base != nil {
			x -= float64(base[i])
			y -= float64(base[i])
		}
		dot[j] += float64(x * y) // conversions keep multiply-adds unfused on every platform
		aa[j] += float64(x * x)
		bb[j] += float64(y * y)
		if j++; j == k.stride {
			j = 0
		}
	}
}

func (k *nuslerpKernel) Granule() int64 { return max(k.row, 1) }

func (k *nuslerpKernel) Merge(dst []float32, off int64, in [][]float32) {
	base, a, b := k.split(in, len(dst))
	if k.row > 0 {
		for r := 0; r < len(dst); r += int(k.row) {
			e := r + int(k.row)
			var bs []float32
			if base != nil {
				bs = base[r:e]
			}
			k.mergeRow(dst[r:e], bs, a[r:e], b[r:e])
		}
		return
	}
	j := off % k.stride
	for i := range dst {
		c0, c1 := k.aa[j], k.bb[j]
		x, y := float64(a[i]), float64(b[i])
		if base != nil {
			bv := float64(base[i])
			dst[i] = float32(bv + float64(c0*(x-bv)) + float64(c1*(y-bv)))
		} else {
			dst[i] = float32(float64(c0*x) + float64(c1*y))
		}
		if j++; j == k.stride {
			j = 0
		}
	}
}

// mergeRow merges one whole vector.
func (k *nuslerpKernel) mergeRow(dst, base, a, b []float32) {
	var dot, aa, bb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		if base != nil {
			x -= float64(base[i])
			y -= float64(base[i])
		}
		dot += float64(x * y)
		aa += float64(x * x)
		bb += float64(y * y)
	}
	c0, c1 := nuslerpCoeffs(k.t, dot, aa, bb)
	for i := range dst {
		x, y := float64(a[i]), float64(b[i])
		if base != nil {
			bv := float64(base[i])
			dst[i] = float32(bv + float64(c0*(x-bv)) + float64(c1*(y-bv)))
		} else {
			dst[i] = float32(float64(c0*x) + float64(c1*y))
		}
	}
}
