package merge

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Breadcrumbs by hand: n = 10, density 0.5, gamma 0.1 → target 5, n_top 1, n_bot 4: drop
// the 4 smallest |δ| and the largest. |δ| = [3,1,4,1,5,9,2,6,5,3]: ascending with ties by
// index: 1(1) 1(3) 2(6) 3(0) | 3(9) 4(2) 5(4) 5(8) 6(7) | 9(5).
func TestBreadcrumbsWindow(t *testing.T) {
	delta := []float32{3, -1, 4, 1, -5, 9, 2, -6, 5, 3}
	base := make([]float32, 10)
	x := slices.Clone(delta)
	m := method(t, "breadcrumbs")
	cases := []struct {
		a    Params
		keep []int
	}{
		{Params{"weight": 1.0, "density": 0.5, "gamma": 0.1}, []int{9, 2, 4, 8, 7}},
		// gamma 0: n_top 0 keeps the window to the end: the 5 largest.
		// Positions [5, 10): 4(2) 5(4) 5(8) 6(7) 9(5).
		{Params{"weight": 1.0, "density": 0.5, "gamma": 0.0}, []int{2, 4, 8, 7, 5}},
		// density + gamma > 1: n_bot < 0 shrinks n_top: target 9, n_top 2 → n_bot -1 → n_top 1.
		{Params{"weight": 1.0, "density": 0.9, "gamma": 0.2}, []int{1, 3, 6, 0, 9, 2, 4, 8, 7}},
		{Params{"weight": 1.0, "density": 0.0, "gamma": 0.1}, nil},
	}
	for _, c := range cases {
		for _, chunk := range []int{1, 3, 10} {
			got := run(m.New(tensor(t, m, 10, nil, c.a)), [][]float32{base, x}, chunk)
			want := make([]float32, 10)
			for _, i := range c.keep {
				want[i] = delta[i]
			}
			if !slices.Equal(got, want) {
				t.Errorf("%v chunk %d: got %v, want %v", c.a, chunk, got, want)
			}
		}
	}
}

// Breadcrumbs against a sort on tie-heavy random deltas.
func TestBreadcrumbsInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	m := method(t, "breadcrumbs")
	for trial := range 200 {
		n := 1 + r.IntN(2000)
		base := make([]float32, n)
		x := make([]float32, n)
		for i := range x {
			base[i] = float32(r.NormFloat64())
			x[i] = base[i] + float32(r.IntN(1+r.IntN(30)))/16*float32(1-2*r.IntN(2))
		}
		rho, gamma := r.Float64(), r.Float64()*0.2
		if trial%5 == 0 {
			gamma = 0
		}
		target, nTop := int(math.Floor(rho*float64(n))), int(math.Floor(gamma*float64(n)))
		nBot := n - target - nTop
		if nBot < 0 {
			nTop, nBot = nTop+nBot, 0
		}
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		mag := func(i int) float32 { return float32(math.Abs(float64(x[i] - base[i]))) }
		sort.SliceStable(idx, func(a, b int) bool { return mag(idx[a]) < mag(idx[b]) })
		want := make([]bool, n)
		for _, i := range idx[nBot : n-nTop] {
			want[i] = true
		}
		got := run(m.New(tensor(t, m, int64(n), nil, Params{"weight": 1.0, "density": rho, "gamma": gamma})), [][]float32{base, x}, 1+r.IntN(n))
		for i := range got {
			if x[i] != base[i] && (got[i] != base[i]) != want[i] {
				t.Fatalf("trial %d n %d ρ %v γ %v: element %d kept=%v, want %v", trial, n, rho, gamma, i, !want[i], want[i])
			}
		}
	}
}

