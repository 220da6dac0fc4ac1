package merge

import (
	"fmt"
	"math"
	"slices"
)

// The task-vector family (design.md §5) shares one pipeline per tensor:
// deltas → sparsify each → × weight → sign consensus (TIES-style) → sum → normalize → × λ → + base.
// Each method is a taskVector value in its own file; the kernel below runs them all.
//
// Arithmetic is float64 per element (deltas of float32 inputs are exact in float64), so each
// output element is rounded once to float32 and then to the output dtype: F32 outputs stay
// within an ulp of the exact result even where the deltas cancel. Magnitudes are ranked by
// the delta rounded to float32 (a monotonic rounding: it can only merge nearly equal
// magnitudes into ties, which go by index).

type sparsifier int

const (
	noSparsify sparsifier = iota
	topK                  // magnitude top-k (TIES)
	dareDrop              // random drop (DARE)
	outliers              // magnitude window without the largest (Model Breadcrumbs)
	magprune              // rank-based random drop per row (DELLA)
)

type taskVector struct {
	name      string
	sparsify  sparsifier
	consensus bool // sum sign consensus
	params    []Param
}

func (m *taskVector) Name() string      { return m.name }
func (m *taskVector) Params() []Param   { return m.params }
func (m *taskVector) Inputs() InputRule { return InputRule{Base: Required, MinModels: 1} }

// Check requires, for magprune, 0 < density − epsilon and density + epsilon ≤ 1 for every
// model (design.md §5).
func (m *taskVector) Check(t *Tensor) error {
	if m.sparsify != magprune {
		return nil
	}
	for j, a := range t.Args {
		if t.HasBase && j == 0 {
			continue
		}
		rho, eps := a.Float("density"), a.Float("epsilon")
		if rho-eps <= 0 || rho+eps > 1 {
			return fmt.Errorf("models[%d]: density %g and epsilon %g give keep probabilities from %.4g to %.4g; %s needs density - epsilon > 0 and density + epsilon <= 1",
				t.Models[j], rho, eps, rho-eps, rho+eps, m.name)
		}
	}
	return nil
}

// tvKernel merges one tensor. Input 0 is the base; model k is input k+1.
type tvKernel struct {
	m         *taskVector
	n         int64
	w         []float64 // weights
	div       float64   // Σ w when normalizing without consensus, else 1
	rho       []float64 // densities
	lambda    float64
	normalize bool
	inverse   bool        // rescale by 1/ρ
	l1        bool        // rescale to the unsparsified L1 norm
	sel       []*selector // per model: top-k, or the largest n_top excluded (outliers)
	low       []*selector // outliers, per model: the smallest n_bot excluded
	stream    []Stream
	eps       []float64 // magprune: per-model epsilon
	row       int64     // magprune: row length (elements per rank group)
	// L1 rescale: Σ|d| and Σ|sparse(d)| per model, then the factor.
	abs, kept []float64
	scale     []float64
	phase     int // 0: selecting, 1: L1 pass, 2: merging
}

func (m *taskVector) New(t *Tensor) Kernel {
	nm := len(t.Args) - 1
	var wsum float64
	k := &tvKernel{m: m, n: t.N, w: make([]float64, nm), rho: make([]float64, nm), scale: make([]float64, nm),
		lambda: t.Global.Float("lambda"), normalize: t.Global.Bool("normalize"), div: 1}
	if m.sparsify != noSparsify && t.Global.Bool("rescale") {
		k.inverse = t.Global.String("rescale_norm") != "l1"
		k.l1 = !k.inverse
	}
	for j := range nm {
		a := t.Args[j+1]
		k.w[j] = a.Float("weight")
		wsum += k.w[j]
		k.rho[j] = 1
		if m.sparsify != noSparsify {
			k.rho[j] = a.Float("density")
		}
		k.scale[j] = 1
		switch m.sparsify {
		case topK:
			keep := t.N
			if k.rho[j] < 1 {
				keep = int64(math.Floor(k.rho[j] * float64(t.N)))
			}
			k.sel = append(k.sel, newSelector(keep, t.N, true, true))
		case dareDrop:
			k.stream = append(k.stream, NewStream(t.Seed, t.Models[j+1], t.Name))
		case outliers:
			// Sorted by |d| ascending, ties by index, keep positions [nBot, n − nTop):
			// exclude the nBot smallest (lower index first among equals) and the nTop
			// largest (higher index first among equals).
			target := int64(math.Floor(max(0, min(1, k.rho[j])) * float64(t.N)))
			nTop := int64(math.Floor(a.Float("gamma") * float64(t.N)))
			nBot := t.N - target - nTop
			if nBot < 0 {
				nTop += nBot
				nBot = 0
			}
			k.sel = append(k.sel, newSelector(nTop, t.N, true, false))
			k.low = append(k.low, newSelector(nBot, t.N, false, true))
		case magprune:
			k.stream = append(k.stream, NewStream(t.Seed, t.Models[j+1], t.Name))
			k.eps = append(k.eps, a.Float("epsilon"))
		}
	}
	if k.normalize && !m.consensus && math.Abs(wsum) >= 1e-8 {
		k.div = wsum
	}
	if k.l1 {
		k.abs, k.kept = make([]float64, nm), make([]float64, nm)
	}
	if m.sparsify == magprune {
		// Rows of a tensor viewed as [shape[0], rest]; a vector (or scalar) is one row.
		k.row = max(t.N, 1)
		if len(t.Shape) >= 2 && t.Shape[0] > 0 {
			k.row = max(t.N/t.Shape[0], 1)
		}
	}
	return k
}

