package merge

import (
	"slices"
	"testing"
)

// Breadcrumbs windows worked by hand: sort |δ| ascending (ties by index), keep positions
// [n_bot, n − n_top) with n_top = floor(γn), n_bot = n − floor(ρn) − n_top.
func TestBreadcrumbsGolden(t *testing.T) {
	// |δ|·16 = 1, 9, 3, 5, 2, 7, 4, 6, 8, 10: ascending i0 i4 i2 i6 i3 i7 i5 i8 i1 i9.
	d10 := []float32{1, -9, 3, 5, -2, 7, 4, -6, 8, 10}
	for i := range d10 {
		d10[i] /= 16
	}
	keepOnly := func(d []float32, idx ...int) []float32 {
		out := make([]float32, len(d))
		for _, i := range idx {
			out[i] = d[i]
		}
		return out
	}
	for _, c := range []struct {
		name         string
		d            []float32
		density, gam float64
		want         []float32 // the kept delta
	}{
		// target 5, n_top 1, n_bot 4: positions 4..8 = i3 i7 i5 i8 i1.
		{"window", d10, 0.5, 0.1, keepOnly(d10, 3, 7, 5, 8, 1)},
		// gamma 0: n_top 0, n_bot 5: the window runs to the largest (i7 i5 i8 i1 i9).
		{"gamma-0", d10, 0.5, 0, keepOnly(d10, 7, 5, 8, 1, 9)},
		// target 9, n_top 2, n_bot −1 → n_top 1, n_bot 0: all but the largest.
		{"n_bot-negative", d10, 0.95, 0.2, keepOnly(d10, 0, 1, 2, 3, 4, 5, 6, 7, 8)},
		// density 1: target 10, n_top 1 → n_bot −1 → n_top 0: everything.
		{"density-1", d10, 1, 0.1, d10},
		// density 0: target 0, n_top 1, n_bot 9: only position 9 would remain, but it is
		// excluded as the outlier: nothing.
		{"density-0", d10, 0, 0.1, make([]float32, 10)},
		// Ties at the bottom go by lower index: |δ| = 1,1,1,1,2; target 2, n_top 1,
		// n_bot 2: ascending i0 i1 i2 i3 i4, positions 2..3 = i2 i3.
		{"ties-bottom", []float32{1, -1, 1, -1, 2}, 0.4, 0.2, []float32{0, 0, 1, -1, 0}},
		// Ties at the top: |δ| = 2,2,2,1,1; ascending i3 i4 i0 i1 i2, positions 2..3 =
		// i0 i1; the excluded outlier is i2, the highest index among the equal largest.
		{"ties-top", []float32{2, -2, 2, 1, 1}, 0.4, 0.2, []float32{2, -2, 0, 0, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := len(c.d)
			base := make([]float32, n)
			x := make([]float32, n)
			for i := range base {
				base[i] = float32(i) - 3
				x[i] = base[i] + c.d[i]
			}
			want := make([]float32, n)
			for i := range want {
				want[i] = base[i] + c.want[i]
			}
			m, ten := shapedTensor(t, "breadcrumbs", []int64{int64(n)}, true,
				[]Params{{}, {"weight": 1.0, "density": c.density, "gamma": c.gam}}, nil)
			if got := runAll(t, m, ten, [][]float32{base, x}); !slices.Equal(got, want) {
				t.Errorf("breadcrumbs density %v gamma %v = %v, want %v", c.density, c.gam, got, want)
			}
		})
	}
}

// TestBreadcrumbsTies: δ1 = [0.5, −0.25, 0, −1], δ2 = [−1, 1, 0.5, 0.5], density 0.5,
// gamma 0.25 (target 2, n_top 1, n_bot 1): δ1 keeps i1 i0 → [0.5, −0.25, 0, 0]; δ2
// (ascending i2 i3 i0 i1) keeps i3 i0 → [−1, 0, 0, 0.5].
func TestBreadcrumbsTies(t *testing.T) {
	base := []float32{1, -2, 0.5, 4}
	in := [][]float32{base, {1.5, -2.25, 0.5, 3}, {0, -1, 1, 4.5}}
	a := Params{"weight": 1.0, "density": 0.5, "gamma": 0.25}
	for _, c := range []struct {
		method string
		want   []float32
	}{
		// Sum: [−0.5, −0.25, 0, 0.5].
		{"breadcrumbs", []float32{0.5, -2.25, 0.5, 4.5}},
		// Consensus: element 0 elects − (0.5 − 1 < 0) and keeps only −1.
		{"breadcrumbs_ties", []float32{0, -2.25, 0.5, 4.5}},
	} {
		m, ten := shapedTensor(t, c.method, []int64{4}, true, []Params{{}, a, a}, nil)
		if got := runAll(t, m, ten, in); !slices.Equal(got, c.want) {
			t.Errorf("%s = %v, want %v", c.method, got, c.want)
		}
	}
}