// DELLA: per-row ranks give keep probabilities (ρ−ε) … (ρ+ε); survivors are divided by their
// own probability; the draws are the §4 stream (golden-tested in stream_test.go).
func TestDellaRows(t *testing.T) {
	m := method(t, "della_linear")
	// Two rows of 5: |δ| ranks row 0: [3,1,5,2,4]; row 1 ties: [1,2,3,4,5] by index.
	delta := []float32{0.3, 0.1, 0.5, -0.2, 0.4, 1, 1, -1, 1, 1}
	base := []float32{1, 1, 1, 1, 1, 2, 2, 2, 2, 2}
	x := make([]float32, 10)
	for i := range x {
		x[i] = base[i] + delta[i]
	}
	ranks := []int{3, 1, 5, 2, 4, 1, 2, 3, 4, 5}
	const rho, eps = 0.5, 0.25
	for seed := range uint64(50) {
		tt := tensor(t, m, 10, nil, Params{"weight": 1.0, "density": rho, "epsilon": eps})
		tt.Shape, tt.Seed = []int64{2, 5}, seed
		k := m.New(tt)
		if k.Granule() != 5 {
			t.Fatalf("granule %d, want the row length 5", k.Granule())
		}
		got := run(k, [][]float32{base, x}, 5)
		s := NewStream(seed, 1, tt.Name)
		for i := range got {
			p := (rho - eps) + 2*eps*float64(ranks[i]-1)/4
			want := base[i]
			if s.Uniform(int64(i)) < p {
				want = float32(float64(base[i]) + (float64(x[i])-float64(base[i]))/p)
			}
			if got[i] != want {
				t.Fatalf("seed %d element %d: %v, want %v (p %v)", seed, i, got[i], want, p)
			}
		}
	}
}

// DELLA's window must stay inside (0, 1]: a config error naming both values.
func TestDellaEpsilonCheck(t *testing.T) {
	for _, name := range []string{"della", "della_linear"} {
		m := method(t, name)
		for _, c := range []struct{ rho, eps float64 }{{0.1, 0.1}, {0.1, 0.2}, {0.9, 0.15}, {1, 0.15}} {
			tt := &Tensor{N: 4, Shape: []int64{4}, HasBase: true, Models: []int{0, 1},
				Args: []Params{{}, {"weight": 1.0, "density": c.rho, "epsilon": c.eps}}}
			err := m.Check(tt)
			if err == nil {
				t.Errorf("%s density %v epsilon %v: no error", name, c.rho, c.eps)
				continue
			}
			for _, v := range []string{"density", "epsilon", fmtFloat(c.rho), fmtFloat(c.eps)} {
				if !strings.Contains(err.Error(), v) {
					t.Errorf("%s: %q does not name %s", name, err, v)
				}
			}
		}
		ok := &Tensor{N: 4, Shape: []int64{4}, HasBase: true, Models: []int{0, 1},
			Args: []Params{{}, {"weight": 1.0, "density": 0.5, "epsilon": 0.4}}}
		if err := m.Check(ok); err != nil {
			t.Errorf("%s density 0.5 epsilon 0.4: %v", name, err)
		}
	}
}

func fmtFloat(f float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%f", f), "0"), ".")
}

// DELLA keeps each element with about its probability: the mean over seeds approaches δ.
func TestDellaUnbiased(t *testing.T) {
	m := method(t, "della")
	const n, seeds = 16, 3000
	base := make([]float32, n)
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i%5+1) / 8
	}
	sum := make([]float64, n)
	for seed := range uint64(seeds) {
		tt := tensor(t, m, n, nil, Params{"weight": 1.0, "density": 0.4, "epsilon": 0.2})
		tt.Seed, tt.Shape = seed, []int64{2, 8}
		got := run(m.New(tt), [][]float32{base, x}, 8)
		for i := range got {
			sum[i] += float64(got[i])
		}
	}
	for i := range sum {
		d := float64(x[i])
		mean := sum[i] / seeds
		sd := d * math.Sqrt((1-0.2)/0.2/seeds) // p ≥ 0.2
		if math.Abs(mean-d) > 5*sd {
			t.Errorf("element %d: mean %v over %d seeds, δ %v", i, mean, seeds, d)
		}
	}
}
