// Package reference is a plain float64 implementation of design.md §5, written apart from
// core/merge so that tests can check the streaming kernels against it. It holds whole
// tensors in memory and sorts; it is for tests only.
package reference

import (
	"fmt"
	"math"
	"sort"
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
	case "task_arithmetic", "ties", "dare_linear", "dare_ties":
		return taskVectors(in), nil
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
	consensus := in.Method == "ties" || in.Method == "dare_ties"
	normDefault := in.Method == "ties"
	rescaleDefault := in.Method == "dare_linear" || in.Method == "dare_ties"
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
		switch in.Method {
		case "ties":
			d = topK(d, rank, rho)
		case "dare_linear", "dare_ties":
			d = dare(d, rho, rescale, s(in.Global, "rescale_norm", "inverse"), in.Seed, in.Index[k], in.Name)
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

// topK keeps the d of the floor(rho*n) largest |rank|, ties by lower index.
func topK(d, rank []float64, rho float64) []float64 {
	n := len(d)
	k := int(math.Floor(rho * float64(n)))
	if rho >= 1 {
		k = n
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, c int) bool { return math.Abs(rank[idx[a]]) > math.Abs(rank[idx[c]]) })
	out := make([]float64, n)
	for _, i := range idx[:max(0, min(k, n))] {
		out[i] = d[i]
	}
	return out
}

func dare(d []float64, rho float64, rescale bool, norm string, seed uint64, model int, name string) []float64 {
	if rho >= 1 {
		return d
	}
	out := make([]float64, len(d))
	if rho <= 0 {
		return out
	}
	for i := range d {
		if Uniform(seed, model, name, int64(i)) < rho {
			out[i] = d[i]
			if rescale && norm == "inverse" {
				out[i] /= rho
			}
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