// Granule is 1, or the row length for magprune, whose ranks need whole rows.
func (k *tvKernel) Granule() int64 { return max(k.row, 1) }

func (k *tvKernel) NeedPass(pass int) bool {
	if k.phase == 0 {
		more := false
		for _, s := range append(k.sel[:len(k.sel):len(k.sel)], k.low...) {
			if pass > 0 {
				s.endPass()
			}
			more = more || !s.done()
		}
		if more {
			return true
		}
		k.phase = 1
		if k.l1 {
			return true
		}
	}
	if k.phase == 1 {
		k.phase = 2
		for j := range k.scale {
			if k.l1 && k.abs[j] >= 1e-7 && k.kept[j] >= 1e-7 {
				k.scale[j] = k.abs[j] / k.kept[j]
			}
		}
	}
	return false
}

func (k *tvKernel) Observe(pass int, off int64, in [][]float32) {
	if k.phase == 1 && k.m.sparsify == magprune {
		sc := k.newScratch(len(in))
		for lo := 0; lo < len(in[0]); lo += int(k.row) {
			sub := sc.sub(in, lo, lo+int(k.row))
			k.observe(off+int64(lo), sub, k.rowProbs(sc, sub))
		}
		return
	}
	k.observe(off, in, nil)
}

// observe runs the current pass over the elements of in; probs, for magprune's L1 pass,
// holds their keep probabilities.
func (k *tvKernel) observe(off int64, in [][]float32, probs [][]float64) {
	base := in[0]
	for j := range k.w {
		x := in[j+1]
		if k.phase == 0 {
			var low *selector
			if k.low != nil {
				low = k.low[j]
			}
			s := k.sel[j]
			if !s.done() || (low != nil && !low.done()) {
				for i := range x {
					x[i] -= base[i] // the float32 delta ranks magnitudes
				}
				if !s.done() {
					s.observe(off, x)
				}
				if low != nil && !low.done() {
					low.observe(off, x)
				}
			}
			continue
		}
		var a, c float64
		for i, b := range base {
			d := math.Abs(float64(x[i]) - float64(b))
			a += d
			p := k.rho[j]
			if probs != nil {
				p = probs[j][i]
			}
			if k.keep(j, off+int64(i), x[i]-b, p) {
				c += d
			}
		}
		k.abs[j] += a
		k.kept[j] += c
	}
}

// keep reports whether model j keeps delta element i, whose float32 delta is d; p is its
// keep probability (density, or for magprune the element's own).
func (k *tvKernel) keep(j int, i int64, d float32, p float64) bool {
	switch k.m.sparsify {
	case topK:
		return k.sel[j].in(i, d)
	case outliers:
		return !k.sel[j].in(i, d) && !k.low[j].in(i, d)
	case dareDrop, magprune:
		return p >= 1 || k.stream[j].Keep(i, p)
	}
	return true
}

// rankScratch holds magprune's per-row buffers: the keep probabilities of one row per
// model, the sort keys and a view of the inputs.
type rankScratch struct {
	probs [][]float64
	keys  []uint64
	view  [][]float32
}

func (k *tvKernel) newScratch(inputs int) *rankScratch {
	sc := &rankScratch{probs: make([][]float64, len(k.w)), keys: make([]uint64, k.row), view: make([][]float32, inputs)}
	for j := range sc.probs {
		sc.probs[j] = make([]float64, k.row)
	}
	return sc
}

// sub returns in resliced to [lo, hi).
func (sc *rankScratch) sub(in [][]float32, lo, hi int) [][]float32 {
	for j := range in {
		sc.view[j] = in[j][lo:hi]
	}
	return sc.view
}

// rowProbs returns, per model, the magprune keep probability of each element of one row
// in: rank the row's |d| ascending from 1 to ncols, ties by index, then
// p = (ρ − ε) + 2ε·(rank − 1)/(ncols − 1), and p = ρ when ncols = 1.
func (k *tvKernel) rowProbs(sc *rankScratch, in [][]float32) [][]float64 {
	base := in[0]
	row := len(base)
	keys := sc.keys[:row]
	for j := range k.w {
		x := in[j+1]
		p := sc.probs[j][:row]
		rho, eps := k.rho[j], k.eps[j]
		if row == 1 {
			p[0] = rho
			continue
		}
		// Sorting (magnitude key, index) pairs packed in one integer orders by |d|, ties
		// by index. Rows are at most 2^32 elements (Granule would not fit a chunk anyway).
		for i := range keys {
			keys[i] = uint64(magKey(x[i]-base[i]))<<32 | uint64(i)
		}
		slices.Sort(keys)
		for rank, v := range keys {
			p[uint32(v)] = float64(rho-eps) + float64(2*eps*float64(rank))/float64(row-1)
		}
	}
	return sc.probs
}

