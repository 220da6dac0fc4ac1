package merge

import (
	"math"
	"testing"
)

func TestSlerpGolden(t *testing.T) {
	s2 := math.Sqrt2 / 2
	for _, c := range []struct {
		name string
		t    float64
		a, b []float32
		want []float64
	}{
		// Orthogonal: θ = π/2, sin θ = 1, coefficients sin((1-t)π/2) and sin(tπ/2).
		{"orthogonal-half", 0.5, []float32{1, 0}, []float32{0, 1}, []float64{s2, s2}},
		// Un-normalized vectors keep their lengths: √2/2·[2, 0] + √2/2·[0, 3].
		{"lengths", 0.5, []float32{2, 0}, []float32{0, 3}, []float64{2 * s2, 3 * s2}},
		// t = 1/3: sin(π/3) = √3/2 and sin(π/6) = 1/2.
		{"third", 1.0 / 3, []float32{2, 0}, []float32{0, 4}, []float64{math.Sqrt(3), 2}},
		// Colinear (cos = 1): the lerp 0.75·a + 0.25·b; slerp would divide by sin 0.
		{"colinear", 0.25, []float32{1, 2, 3}, []float32{2, 4, 6}, []float64{1.25, 2.5, 3.75}},
		// Opposite (cos = -1): also the lerp.
		{"opposite", 0.25, []float32{1, 2, 3}, []float32{-2, -4, -6}, []float64{0.25, 0.5, 0.75}},
		// cos = 0.9996 > 0.9995: lerp. a = [1, 0], b = [0.9996, sin(acos(0.9996))].
		{"threshold-lerp", 0.5, []float32{1, 0}, []float32{0.9996, float32(math.Sqrt(1 - 0.9996*0.9996))},
			[]float64{0.5 + 0.5*float64(float32(0.9996)), 0.5 * float64(float32(math.Sqrt(1-0.9996*0.9996)))}},
		// A zero vector is not normalized: cos = 0, θ = π/2, out = sin(π/4)·b.
		{"zero", 0.5, []float32{0, 0}, []float32{0, 3}, []float64{0, 3 * s2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, ten := shapedTensor(t, "slerp", []int64{int64(len(c.a))}, true, []Params{{}, {}}, Params{"t": c.t})
			got := runAll(t, m, ten, [][]float32{c.a, c.b})
			checkNear(t, "slerp", got, c.want)
		})
	}
}

// TestSlerpNearThreshold checks the slerp path just below the lerp threshold, where the
// two differ measurably: cos = 0.999 (θ = acos 0.999).
func TestSlerpNearThreshold(t *testing.T) {
	b1 := float32(0.999)
	b2 := float32(math.Sqrt(1 - 0.999*0.999))
	cos := float64(b1) / math.Hypot(float64(b1), float64(b2))
	th := math.Acos(cos)
	c0, c1 := math.Sin(0.5*th)/math.Sin(th), math.Sin(0.5*th)/math.Sin(th)
	m, ten := shapedTensor(t, "slerp", []int64{2}, true, []Params{{}, {}}, Params{"t": 0.5})
	got := runAll(t, m, ten, [][]float32{{1, 0}, {b1, b2}})
	want := []float64{c0 + c1*float64(b1), c1 * float64(b2)}
	checkNear(t, "slerp", got, want)
	// The lerp would give 0.9995 in element 0; slerp gives more (the arc bulges out).
	if got[0] <= 0.9995 {
		t.Errorf("slerp near the threshold = %v, want the arc (> 0.9995), not the chord", got[0])
	}
}

// TestSlerpEnds checks that t = 0 gives the base and t = 1 the other model bit for bit,
// including signed zeros and values whose sum would round.
func TestSlerpEnds(t *testing.T) {
	a := []float32{float32(math.Copysign(0, -1)), 1e-30, 3.1415927, -7, 65504, 1e-45}
	b := []float32{0, -2.5, float32(math.Copysign(0, -1)), 7, 1e30, 0.1}
	for _, c := range []struct {
		t    float64
		want []float32
	}{{0, a}, {1, b}} {
		m, ten := shapedTensor(t, "slerp", []int64{2, 3}, true, []Params{{}, {}}, Params{"t": c.t})
		got := runAll(t, m, ten, [][]float32{a, b})
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(c.want[i]) {
				t.Errorf("slerp t=%v [%d] = %v, want exactly %v", c.t, i, got[i], c.want[i])
			}
		}
	}
}
