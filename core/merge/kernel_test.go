package merge

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"

	"freelunch/core/dtype"
	"freelunch/internal/vectest"
)

// run drives k as the engine does (design: Kernel's doc): statistics passes over chunks of
// size chunk in element order (a PassKernel's unordered passes in reverse order and
// concurrently, inputs it does not read as nil), then Merge over the chunks in reverse
// order, on copies of the inputs (kernels may overwrite them).
func run(k Kernel, in [][]float32, chunk int) []float32 {
	n := len(in[0])
	chunk = max(1, chunk)
	pk, _ := k.(PassKernel)
	view := func(pass, off, end int) [][]float32 {
		v := make([][]float32, len(in))
		for j := range in {
			if pass < 0 || pk == nil || pk.Reads(pass, j) {
				v[j] = slices.Clone(in[j][off:end])
			}
		}
		return v
	}
	for pass := 0; k.NeedPass(pass); pass++ {
		if pk != nil && pk.Unordered(pass) {
			var wg sync.WaitGroup
			for off := (n - 1) / chunk * chunk; off >= 0 && n > 0; off -= chunk {
				v := view(pass, off, min(n, off+chunk))
				wg.Go(func() { k.Observe(pass, int64(off), v) })
			}
			wg.Wait()
			continue
		}
		for off := 0; off < n; off += chunk {
			k.Observe(pass, int64(off), view(pass, off, min(n, off+chunk)))
		}
	}
	out := make([]float32, n)
	for off := (n - 1) / chunk * chunk; off >= 0 && n > 0; off -= chunk {
		end := min(n, off+chunk)
		k.Merge(out[off:end], int64(off), view(-1, off, end))
	}
	return out
}

// tensor builds a merge.Tensor for method m over n elements: base first (when m has one),
// then the models with their args; global overrides defaults.
func tensor(t testing.TB, m Method, n int64, global Params, args ...Params) *Tensor {
	t.Helper()
	tt := &Tensor{Name: "model.layers.0.mlp.up_proj.weight", Shape: []int64{n}, N: n, Seed: 1, Global: Params{}}
	defaults := Params{}
	for _, p := range m.Params() {
		if p.Default != nil {
			defaults[p.Name] = p.Default
			if p.Scope == Global {
				tt.Global[p.Name] = p.Default
			}
		}
	}
	for k, v := range global {
		tt.Global[k] = v
	}
	if !m.Inputs().BaseIsInput {
		tt.HasBase = true
		tt.Models = append(tt.Models, 0)
		tt.Args = append(tt.Args, defaults)
	}
	for j, a := range args {
		p := Params{}
		for k, v := range defaults {
			p[k] = v
		}
		for k, v := range a {
			p[k] = v
		}
		tt.Models = append(tt.Models, j+1)
		tt.Args = append(tt.Args, p)
	}
	if err := m.Check(tt); err != nil {
		t.Fatal(err)
	}
	return tt
}

func method(t testing.TB, name string) Method {
	m, ok := Lookup(name)
	if !ok {
		t.Fatalf("method %s not registered", name)
	}
	return m
}

// The TIES case of issue 3, worked by hand: density 0.6 of 5 keeps 3 per model;
// element 3 elects + on a zero sum.
func TestTiesGolden(t *testing.T) {
	base := []float32{1, 2, 3, 4, 5}
	taus := [][]float32{
		{0.5, -0.25, 0, 0.375, -0.125},
		{-0.375, 0.125, 0.25, 0.375, -0.3125},
		{0.125, -0.375, -0.25, -0.75, 0.0625},
	}
	want := []float32{0.5, -0.3125, -0.25, 0.375, -0.3125}
	in := [][]float32{base}
	for _, tau := range taus {
		x := make([]float32, len(base))
		for i := range x {
			x[i] = base[i] + tau[i]
		}
		in = append(in, x)
	}
	a := Params{"weight": 1.0, "density": 0.6}
	m := method(t, "ties")
	for _, chunk := range []int{1, 2, 5} {
		got := run(m.New(tensor(t, m, 5, nil, a, a, a)), in, chunk)
		for i := range got {
			if got[i]-base[i] != want[i] {
				t.Errorf("chunk %d: delta[%d] = %v, want %v", chunk, i, got[i]-base[i], want[i])
			}
		}
	}
}

