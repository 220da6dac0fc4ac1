package dtype

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/x448/float16"
)

// Decode converts len(dst) elements of dtype d from little-endian src to float32.
// It panics if d is not a float dtype or len(src) != len(dst)*d.Size().
//
// F32, F16 and BF16 decode exactly; F64 rounds to the nearest float32, ties to even.
// NaNs stay NaN with their sign (see the package doc). For BF16 it is
//
//	for i := range dst {
//		dst[i] = BF16ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
//	}
func Decode(dst []float32, src []byte, d DType) {
	checkLen("Decode", d, len(src), len(dst))
	switch d {
	case F32:
		for len(dst) > 0 && len(src) >= 4 {
			dst[0] = math.Float32frombits(binary.LittleEndian.Uint32(src))
			dst, src = dst[1:], src[4:]
		}
	case F64:
		for len(dst) > 0 && len(src) >= 8 {
			dst[0] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src)))
			dst, src = dst[1:], src[8:]
		}
	case F16:
		for len(dst) > 0 && len(src) >= 2 {
			dst[0] = float16.Frombits(binary.LittleEndian.Uint16(src)).Float32()
			dst, src = dst[1:], src[2:]
		}
	case BF16:
		for len(dst) > 0 && len(src) >= 2 {
			dst[0] = BF16ToFloat32(binary.LittleEndian.Uint16(src))
			dst, src = dst[1:], src[2:]
		}
	}
}

// Encode converts src to dtype d into little-endian dst, rounding to nearest even.
// It panics if d is not a float dtype or len(dst) != len(src)*d.Size().
//
// F32 and F64 encode exactly. F16 and BF16 round to nearest, ties to even; values
// past the largest finite value plus half an ulp become ±Inf, and NaNs stay NaN
// with their sign, quieted (see the package doc). For BF16 it is
//
//	for i, v := range src {
//		binary.LittleEndian.PutUint16(dst[2*i:], Float32ToBF16(v))
//	}
func Encode(dst []byte, src []float32, d DType) {
	checkLen("Encode", d, len(dst), len(src))
	switch d {
	case F32:
		for len(src) > 0 && len(dst) >= 4 {
			binary.LittleEndian.PutUint32(dst, math.Float32bits(src[0]))
			dst, src = dst[4:], src[1:]
		}
	case F64:
		for len(src) > 0 && len(dst) >= 8 {
			binary.LittleEndian.PutUint64(dst, math.Float64bits(float64(src[0])))
			dst, src = dst[8:], src[1:]
		}
	case F16:
		for len(src) > 0 && len(dst) >= 2 {
			binary.LittleEndian.PutUint16(dst, float16.Fromfloat32(src[0]).Bits())
			dst, src = dst[2:], src[1:]
		}
	case BF16:
		for len(src) > 0 && len(dst) >= 2 {
			binary.LittleEndian.PutUint16(dst, Float32ToBF16(src[0]))
			dst, src = dst[2:], src[1:]
		}
	}
}

// checkLen panics unless d is a float dtype and nbytes == n*d.Size().
func checkLen(op string, d DType, nbytes, n int) {
	if !d.IsFloat() {
		panic("dtype: " + op + " of non-float dtype " + d.String())
	}
	// n*size cannot overflow for slices that exist, but compare by division to be safe.
	if size := d.Size(); nbytes%size != 0 || nbytes/size != n {
		panic(fmt.Sprintf("dtype: %s %v: %d bytes for %d elements, want %d bytes", op, d, nbytes, n, n*d.Size()))
	}
}

// BF16ToFloat32 returns the float32 value of the bfloat16 bits h. It is exact:
// bfloat16 is the upper half of a float32, so NaN bits are kept unchanged.
func BF16ToFloat32(h uint16) float32 {
	return math.Float32frombits(uint32(h) << 16)
}

// Float32ToBF16 returns the bfloat16 bits nearest to f, ties to even.
// ±0 and ±Inf are kept; finite values with |f| >= 0x1.ff8p127 (the largest bfloat16
// plus half an ulp) become ±Inf. A NaN stays NaN with the same sign and the leading
// 6 payload bits, with the quiet bit set.
func Float32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 { // NaN: truncate and quiet; rounding could make it Inf.
		return uint16(u>>16) | 0x0040
	}
	// Add just under half of the dropped part's unit, plus 1 if the kept part is odd:
	// a carry out of the dropped 16 bits rounds up, exactly at halfway only when odd.
	// The carry may run into the exponent, which is right: it rounds up to the next
	// binade or, from the largest finite value, to Inf. No uint32 overflow: u <= 0xff800000.
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}
