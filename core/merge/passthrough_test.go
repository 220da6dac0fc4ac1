package merge

import (
	"math"
	"testing"
)

func TestPassthrough(t *testing.T) {
	x := []float32{1.5, -2, float32(math.Copysign(0, -1)), 3.1415927, 1e-40}
	for _, c := range []struct {
		scale float64
		want  []float64
	}{
		{1, []float64{1.5, -2, math.Copysign(0, -1), float64(float32(3.1415927)), float64(float32(1e-40))}},
		{0.5, []float64{0.75, -1, math.Copysign(0, -1), float64(float32(3.1415927)) / 2, float64(float32(1e-40)) / 2}},
		{-2, []float64{-3, 4, 0, -2 * float64(float32(3.1415927)), -2 * float64(float32(1e-40))}},
	} {
		m, ten := shapedTensor(t, "passthrough", []int64{5}, false, []Params{{"scale": c.scale}}, nil)
		got := runAll(t, m, ten, [][]float32{x})
		for i := range got {
			if float64(got[i]) != float64(float32(c.want[i])) || math.Signbit(float64(got[i])) != math.Signbit(c.want[i]) {
				t.Errorf("passthrough scale %v [%d] = %v, want %v", c.scale, i, got[i], float32(c.want[i]))
			}
		}
	}
}

func TestPassthroughOneInput(t *testing.T) {
	m, _ := Lookup("passthrough")
	ten := &Tensor{Name: "x", Shape: []int64{1}, N: 1, Args: []Params{{"scale": 1.0}, {"scale": 1.0}}}
	if err := m.Check(ten); err == nil {
		t.Errorf("passthrough Check with 2 inputs succeeded")
	}
}
