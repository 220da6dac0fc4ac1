// Package reference is a plain float64 implementation of design.md §5, written apart from
// core/merge so that tests can check the streaming kernels against it. It holds whole
// tensors in memory and sorts; it is for tests only.
package reference

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Inputs of one tensor: Base (nil when the method has no base) and Models, each with its
// per-model parameters; Global parameters; the random stream's coordinates.
type Inputs struct {
	Method string
	Base   []float32
	Models [][]float32
	Args   []map[string]any // per model (not the base)
	Global map[string]any
	Seed   uint64
	Index  []int // §4 model number per model
	Name   string
	Shape  []int64
}

func f(m map[string]any, k string, def float64) float64 {
	if v, ok := m[k].(float64); ok {
		return v
	}
	return def
}

func b(m map[string]any, k string, def bool) bool {
	if v, ok := m[k].(bool); ok {
		return v
	}
	return def
}

func s(m map[string]any, k string, def string) string {
	if v, ok := m[k].(string); ok {
		return v
	}
	return def
}

// Uniform is the §4 random stream, written out from the spec.
func Uniform(seed uint64, model int, name string, i int64) float64 {
	mix := func(z uint64) uint64 {
		z ^= z >> 30
		z *= 0xbf58476d1ce4e5b9
		z ^= z >> 27
		z *= 0x94d049bb133111eb
		z ^= z >> 31
		return z
	}
	h := uint64(0xcbf29ce484222325)
	for _, c := range []byte(name) {
		h ^= uint64(c)
		h *= 0x100000001b3
	}
	key := mix(mix(seed) ^ h ^ mix(uint64(model)+1))
	return float64(mix(key+uint64(i+1)*0x9e3779b97f4a7c15)>>11) * (1.0 / (1 << 53))
}

// Merge returns the merged tensor in float64.
func Merge(in Inputs) ([]float64, error) {
	switch in.Method {
	case "linear":
		return linear(in), nil
	case "task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear":
		return taskVectors(in), nil
	case "slerp":
		return slerp(in), nil
	case "nuslerp":
		return nuslerp(in), nil
	case "model_stock":
		return modelStock(in), nil
	case "passthrough":
		return passthrough(in), nil
	}
	return nil, fmt.Errorf("reference: method %s not implemented", in.Method)
}

func linear(in Inputs) []float64 {
	n := len(in.Models[0])
	out := make([]float64, n)
	var sw float64
	for k := range in.Models {
		w := f(in.Args[k], "weight", 0)
		sw += w
		for i := 0; i < n; i++ {
			out[i] += w * float64(in.Models[k][i])
		}
	}
	if b(in.Global, "normalize", true) && math.Abs(sw) >= 1e-8 {
		for i := range out {
			out[i] /= sw
		}
	}
	return out
}

func taskVectors(in Inputs) []float64 {
	n := len(in.Base)
	consensus := in.Method == "ties" || in.Method == "dare_ties" || in.Method == "breadcrumbs_ties" || in.Method == "della"
	normDefault := in.Method == "ties" || in.Method == "della"
	rescaleDefault := in.Method == "dare_linear" || in.Method == "dare_ties" || in.Method == "della" || in.Method == "della_linear"
	normalize := b(in.Global, "normalize", normDefault)
	rescale := b(in.Global, "rescale", rescaleDefault)
	lambda := f(in.Global, "lambda", 1)
	W := make([][]float64, len(in.Models))
	ws := make([]float64, len(in.Models))
	for k, x := range in.Models {
		d := make([]float64, n)
		rank := make([]float64, n)
		for i := range d {
			d[i] = float64(x[i]) - float64(in.Base[i])
			rank[i] = float64(x[i] - in.Base[i]) // magnitudes rank as float32 (design decision in core/merge)
		}
		rho := f(in.Args[k], "density", 1)
		// p[i] is element i's keep probability, the divisor of inverse rescaling.
		p := make([]float64, n)
		for i := range p {
			p[i] = rho
		}
		var kept []bool
		switch in.Method {
		case "ties":
			kept = topK(rank, rho)
		case "breadcrumbs", "breadcrumbs_ties":
			kept = window(rank, rho, f(in.Args[k], "gamma", 0.01))
		case "dare_linear", "dare_ties":
			kept = drop(p, in.Seed, in.Index[k], in.Name)
		case "della", "della_linear":
			p = magprune(rank, rho, f(in.Args[k], "epsilon", 0.15), in.Shape)
			kept = drop(p, in.Seed, in.Index[k], in.Name)
		}
		if kept != nil && rho < 1 || strings.HasPrefix(in.Method, "della") || strings.HasPrefix(in.Method, "breadcrumbs") {
			d = sparsify(d, kept, p, rescale, s(in.Global, "rescale_norm", "inverse"))
		}
		w := f(in.Args[k], "weight", 0)
		ws[k] = w
		for i := range d {
			d[i] *= w
		}
		W[k] = d
	}
	out := make([]float64, n)
	for i := 0; i < n; i++ {
		var sum, wsum float64
		if consensus {
			var tot float64
			for k := range W {
				tot += W[k][i]
			}
			pos := tot >= 0
			for k := range W {
				v := W[k][i]
				if v != 0 && (v > 0) == pos {
					sum += v
					wsum += ws[k]
				}
			}
			if normalize && wsum != 0 {
				sum /= wsum
			}
		} else {
			for k := range W {
				sum += W[k][i]
				wsum += ws[k]
			}
			if normalize && math.Abs(wsum) >= 1e-8 {
				sum /= wsum
			}
		}
		out[i] = float64(in.Base[i]) + lambda*sum
	}
	return out
}