// Hand-worked cases for every method of the family, with values exact in binary.
func TestGolden(t *testing.T) {
	base := []float32{1, -2, 0.5, 4}
	x1 := []float32{1.5, -2.25, 0.5, 3} // δ1 = [0.5, -0.25, 0, -1]
	x2 := []float32{0, -1, 1, 4.5}      // δ2 = [-1, 1, 0.5, 0.5]
	in := [][]float32{base, x1, x2}
	cases := []struct {
		method string
		global Params
		a1, a2 Params
		want   []float32
	}{
		// Σ w_k X_k / Σ w_k over [x1, x2] with weights 3, 1.
		{"linear", nil, Params{"weight": 3.0}, Params{"weight": 1.0}, []float32{1.125, -1.9375, 0.625, 3.375}},
		{"linear", Params{"normalize": false}, Params{"weight": 0.5}, Params{"weight": 0.5}, []float32{0.75, -1.625, 0.75, 3.75}},
		// B + λ Σ w δ: λ 2, w 0.5, 0.25 → δ = 2·(0.25−0.25, −0.125+0.25, 0.125, −0.5+0.125).
		{"task_arithmetic", Params{"lambda": 2.0}, Params{"weight": 0.5}, Params{"weight": 0.25}, []float32{1, -1.75, 0.75, 3.25}},
		{"task_arithmetic", Params{"normalize": true}, Params{"weight": 0.5}, Params{"weight": 1.5}, []float32{1 - 0.625, -2 + 0.6875, 0.5 + 0.375, 4 + 0.125}},
		// ties, density 0.5 keeps 2 of 4: δ1 → [0.5, 0, 0, -1], δ2 → [-1, 1, 0, 0].
		// Weights 1, 1: signs − (−0.5), +, none, −; normalize by counting weights.
		{"ties", nil, Params{"weight": 1.0, "density": 0.5}, Params{"weight": 1.0, "density": 0.5}, []float32{0, -1, 0.5, 3}},
		// ties without normalize, weight 2 on model 1: W1 = [1,0,0,−2], W2 = [−1,1,0.5,0]... density 0.75 keeps 3.
		// δ1 top 3: [0.5,−0.25,0,−1]; δ2 top 3: [−1,1,0.5,0] (0.5s tie: index 2 before 3).
		// W1 = [1,−0.5,0,−2], W2 = [−1,1,0.5,0]; sums [0,0.5,0.5,−2] → signs +,+,+,−.
		{"ties", Params{"normalize": false}, Params{"weight": 2.0, "density": 0.75}, Params{"weight": 1.0, "density": 0.75}, []float32{2, -1, 1, 2}},
		// density 1: plain task vectors, TIES consensus: sums [−0.5, 0.75, 0.5, −0.5].
		{"dare_ties", nil, Params{"weight": 1.0}, Params{"weight": 1.0}, []float32{0, -1, 1, 3}},
		{"dare_linear", nil, Params{"weight": 1.0}, Params{"weight": 1.0}, []float32{0.5, -1.25, 1, 3.5}},
		// density 0 drops every delta.
		{"dare_linear", nil, Params{"weight": 1.0, "density": 0.0}, Params{"weight": 1.0, "density": 0.0}, base},
		{"ties", nil, Params{"weight": 1.0, "density": 0.0}, Params{"weight": 1.0, "density": 0.0}, base},
		// λ 0 gives the base.
		{"dare_ties", Params{"lambda": 0.0}, Params{"weight": 1.0, "density": 0.5}, Params{"weight": 1.0, "density": 0.5}, base},
		// Weights summing to 0 with normalize: divide by 1, not by 0.
		{"task_arithmetic", Params{"normalize": true}, Params{"weight": 1.0}, Params{"weight": -1.0}, []float32{2.5, -3.25, 0, 2.5}},
		{"linear", nil, Params{"weight": 1.0}, Params{"weight": -1.0}, []float32{1.5, -1.25, -0.5, -1.5}},
	}
	for _, c := range cases {
		m := method(t, c.method)
		input := in
		if c.method == "linear" {
			input = in[1:]
		}
		for _, chunk := range []int{1, 3, 4} {
			got := run(m.New(tensor(t, m, 4, c.global, c.a1, c.a2)), input, chunk)
			if !slices.Equal(got, c.want) {
				t.Errorf("%s %v %v %v chunk %d: got %v, want %v", c.method, c.global, c.a1, c.a2, chunk, got, c.want)
			}
		}
	}
}

