// Package vectest makes the inputs of the tests that compare vector loops (the AVX2 ones of
// core/dtype and core/merge, the WebAssembly SIMD kernels tested from wasm/) with the
// portable Go loops, which must give the same bits.
package vectest

import (
	"math"
	"math/rand/v2"
	"slices"
)

// AllBF16 returns every BF16 bit pattern once, little-endian, in order.
func AllBF16() []byte {
	src := make([]byte, 2<<16)
	for h := range 1 << 16 {
		src[2*h], src[2*h+1] = byte(h), byte(h>>8)
	}
	return src
}

// BF16WithBad returns n finite BF16 values with, when bad >= 0, a NaN or ±Inf at bad.
func BF16WithBad(n, bad int) []byte {
	s := make([]byte, 2*n)
	for i := range n {
		s[2*i], s[2*i+1] = byte(i), 0x3f
	}
	if bad >= 0 {
		s[2*bad], s[2*bad+1] = 0x80|byte(bad%3), 0x7f|byte(bad&1)<<7 // low byte 0x80: ±Inf, else NaN
	}
	return s
}

// Float32s returns n float32s to encode: random bits (NaNs among them), values just around
// BF16 halfway points, the largest finite values (overflowing to Inf when rounded), and
// zeros, subnormals, infinities and NaNs.
func Float32s(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 2))
	v := make([]float32, n)
	for i := range v {
		var u uint32
		switch i % 4 {
		case 0:
			u = r.Uint32()
		case 1:
			u = r.Uint32()&^0xffff | 0x8000 + uint32(r.IntN(3)) - 1
		case 2:
			u = 0x7f7f0000 | r.Uint32()&0xffff | r.Uint32()&0x80000000
		default:
			u = []uint32{0, 0x80000000, 1, 0x807fffff, 0x7f800000, 0xff800000, 0x7fc00000, 0xffbfffff, 0x7f800001}[r.IntN(9)]
		}
		v[i] = math.Float32frombits(u)
	}
	return v
}

// Deltas returns n values each of a base and two fine-tunes: deltas of fine-tune size, and
// among them ±0, subnormals, ±Inf, NaNs with payloads, the largest finite values, models
// equal to the base, elements of signed zeros only (where a sum's +0 start shows), and an
// eighth of deltas of exactly ±2^-7 (many equal magnitudes, among the largest: top-k
// boundaries with ties).
func Deltas(n int, seed uint64) (b, x0, x1 []float32) {
	r := rand.New(rand.NewPCG(seed, 7))
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-40, float32(math.Inf(1)),
		float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), math.Float32frombits(0xffa00000),
		math.MaxFloat32, -math.MaxFloat32, 1, -1}
	v := func() float32 {
		if r.IntN(20) == 0 {
			return special[r.IntN(len(special))]
		}
		return float32(r.NormFloat64() * 0.02)
	}
	b, x0, x1 = make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range n {
		b[i] = v()
		x0[i], x1[i] = b[i]+v()*0.01, b[i]+v()*0.01
		if r.IntN(10) == 0 {
			x0[i] = b[i]
		}
		if r.IntN(10) == 0 {
			x1[i] = v()
		}
		switch r.IntN(8) {
		case 0:
			z := [2]float32{0, float32(math.Copysign(0, -1))}
			b[i], x0[i], x1[i] = z[r.IntN(2)], z[r.IntN(2)], z[r.IntN(2)]
		case 1:
			s := [2]float32{1.0 / 128, -1.0 / 128}
			b[i] = 0.25
			x0[i], x1[i] = b[i]+s[r.IntN(2)], b[i]+s[r.IntN(2)]
		}
	}
	return b, x0, x1
}

// SameBits reports whether a and b hold the same bits, except that a NaN matches any NaN:
// which NaN an operation on two NaNs returns depends on its operands' order, which the
// compilers choose (conversions, which keep NaN bits, are compared with slices.Equal).
func SameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool {
		return math.Float32bits(x) == math.Float32bits(y) || x != x && y != y
	})
}

// Bits returns the bits of x.
func Bits(x []float32) []uint32 {
	u := make([]uint32, len(x))
	for i, v := range x {
		u[i] = math.Float32bits(v)
	}
	return u
}
