package merge

import "math"

// modelStock is Model Stock (Jang et al., arXiv 2403.19522; design.md §5): the average of
// N ≥ 2 fine-tunes pulled towards the base by a factor from the mean pairwise cosine c of
// their deltas d_k = X_k - B:
//
//	cos_ij := clamp(dot(d_i, d_j) / max(|d_i|·|d_j|, 1e-6), -1, 1)
//	c := mean over pairs i < j of cos_ij
//	t := N·c / (1 + (N-1)·c)        // t := 0 when the denominator is 0
//	out = t·mean_k(X_k) + (1-t)·B
//
// By default c is one number per tensor: a first pass accumulates the squared norms and
// pairwise dot products in float64 in element order. With filter_wise, c is computed per
// vector along the last dimension (per row of a matrix); chunks hold whole rows (Granule is
// the row length) and each row's statistics are computed where it is merged. A tensor of
// rank 0 or 1 is one vector either way.
type modelStock struct{}

func (modelStock) Name() string { return "model_stock" }

func (modelStock) Params() []Param {
	return []Param{{Name: "filter_wise", Kind: Bool, Scope: Global, Default: false,
		Doc: "one interpolation factor per row instead of per tensor"}}
}

func (modelStock) Inputs() InputRule { return InputRule{Base: Required, MinModels: 2} }

func (modelStock) Check(*Tensor) error { return nil }

func (modelStock) New(t *Tensor) Kernel {
	n := len(t.Args) - 1
	k := &stockKernel{n: n, stats: make([]float64, n*(n+1)/2)}
	if rank := len(t.Shape); t.Global.Bool("filter_wise") && rank > 1 && t.N > 0 {
		k.row = t.Shape[rank-1]
		k.stats = nil
	}
	return k
}

type stockKernel struct {
	n   int   // models besides the base
	row int64 // > 0: one factor per row of this length
	// stats holds, for the whole tensor, the sums d_i·d_j for i ≤ j in the order
	// (0,0) (0,1) ... (0,n-1) (1,1) ... (n-1,n-1).
	stats []float64
	t     float64 // the factor, once the pass is done
}

func (k *stockKernel) NeedPass(pass int) bool {
	if k.row > 0 {
		return false
	}
	if pass == 0 {
		return true
	}
	k.t = stockT(k.n, k.stats)
	return false
}

// accumulate adds the products of the deltas of elements [lo, hi) to stats.
func accumulate(stats []float64, in [][]float32, lo, hi int) {
	base, models := in[0][lo:hi], in[1:]
	n := len(models)
	var d [8]float64 // deltas of one element; more models take the slow path
	ds := d[:]
	if n > len(d) {
		ds = make([]float64, n)
	}
	ds = ds[:n]
	for i, bv := range base {
		b := float64(bv)
		for m := range ds {
			ds[m] = float64(models[m][lo+i]) - b
		}
		s := 0
		for p := 0; p < n; p++ {
			dp := ds[p]
			for q := p; q < n; q++ {
				stats[s] += float64(dp * ds[q]) // unfused on every platform
				s++
			}
		}
	}
}

// stockT returns the interpolation factor from the products of the deltas (see stats).
func stockT(n int, stats []float64) float64 {
	diag := func(p int) int { return p*n - p*(p-1)/2 } // index of (p, p)
	var sum float64
	for p := 0; p < n; p++ {
		for q := p + 1; q < n; q++ {
			den := max(math.Sqrt(stats[diag(p)])*math.Sqrt(stats[diag(q)]), 1e-6)
			sum += max(-1, min(1, stats[diag(p)+q-p]/den))
		}
	}
	c := sum / float64(n*(n-1)/2)
	den := 1 + float64(float64(n-1)*c)
	if den == 0 {
		return 0
	}
	return float64(n) * c / den
}

func (k *stockKernel) Observe(_ int, _ int64, in [][]float32) {
	accumulate(k.stats, in, 0, len(in[0]))
}

func (k *stockKernel) Granule() int64 { return max(k.row, 1) }

func (k *stockKernel) Merge(dst []float32, _ int64, in [][]float32) {
	if k.row == 0 {
		stockApply(dst, in, 0, len(dst), k.t)
		return
	}
	var buf [36]float64 // statistics of up to 8 models without allocating
	var stats []float64
	if m := k.n * (k.n + 1) / 2; m <= len(buf) {
		stats = buf[:m]
	} else {
		stats = make([]float64, m)
	}
	for r := 0; r < len(dst); r += int(k.row) {
		clear(stats)
		e := r + int(k.row)
		accumulate(stats, in, r, e)
		stockApply(dst, in, r, e, stockT(k.n, stats))
	}
}

// stockApply writes t·mean(X_k) + (1-t)·B for elements [lo, hi).
func stockApply(dst []float32, in [][]float32, lo, hi int, t float64) {
	base, models := in[0], in[1:]
	n := float64(len(models))
	for i := lo; i < hi; i++ {
		var sum float64
		for _, m := range models {
			sum += float64(m[i])
		}
		dst[i] = float32(float64(t*(sum/n)) + float64((1-t)*float64(base[i])))
	}
}
