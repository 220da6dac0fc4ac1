//go:build js && wasm

package main

import (
	"freelunch/core/dtype"
	"freelunch/core/merge"
)

// The WebAssembly SIMD kernels (web/kernels.wat) reach Go as the imports of module
// "freelunch" that web/worker.js provides: calls into the kernels instance it made on
// this instance's memory. kernelsLoaded reports whether it could make one (it needs
// WebAssembly SIMD); without it the core runs its portable loops. These are plain wasm
// imports rather than safejs calls: a kernel takes one number and returns at most one, so
// no JS value crosses, nothing is allocated, and no Go code runs during the call (so
// nothing on the calling goroutine's stack can move under the kernel).

//go:wasmimport freelunch kernelsLoaded
func kernelsLoaded() uint32

//go:wasmimport freelunch dense2
func kernelDense2(params uint32)

//go:wasmimport freelunch consensus2
func kernelConsensus2(params uint32)

//go:wasmimport freelunch dareMask
func kernelDareMask(params uint32)

//go:wasmimport freelunch topKMask
func kernelTopKMask(params uint32)

//go:wasmimport freelunch countWindow
func kernelCountWindow(params uint32) uint32

//go:wasmimport freelunch decodeBF16
func kernelDecodeBF16(params uint32) uint32

//go:wasmimport freelunch encodeBF16
func kernelEncodeBF16(params uint32)

func init() {
	if kernelsLoaded() != 0 {
		merge.UseWasmKernels(merge.WasmKernels{Dense2: kernelDense2, Consensus2: kernelConsensus2, DareMask: kernelDareMask, TopKMask: kernelTopKMask, CountWindow: kernelCountWindow})
		dtype.UseWasmKernels(kernelDecodeBF16, kernelEncodeBF16)
	}
}
