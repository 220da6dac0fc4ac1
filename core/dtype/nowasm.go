//go:build !(js && wasm)

package dtype

// Only GOOS=js has the WebAssembly SIMD kernels (wasm.go).
const useWasmSIMD = false

func decodeBF16Wasm(dst []float32, src []byte) bool { return decodeBF16Go(dst, src) }

func encodeBF16Wasm(dst []byte, src []float32) { encodeBF16Go(dst, src) }
