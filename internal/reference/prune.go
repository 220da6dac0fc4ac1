package reference

import (
	"math"
	"sort"
)

// ascending returns the indices of rank sorted by |rank| ascending, ties by index.
func ascending(rank []float64, idx []int) []int {
	out := append([]int(nil), idx...)
	sort.SliceStable(out, func(a, c int) bool { return math.Abs(rank[out[a]]) < math.Abs(rank[out[c]]) })
	return out
}

// rescaled applies a rescale to the sparsified out given the dense d: inverse divides each
// survivor by its keep probability p[i]; l1 matches the dense L1 norm.
func rescaled(out, d, p []float64, rescale bool, norm string) []float64 {
	if !rescale {
		return out
	}
	if norm == "l1" {
		var a, c float64
		for i := range d {
			a += math.Abs(d[i])
			c += math.Abs(out[i])
		}
		if a >= 1e-7 && c >= 1e-7 {
			for i := range out {
				out[i] *= a / c
			}
		}
		return out
	}
	for i := range out {
		out[i] /= p[i]
	}
	return out
}

// window is Model Breadcrumbs' magnitude window (design.md §5).
func window(d, rank []float64, rho, gamma float64, rescale bool, norm string) []float64 {
	n := len(d)
	if rho >= 1 {
		return d
	}
	out := make([]float64, n)
	if rho <= 0 {
		return out
	}
	target := int(math.Floor(rho * float64(n)))
	nTop := int(math.Floor(gamma * float64(n)))
	nBot := n - target - nTop
	if nBot < 0 {
		nTop += nBot
		nBot = 0
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	for _, i := range ascending(rank, all)[nBot : n-nTop] {
		out[i] = d[i]
	}
	p := make([]float64, n)
	for i := range p {
		p[i] = rho
	}
	return rescaled(out, d, p, rescale, norm)
}

// magPrune is DELLA's rank-based random drop per row of [shape[0], rest].
func magPrune(d, rank []float64, shape []int64, rho, eps float64, rescale bool, norm string, seed uint64, model int, name string) []float64 {
	n := len(d)
	if rho >= 1 {
		return d
	}
	cols := n
	if len(shape) >= 2 && shape[0] > 0 {
		cols = n / int(shape[0])
	}
	p := make([]float64, n)
	for r := 0; r < n; r += cols {
		idx := make([]int, cols)
		for i := range idx {
			idx[i] = r + i
		}
		for pos, i := range ascending(rank, idx) {
			if cols == 1 {
				p[i] = rho
			} else {
				p[i] = rho - eps + 2*eps*float64(pos)/float64(cols-1)
			}
		}
	}
	out := make([]float64, n)
	for i := range d {
		if Uniform(seed, model, name, int64(i)) < p[i] {
			out[i] = d[i]
		}
	}
	return rescaled(out, d, p, rescale, norm)
}
