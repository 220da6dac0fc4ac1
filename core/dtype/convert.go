package dtype

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"

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
		if littleEndian {
			copy(bytesOf(dst), src)
			break
		}
		src = src[:4*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F64:
		src = src[:8*len(dst)]
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
	case F16:
		t := f16Table()
		src = src[:2*len(dst)]
		for i := range dst {
			dst[i] = t[binary.LittleEndian.Uint16(src[2*i:])]
		}
	case BF16:
		decodeBF16(dst, src)
	}
}

// DecodeFinite is Decode that also reports whether the values are certainly finite: true
// means none is a NaN or ±Inf; false means some may be, and the caller must look at dst.
// BF16 is tested while it is decoded, F16 and F32 on their bytes, and F64, whose huge
// values become ±Inf only in decoding, is always reported false.
func DecodeFinite(dst []float32, src []byte, d DType) bool {
	if d == BF16 {
		checkLen("DecodeFinite", d, len(src), len(dst))
		return decodeBF16(dst, src)
	}
	Decode(dst, src, d)
	return d != F64 && finiteBits(src, d)
}

// finiteBits reports whether src, little-endian F16 or F32 values, certainly holds no NaN
// or ±Inf: false when one of its whole 64-bit words holds one, and also when a tail of
// fewer than 8 bytes is left unchecked. It tests 64 bits at a time for a value whose
// exponent bits are all ones (a lane of x = (w & m) ^ m is zero), with the classic
// has-a-zero-lane trick, exact here because no lane of x has its top bit set.
func finiteBits(src []byte, d DType) bool {
	m, one, top := uint64(0x7c007c007c007c00), uint64(0x0001000100010001), uint64(0x8000800080008000)
	if d == F32 {
		m, one, top = 0x7f8000007f800000, 0x0000000100000001, 0x8000000080000000
	}
	var bad uint64
	i := 0
	for ; i+32 <= len(src); i += 32 { // 32 bytes per iteration, one bounds check
		r := src[i : i+32 : i+32]
		x0 := binary.LittleEndian.Uint64(r)&m ^ m
		x1 := binary.LittleEndian.Uint64(r[8:])&m ^ m
		x2 := binary.LittleEndian.Uint64(r[16:])&m ^ m
		x3 := binary.LittleEndian.Uint64(r[24:])&m ^ m
		bad |= (x0-one)&^x0 | (x1-one)&^x1 | (x2-one)&^x2 | (x3-one)&^x3
	}
	for ; i+8 <= len(src); i += 8 {
		x := binary.LittleEndian.Uint64(src[i:])&m ^ m
		bad |= (x - one) &^ x
	}
	return bad&top == 0 && i == len(src)
}

// decodeBF16 and encodeBF16 run the BF16 loops: the portable ones below, with
// GOEXPERIMENT=simd on amd64 machines with AVX2 the vector ones of convert_simd.go, or under
// GOOS=js the WebAssembly SIMD kernels when the page loaded them (wasm.go); all give the
// same bits (TestSIMDConversions, wasm/kernels_test.go).
func decodeBF16(dst []float32, src []byte) bool {
	switch {
	case useAVX2:
		return decodeBF16AVX2(dst, src)
	case useWasmSIMD:
		return decodeBF16Wasm(dst, src)
	}
	return decodeBF16Go(dst, src)
}

func encodeBF16(dst []byte, src []float32) {
	switch {
	case useAVX2:
		encodeBF16AVX2(dst, src)
	case useWasmSIMD:
		encodeBF16Wasm(dst, src)
	default:
		encodeBF16Go(dst, src)
	}
}

// decodeBF16Go decodes four elements per 64-bit load, sixteen per iteration with one bounds
// check (under GOARCH=wasm every iteration and every check costs several instructions):
// each float32 is a bfloat16 shifted into the upper half. It writes the float32s' bits
// (see bitsOf). It reports whether no value is a NaN or ±Inf, testing each word as
// finiteBits does.
func decodeBF16Go(dst []float32, src []byte) bool {
	const m, one = 0x7f807f807f807f80, 0x0001000100010001
	src = src[:2*len(dst)]
	u := bitsOf(dst)
	var bad uint64
	i := 0
	for ; i+16 <= len(u); i += 16 {
		s := src[2*i : 2*i+32 : 2*i+32]
		d := u[i : i+16 : i+16]
		w := binary.LittleEndian.Uint64(s)
		x := w&m ^ m
		bad |= (x - one) &^ x
		d[0], d[1], d[2], d[3] = uint32(w)<<16, uint32(w)&^0xffff, uint32(w>>32)<<16, uint32(w>>32)&^0xffff
		w = binary.LittleEndian.Uint64(s[8:])
		x = w&m ^ m
		bad |= (x - one) &^ x
		d[4], d[5], d[6], d[7] = uint32(w)<<16, uint32(w)&^0xffff, uint32(w>>32)<<16, uint32(w>>32)&^0xffff
		w = binary.LittleEndian.Uint64(s[16:])
		x = w&m ^ m
		bad |= (x - one) &^ x
		d[8], d[9], d[10], d[11] = uint32(w)<<16, uint32(w)&^0xffff, uint32(w>>32)<<16, uint32(w>>32)&^0xffff
		w = binary.LittleEndian.Uint64(s[24:])
		x = w&m ^ m
		bad |= (x - one) &^ x
		d[12], d[13], d[14], d[15] = uint32(w)<<16, uint32(w)&^0xffff, uint32(w>>32)<<16, uint32(w>>32)&^0xffff
	}
	for ; i < len(u); i++ {
		h := binary.LittleEndian.Uint16(src[2*i:])
		u[i] = uint32(h) << 16
		if h&0x7f80 == 0x7f80 {
			bad |= 0x8000
		}
	}
	return bad&0x8000800080008000 == 0
}

