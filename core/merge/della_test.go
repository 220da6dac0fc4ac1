package merge

import (
	"math"
	"strings"
	"testing"
)

// TestDellaGolden: rows of 3, density 0.5, epsilon 0.25, so ranks 1, 2, 3 keep with
// probability 0.25, 0.5, 0.75. Row 0: |δ| = 0.5, 0.25, 1 → ranks 2, 1, 3. Row 1: |δ| = 1,
// 0.5, 0.5 → ranks 3, 1, 2 (the tie goes by index). Element i survives iff u(i) < p(i) on
// the §4 stream, and a survivor is divided by its own p.
func TestDellaGolden(t *testing.T) {
	d := []float32{0.5, -0.25, 1, -1, 0.5, 0.5}
	p := []float64{0.5, 0.25, 0.75, 0.75, 0.25, 0.5}
	base := []float32{1, 2, 3, 4, 5, 6}
	x := make([]float32, len(d))
	for i := range x {
		x[i] = base[i] + d[i]
	}
	a := Params{"weight": 1.0, "density": 0.5, "epsilon": 0.25}
	m, ten := shapedTensor(t, "della_linear", []int64{2, 3}, true, []Params{{}, a}, nil)
	ten.Seed = 3
	got := runAll(t, m, ten, [][]float32{base, x})
	s := NewStream(3, ten.Models[1], ten.Name)
	kept := 0
	for i := range d {
		want := float64(base[i])
		if s.Uniform(int64(i)) < p[i] {
			want += float64(d[i]) / p[i]
			kept++
		}
		if float64(got[i]) != float64(float32(want)) {
			t.Errorf("della_linear[%d] = %v, want %v (p %v, u %v)", i, got[i], float32(want), p[i], s.Uniform(int64(i)))
		}
	}
	if kept == 0 || kept == len(d) {
		t.Fatalf("seed keeps %d of %d: pick one that both keeps and drops", kept, len(d))
	}
}

// TestDellaProbabilities checks the keep rate of each rank over many elements: a row of
// 4 with ranks in a fixed pattern, density 0.6, epsilon 0.3 → p = 0.3, 0.5, 0.7, 0.9.
func TestDellaProbabilities(t *testing.T) {
	const rows = 20000
	base := make([]float32, 4*rows)
	x := make([]float32, 4*rows)
	for r := 0; r < rows; r++ {
		for c, v := range []float32{3, 1, 4, 2} { // ranks 3, 1, 4, 2
			x[4*r+c] = v
		}
	}
	a := Params{"weight": 1.0, "density": 0.6, "epsilon": 0.3}
	m, ten := shapedTensor(t, "della_linear", []int64{rows, 4}, true, []Params{{}, a}, nil)
	got := runChunked(m, ten, [][]float32{base, x}, 4096)
	pr := []float64{0.7, 0.3, 0.9, 0.5}
	for c := range 4 {
		kept := 0
		for r := 0; r < rows; r++ {
			switch v := got[4*r+c]; v {
			case 0:
			case float32(float64(x[c]) / pr[c]):
				kept++
			default:
				t.Fatalf("element (%d, %d) = %v, want 0 or %v", r, c, v, float32(float64(x[c])/pr[c]))
			}
		}
		sd := math.Sqrt(pr[c] * (1 - pr[c]) / rows)
		if rate := float64(kept) / rows; math.Abs(rate-pr[c]) > 5*sd {
			t.Errorf("column %d kept %.4f, want %v ± 5σ (%.4f)", c, rate, pr[c], 5*sd)
		}
	}
}

// TestDellaOneColumn: rows of one element keep with probability density.
func TestDellaOneColumn(t *testing.T) {
	base := []float32{0, 0, 0, 0}
	x := []float32{1, 2, 3, 4}
	a := Params{"weight": 1.0, "density": 0.5, "epsilon": 0.4}
	m, ten := shapedTensor(t, "della_linear", []int64{4, 1}, true, []Params{{}, a}, nil)
	got := runAll(t, m, ten, [][]float32{base, x})
	s := NewStream(0, 1, ten.Name)
	for i := range x {
		want := float32(0)
		if s.Uniform(int64(i)) < 0.5 {
			want = x[i] / 0.5
		}
		if got[i] != want {
			t.Errorf("della_linear one column [%d] = %v, want %v", i, got[i], want)
		}
	}
}

// TestDellaEpsilon checks that density − epsilon ≤ 0 and density + epsilon > 1 are errors
// naming both values, and that the limits themselves pass.
func TestDellaEpsilon(t *testing.T) {
	m, _ := Lookup("della")
	for _, c := range []struct {
		density, epsilon float64
		ok               bool
	}{
		{0.5, 0.15, true},
		{0.75, 0.25, true}, // density + epsilon = 1
		{1, 0, true},
		{0.1, 0.15, false},
		{0.25, 0.25, false}, // density − epsilon = 0
		{0.9, 0.15, false},
		{1, 0.15, false},
	} {
		ten := &Tensor{Name: "w", Shape: []int64{4}, N: 4, HasBase: true, Models: []int{0, 1},
			Args: []Params{{"density": 1.0, "epsilon": 0.15}, {"weight": 1.0, "density": c.density, "epsilon": c.epsilon}}}
		err := m.Check(ten)
		if (err == nil) != c.ok {
			t.Errorf("Check(density %v, epsilon %v) = %v, want ok %v", c.density, c.epsilon, err, c.ok)
		}
		if err != nil && !(strings.Contains(err.Error(), "density") && strings.Contains(err.Error(), "epsilon")) {
			t.Errorf("Check error %q does not name density and epsilon", err)
		}
	}
}

// TestDellaConsensus: della elects signs like TIES. Density 0.75 + epsilon 0.25 = 1 gives
// the largest |δ| of each row probability 1.
// Rows of 2 with distinct |δ|: the larger keeps for sure (p = 1, divided by 1), the
// smaller with p = 0.5.
func TestDellaConsensus(t *testing.T) {
	base := []float32{0, 0}
	x1 := []float32{1, -4}  // larger: element 1
	x2 := []float32{8, 0.5} // larger: element 0
	a := Params{"weight": 1.0, "density": 0.75, "epsilon": 0.25}
	m, ten := shapedTensor(t, "della", []int64{1, 2}, true, []Params{{}, a, a}, nil)
	got := runAll(t, m, ten, [][]float32{base, x1, x2})
	s1 := NewStream(0, 1, ten.Name)
	// Element 0: model 2 keeps 8; model 1 keeps 1/0.5 = 2 if u1(0) < 0.5. Both +.
	// Element 1: model 1 keeps −4; model 2 keeps 0.5/0.5 = 1 if u2(1) < 0.5: sum −3 → −,
	// only model 1 counts. normalize divides by the counting weights.
	w0 := []float64{8}
	if s1.Uniform(0) < 0.5 {
		w0 = append(w0, 2)
	}
	sum := 0.0
	for _, v := range w0 {
		sum += v
	}
	want := []float32{float32(sum / float64(len(w0))), -4}
	if got[0] != want[0] || got[1] != want[1] {
		t.Errorf("della = %v, want %v", got, want)
	}
}