// order returns the indices sorted by |rank| ascending (desc when largest), ties by lower
// index first.
func order(rank []float64, largest bool) []int {
	idx := make([]int, len(rank))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, c int) bool {
		x, y := math.Abs(rank[idx[a]]), math.Abs(rank[idx[c]])
		if largest {
			return x > y
		}
		return x < y
	})
	return idx
}

// topK marks the floor(rho*n) largest |rank|, ties by lower index.
func topK(rank []float64, rho float64) []bool {
	n := len(rank)
	k := int(math.Floor(rho * float64(n)))
	if rho >= 1 {
		k = n
	}
	kept := make([]bool, n)
	for _, i := range order(rank, true)[:max(0, min(k, n))] {
		kept[i] = true
	}
	return kept
}

// window marks breadcrumbs' ascending positions [n_bot, n - n_top).
func window(rank []float64, rho, gamma float64) []bool {
	n := len(rank)
	target := int(math.Floor(rho * float64(n)))
	if rho >= 1 {
		target = n
	}
	top := int(math.Floor(gamma * float64(n)))
	bot := n - target - top
	if bot < 0 {
		top, bot = top+bot, 0
	}
	kept := make([]bool, n)
	for _, i := range order(rank, false)[bot : n-top] {
		kept[i] = true
	}
	return kept
}

// drop marks the elements whose §4 draw is below their keep probability p.
func drop(p []float64, seed uint64, model int, name string) []bool {
	kept := make([]bool, len(p))
	for i := range p {
		kept[i] = p[i] >= 1 || Uniform(seed, model, name, int64(i)) < p[i]
	}
	return kept
}

// magprune returns DELLA's keep probability per element: per row ([shape[0], rest]), rank
// |rank| ascending from 1 (ties by index), p = (rho-eps) + 2 eps (rank-1)/(ncols-1).
func magprune(rank []float64, rho, eps float64, shape []int64) []float64 {
	n := len(rank)
	cols := n
	if len(shape) > 1 && shape[0] > 0 {
		cols = n / int(shape[0])
	}
	p := make([]float64, n)
	for r0 := 0; r0 < n; r0 += cols {
		row := rank[r0 : r0+cols]
		for pos, i := range order(row, false) {
			if cols == 1 {
				p[r0+i] = rho
			} else {
				p[r0+i] = (rho - eps) + 2*eps*float64(pos)/float64(cols-1)
			}
		}
	}
	return p
}

// sparsify zeroes dropped elements and rescales survivors: inverse divides by p, l1
// restores the L1 norm (skipped when either norm is below 1e-7).
func sparsify(d []float64, kept []bool, p []float64, rescale bool, norm string) []float64 {
	out := make([]float64, len(d))
	for i := range d {
		if !kept[i] {
			continue
		}
		out[i] = d[i]
		if rescale && norm == "inverse" {
			out[i] /= p[i]
		}
	}
	if rescale && norm == "l1" {
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
	}
	return out
}
