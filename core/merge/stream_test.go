package merge

import (
	"fmt"
	"math"
	"testing"
)

// The first draws of the §4 stream, computed outside Go with Python's arbitrary-precision
// integers (masking to 64 bits after each multiply) straight from design.md §4. This test
// runs natively and under GOOS=js/wasm; both must agree to the bit.
func TestStreamGolden(t *testing.T) {
	for _, c := range []struct {
		seed  uint64
		model int
		name  string
		bits  [4]uint64 // mix64(key + (i+1)·GAMMA) >> 11 for i = 0..3
		u     [3]string // u(0), u(1), u(1000000) in hex float
	}{
		{0, 0, "model.layers.0.mlp.down_proj.weight",
			[4]uint64{5074686462947585, 4165276079506902, 2115828272563066, 5448150379282624},
			[3]string{"0x1.2076683f87101p-01", "0x1.d9897d2388bacp-02", "0x1.78fea880912b5p-01"}},
		{42, 2, "lm_head.weight",
			[4]uint64{709821636908268, 1355243352446626, 5422205059465708, 2556123115867107},
			[3]string{"0x1.42ca1d42ca76p-04", "0x1.34258ba6d5a88p-03", "0x1.fa1b91ff2236ep-01"}},
		{math.MaxUint64, 1, "é",
			[4]uint64{3429165804406200, 4027169941311035, 5092168504984702, 899337798089001},
			[3]string{"0x1.85d9dc34b8b7p-02", "0x1.c9d61239a9c76p-02", "0x1.087ea15cb6604p-02"}},
	} {
		s := NewStream(c.seed, c.model, c.name)
		for i, want := range c.bits {
			if got := s.bits(int64(i)); got != want {
				t.Errorf("seed %d model %d %q: bits(%d) = %d, want %d", c.seed, c.model, c.name, i, got, want)
			}
		}
		for j, i := range []int64{0, 1, 1000000} {
			if got := s.Uniform(i); got != mustHex(t, c.u[j]) {
				t.Errorf("seed %d model %d %q: u(%d) = %x, want %s", c.seed, c.model, c.name, i, got, c.u[j])
			}
		}
	}
}

func mustHex(t *testing.T, s string) float64 {
	t.Helper()
	var f float64
	if _, err := fmt.Sscan(s, &f); err != nil {
		t.Fatalf("bad hex float %s: %v", s, err)
	}
	return f
}

// Keep(i, p) must agree with Uniform(i) < p, including at p equal to a draw.
func TestStreamKeep(t *testing.T) {
	s := NewStream(3, 1, "x")
	for i := int64(0); i < 10000; i++ {
		u := s.Uniform(i)
		for _, p := range []float64{0, 1e-300, 0.1, 0.5, 0.9, 1, u, math.Nextafter(u, 1), math.Nextafter(u, 0)} {
			if got, want := s.Keep(i, p), u < p; got != want {
				t.Fatalf("Keep(%d, %v) = %v, u = %v", i, p, got, u)
			}
		}
	}
}