// littleEndian reports whether this machine stores numbers little-endian, as safetensors
// files do (amd64, arm64 and wasm all do): F32 then converts by copying bytes.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// bitsOf returns x's memory as uint32s: float32 bits without math.Float32bits, which
// GOARCH=wasm compiles to a store and a load through the stack for every element.
func bitsOf(x []float32) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(x))), len(x))
}

// bytesOf returns x's memory as bytes, in the machine's byte order.
func bytesOf(x []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
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
		if littleEndian {
			copy(dst, bytesOf(src))
			break
		}
		dst = dst[:4*len(src)]
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F64:
		dst = dst[:8*len(src)]
		for i, v := range src {
			binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(float64(v)))
		}
	case F16:
		dst = dst[:2*len(src)]
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], float32ToF16(v))
		}
	case BF16:
		encodeBF16(dst, src)
	}
}

// encodeBF16Go encodes four elements per 64-bit store, sixteen per iteration with one
// bounds check (see decodeBF16Go), reading the float32s' bits.
func encodeBF16Go(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	u := bitsOf(src)
	i := 0
	for ; i+16 <= len(u); i += 16 {
		s := u[i : i+16 : i+16]
		d := dst[2*i : 2*i+32 : 2*i+32]
		binary.LittleEndian.PutUint64(d, uint64(bf16Bits(s[0]))|uint64(bf16Bits(s[1]))<<16|
			uint64(bf16Bits(s[2]))<<32|uint64(bf16Bits(s[3]))<<48)
		binary.LittleEndian.PutUint64(d[8:], uint64(bf16Bits(s[4]))|uint64(bf16Bits(s[5]))<<16|
			uint64(bf16Bits(s[6]))<<32|uint64(bf16Bits(s[7]))<<48)
		binary.LittleEndian.PutUint64(d[16:], uint64(bf16Bits(s[8]))|uint64(bf16Bits(s[9]))<<16|
			uint64(bf16Bits(s[10]))<<32|uint64(bf16Bits(s[11]))<<48)
		binary.LittleEndian.PutUint64(d[24:], uint64(bf16Bits(s[12]))|uint64(bf16Bits(s[13]))<<16|
			uint64(bf16Bits(s[14]))<<32|uint64(bf16Bits(s[15]))<<48)
	}
	for ; i < len(u); i++ {
		binary.LittleEndian.PutUint16(dst[2*i:], bf16Bits(u[i]))
	}
}

// f16Table maps every F16 bit pattern to its float32 value, as x448/float16 converts it;
// made on first use (256 KiB): a lookup is several times faster than the conversion.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	t := new([1 << 16]float32)
	for h := range t {
		t[h] = float16.Frombits(uint16(h)).Float32()
	}
	return t
})

// float32ToF16 returns the F16 bits nearest to f, ties to even, with the package's NaN
// rule; the same results as x448/float16's Fromfloat32 (TestEncodeRandom and, with
// FREELUNCH_LONG=1, every float32 check it against a float64 reference), faster.
func float32ToF16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	a := u &^ (1 << 31)
	switch {
	case a >= 0x47800000: // |f| >= 65536, Inf or NaN
		if a > 0x7f800000 { // NaN: leading payload bits, quieted
			return sign | 0x7e00 | uint16(a>>13)&0x3ff
		}
		return sign | 0x7c00
	case a < 0x38800000: // below the smallest normal F16 (2^-14): subnormal or zero
		// Adding 0.5 aligns the value's F16 subnormal steps (2^-24) with the float32
		// ulp at 0.5 (2^-24), so the float32 addition rounds to nearest even for us.
		return sign | uint16(math.Float32bits(math.Float32frombits(a)+0.5)-0x3f000000)
	}
	// Normal: rebias the exponent and round the 13 dropped bits to nearest even; a carry
	// into the exponent is right, up to Inf (0x7c00) from 65520 on.
	a += 0xc8000fff + (a>>13)&1 // (15-127)<<23 + 0xfff, mod 2^32
	return sign | uint16(a>>13)
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
func Float32ToBF16(f float32) uint16 { return bf16Bits(math.Float32bits(f)) }

// bf16Bits is Float32ToBF16 of the float32 with bits u.
func bf16Bits(u uint32) uint16 {
	// Add just under half of the dropped part's unit, plus 1 if the kept part is odd:
	// a carry out of the dropped 16 bits rounds up, exactly at halfway only when odd.
	// The carry may run into the exponent, which is right: it rounds up to the next
	// binade or, from the largest finite value, to Inf. (A NaN's sum may overflow; it is
	// not used.)
	r := (u + 0x7fff + (u>>16)&1) >> 16
	if u&0x7fffffff > 0x7f800000 { // NaN: truncate and quiet; rounding could make it Inf.
		r = u>>16 | 0x0040
	}
	return uint16(r)
}
