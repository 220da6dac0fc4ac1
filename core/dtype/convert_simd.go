//go:build goexperiment.simd && amd64

package dtype

import (
	"simd/archsimd"
	"unsafe"
)

// The BF16 loops in AVX2, sixteen elements per iteration; the same bits as the portable
// loops, which also finish the last few elements, after ClearAVXUpperBits (legacy SSE
// code, as Go compiles scalar float operations and some copies, runs very slowly while
// the vector registers' upper halves are in use).

// useAVX2 reports whether decodeBF16 and encodeBF16 run the loops below
// (convert_portable.go: never).
var useAVX2 = archsimd.X86.AVX2()

// useAVX512 reports whether decodeBF16AVX2 runs its 512-bit twin: where the CPU has
// AVX-512 (F, CD, BW, DQ and VL).
var useAVX512 = archsimd.X86.AVX512()

// uint16sOf returns the first n little-endian uint16s of b (amd64 is little-endian).
func uint16sOf(b []byte, n int) []uint16 {
	_ = b[:2*n]
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// decodeBF16AVX2 is decodeBF16Go: each value zero-extended to 32 bits and shifted into the
// upper half; a value is NaN or ±Inf when its exponent bits are all ones.
func decodeBF16AVX2(dst []float32, src []byte) bool {
	if useAVX512 {
		return decodeBF16AVX512(dst, src)
	}
	s, u := uint16sOf(src, len(dst)), bitsOf(dst)
	exp := archsimd.BroadcastUint32x8(0x7f800000)
	var bad uint8
	i := 0
	for ; i+16 <= len(u); i += 16 {
		a := archsimd.LoadUint16x8Slice(s[i:]).ExtendToUint32().ShiftAllLeft(16)
		b := archsimd.LoadUint16x8Slice(s[i+8:]).ExtendToUint32().ShiftAllLeft(16)
		bad |= a.And(exp).Equal(exp).Or(b.And(exp).Equal(exp)).ToBits()
		a.StoreSlice(u[i:])
		b.StoreSlice(u[i+8:])
	}
	archsimd.ClearAVXUpperBits()
	return decodeBF16Go(dst[i:], src[2*i:]) && bad == 0
}

// decodeBF16AVX512 is decodeBF16AVX2 sixteen elements at a time in 512-bit registers.
func decodeBF16AVX512(dst []float32, src []byte) bool {
	s, u := uint16sOf(src, len(dst)), bitsOf(dst)
	exp := archsimd.BroadcastUint32x16(0x7f800000)
	var bad uint16
	i := 0
	for ; i+16 <= len(u); i += 16 {
		a := archsimd.LoadUint16x16Slice(s[i:]).ExtendToUint32().ShiftAllLeft(16)
		bad |= a.And(exp).Equal(exp).ToBits()
		a.StoreSlice(u[i:])
	}
	archsimd.ClearAVXUpperBits()
	return decodeBF16Go(dst[i:], src[2*i:]) && bad == 0
}

// encodeBF16AVX2 is encodeBF16Go (see bf16Bits) on eight values at a time, the results
// packed to sixteen bits in order.
func encodeBF16AVX2(dst []byte, src []float32) {
	d, u := uint16sOf(dst, len(src)), bitsOf(src)
	i := 0
	for ; i+16 <= len(u); i += 16 {
		a := bf16BitsAVX2(archsimd.LoadUint32x8Slice(u[i:]))
		b := bf16BitsAVX2(archsimd.LoadUint32x8Slice(u[i+8:]))
		// The pack works within each 128-bit half: give it a's and b's low halves in one
		// vector and their high halves in the other.
		lo, hi := a.Select128FromPair(0, 2, b), a.Select128FromPair(1, 3, b)
		lo.SaturateToUint16ConcatGrouped(hi).StoreSlice(d[i:])
	}
	archsimd.ClearAVXUpperBits()
	encodeBF16Go(dst[2*i:], src[i:])
}

// bf16BitsAVX2 is bf16Bits of each element, as an int32 in [0, 0xffff]. (It shifts by a
// vector of counts: Uint32x8.ShiftAllRight(16) moves its count with a legacy SSE MOVQ in
// every iteration, Go 1.26.8, and ran 30 times slower.)
func bf16BitsAVX2(u archsimd.Uint32x8) archsimd.Int32x8 {
	sh := archsimd.BroadcastUint32x8(16)
	r := u.Add(archsimd.BroadcastUint32x8(0x7fff)).
		Add(u.ShiftRight(sh).And(archsimd.BroadcastUint32x8(1))).ShiftRight(sh)
	nan := u.And(archsimd.BroadcastUint32x8(0x7fffffff)).AsInt32x8().Greater(archsimd.BroadcastInt32x8(0x7f800000))
	quiet := u.ShiftRight(sh).Or(archsimd.BroadcastUint32x8(0x0040))
	return quiet.Merge(r, nan).AsInt32x8()
}
