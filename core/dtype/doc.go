// Package dtype names the element types of safetensors tensors and converts the
// floating ones between little-endian bytes and float32.
//
// The names are spelled as in safetensors headers ("F32", "BF16", "F8_E4M3", ...);
// see https://github.com/huggingface/safetensors. [Parse] inverts [DType.String].
//
// Only F64, F32, F16 and BF16 ([DType.IsFloat]) are converted: [Decode] turns len(dst)
// elements into float32 and [Encode] turns float32 back into the dtype. Integer, BOOL
// and F8 tensors are never converted: callers copy their bytes unchanged.
//
// # Rounding
//
// Decoding F32, F16 and BF16 is exact, since every F16 and BF16 value is a float32.
// Decoding F64 rounds to the nearest float32, ties to even (Go's float64 to float32
// conversion); F64 values beyond the float32 range become ±Inf.
//
// Encoding to F32 and F64 is exact. Encoding to F16 and BF16 rounds to nearest, ties
// to even (IEEE 754 roundTiesToEven): a float32 is replaced by the nearer of its two
// neighbouring representable values and, at exactly halfway, by the one whose last
// significand bit is 0. Values at or beyond the largest finite value plus half an
// ulp become ±Inf (F16: |x| >= 65520; BF16: |x| >= 0x1.ff8p127). Values too small
// round to ±0 or to a subnormal of the target; the sign of zero is kept.
//
// # NaN and infinities
//
// ±Inf and ±0 are kept exactly. A NaN stays a NaN with the same sign: its payload
// keeps as many leading bits as fit, and its quiet bit is set, so a signalling NaN
// comes back quiet. Decoding BF16 keeps the NaN bits unchanged (it is a shift);
// decoding F16 sets the quiet bit.
//
// F16 decoding looks values up in a table filled by github.com/x448/float16; F16
// encoding is done here and gives x448's results for every float32. BF16 conversion is
// done here (see [BF16ToFloat32] and [Float32ToBF16]).
//
// # Concurrency and allocation
//
// All functions are safe for concurrent use. Decode and Encode do not allocate;
// they panic, as a documented programmer error, on a non-float dtype or on slice
// lengths that do not match.
package dtype
