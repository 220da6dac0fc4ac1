//go:build !(goexperiment.simd && amd64)

package dtype

// Without GOEXPERIMENT=simd on amd64 there are no vector loops (convert_simd.go): the
// portable ones run.
const useAVX2 = false

func decodeBF16AVX2(dst []float32, src []byte) bool { return decodeBF16Go(dst, src) }

func encodeBF16AVX2(dst []byte, src []float32) { encodeBF16Go(dst, src) }
