package reference

import "math"

// The interpolating methods of design.md §5, whole tensors in float64: gather each vector
// into a slice, compute its statistics, write it back.

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// slerp: Base is v0 (t = 0), Models[0] is v1.
func slerp(in Inputs) []float64 {
	t := f(in.Global, "t", math.NaN())
	v0, v1 := f64(in.Base), f64(in.Models[0])
	if t == 0 || t == 1 {
		// The ends are the inputs themselves.
		if t == 0 {
			return v0
		}
		return v1
	}
	n0, n1 := math.Sqrt(dot(v0, v0)), math.Sqrt(dot(v1, v1))
	u0, u1 := append([]float64(nil), v0...), append([]float64(nil), v1...)
	if n0 > 1e-8 {
		for i := range u0 {
			u0[i] /= n0
		}
	}
	if n1 > 1e-8 {
		for i := range u1 {
			u1[i] /= n1
		}
	}
	cos := dot(u0, u1)
	out := make([]float64, len(v0))
	if math.Abs(cos) > 0.9995 {
		for i := range out {
			out[i] = (1-t)*v0[i] + t*v1[i]
		}
		return out
	}
	th := math.Acos(cos)
	for i := range out {
		out[i] = (math.Sin(th-t*th)*v0[i] + math.Sin(t*th)*v1[i]) / math.Sin(th)
	}
	return out
}

// vectors returns the element indices of each vector nuslerp or model_stock works on:
// the whole tensor (flat), vectors along the last dimension, or along dimension 0.
func vectors(shape []int64, n int, flat, dim0 bool) [][]int {
	if flat || len(shape) <= 1 || n == 0 {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return [][]int{idx}
	}
	var out [][]int
	if dim0 {
		rows := int(shape[0])
		cols := n / rows
		for c := 0; c < cols; c++ {
			var v []int
			for r := 0; r < rows; r++ {
				v = append(v, r*cols+c)
			}
			out = append(out, v)
		}
		return out
	}
	l := int(shape[len(shape)-1])
	for s := 0; s < n; s += l {
		var v []int
		for i := s; i < s+l; i++ {
			v = append(v, i)
		}
		out = append(out, v)
	}
	return out
}

func gather(x []float64, idx []int) []float64 {
	out := make([]float64, len(idx))
	for i, j := range idx {
		out[i] = x[j]
	}
	return out
}

// nuslerp: Models[0], Models[1] with weights; optional Base (deltas are interpolated).
func nuslerp(in Inputs) []float64 {
	w1, w2 := f(in.Args[0], "weight", math.NaN()), f(in.Args[1], "weight", math.NaN())
	t := 0.5
	if math.Abs(w1+w2) >= 1e-6 {
		t = w2 / (w1 + w2)
	}
	flat, dim0 := b(in.Global, "nuslerp_flatten", true), b(in.Global, "nuslerp_row_wise", false)
	x, y := f64(in.Models[0]), f64(in.Models[1])
	var base []float64
	if in.Base != nil {
		base = f64(in.Base)
		for i := range x {
			x[i] -= base[i]
			y[i] -= base[i]
		}
	}
	out := make([]float64, len(x))
	for _, idx := range vectors(in.Shape, len(x), flat, dim0) {
		va, vb := gather(x, idx), gather(y, idx)
		na := math.Max(math.Sqrt(dot(va, va)), 1e-7)
		nb := math.Max(math.Sqrt(dot(vb, vb)), 1e-7)
		cos := math.Max(-1, math.Min(1, dot(va, vb)/na/nb))
		th := math.Acos(cos)
		for k, i := range idx {
			if math.Abs(math.Sin(th)) < 1e-8 {
				out[i] = (1-t)*va[k] + t*vb[k]
			} else {
				out[i] = (math.Sin((1-t)*th)*va[k] + math.Sin(t*th)*vb[k]) / math.Sin(th)
			}
			if base != nil {
				out[i] += base[i]
			}
		}
	}
	return out
}

// modelStock: Base plus Models.
func modelStock(in Inputs) []float64 {
	base := f64(in.Base)
	n := len(in.Models)
	ds := make([][]float64, n)
	for k, x := range in.Models {
		ds[k] = f64(x)
		for i := range ds[k] {
			ds[k][i] -= base[i]
		}
	}
	out := make([]float64, len(base))
	for _, idx := range vectors(in.Shape, len(base), !b(in.Global, "filter_wise", false), false) {
		var sum float64
		pairs := 0
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				di, dj := gather(ds[i], idx), gather(ds[j], idx)
				den := math.Max(math.Sqrt(dot(di, di))*math.Sqrt(dot(dj, dj)), 1e-6)
				sum += math.Max(-1, math.Min(1, dot(di, dj)/den))
				pairs++
			}
		}
		c := sum / float64(pairs)
		t := 0.0 // freelunch's choice where 1 + (N-1)c = 0
		if d := 1 + float64(n-1)*c; d != 0 {
			t = float64(n) * c / d
		}
		for _, i := range idx {
			var mean float64
			for k := range in.Models {
				mean += float64(in.Models[k][i])
			}
			mean /= float64(n)
			out[i] = t*mean + (1-t)*base[i]
		}
	}
	return out
}

// passthrough: Models[0] times its scale.
func passthrough(in Inputs) []float64 {
	s := f(in.Args[0], "scale", 1)
	out := f64(in.Models[0])
	for i := range out {
		out[i] *= s
	}
	return out
}
