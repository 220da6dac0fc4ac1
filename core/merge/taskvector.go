package merge

import "math"

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
func (m *taskVector) Check(*Tensor) error {
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
	inverse   bool // rescale by 1/ρ
	l1        bool // rescale to the unsparsified L1 norm
	sel       []*selector
	stream    []Stream
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
		}
	}
	if k.normalize && !m.consensus && math.Abs(wsum) >= 1e-8 {
		k.div = wsum
	}
	if k.l1 {
		k.abs, k.kept = make([]float64, nm), make([]float64, nm)
	}
	return k
}

func (k *tvKernel) Granule() int64 { return 1 }

func (k *tvKernel) NeedPass(pass int) bool {
	if k.phase == 0 {
		more := false
		for _, s := range k.sel {
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
	base := in[0]
	for j := range k.w {
		x := in[j+1]
		if k.phase == 0 {
			if s := k.sel[j]; !s.done() {
				for i := range x {
					x[i] -= base[i] // the float32 delta ranks magnitudes
				}
				s.observe(off, x)
			}
			continue
		}
		var a, c float64
		for i, b := range base {
			d := math.Abs(float64(x[i]) - float64(b))
			a += d
			if k.keep(j, off+int64(i), x[i]-b) {
				c += d
			}
		}
		k.abs[j] += a
		k.kept[j] += c
	}
}

// keep reports whether model j keeps delta element i, whose float32 delta is d.
func (k *tvKernel) keep(j int, i int64, d float32) bool {
	switch k.m.sparsify {
	case topK:
		return k.sel[j].in(i, d)
	case dareDrop:
		return k.rho[j] >= 1 || k.stream[j].Keep(i, k.rho[j])
	}
	return true
}

// block is the number of elements Merge sparsifies per model before combining them; its
// scratch lives on the stack.
const block = 256

// sparsify writes model j's weighted sparse delta w_j·sparse(d_j) for elements
// [off, off+len(w)) into w. Explicit float64 conversions round every product, so no
// platform fuses a multiply-add and outputs stay byte-identical everywhere.
func (k *tvKernel) sparsify(w []float64, j int, off int64, x, b []float32) {
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
	}
}

func (k *tvKernel) Merge(dst []float32, off int64, in [][]float32) {
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
			k.sparsify(W[j][:len(b)], j, off+int64(lo), x[lo:hi], b)
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
