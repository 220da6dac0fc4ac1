//go:build js && wasm

package merge

import (
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// Under GOOS=js the two-model task-arithmetic and sign-consensus merges (TIES, DARE-TIES)
// and the top-k selection's histogram pass can run in WebAssembly SIMD kernels
// (web/kernels.wat; Go emits no SIMD) that the host loads on this instance's memory. The
// core does not talk to JS (design.md §1): the wasm/ bridge hands the kernels over with
// UseWasmKernels. Without them the portable loops run. Either way the output bits are the
// same (wasm/kernels_test.go), except for which NaN an operation on two NaNs returns.

// WasmKernels are the exports of web/kernels.wat. Each takes the address, in this
// instance's memory, of a parameter block laid out as kernels.wat says.
type WasmKernels struct {
	Dense2, Consensus2, DareMask, TopKMask func(params uint32)
	CountWindow                            func(params uint32) uint32
}

var (
	wasmK WasmKernels
	// useWasmSIMD reports whether Merge calls the kernels.
	useWasmSIMD bool
)

// UseWasmKernels makes Merge call k's kernels, or with a zero k the portable loops again.
// Call it before merging, not during.
func UseWasmKernels(k WasmKernels) {
	wasmK = k
	useWasmSIMD = k.Dense2 != nil && k.Consensus2 != nil && k.DareMask != nil && k.TopKMask != nil && k.CountWindow != nil
}

// wasmScratch is a kernel call's memory, pooled: the parameter block, and both models' keep
// masks over a whole block (merge2Wasm) or the window's elements (countWindowWasm).
type wasmScratch struct {
	params [16]uint64
	masks  []uint64
	keys   [512]uint32 // countWindowWasm's buckets of one block
}

var wasmScratchPool = sync.Pool{New: func() any { return new(wasmScratch) }}

// addr returns the address in this instance's memory of the first element of s.
func addr[T any](s []T) uint64 { return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(s)))) }

// call calls kernel f on parameter block p.
func call(f func(uint32), p *[16]uint64) { f(uint32(uintptr(unsafe.Pointer(p)))) }

// dense2Wasm is dense2Go, two elements at a time in the kernel.
func dense2Wasm(dst, b, x0, x1 []float32, f0, f1, div, lambda float64) {
	n := len(b)
	if e := n &^ 1; e > 0 {
		sc := wasmScratchPool.Get().(*wasmScratch)
		p := &sc.params
		var flags uint64
		if div != 1 {
			flags = 1
		}
		p[0], p[1], p[2], p[3], p[4], p[5] = addr(dst), addr(b), addr(x0), addr(x1), uint64(e), flags
		p[6], p[7], p[8], p[9] = math.Float64bits(f0), math.Float64bits(f1), math.Float64bits(div), math.Float64bits(lambda)
		call(wasmK.Dense2, p)
		wasmScratchPool.Put(sc)
		runtime.KeepAlive(dst)
		runtime.KeepAlive(b)
		runtime.KeepAlive(x0)
		runtime.KeepAlive(x1)
	}
	dense2Go(dst[n&^1:], b[n&^1:], x0[n&^1:], x1[n&^1:], f0, f1, div, lambda)
}

// merge2Wasm is Merge's two-model sign-consensus loop: both keep masks over the whole
// range (DARE's draws or the top-k masks), then the consensus, each by a kernel; the last
// element of an odd range by consensus2.
func (k *tvKernel) merge2Wasm(dst []float32, off int64, b, x0, x1 []float32) {
	n := len(b)
	dst, x0, x1 = dst[:n], x0[:n], x1[:n]
	sc := wasmScratchPool.Get().(*wasmScratch)
	defer wasmScratchPool.Put(sc)
	if cap(sc.masks) < 2*n {
		sc.masks = make([]uint64, 2*n) // once per worker and block size
	}
	m0, m1 := sc.masks[:n], sc.masks[n:2*n]
	k.keepWasm(sc, m0, 0, off, x0, b)
	k.keepWasm(sc, m1, 1, off, x1, b)
	div0, div1 := k.divisor(0), k.divisor(1)
	var flags uint64
	if div0 != 1 || div1 != 1 {
		flags |= 1
	}
	if k.scale[0] != 1 || k.scale[1] != 1 {
		flags |= 2
	}
	if k.normalize {
		flags |= 4
	}
	p := &sc.params
	p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7] = addr(dst), addr(b), addr(x0), addr(x1), addr(m0), addr(m1), uint64(n), flags
	for i, v := range []float64{k.w[0], k.w[1], div0, div1, k.scale[0], k.scale[1], k.lambda} {
		p[8+i] = math.Float64bits(v)
	}
	call(wasmK.Consensus2, p)
	if e := n - n%2; e < n {
		k.consensus2(dst[e:], b[e:], x0[e:], x1[e:], m0[e:], m1[e:])
	}
	runtime.KeepAlive(dst)
	runtime.KeepAlive(b)
	runtime.KeepAlive(x0)
	runtime.KeepAlive(x1)
}