// block is the number of elements Merge sparsifies per model before combining them; its
// scratch lives on the stack.
const block = 256

// sparsify writes model j's weighted sparse delta w_j·sparse(d_j) for elements
// [off, off+len(w)) into w; p holds, for magprune, the elements' keep probabilities.
// Explicit float64 conversions round every product, so no platform fuses a multiply-add
// and outputs stay byte-identical everywhere.
func (k *tvKernel) sparsify(w []float64, j int, off int64, x, b []float32, p []float64) {
	x, b = x[:len(w)], b[:len(w)]
	f, rho := k.w[j], k.rho[j]
	switch {
	case k.m.sparsify == noSparsify || rho >= 1:
		for i := range w {
			w[i] = float64((float64(x[i]) - float64(b[i])) * f)
		}
		return
	case rho <= 0:
		clear(w)
		return
	}
	// Survivors are d/ρ·w (inverse), d·s·w (L1) or d·w.
	div, mul := 1.0, 1.0
	if k.inverse {
		div = rho
	} else if k.l1 {
		mul = k.scale[j]
	}
	switch k.m.sparsify {
	case topK:
		sel := k.sel[j]
		for i := range w {
			w[i] = 0
			if sel.in(off+int64(i), x[i]-b[i]) {
				w[i] = float64(float64(float64((float64(x[i])-float64(b[i]))/div)*mul) * f)
			}
		}
	case dareDrop:
		st := k.stream[j]
		for i := range w {
			w[i] = 0
			if st.Keep(off+int64(i), rho) {
				w[i] = float64(float64(float64((float64(x[i])-float64(b[i]))/div)*mul) * f)
			}
		}
	case outliers:
		top, low := k.sel[j], k.low[j]
		for i := range w {
			w[i] = 0
			if d := x[i] - b[i]; !top.in(off+int64(i), d) && !low.in(off+int64(i), d) {
				w[i] = float64(float64(float64((float64(x[i])-float64(b[i]))/div)*mul) * f)
			}
		}
	case magprune:
		// Inverse rescaling divides each survivor by its own probability.
		st := k.stream[j]
		p = p[:len(w)]
		for i := range w {
			w[i] = 0
			if pi := p[i]; pi >= 1 || st.Keep(off+int64(i), pi) {
				dv := div
				if k.inverse {
					dv = pi
				}
				w[i] = float64(float64(float64((float64(x[i])-float64(b[i]))/dv)*mul) * f)
			}
		}
	}
}

func (k *tvKernel) Merge(dst []float32, off int64, in [][]float32) {
	if k.m.sparsify != magprune {
		k.merge(dst, off, in, nil)
		return
	}
	sc := k.newScratch(len(in))
	for lo := 0; lo < len(dst); lo += int(k.row) {
		hi := lo + int(k.row)
		sub := sc.sub(in, lo, hi)
		k.merge(dst[lo:hi], off+int64(lo), sub, k.rowProbs(sc, sub))
	}
}

// merge merges the elements of in; probs, for magprune, holds their keep probabilities.
func (k *tvKernel) merge(dst []float32, off int64, in [][]float32, probs [][]float64) {
	base, models := in[0], in[1:]
	var stack [8][block]float64
	W := stack[:]
	if len(models) > len(stack) {
		W = make([][block]float64, len(models))
	}
	W = W[:len(models)]
	for lo := 0; lo < len(base); lo += block {
		hi := min(len(base), lo+block)
		b := base[lo:hi]
		for j, x := range models {
			var p []float64
			if probs != nil {
				p = probs[j][lo:hi]
			}
			k.sparsify(W[j][:len(b)], j, off+int64(lo), x[lo:hi], b, p)
		}
		k.combine(dst[lo:hi], b, W)
	}
}

// combine adds the merged delta of the weighted sparse deltas W to the base b.
func (k *tvKernel) combine(dst, b []float32, W [][block]float64) {
	dst = dst[:len(b)]
	if !k.m.consensus {
		for i := range b {
			var sum float64
			for j := range W {
				sum += W[j][i]
			}
			dst[i] = float32(float64(b[i]) + float64(k.lambda*(sum/k.div)))
		}
		return
	}
	for i := range b {
		var tot float64
		for j := range W {
			tot += W[j][i]
		}
		pos := tot >= 0
		var sum, ws float64
		for j := range W {
			if v := W[j][i]; v != 0 && (v > 0) == pos {
				sum += v
				ws += k.w[j]
			}
		}
		div := 1.0
		if k.normalize && ws != 0 {
			div = ws
		}
		dst[i] = float32(float64(b[i]) + float64(k.lambda*(sum/div)))
	}
}
