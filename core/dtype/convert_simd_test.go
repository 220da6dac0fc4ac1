//go:build goexperiment.simd && amd64

package dtype

import (
	"math/rand/v2"
	"simd/archsimd"
	"slices"
	"testing"
)

// TestSIMDConversions checks the AVX2 BF16 loops against the portable ones: every BF16
// value decoded, and random float32 bits (with every special case among them) encoded, at
// every length up to 64 so that the portable tail is covered too.
func TestSIMDConversions(t *testing.T) {
	if !archsimd.X86.AVX2() {
		t.Skip("no AVX2")
	}
	src := make([]byte, 2<<16)
	for h := range 1 << 16 {
		src[2*h], src[2*h+1] = byte(h), byte(h>>8)
	}
	want, got := make([]float32, 1<<16), make([]float32, 1<<16)
	decodeBF16Go(want, src)
	decodeBF16AVX2(got, src)
	if !slices.Equal(bitsOf(want), bitsOf(got)) {
		t.Fatal("decodeBF16AVX2 differs from decodeBF16Go")
	}
	// Finite reports: a NaN or Inf at each position of short slices, else none.
	for n := range 65 {
		for bad := -1; bad < n; bad++ {
			s := make([]byte, 2*n)
			for i := range n {
				s[2*i], s[2*i+1] = byte(i), 0x3f
			}
			if bad >= 0 {
				s[2*bad+1] = 0x7f | byte(bad&1)<<7 // +Inf or -Inf pattern with low byte i
				s[2*bad] = 0x80 | byte(bad%3)
			}
			w, g := make([]float32, n), make([]float32, n)
			fw, fg := decodeBF16Go(w, s), decodeBF16AVX2(g, s)
			if fw != fg || fw != (bad < 0) || !slices.Equal(bitsOf(w), bitsOf(g)) {
				t.Fatalf("n=%d, bad at %d: decodeBF16AVX2 reports finite %v, decodeBF16Go %v", n, bad, fg, fw)
			}
		}
	}

	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]float32, 1<<20)
	u := bitsOf(vals)
	for i := range u {
		switch i % 4 {
		case 0: // anything, NaNs included
			u[i] = r.Uint32()
		case 1: // halfway and near-halfway cases
			u[i] = r.Uint32()&^0xffff | 0x8000 + uint32(r.IntN(3)) - 1
		case 2: // the largest finite values and the overflow to Inf
			u[i] = 0x7f7f0000 | r.Uint32()&0xffff | r.Uint32()&0x80000000
		default: // zeros, subnormals, Inf, NaN
			u[i] = []uint32{0, 0x80000000, 1, 0x807fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffbfffff, 0x7f800001}[r.IntN(9)]
		}
	}
	wb, gb := make([]byte, 2*len(vals)), make([]byte, 2*len(vals))
	encodeBF16Go(wb, vals)
	encodeBF16AVX2(gb, vals)
	if !slices.Equal(wb, gb) {
		t.Fatal("encodeBF16AVX2 differs from encodeBF16Go")
	}
	for n := range 65 {
		w, g := make([]byte, 2*n), make([]byte, 2*n)
		encodeBF16Go(w, vals[100:100+n])
		encodeBF16AVX2(g, vals[100:100+n])
		if !slices.Equal(w, g) {
			t.Fatalf("n=%d: encodeBF16AVX2 differs from encodeBF16Go", n)
		}
	}
}