// Top-k keeps exactly floor(ρ·n) elements of largest magnitude, ties by lower index, for
// tensors full of ties and for any chunking.
func TestTopKInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := method(t, "ties")
	for trial := range 200 {
		n := 1 + r.IntN(3000)
		levels := 1 + r.IntN(20) // few distinct magnitudes: many ties
		base := make([]float32, n)
		x := make([]float32, n)
		for i := range x {
			base[i] = float32(r.NormFloat64())
			d := float32(r.IntN(levels)) / 8
			if r.IntN(2) == 0 {
				d = -d
			}
			x[i] = base[i] + d
		}
		rho := []float64{0, 1e-9, 0.1, 0.5, 0.999, 1, r.Float64()}[trial%7]
		k := int(math.Floor(rho * float64(n)))
		// Expected mask: indices sorted by float32 |δ| descending, stable by index.
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		mag := func(i int) float32 { return float32(math.Abs(float64(x[i] - base[i]))) }
		sort.SliceStable(idx, func(a, b int) bool { return mag(idx[a]) > mag(idx[b]) })
		want := make([]bool, n)
		for _, i := range idx[:k] {
			want[i] = true
		}
		tt := tensor(t, m, int64(n), Params{"normalize": false}, Params{"weight": 1.0, "density": rho})
		got := run(m.New(tt), [][]float32{base, x}, 1+r.IntN(n+5))
		kept := 0
		for i := range got {
			isKept := got[i] != base[i]
			if isKept {
				kept++
			}
			if x[i] != base[i] && isKept != want[i] {
				t.Fatalf("trial %d n %d ρ %v: element %d kept=%v, want %v", trial, n, rho, i, isKept, want[i])
			}
		}
		zeros := 0 // zero deltas may be among the kept; they do not show
		for _, i := range idx[:k] {
			if x[i] == base[i] {
				zeros++
			}
		}
		if kept+zeros != k {
			t.Fatalf("trial %d: kept %d (+%d zero deltas), want %d", trial, kept, zeros, k)
		}
	}
}

// The selector against a sort, in both directions and tie orders (the breadcrumbs windows
// need the smallest with higher indices first), with the unordered passes fed their chunks
// shuffled and concurrently, keeping the boundary bucket or (maxCandidates 0) not, or
// with a budget so small that the first pass's window overflows it.
func TestSelector(t *testing.T) {
	defer func(m int64) { maxCandidates = m }(maxCandidates)
	for _, maxCand := range []int64{1 << 22, 0, 50} {
		maxCandidates = maxCand
		testSelector(t, maxCand)
	}
}

func testSelector(t *testing.T, maxCand int64) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		n := 1 + r.IntN(2000)
		if trial%10 == 0 { // chunks past smallChunk count privately
			n = smallChunk + r.IntN(5*smallChunk)
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.IntN(1+r.IntN(50))) * float32(math.Pow(2, float64(r.IntN(40)-20)))
			if r.IntN(3) == 0 {
				x[i] = -x[i]
			}
		}
		m := int64(r.IntN(n + 1))
		largest, lowFirst := r.IntN(2) == 0, r.IntN(2) == 0
		passes := checkSelector(t, r, x, m, largest, lowFirst, 1+r.IntN(n), true)
		if limit := map[bool]int{true: 2, false: 3}[maxCand >= 1<<22]; passes > limit {
			t.Fatalf("trial %d: %d passes, want at most %d", trial, passes, limit)
		}
	}
}

