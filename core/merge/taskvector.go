package merge

import (
	"fmt"
	"math"
	"slices"
	"sync"
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
	outliers              // magnitude window without the largest outliers (breadcrumbs)
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

// Check validates DELLA's window: every keep probability in (0, 1].
func (m *taskVector) Check(t *Tensor) error {
	if m.sparsify != magprune {
		return nil
	}
	for j, a := range t.Args {
		if j == 0 && t.HasBase {
			continue
		}
		rho, eps := a.Float("density"), a.Float("epsilon")
		if rho-eps <= 0 {
			return &InputError{j, fmt.Errorf("density %g and epsilon %g: %s needs density - epsilon > 0 (keep probabilities range from density - epsilon to density + epsilon)", rho, eps, m.name)}
		}
		if rho+eps > 1 {
			return &InputError{j, fmt.Errorf("density %g and epsilon %g: %s needs density + epsilon <= 1 (keep probabilities range from density - epsilon to density + epsilon)", rho, eps, m.name)}
		}
	}
	return nil
}

// tvKernel merges one tensor. Input 0 is the base; model j is input j+1.
type tvKernel struct {
	m         *taskVector
	w         []float64 // weights
	div       float64   // Σ w when normalizing without consensus, else 1
	rho       []float64 // densities
	eps       []float64 // DELLA's epsilons
	lambda    float64
	normalize bool
	inverse   bool // rescale by 1/ρ (DELLA: by each element's own p)
	l1        bool // rescale to the unsparsified L1 norm
	// Selections per model: top (top-k, or breadcrumbs' n_top largest) and bot
	// (breadcrumbs' n_bot smallest); nil when unused.
	top, bot []*selector
	stream   []Stream
	thr      []uint64  // DARE: threshold(ρ) per model
	rowLen   int64     // DELLA ranks within rows of this length
	scratch  sync.Pool // *rowScratch for DELLA's ranks
	// L1 rescale: Σ|d| and Σ|sparse(d)| per model, then the factor.
	abs, kept []float64
	scale     []float64
	phase     int  // 0: selecting, 1: L1 pass, 2: merging
	dense     bool // every model keeps its whole delta and there is no consensus
	// wdiv is consensus2's normalize divisor for each pair of agreement flags a0 | a1<<1:
	// the agreeing weights' sum, as combine adds them, or 1 where that is 0.
	wdiv [4]float64
}

func (m *taskVector) New(t *Tensor) Kernel {
	nm := len(t.Args) - 1
	k := &tvKernel{m: m, w: make([]float64, nm), rho: make([]float64, nm), scale: make([]float64, nm),
		lambda: t.Global.Float("lambda"), normalize: t.Global.Bool("normalize"), div: 1, rowLen: 1}
	if m.sparsify != noSparsify && t.Global.Bool("rescale") {
		k.inverse = t.Global.String("rescale_norm") != "l1"
		k.l1 = !k.inverse
	}
	var wsum float64
	for j := range nm {
		a := t.Args[j+1]
		k.w[j] = a.Float("weight")
		wsum += k.w[j]
		k.rho[j] = 1
		if m.sparsify != noSparsify {
			k.rho[j] = a.Float("density")
		}
		k.scale[j] = 1
		target := t.N
		if k.rho[j] < 1 {
			target = int64(math.Floor(k.rho[j] * float64(t.N)))
		}
		switch m.sparsify {
		case topK:
			k.top = append(k.top, newSelector(target, t.N, true, true))
		case outliers:
			// Ascending by |d| with ties by index, keep positions [nBot, n-nTop).
			nTop := int64(math.Floor(a.Float("gamma") * float64(t.N)))
			nBot := t.N - target - nTop
			if nBot < 0 {
				nTop, nBot = nTop+nBot, 0
			}
			k.top = append(k.top, newSelector(nTop, t.N, true, false))
			k.bot = append(k.bot, newSelector(nBot, t.N, false, true))
		case magprune:
			k.eps = append(k.eps, a.Float("epsilon"))
		}
		if m.sparsify == dareDrop || m.sparsify == magprune {
			k.stream = append(k.stream, NewStream(t.Seed, t.Models[j+1], t.Name))
			k.thr = append(k.thr, threshold(k.rho[j]))
		}
	}
	if m.sparsify == magprune && len(t.Shape) > 0 {
		k.rowLen = t.N
		if len(t.Shape) > 1 && t.Shape[0] > 0 {
			k.rowLen = t.N / t.Shape[0]
		}
		k.rowLen = max(1, k.rowLen)
	}
	if k.normalize && !m.consensus && math.Abs(wsum) >= 1e-8 {
		k.div = wsum
	}
	if k.l1 {
		k.abs, k.kept = make([]float64, nm), make([]float64, nm)
	}
	// The selectors share one budget for the boundary elements they keep.
	if sel := len(k.top) + len(k.bot); sel > 1 {
		for _, s := range append(slices.Clip(k.top), k.bot...) {
			s.maxCand = maxCandidates / int64(sel)
		}
	}
	k.dense = !m.consensus
	for j := range nm {
		k.dense = k.dense && k.keepsAll(j)
	}
	if nm == 2 {
		for a := range k.wdiv {
			ws := float64(0 + math.Float64frombits(math.Float64bits(k.w[0])&-uint64(a&1)))
			ws += math.Float64frombits(math.Float64bits(k.w[1]) & -uint64(a>>1))
			if ws == 0 {
				ws = 1
			}
			k.wdiv[a] = ws
		}
	}
	return k
}

// Granule is the row length for DELLA (ranks are per row), else 1.
func (k *tvKernel) Granule() int64 { return k.rowLen }

// selecting reports whether model j still needs selection passes.
func (k *tvKernel) selecting(j int) bool {
	return (k.top != nil && !k.top[j].done()) || (k.bot != nil && !k.bot[j].done())
}

func (k *tvKernel) NeedPass(pass int) bool {
	if k.phase == 0 {
		more := false
		for j := range k.w {
			for _, s := range [][]*selector{k.top, k.bot} {
				if s == nil {
					continue
				}
				if pass > 0 {
					s[j].endPass()
				}
				more = more || !s[j].done()
			}
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

// Unordered: the selection passes are, except the selectors' pass over ties; the L1 pass
// sums in element order.
func (k *tvKernel) Unordered(pass int) bool {
	if k.phase != 0 {
		return false
	}
	for j := range k.w {
		for _, s := range [][]*selector{k.top, k.bot} {
			if s != nil && !s[j].done() && !s[j].unordered() {
				return false
			}
		}
	}
	return true
}

// Reads: a selection pass reads the base and the models still selecting; the L1 pass all.
func (k *tvKernel) Reads(pass, in int) bool {
	if k.phase != 0 {
		return true
	}
	if in > 0 {
		return k.selecting(in - 1)
	}
	for j := range k.w {
		if k.selecting(j) {
			return true
		}
	}
	return false
}

func (k *tvKernel) Observe(pass int, off int64, in [][]float32) {
	base := in[0]
	if k.phase == 0 {
		for j := range k.w {
			if !k.selecting(j) {
				continue
			}
			for _, s := range [][]*selector{k.top, k.bot} {
				if s != nil && !s[j].done() {
					s[j].observe(off, in[j+1], base) // the float32 delta ranks magnitudes
				}
			}
		}
		return
	}
	// The L1 pass: keep holds all ones where model j keeps an element; sums in element order.
	var keep [block]uint64
	var probs []float64
	var s *rowScratch
	if k.m.sparsify == magprune {
		s = k.getScratch()
		defer k.scratch.Put(s)
	}
	for lo, hi := 0, 0; lo < len(base); lo = hi {
		hi = k.blockEnd(off, lo, len(base))
		b := base[lo:hi]
		for j := range k.w {
			x := in[j+1][lo:hi]
			if s != nil {
				probs = k.probs(s, j, off, in[j+1], base, lo, hi)
			}
			k.keep(keep[:len(b)], j, off+int64(lo), x, b, probs)
			var a, c float64
			for i := range b {
				d := math.Abs(float64(x[i]) - float64(b[i]))
				a += d
				c += math.Float64frombits(math.Float64bits(d) & keep[i])
			}
			k.abs[j] += a
			k.kept[j] += c
		}
	}
}

// ObserveBF16 takes a selection pass's chunks once every selector still selecting is past
// its first chunk (which fixes the window; the other stages are rare and take floats).
func (k *tvKernel) ObserveBF16(pass int, off int64, in [][]byte) bool {
	if k.phase != 0 || len(in[0])/2 < smallChunk {
		return false
	}
	for j := range k.w {
		for _, s := range [][]*selector{k.top, k.bot} {
			if s != nil && !s[j].done() && !s[j].counting() {
				return false
			}
		}
	}
	for j := range k.w {
		for _, s := range [][]*selector{k.top, k.bot} {
			if s != nil && !s[j].done() {
				s[j].observeBF16(off, in[j+1], in[0])
			}
		}
	}
	return true
}

// block is the number of elements Merge sparsifies per model before combining them; its
// scratch lives on the stack.
const block = 256

// keep sets m[i] to all ones where model j keeps element off+i and to zero where it drops
// it, without branches on the data (the drops are random, so branches would mispredict).
// probs holds DELLA's keep probabilities of these elements.
func (k *tvKernel) keep(m []uint64, j int, off int64, x, b []float32, probs []float64) {
	switch {
	case k.keepsAll(j):
		for i := range m {
			m[i] = 1<<64 - 1
		}
		return
	case k.rho[j] <= 0 && k.m.sparsify != outliers:
		clear(m)
		return
	}
	switch k.m.sparsify {
	case topK:
		k.top[j].mask(m, off, x, b)
	case outliers: // neither among the largest nor among the smallest
		var bot [block]uint64
		k.top[j].mask(m, off, x, b)
		k.bot[j].mask(bot[:len(m)], off, x, b)
		for i := range m {
			m[i] = ^(m[i] | bot[i])
		}
	case dareDrop:
		if useAVX2 {
			dareMaskAVX2(m, k.stream[j], off, k.thr[j])
		} else {
			dareMask(m, k.stream[j], off, k.thr[j])
		}
	case magprune:
		st := k.stream[j]
		probs = probs[:len(m)]
		for i, p := range probs {
			var keep uint64
			if st.Keep(off+int64(i), p) {
				keep = 1
			}
			m[i] = -keep
		}
	}
}

// keepsAll reports whether model j keeps its whole delta unscaled.
func (k *tvKernel) keepsAll(j int) bool {
	return k.m.sparsify == noSparsify || (k.rho[j] >= 1 && k.m.sparsify != outliers)
}

// denseDelta writes model j's weighted delta w_j·d_j (the fast path of weigh).
func (k *tvKernel) denseDelta(w []float64, j int, x, b []float32) {
	x, b = x[:len(w)], b[:len(w)]
	f := k.w[j]
	for i := range w {
		w[i] = float64((float64(x[i]) - float64(b[i])) * f)
	}
}

// weigh writes model j's weighted sparse delta w_j·sparse(d_j): where keep is set, the
// delta divided by its rescale divisor (ρ, DELLA's p, or 1), times the L1 factor and the
// weight; elsewhere +0, masked bit by bit. Explicit float64 conversions round every
// product, so no platform fuses a multiply-add and outputs stay byte-identical everywhere.
// Dividing or multiplying by 1 is exact and skipped.
func (k *tvKernel) weigh(w []float64, j int, keep []uint64, x, b []float32, probs []float64) {
	x, b, keep = x[:len(w)], b[:len(w)], keep[:len(w)]
	f, mul := k.w[j], k.scale[j]
	if k.inverse && k.m.sparsify == magprune { // each survivor divided by its own p
		probs = probs[:len(w)]
		for i := range w {
			v := float64(float64(float64((float64(x[i])-float64(b[i]))/probs[i])*mul) * f)
			w[i] = math.Float64frombits(math.Float64bits(v) & keep[i])
		}
		return
	}
	div := k.divisor(j)
	if div == 1 && mul == 1 {
		for i := range w {
			v := float64((float64(x[i]) - float64(b[i])) * f)
			w[i] = math.Float64frombits(math.Float64bits(v) & keep[i])
		}
		return
	}
	for i := range w {
		v := float64(float64(float64((float64(x[i])-float64(b[i]))/div)*mul) * f)
		w[i] = math.Float64frombits(math.Float64bits(v) & keep[i])
	}
}

func (k *tvKernel) Merge(dst []float32, off int64, in [][]float32) {
	base, models := in[0], in[1:]
	if k.dense {
		k.mergeDense(dst, base, models)
		return
	}
	var stack [8][block]float64
	W := stack[:]
	if len(models) > len(stack) {
		W = make([][block]float64, len(models))
	}
	W = W[:len(models)]
	var keep [block]uint64
	var s *rowScratch
	if k.m.sparsify == magprune {
		s = k.getScratch()
		defer k.scratch.Put(s)
	}
	if k.m.consensus && len(models) == 2 && s == nil {
		if useWasmSIMD {
			k.merge2Wasm(dst, off, base, models[0], models[1])
			return
		}
		var keep1 [block]uint64
		for lo := 0; lo < len(base); lo += block {
			hi := min(len(base), lo+block)
			b := base[lo:hi]
			x0, x1 := models[0][lo:hi], models[1][lo:hi]
			k.keep(keep[:len(b)], 0, off+int64(lo), x0, b, nil)
			k.keep(keep1[:len(b)], 1, off+int64(lo), x1, b, nil)
			if useAVX2 { // a direct call, so that keep and keep1 stay on the stack
				k.consensus2AVX2(dst[lo:hi], b, x0, x1, keep[:len(b)], keep1[:len(b)])
			} else {
				k.consensus2(dst[lo:hi], b, x0, x1, keep[:len(b)], keep1[:len(b)])
			}
		}
		return
	}
	for lo, hi := 0, 0; lo < len(base); lo = hi {
		hi = k.blockEnd(off, lo, len(base))
		b := base[lo:hi]
		for j, x := range models {
			if k.keepsAll(j) {
				k.denseDelta(W[j][:len(b)], j, x[lo:hi], b)
				continue
			}
			var p []float64
			if s != nil {
				p = k.probs(s, j, off, x, base, lo, hi)
			}
			k.keep(keep[:len(b)], j, off+int64(lo), x[lo:hi], b, p)
			k.weigh(W[j][:len(b)], j, keep[:len(b)], x[lo:hi], b, p)
		}
		k.combine(dst[lo:hi], b, W)
	}
}

// mergeDense is Merge when every model keeps its whole delta and no sign consensus is
// needed (task arithmetic): the same sums in the same order, in one loop without the
// per-model arrays.
func (k *tvKernel) mergeDense(dst []float32, base []float32, models [][]float32) {
	dst = dst[:len(base)]
	lambda, div, f := k.lambda, k.div, k.w[:len(models)]
	if len(models) == 2 { // the common case
		x0, x1 := models[0][:len(base)], models[1][:len(base)]
		switch {
		case useAVX2:
			dense2AVX2(dst, base, x0, x1, f[0], f[1], div, lambda)
		case useWasmSIMD:
			dense2Wasm(dst, base, x0, x1, f[0], f[1], div, lambda)
		default:
			dense2Go(dst, base, x0, x1, f[0], f[1], div, lambda)
		}
		return
	}
	for i, b := range base {
		bb := float64(b)
		var sum float64
		for j, x := range models {
			sum += float64((float64(x[i]) - bb) * f[j])
		}
		if div != 1 {
			sum /= div
		}
		dst[i] = float32(bb + float64(lambda*sum))
	}
}

// dense2Go is mergeDense for two models, base b and models x0 and x1 of one length: the
// model loop unrolled, and four elements per iteration with one bounds check
// (GOARCH=wasm pays for every iteration).
func dense2Go(dst, b, x0, x1 []float32, f0, f1, div, lambda float64) {
	n := len(b)
	dst, x0, x1 = dst[:n], x0[:n], x1[:n]
	i := 0
	for ; i+4 <= n; i += 4 {
		b, a, c, d := b[i:i+4:i+4], x0[i:i+4:i+4], x1[i:i+4:i+4], dst[i:i+4:i+4]
		d[0] = dense2(b[0], a[0], c[0], f0, f1, div, lambda)
		d[1] = dense2(b[1], a[1], c[1], f0, f1, div, lambda)
		d[2] = dense2(b[2], a[2], c[2], f0, f1, div, lambda)
		d[3] = dense2(b[3], a[3], c[3], f0, f1, div, lambda)
	}
	for ; i < n; i++ {
		dst[i] = dense2(b[i], x0[i], x1[i], f0, f1, div, lambda)
	}
}

// dense2 is one element of mergeDense for two models: base b, models x0 and x1.
func dense2(b, x0, x1 float32, f0, f1, div, lambda float64) float32 {
	bb := float64(b)
	sum := float64(0 + float64((float64(x0)-bb)*f0))
	sum += float64((float64(x1) - bb) * f1)
	if div != 1 {
		sum /= div
	}
	return float32(bb + float64(lambda*sum))
}

// divisor returns model j's rescale divisor: ρ with the inverse rescale, else 1 (DELLA's
// inverse rescale divides by each element's own p instead; see weigh).
func (k *tvKernel) divisor(j int) float64 {
	if k.keepsAll(j) || !k.inverse {
		return 1
	}
	return k.rho[j]
}

// consensus2 is weigh and combine fused for two models with sign consensus, given their
// keep masks: the same operations in the same order, per element, without the per-model
// arrays. Dividing or multiplying by 1 is exact and skipped, and so is adding +0 where
// the sum is +0 or the addend is one of the masked values (+0, or a nonzero delta, since
// zeros never agree): only a -0 could change, and a -0 is never added there.
// The divisor of normalize depends only on which models agree, so it is read from the
// table New makes (wdiv).
func (k *tvKernel) consensus2(dst, b, x0, x1 []float32, m0, m1 []uint64) {
	n := len(b)
	dst, x0, x1, m0, m1 = dst[:n], x0[:n], x1[:n], m0[:n], m1[:n]
	f0, f1, mul0, mul1 := k.w[0], k.w[1], k.scale[0], k.scale[1]
	div0, div1 := k.divisor(0), k.divisor(1)
	lambda, normalize := k.lambda, k.normalize
	divide, scale := div0 != 1 || div1 != 1, mul0 != 1 || mul1 != 1
	wdiv := &k.wdiv
	for i := range b {
		bb := float64(b[i])
		d0, d1 := float64(x0[i])-bb, float64(x1[i])-bb
		if divide {
			d0, d1 = d0/div0, d1/div1
		}
		if scale {
			d0, d1 = float64(d0*mul0), float64(d1*mul1)
		}
		v0 := math.Float64frombits(math.Float64bits(float64(d0*f0)) & m0[i])
		v1 := math.Float64frombits(math.Float64bits(float64(d1*f1)) & m1[i])
		tot := v0 + v1
		s := math.Float64frombits(0x3ff0000000000000 | math.Float64bits(tot)&(1<<63))
		var a0, a1 uint64
		if v0*s > 0 {
			a0 = 1
		}
		if v1*s > 0 {
			a1 = 1
		}
		sum := math.Float64frombits(math.Float64bits(v0)&-a0) + math.Float64frombits(math.Float64bits(v1)&-a1)
		if normalize {
			sum /= wdiv[a0|a1<<1&2]
		}
		dst[i] = float32(bb + float64(lambda*sum))
	}
}

// combine adds the merged delta of the weighted sparse deltas W to the base b.
func (k *tvKernel) combine(dst, b []float32, W [][block]float64) {
	dst = dst[:len(b)]
	lambda := k.lambda
	if !k.m.consensus {
		div := k.div
		for i := range b {
			var sum float64
			for j := range W {
				sum += W[j][i]
			}
			if div != 1 {
				sum /= div
			}
			dst[i] = float32(float64(b[i]) + float64(lambda*sum))
		}
		return
	}
	weights, normalize := k.w[:len(W)], k.normalize
	for i := range b {
		var tot float64
		for j := range W {
			tot += W[j][i]
		}
		// Model j counts where sign(W_j) is the elected sign: W_j·s > 0 with s = ±1
		// (zeros never count). Branch-free: the signs are random, so branches mispredict.
		// s takes tot's sign bit; tot = -0 only when every W_j is zero, where nothing counts.
		s := math.Float64frombits(0x3ff0000000000000 | math.Float64bits(tot)&(1<<63))
		var sum, ws float64
		for j, w := range weights {
			v := W[j][i]
			var agree uint64
			if v*s > 0 {
				agree = 1
			}
			sum += math.Float64frombits(math.Float64bits(v) & -agree)
			ws += math.Float64frombits(math.Float64bits(w) & -agree)
		}
		if normalize {
			// Divide by the agreeing weights, or where they sum to 0 (as where none
			// agrees) leave sum as is, dividing by 1: a branch there would mispredict as
			// often as models drop elements.
			var none uint64
			if ws == 0 {
				none = 1
			}
			sum /= ws + math.Float64frombits(0x3ff0000000000000&-none)
		}
		dst[i] = float32(float64(b[i]) + float64(lambda*sum))
	}
}

// rowScratch holds DELLA's per-row work: sort keys and, per model, the keep probability
// of every element of the row it last ranked.
type rowScratch struct {
	keys  []uint64
	probs [][]float64
	row   []int64 // per model, the row whose probabilities probs holds (-1: none)
}

func (k *tvKernel) getScratch() *rowScratch {
	s, _ := k.scratch.Get().(*rowScratch)
	if s == nil {
		n := max(k.rowLen, block)
		s = &rowScratch{keys: make([]uint64, 0, n), probs: make([][]float64, len(k.w)), row: make([]int64, len(k.w))}
		for j := range s.probs {
			s.probs[j] = make([]float64, n)
		}
	}
	for j := range s.row {
		s.row[j] = -1
	}
	return s
}

// blockEnd returns the end of the block starting at chunk element lo: block elements on,
// but never past the end of a DELLA row, so each block lies in one row.
func (k *tvKernel) blockEnd(off int64, lo, n int) int {
	hi := min(n, lo+block)
	if k.rowLen > 1 {
		rowEnd := int((off+int64(lo))/k.rowLen*k.rowLen + k.rowLen - off)
		hi = min(hi, rowEnd)
	}
	return hi
}

// probs returns DELLA's keep probabilities of model j for chunk elements [lo, hi), which lie
// in one row; the chunk starts at tensor index off and holds whole rows. The row is ranked
// once: |d| ascending, rank from 1, ties by index, p = (ρ − ε) + 2ε·(rank − 1)/(ncols − 1).
func (k *tvKernel) probs(s *rowScratch, j int, off int64, x, base []float32, lo, hi int) []float64 {
	n, rho, eps := k.rowLen, k.rho[j], k.eps[j]
	p := s.probs[j]
	if n == 1 {
		for i := range hi - lo {
			p[i] = rho
		}
		return p[:hi-lo]
	}
	row := (off + int64(lo)) / n
	rs := int(row*n - off)
	if s.row[j] != row {
		s.row[j] = row
		keys := s.keys[:0]
		for c := range int(n) {
			keys = append(keys, uint64(magKey(x[rs+c]-base[rs+c]))<<32|uint64(c))
		}
		slices.Sort(keys)
		for r, kv := range keys {
			p[kv&0xffffffff] = (rho - eps) + 2*eps*float64(r)/float64(n-1)
		}
	}
	return p[lo-rs : hi-rs]
}
