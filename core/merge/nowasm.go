//go:build !(js && wasm)

package merge

// Only GOOS=js has the WebAssembly SIMD kernels (wasm.go).
const useWasmSIMD = false

// merge2Wasm is never called outside GOOS=js (useWasmSIMD is false).
func (k *tvKernel) merge2Wasm(dst []float32, off int64, b, x0, x1 []float32) {}

// countWindowWasm is never called outside GOOS=js (useWasmSIMD is false).
func countWindowWasm(c *[1 << 16]uint32, cand []uint64, off int64, x, b []float32, lo, width uint32) []uint64 {
	return cand
}

// countWindowWasmBF16 is never called outside GOOS=js (useWasmSIMD is false).
func countWindowWasmBF16(c *[1 << 16]uint32, cand []uint64, off int64, x, b []byte, lo, width uint32) []uint64 {
	return cand
}

// dense2Wasm is never called outside GOOS=js (useWasmSIMD is false).
func dense2Wasm(dst, b, x0, x1 []float32, f0, f1, div, lambda float64) {}