// TestSelectorOnePass: on deltas of one distribution, the window the first pass guesses
// from its first chunk holds the boundary, and one pass is enough, whichever chunk comes
// first; when the first chunk is unlike the rest, the guess misses and a second pass
// makes the selection as exact.
func TestSelectorOnePass(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n, chunk = 1 << 18, 1 << 15
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 0.01)
	}
	for _, m := range []int64{1, n / 10, n * 3 / 10, n / 2, n - 1} {
		for _, largest := range []bool{true, false} {
			if passes := checkSelector(t, r, x, m, largest, true, chunk, true); passes != 1 {
				t.Errorf("m %d largest %v: %d passes, want 1", m, largest, passes)
			}
		}
	}
	for i := range chunk { // the first chunk, seen first, is 1000 times smaller
		x[i] /= 1000
	}
	if passes := checkSelector(t, r, x, n*3/10, true, true, chunk, false); passes != 2 {
		t.Errorf("first chunk unlike the rest: %d passes, want 2", passes)
	}
}

// checkSelector selects m of the deltas x (the base is zero) in chunks of the given
// length, fed to unordered passes shuffled and concurrently or (shuffle false) in order
// one by one, checks in and mask against a sort, and returns the number of passes.
func checkSelector(t *testing.T, r *rand.Rand, x []float32, m int64, largest, lowFirst bool, chunk int, shuffle bool) int {
	t.Helper()
	n := len(x)
	zero := make([]float32, n) // the "base": the values are the deltas
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ka, kb := magKey(x[idx[a]]), magKey(x[idx[b]])
		if ka != kb {
			return (ka > kb) == largest
		}
		return (idx[a] < idx[b]) == lowFirst
	})
	want := make([]bool, n)
	for _, i := range idx[:m] {
		want[i] = true
	}
	s := newSelector(m, int64(n), largest, lowFirst)
	var offs []int
	for off := 0; off < n; off += chunk {
		offs = append(offs, off)
	}
	passes := 0
	for ; !s.done(); passes++ {
		if !s.unordered() || !shuffle {
			for _, off := range offs {
				s.observe(int64(off), x[off:min(n, off+chunk)], zero[off:])
			}
		} else {
			r.Shuffle(len(offs), func(i, j int) { offs[i], offs[j] = offs[j], offs[i] })
			var wg sync.WaitGroup
			for _, off := range offs {
				wg.Go(func() { s.observe(int64(off), x[off:min(n, off+chunk)], zero[off:]) })
			}
			wg.Wait()
			slices.Sort(offs)
		}
		s.endPass()
	}
	mask := make([]uint64, n)
	for off := 0; off < n; off += chunk {
		end := min(n, off+chunk)
		s.mask(mask[off:end], int64(off), x[off:end], zero[off:end])
	}
	for i := range x {
		if s.in(int64(i), x[i]) != want[i] {
			t.Fatalf("n %d m %d largest %v lowFirst %v: element %d (%v) in=%v", n, m, largest, lowFirst, i, x[i], !want[i])
		}
		if wm := map[bool]uint64{true: 1<<64 - 1}[want[i]]; mask[i] != wm {
			t.Fatalf("n %d m %d largest %v lowFirst %v: element %d (%v) mask %#x, want %#x", n, m, largest, lowFirst, i, x[i], mask[i], wm)
		}
	}
	return passes
}

