//go:build js && wasm

package dtype

import (
	"runtime"
	"sync"
	"unsafe"
)

// Under GOOS=js the BF16 loops can run in WebAssembly SIMD kernels (web/kernels.wat; Go
// emits no SIMD) that the wasm/ bridge hands over with UseWasmKernels (the core does not
// talk to JS, design.md §1). Without them the portable loops run; the bits are the same
// (wasm/kernels_test.go).

var (
	wasmDecode func(params uint32) uint32
	wasmEncode func(params uint32)
	// useWasmSIMD reports whether decodeBF16 and encodeBF16 call the kernels.
	useWasmSIMD bool
)

// UseWasmKernels makes the BF16 conversions call the kernels decodeBF16 and encodeBF16 of
// web/kernels.wat, or with nil ones the portable loops again. Call it before converting,
// not during.
func UseWasmKernels(decodeBF16 func(params uint32) uint32, encodeBF16 func(params uint32)) {
	wasmDecode, wasmEncode = decodeBF16, encodeBF16
	useWasmSIMD = decodeBF16 != nil && encodeBF16 != nil
}

// paramPool holds the kernels' parameter blocks.
var paramPool = sync.Pool{New: func() any { return new([4]uint64) }}

func addr(p unsafe.Pointer) uint64 { return uint64(uintptr(p)) }

// decodeBF16Wasm is decodeBF16Go, eight elements at a time in the kernel.
func decodeBF16Wasm(dst []float32, src []byte) bool {
	n := len(dst) &^ 7
	finite := true
	if n > 0 {
		p := paramPool.Get().(*[4]uint64)
		p[0], p[1], p[2] = addr(unsafe.Pointer(&dst[0])), addr(unsafe.Pointer(&src[0])), uint64(n)
		finite = wasmDecode(uint32(uintptr(unsafe.Pointer(p)))) != 0
		paramPool.Put(p)
		runtime.KeepAlive(dst)
		runtime.KeepAlive(src)
	}
	return decodeBF16Go(dst[n:], src[2*n:]) && finite
}

// encodeBF16Wasm is encodeBF16Go, eight elements at a time in the kernel.
func encodeBF16Wasm(dst []byte, src []float32) {
	n := len(src) &^ 7
	if n > 0 {
		p := paramPool.Get().(*[4]uint64)
		p[0], p[1], p[2] = addr(unsafe.Pointer(&dst[0])), addr(unsafe.Pointer(&src[0])), uint64(n)
		wasmEncode(uint32(uintptr(unsafe.Pointer(p))))
		paramPool.Put(p)
		runtime.KeepAlive(dst)
		runtime.KeepAlive(src)
	}
	encodeBF16Go(dst[2*n:], src[n:])
}
