//go:build goexperiment.simd && amd64

package dtype

import (
	"simd/archsimd"
	"slices"
	"testing"

	"freelunch/internal/vectest"
)

// TestSIMDConversions checks the AVX2 BF16 loops against the portable ones: every BF16
// value decoded, and random float32 bits (with every special case among them) encoded, at
// every length up to 64 so that the portable tail is covered too.
func TestSIMDConversions(t *testing.T) {
	if !archsimd.X86.AVX2() {
		t.Skip("no AVX2")
	}
	src := vectest.AllBF16()
	// The AVX2 loop, then its 512-bit twin where the CPU has AVX-512.
	for _, avx512 := range []bool{false, true} {
		if avx512 && !archsimd.X86.AVX512() {
			t.Log("no AVX-512: decodeBF16AVX512 not run")
			continue
		}
		useAVX512 = avx512
		want, got := make([]float32, 1<<16), make([]float32, 1<<16)
		decodeBF16Go(want, src)
		decodeBF16AVX2(got, src)
		if !slices.Equal(bitsOf(want), bitsOf(got)) {
			t.Fatalf("AVX-512 %v: decodeBF16AVX2 differs from decodeBF16Go", avx512)
		}
		// Finite reports: a NaN or Inf at each position of short slices, else none.
		for n := range 65 {
			for bad := -1; bad < n; bad++ {
				s := vectest.BF16WithBad(n, bad)
				w, g := make([]float32, n), make([]float32, n)
				fw, fg := decodeBF16Go(w, s), decodeBF16AVX2(g, s)
				if fw != fg || fw != (bad < 0) || !slices.Equal(bitsOf(w), bitsOf(g)) {
					t.Fatalf("AVX-512 %v, n=%d, bad at %d: decodeBF16AVX2 reports finite %v, decodeBF16Go %v", avx512, n, bad, fg, fw)
				}
			}
		}
	}
	useAVX512 = archsimd.X86.AVX512()

	vals := vectest.Float32s(1<<20, 1)
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