// keepWasm is keep for model j into m, a mask on the heap: DARE's draws and top-k masks
// by the kernels, the last elements that do not fill their lanes by Go.
func (k *tvKernel) keepWasm(sc *wasmScratch, m []uint64, j int, off int64, x, b []float32) {
	n, p := len(m), &sc.params
	switch {
	case k.keepsAll(j) || k.rho[j] <= 0:
	case k.m.sparsify == dareDrop:
		p[0], p[1], p[2], p[3], p[4] = addr(m), uint64(n), uint64(off), k.stream[j].key, k.thr[j]
		call(wasmK.DareMask, p)
		if e := n - n%8; e < n {
			dareMask(m[e:], k.stream[j], off+int64(e), k.thr[j])
		}
		return
	case k.m.sparsify == topK && k.top[j].m != 0 && k.top[j].m != k.top[j].n:
		s := k.top[j]
		d, inv := s.tieBound(off, n)
		p[0], p[1], p[2], p[3] = addr(m), addr(x), addr(b), uint64(n)
		p[4], p[5], p[6] = uint64(s.flip^1<<31), uint64(s.tx^1<<31), uint64(s.t)
		p[7], p[8] = uint64(d), uint64(inv)
		call(wasmK.TopKMask, p)
		runtime.KeepAlive(x)
		runtime.KeepAlive(b)
		if e := n - n%4; e < n {
			s.maskGo(m[e:], off+int64(e), x[e:], b[e:])
		}
		return
	}
	k.keep(m, j, off, x, b, nil)
}

// countWindowWasm is keepWindow's counting loop (window [lo, lo+width]) by the kernel.
func countWindowWasm(c *[1 << 16]uint32, cand []uint64, off int64, x, b []float32, lo, width uint32) []uint64 {
	cand = countWindowKernel(c, cand, off, addr(x), addr(b), len(x), false, lo, width)
	runtime.KeepAlive(x)
	runtime.KeepAlive(b)
	return cand
}

// countWindowWasmBF16 is countWindowWasm for BF16 bytes.
func countWindowWasmBF16(c *[1 << 16]uint32, cand []uint64, off int64, x, b []byte, lo, width uint32) []uint64 {
	cand = countWindowKernel(c, cand, off, addr(x), addr(b), len(x)/2, true, lo, width)
	runtime.KeepAlive(x)
	runtime.KeepAlive(b)
	return cand
}

// countWindowKernel runs the kernel on n elements (float32s, or BF16s with bf16) at
// addresses x and b, in parts that fit the scratch it writes the window's elements to.
func countWindowKernel(c *[1 << 16]uint32, cand []uint64, off int64, x, b uint64, n int, bf16 bool, lo, width uint32) []uint64 {
	size, flag := 4, uint64(0)
	if bf16 {
		size, flag = 2, 1
	}
	sc := wasmScratchPool.Get().(*wasmScratch)
	defer wasmScratchPool.Put(sc)
	if cap(sc.masks) < 1<<13 {
		sc.masks = make([]uint64, 1<<13)
	}
	out, p := sc.masks[:1<<13], &sc.params
	for i := 0; i < n; i += len(out) {
		e := min(n, i+len(out))
		p[0], p[1], p[2], p[3] = addr(c[:]), x+uint64(i*size), b+uint64(i*size), uint64(e-i)
		p[4], p[5], p[6], p[7], p[8] = uint64(lo), uint64(width), addr(out), uint64(off+int64(i)), addr(sc.keys[:])
		p[9] = flag
		cand = append(cand, out[:wasmK.CountWindow(uint32(uintptr(unsafe.Pointer(p))))]...)
	}
	runtime.KeepAlive(c)
	return cand
}
