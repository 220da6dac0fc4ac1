//go:build !(js && wasm)

package merge

// Only GOOS=js has the WebAssembly SIMD kernels (wasm.go).
const useWasmSIMD = false

// merge2Wasm is never called outside GOOS=js (useWasmSIMD is false).
func (k *tvKernel) merge2Wasm(dst []float32, off int64, b, x0, x1 []float32) {}