// DARE keeps a fraction within 5σ of ρ, survivors are exactly δ/ρ, masks of different
// models are independent, and the mean over seeds approaches δ.
func TestDareInvariants(t *testing.T) {
	const n = 100000
	m := method(t, "dare_linear")
	base := make([]float32, n)
	x := make([]float32, n)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range x {
		base[i] = float32(r.NormFloat64())
		x[i] = base[i] + float32(r.NormFloat64()*0.01)
	}
	for _, rho := range []float64{0.1, 0.3, 0.5, 0.9} {
		a := Params{"weight": 1.0, "density": rho}
		tt := tensor(t, m, n, nil, a, a)
		// Two models with the same deltas: their masks must be independent.
		got := run(m.New(tt), [][]float32{base, x, x}, 4096)
		// Each element's output is B + (k1 + k2)·δ/ρ; recover k1 + k2 from it.
		var both, one int
		for i := range got {
			d := float64(x[i]) - float64(base[i])
			if d == 0 {
				continue
			}
			c := (float64(got[i]) - float64(base[i])) / (d / rho)
			// the output is rounded to float32 once: allow an ulp of it
			a := float32(math.Abs(float64(got[i])))
			tol := float64(math.Nextafter32(a, float32(math.Inf(1)))-a) / math.Abs(d/rho)
			switch {
			case math.Abs(c-2) <= tol:
				both++
			case math.Abs(c-1) <= tol:
				one++
			case math.Abs(c) <= tol:
			default:
				t.Fatalf("ρ %v: element %d is %v δ/ρ, not 0, 1 or 2", rho, i, c)
			}
		}
		kept := float64(2*both + one)
		mean, sd := 2*n*rho, math.Sqrt(2*n*rho*(1-rho))
		if math.Abs(kept-mean) > 5*sd {
			t.Errorf("ρ %v: kept %v of %d, expected %v ± 5·%v", rho, kept, 2*n, mean, sd)
		}
		// Independence: P(both) = ρ².
		pb, sdb := n*rho*rho, math.Sqrt(n*rho*rho*(1-rho*rho))
		if math.Abs(float64(both)-pb) > 5*sdb {
			t.Errorf("ρ %v: both kept at %d elements, expected %v ± 5·%v", rho, both, pb, sdb)
		}
	}
	// Survivors are exactly δ/ρ for a single model, in F32 arithmetic terms: output equals
	// float32(B + δ/ρ) computed in float64.
	a := Params{"weight": 1.0, "density": 0.3}
	got := run(m.New(tensor(t, m, n, nil, a)), [][]float32{base, x}, 1000)
	for i := range got {
		d := float64(x[i]) - float64(base[i])
		if got[i] != base[i] && got[i] != float32(float64(base[i])+d/0.3) {
			t.Fatalf("element %d: %v is neither B nor B + δ/ρ", i, got[i])
		}
	}
	// The mean over seeds approaches δ (unbiased).
	const small, seeds = 64, 4000
	sum := make([]float64, small)
	for seed := range uint64(seeds) {
		tt := tensor(t, m, small, nil, a)
		tt.Seed = seed
		out := run(m.New(tt), [][]float32{base[:small], x[:small]}, small)
		for i := range out {
			sum[i] += float64(out[i]) - float64(base[i])
		}
	}
	for i := range sum {
		d := float64(x[i]) - float64(base[i])
		mean := sum[i] / seeds
		sd := math.Abs(d) * math.Sqrt((1-0.3)/0.3/seeds)
		if math.Abs(mean-d) > 5*sd+1e-9 {
			t.Errorf("element %d: mean over %d seeds %v, δ %v (σ %v)", i, seeds, mean, d, sd)
		}
	}
}

// L1 rescale keeps each model's delta L1 norm; skipped below 1e-7.
func TestDareL1(t *testing.T) {
	const n = 10000
	m := method(t, "dare_linear")
	base := make([]float32, n)
	x := make([]float32, n)
	r := rand.New(rand.NewPCG(7, 8))
	for i := range x {
		x[i] = float32(r.NormFloat64() * 0.01)
	}
	a := Params{"weight": 1.0, "density": 0.2}
	got := run(m.New(tensor(t, m, n, Params{"rescale_norm": "l1"}, a)), [][]float32{base, x}, 333)
	var l1, l1x float64
	for i := range got {
		l1 += math.Abs(float64(got[i]))
		l1x += math.Abs(float64(x[i]))
	}
	if math.Abs(l1-l1x) > 1e-6*l1x {
		t.Errorf("L1 after rescale %v, before %v", l1, l1x)
	}
	tiny := make([]float32, n)
	tiny[5] = 1e-9
	got = run(m.New(tensor(t, m, n, Params{"rescale_norm": "l1"}, a)), [][]float32{base, tiny}, 100)
	if got[5] != 0 && got[5] != 1e-9 {
		t.Errorf("L1 of 1e-9 rescaled to %v", got[5])
	}
}

