package merge

import (
	"math"
	"testing"
)

func TestNuslerpGolden(t *testing.T) {
	s2 := math.Sqrt2 / 2
	w := func(a, b float64) []Params { return []Params{{"weight": a}, {"weight": b}} }
	for _, c := range []struct {
		name    string
		shape   []int64
		args    []Params
		global  Params
		base    []float32 // nil: no base
		a, b    []float32
		want    []float64
		comment string
	}{
		{name: "equal-weights", shape: []int64{2}, args: w(1, 1), a: []float32{1, 0}, b: []float32{0, 1}, want: []float64{s2, s2}},
		// t = 3/(1+3) = 0.75: sin(π/8) and sin(3π/8).
		{name: "weights-1-3", shape: []int64{2}, args: w(1, 3), a: []float32{1, 0}, b: []float32{0, 1},
			want: []float64{math.Sin(math.Pi / 8), math.Sin(3 * math.Pi / 8)}},
		// Weights summing to 0: t = 0.5 rather than a division by zero.
		{name: "weights-sum-zero", shape: []int64{2}, args: w(0.3, -0.3), a: []float32{1, 0}, b: []float32{0, 2},
			want: []float64{s2, 2 * s2}},
		// |w1+w2| = 5e-7 < 1e-6: still t = 0.5.
		{name: "weights-sum-tiny", shape: []int64{2}, args: w(2, -2+5e-7), a: []float32{1, 0}, b: []float32{0, 2},
			want: []float64{s2, 2 * s2}},
		// A distinct base: slerp the deltas [1, 0] and [0, 1], add the base back.
		{name: "base", shape: []int64{2}, args: []Params{{}, {"weight": 1.0}, {"weight": 1.0}},
			base: []float32{1, 1}, a: []float32{2, 1}, b: []float32{1, 2}, want: []float64{1 + s2, 1 + s2}},
		// Colinear deltas: sin θ = 0, the lerp.
		{name: "colinear", shape: []int64{3}, args: w(1, 3), a: []float32{1, 2, 3}, b: []float32{2, 4, 6},
			want: []float64{1.75, 3.5, 5.25}},
		// Zero vector: norms clamped to 1e-7, cos = 0, θ = π/2.
		{name: "zero", shape: []int64{2}, args: w(1, 1), a: []float32{0, 0}, b: []float32{0, 3},
			want: []float64{0, 3 * s2}},
		// Rows (the last dimension): row 0 orthogonal, row 1 colinear (lerp). Flattened,
		// the same inputs give other values (cos = 4/(3√3)).
		{name: "rows", shape: []int64{2, 2}, args: w(1, 1), global: Params{"nuslerp_flatten": false},
			a: []float32{1, 0, 1, 1}, b: []float32{0, 1, 2, 2}, want: []float64{s2, s2, 1.5, 1.5}},
		// Along dimension 0 (columns): column 0 orthogonal, column 1 colinear.
		{name: "row-wise", shape: []int64{2, 2}, args: w(1, 1), global: Params{"nuslerp_flatten": false, "nuslerp_row_wise": true},
			a: []float32{1, 1, 0, 1}, b: []float32{0, 2, 1, 2}, want: []float64{s2, 1.5, s2, 1.5}},
		// row_wise without flatten=false changes nothing: the flattened result.
		{name: "row-wise-flatten", shape: []int64{2, 2}, args: w(1, 1), global: Params{"nuslerp_row_wise": true},
			a: []float32{1, 0, 0, 0}, b: []float32{0, 0, 0, 1}, want: []float64{s2, 0, 0, s2}},
		// Rank 3 along dim 0: vectors are the elements with equal index mod 2.
		{name: "row-wise-rank3", shape: []int64{2, 1, 2}, args: w(1, 1), global: Params{"nuslerp_flatten": false, "nuslerp_row_wise": true},
			a: []float32{1, 1, 0, 1}, b: []float32{0, 2, 1, 2}, want: []float64{s2, 1.5, s2, 1.5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := [][]float32{c.a, c.b}
			if c.base != nil {
				in = [][]float32{c.base, c.a, c.b}
			}
			m, ten := shapedTensor(t, "nuslerp", c.shape, c.base != nil, c.args, c.global)
			got := runAll(t, m, ten, in)
			checkNear(t, "nuslerp", got, c.want)
		})
	}
}

// TestNuslerpFlattenDiffers checks that the rows case above really depends on the option.
func TestNuslerpFlattenDiffers(t *testing.T) {
	a, b := []float32{1, 0, 1, 1}, []float32{0, 1, 2, 2}
	m, ten := shapedTensor(t, "nuslerp", []int64{2, 2}, false, []Params{{"weight": 1.0}, {"weight": 1.0}}, nil)
	got := runAll(t, m, ten, [][]float32{a, b})
	th := math.Acos(4 / (3 * math.Sqrt(3)))
	c := math.Sin(th/2) / math.Sin(th)
	checkNear(t, "nuslerp flatten", got, []float64{c, c, 3 * c, 3 * c})
}
