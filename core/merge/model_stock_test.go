package merge

import (
	"math"
	"testing"
)

func TestModelStockGolden(t *testing.T) {
	s2 := math.Sqrt2
	for _, c := range []struct {
		name   string
		shape  []int64
		global Params
		in     [][]float32 // base first
		want   []float64
	}{
		// N = 2, deltas [1, 0] and [1, 1]: c = 1/√2, t = 2c/(1+c) = 2√2 - 2;
		// out = B + t·(mean - B) with mean - B = [1, 0.5].
		{"two", []int64{2}, nil, [][]float32{{1, 2}, {2, 2}, {2, 3}}, []float64{1 + (2*s2 - 2), 2 + (s2 - 1)}},
		// N = 3, deltas [1,0], [1,0], [0,1]: cosines 1, 0, 0, c = 1/3, t = 1/(1 + 2/3) = 0.6;
		// mean = [5/3, 4/3], out = 0.6·mean + 0.4·[1, 1].
		{"three", []int64{2}, nil, [][]float32{{1, 1}, {2, 1}, {2, 1}, {1, 2}}, []float64{1.4, 1.2}},
		// Negative cosine, N = 2: c = -1/√2, t = -2(√2+1); mean - B = [0, 0.5].
		{"two-negative", []int64{2}, nil, [][]float32{{0, 0}, {1, 0}, {-1, 1}}, []float64{0, -(s2 + 1)}},
		// Negative, N = 3: cosines -1, 0, 0, c = -1/3, t = -1/(1 - 2/3) = -3; mean = [0, 1/3].
		{"three-negative", []int64{2}, nil, [][]float32{{0, 0}, {1, 0}, {-1, 0}, {0, 1}}, []float64{0, -1}},
		// Opposite deltas, N = 2: c = -1 makes 1 + (N-1)c = 0; t = 0 gives the base.
		{"opposite", []int64{2}, nil, [][]float32{{5, 6}, {6, 6}, {3, 6}}, []float64{5, 6}},
		// Zero deltas: cos = 0/1e-6 = 0, t = 0.
		{"zero", []int64{2}, nil, [][]float32{{5, 6}, {5, 6}, {5, 6}}, []float64{5, 6}},
		// filter_wise: row 0 as "two", row 1 with opposite deltas (t = 0).
		{"filter-wise", []int64{2, 2}, Params{"filter_wise": true},
			[][]float32{{1, 2, 5, 6}, {2, 2, 6, 6}, {2, 3, 3, 6}}, []float64{1 + (2*s2 - 2), 2 + (s2 - 1), 5, 6}},
		// filter_wise on a vector: one row, as without it.
		{"filter-wise-vector", []int64{2}, Params{"filter_wise": true}, [][]float32{{1, 1}, {2, 1}, {2, 1}, {1, 2}}, []float64{1.4, 1.2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := make([]Params, len(c.in))
			m, ten := shapedTensor(t, "model_stock", c.shape, true, args, c.global)
			got := runAll(t, m, ten, c.in)
			checkNear(t, "model_stock", got, c.want)
		})
	}
}

// TestModelStockClamp checks the clamp of the norm product to 1e-6: deltas [1e-4, 0] twice
// have cos 1 but norm product 1e-8, so cos = dot/1e-6 = 0.01 and t = 0.02/1.01.
func TestModelStockClamp(t *testing.T) {
	d := float64(float32(1e-4))
	m, ten := shapedTensor(t, "model_stock", []int64{2}, true, make([]Params, 3), nil)
	got := runAll(t, m, ten, [][]float32{{0, 0}, {1e-4, 0}, {1e-4, 0}})
	c := d * d / 1e-6
	tt := 2 * c / (1 + c)
	checkNear(t, "model_stock", got, []float64{tt * d, 0})
}

// TestModelStockManyModels covers more models than the kernel's fixed scratch (8).
func TestModelStockManyModels(t *testing.T) {
	const n = 10
	in := [][]float32{make([]float32, n)} // base 0
	for k := 0; k < n; k++ {
		x := make([]float32, n)
		x[k] = 1 // orthogonal unit deltas: c = 0, t = 0
		x[(k+1)%n] = 1
		in = append(in, x)
	}
	// Deltas e_k + e_{k+1}: neighbours have cos 1/2, others 0. Pairs: 45, of which 10
	// are neighbours (ring), so c = 5/45 = 1/9, t = 10/9 / (1 + 1) = 5/9.
	// mean = 2/10 in every element.
	m, ten := shapedTensor(t, "model_stock", []int64{n}, true, make([]Params, n+1), nil)
	got := runAll(t, m, ten, in)
	want := make([]float64, n)
	for i := range want {
		want[i] = 5.0 / 9 * 0.2
	}
	checkNear(t, "model_stock", got, want)
	// And per row (filter_wise) with 2 identical rows.
	in2 := make([][]float32, len(in))
	for k := range in {
		in2[k] = append(append([]float32(nil), in[k]...), in[k]...)
	}
	m, ten = shapedTensor(t, "model_stock", []int64{2, n}, true, make([]Params, n+1), Params{"filter_wise": true})
	got = runAll(t, m, ten, in2)
	checkNear(t, "model_stock filter_wise", got, append(want, want...))
}