// One-element tensors and F16-overflowing results (the kernel's float32 result is what the
// engine encodes; +Inf in F16 is the engine's rounding, tested in core/dtype).
func TestTinyTensors(t *testing.T) {
	for _, name := range []string{"linear", "task_arithmetic", "ties", "dare_linear", "dare_ties"} {
		m := method(t, name)
		in := [][]float32{{2}, {3}, {5}}
		a := Params{"weight": 1.0, "density": 1.0}
		if name == "linear" {
			in = in[1:]
		}
		got := run(m.New(tensor(t, m, 1, Params{"normalize": false}, a, a)), in, 1)
		want := float32(2 + 1 + 3)
		if name == "linear" {
			want = 8
		}
		if got[0] != want {
			t.Errorf("%s on one element: %v, want %v", name, got[0], want)
		}
	}
	m := method(t, "task_arithmetic")
	got := run(m.New(tensor(t, m, 1, Params{"lambda": 100.0}, Params{"weight": 1.0})), [][]float32{{60000}, {65000}}, 1)
	if got[0] != 560000 {
		t.Errorf("large result %v", got[0])
	}
}

// TestCountWindowBF16 checks the selection pass on BF16 bytes (countWindowBF16Go,
// countWindowAVX2BF16, countBF16) against countWindowGo on the decoded values: the same
// counts and window elements, on deltas and on raw bit patterns (NaN payloads, infinities,
// subnormals, signed zeros), at lengths that leave every tail of the 512-element blocks.
func TestCountWindowBF16(t *testing.T) {
	const n = 1 << 12
	fb, fx, _ := vectest.Deltas(n, 9)
	x, b := make([]byte, 2*n), make([]byte, 2*n)
	dtype.Encode(x, fx, dtype.BF16)
	dtype.Encode(b, fb, dtype.BF16)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		if r.IntN(16) == 0 { // any bit pattern at all
			x[2*i], x[2*i+1] = byte(r.Uint32()), byte(r.Uint32())
		}
	}
	x[0], x[1], b[0], b[1] = 0x81, 0x7f, 0x80, 0x7f // a NaN payload minus +Inf
	x[2], x[3], b[2], b[3] = 0x01, 0x00, 0x01, 0x80 // subnormals
	dx, db := make([]float32, n), make([]float32, n)
	dtype.Decode(dx, x, dtype.BF16)
	dtype.Decode(db, b, dtype.BF16)
	common := magKey(0.0002) >> 16
	windows := [][2]uint32{{1 << 16, 0}, {common, 0}, {common - 20, 40}, {0, 0}, {0, 0xffff}, {0x7f80, 0x7f}}
	for _, w := range windows {
		for _, l := range []int{0, 1, 7, 8, 9, 511, 512, 513, 1000, 1024, n - 3} {
			off := int64(l) << 20
			want := new([1 << 16]uint32)
			wantWin := countWindowGo(want, nil, off, dx[:l], db[:l], w[0], w[1])
			for name, f := range map[string]func(*[1 << 16]uint32, []uint64, int64, []byte, []byte, uint32, uint32) []uint64{
				"countWindowBF16Go": countWindowBF16Go, "countWindowAVX2BF16": countWindowAVX2BF16,
			} {
				got := new([1 << 16]uint32)
				gotWin := f(got, []uint64{}, off, x[:2*l], b[:2*l], w[0], w[1])
				if *got != *want {
					t.Fatalf("%s, window %#x+%d, n=%d: counts differ", name, w[0], w[1], l)
				}
				if !slices.Equal(gotWin, wantWin) {
					t.Fatalf("%s, window %#x+%d, n=%d: window elements %x, want %x", name, w[0], w[1], l, gotWin, wantWin)
				}
			}
			if w == windows[2] && l == n-3 && len(wantWin) < 20 {
				t.Fatalf("window %#x+%d holds only %d elements: the test does not exercise it", w[0], w[1], len(wantWin))
			}
			got := new([1 << 16]uint32)
			countBF16(got, x[:2*l], b[:2*l])
			want = new([1 << 16]uint32)
			count(want, dx[:l], db[:l])
			if *got != *want {
				t.Fatalf("countBF16, n=%d: counts differ", l)
			}
		}
	}
}
