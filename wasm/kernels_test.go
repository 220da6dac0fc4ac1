//go:build js && wasm

package main

import (
	"math"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"freelunch/core/dtype"
	"freelunch/core/merge"
	"freelunch/internal/vectest"
)

// TestKernels checks Merge with the WebAssembly SIMD kernels (in the selection passes too)
// against Merge with the portable loops, NaN for NaN and otherwise bit for bit, for task
// arithmetic (with and without normalize), TIES and DARE-TIES with
// normalize on and off, top-k boundaries with many ties, DARE's rescale by 1/ρ and to the
// L1 norm, models keeping
// everything or nothing, weights of either sign, inputs with every special value, and
// chunks at several offsets with odd lengths; and that it allocates nothing. It needs the
// kernels: make test-wasm runs it under tools/go_js_wasm_exec, which provides them.
func TestKernels(t *testing.T) {
	if kernelsLoaded() == 0 {
		t.Fatal("no kernels: run under tools/go_js_wasm_exec (make test-wasm)")
	}
	on := merge.WasmKernels{Dense2: kernelDense2, Consensus2: kernelConsensus2, DareMask: kernelDareMask, TopKMask: kernelTopKMask, CountWindow: kernelCountWindow}
	defer merge.UseWasmKernels(on)
	const n = 3<<13 + 5 // selection passes in chunks of 2^13 (the size that counts privately)
	b, x0, x1 := vectest.Deltas(n, 3)
	cases := []struct {
		method string
		global merge.Params
		a0, a1 merge.Params
	}{
		{"task_arithmetic", nil, merge.Params{"weight": 0.6}, merge.Params{"weight": 0.4}},
		{"task_arithmetic", merge.Params{"normalize": true, "lambda": 0.9}, merge.Params{"weight": 0.7}, merge.Params{"weight": 0.5}},
		{"task_arithmetic", nil, merge.Params{"weight": -0.6}, merge.Params{"weight": -0.4}},
		{"ties", nil, merge.Params{"weight": 0.6, "density": 0.3}, merge.Params{"weight": 0.4, "density": 0.7}},
		{"ties", merge.Params{"normalize": false, "lambda": 0.7}, merge.Params{"weight": 0.5, "density": 0.5}, merge.Params{"weight": -0.5, "density": 0.2}},
		{"ties", merge.Params{"normalize": false}, merge.Params{"weight": -0.6, "density": 0.4}, merge.Params{"weight": -0.4, "density": 1.0}},
		// the boundary among the deltas of ±2^-7 (see vectest.Deltas): ties with it cut inside chunks
		{"ties", nil, merge.Params{"weight": 0.6, "density": 0.1}, merge.Params{"weight": 0.4, "density": 0.12}},
		{"dare_ties", nil, merge.Params{"weight": 0.6, "density": 0.3}, merge.Params{"weight": 0.4, "density": 0.7}},
		{"dare_ties", merge.Params{"rescale": false}, merge.Params{"weight": 1.0, "density": 0.5}, merge.Params{"weight": 1.0, "density": 0.5}},
		{"dare_ties", merge.Params{"normalize": false}, merge.Params{"weight": 1e-3, "density": 1.0}, merge.Params{"weight": 3.0, "density": 0.0}},
		{"dare_ties", merge.Params{"rescale_norm": "l1"}, merge.Params{"weight": 0.6, "density": 0.3}, merge.Params{"weight": 0.4, "density": 0.9}},
	}
	// For the selection pass on BF16 bytes: the same inputs rounded to BF16, and ramps
	// (magnitudes growing with the index, so that the selection depends on where each
	// element was read from).
	ramp0, ramp1 := make([]float32, n), make([]float32, n)
	for i := range n {
		ramp0[i], ramp1[i] = float32(i)*1e-4, -float32(n-i)*1e-4
	}
	inputs := [][][]float32{
		{b, x0, x1},
		{roundBF16(b), roundBF16(x0), roundBF16(x1)},
		{make([]float32, n), roundBF16(ramp0), roundBF16(ramp1)},
	}
	// kernel makes the tensor's kernel and takes it through its statistics passes, with
	// the SIMD kernels (k) or without (a zero k), on in; with raw, it offers the chunks
	// as BF16 bytes first (merge.BF16Observer) and counts those taken.
	bf16Taken := 0
	kernel := func(m merge.Method, t *merge.Tensor, k merge.WasmKernels, in [][]float32, raw [][]byte) merge.Kernel {
		merge.UseWasmKernels(k)
		kn := m.New(t)
		bo, _ := kn.(merge.BF16Observer)
		for pass := 0; kn.NeedPass(pass); pass++ {
			for off, end := 0, 0; off < n; off = end {
				end = min(n, off+1<<13)
				if raw != nil && off > 0 {
					end = min(n, off+2<<13) // two of the kernel's parts
				}
				if raw != nil && bo != nil && bo.ObserveBF16(pass, int64(off), [][]byte{raw[0][2*off : 2*end], raw[1][2*off : 2*end], raw[2][2*off : 2*end]}) {
					bf16Taken++
					continue
				}
				kn.Observe(pass, int64(off), [][]float32{slices.Clone(in[0][off:end]), slices.Clone(in[1][off:end]), slices.Clone(in[2][off:end])})
			}
		}
		return kn
	}
	for _, c := range cases {
		for v, in := range inputs {
			m, _ := merge.Lookup(c.method)
			t0 := tensor(m, n, c.global, c.a0, c.a1)
			b, x0, x1 := in[0], in[1], in[2]
			var raw [][]byte
			if bf16 := v > 0; bf16 {
				raw = [][]byte{encodeBF16(b), encodeBF16(x0), encodeBF16(x1)}
			}
			kOff, k := kernel(m, t0, merge.WasmKernels{}, in, nil), kernel(m, t0, on, in, raw)
			want, got := make([]float32, n), make([]float32, n)
			for _, chunk := range []int{n, 1001, 8} {
				for off := 0; off < n; off += chunk {
					end := min(n, off+chunk)
					in := [][]float32{b[off:end], x0[off:end], x1[off:end]}
					merge.UseWasmKernels(merge.WasmKernels{})
					kOff.Merge(want[off:end], int64(off), in)
					merge.UseWasmKernels(on)
					k.Merge(got[off:end], int64(off), in)
				}
				for i := range want {
					if w, g := want[i], got[i]; math.Float32bits(w) != math.Float32bits(g) && !(w != w && g != g) {
						t.Fatalf("%s %v %v %v, inputs %d, chunks of %d: element %d (base %g, models %g %g) is %g with the kernels, %g without",
							c.method, c.global, c.a0, c.a1, v, chunk, i, b[i], x0[i], x1[i], g, w)
					}
				}
			}
			whole := [][]float32{b, x0, x1}
			if a := testing.AllocsPerRun(5, func() { k.Merge(got, 0, whole) }); a != 0 {
				t.Errorf("%s: Merge with the kernels allocates %v times", c.method, a)
			}
		}
	}
	if bf16Taken == 0 {
		t.Error("no chunk took the selection pass on BF16 bytes")
	}
}

// roundBF16 returns x rounded to BF16.
func roundBF16(x []float32) []float32 {
	r := make([]float32, len(x))
	dtype.Decode(r, encodeBF16(x), dtype.BF16)
	return r
}

func encodeBF16(x []float32) []byte {
	b := make([]byte, 2*len(x))
	dtype.Encode(b, x, dtype.BF16)
	return b
}

// TestDTypeKernels checks the BF16 conversions with the kernels against the portable
// loops: every BF16 value decoded, a NaN or ±Inf at each position of short slices for the
// finite report, and float32s of every kind (halfway cases, overflow to Inf, NaNs,
// subnormals) encoded, at every length up to 40 so that the Go tail is covered too.
func TestDTypeKernels(t *testing.T) {
	if kernelsLoaded() == 0 {
		t.Fatal("no kernels: run under tools/go_js_wasm_exec (make test-wasm)")
	}
	on := func() { dtype.UseWasmKernels(kernelDecodeBF16, kernelEncodeBF16) }
	off := func() { dtype.UseWasmKernels(nil, nil) }
	defer on()
	src := vectest.AllBF16()
	decode := func(dst []float32, src []byte) bool { return dtype.DecodeFinite(dst, src, dtype.BF16) }
	encode := func(dst []byte, src []float32) { dtype.Encode(dst, src, dtype.BF16) }
	want, got := make([]float32, 1<<16), make([]float32, 1<<16)
	off()
	decode(want, src)
	on()
	decode(got, src)
	if !slices.Equal(vectest.Bits(want), vectest.Bits(got)) {
		t.Fatal("BF16 decode with the kernels differs from the portable loop")
	}
	for n := range 41 {
		for bad := -1; bad < n; bad++ {
			s := vectest.BF16WithBad(n, bad)
			w, g := make([]float32, n), make([]float32, n)
			off()
			fw := decode(w, s)
			on()
			fg := decode(g, s)
			if fw != fg || fw != (bad < 0) || !slices.Equal(vectest.Bits(w), vectest.Bits(g)) {
				t.Fatalf("n=%d, NaN/Inf at %d: finite %v with the kernels, %v without", n, bad, fg, fw)
			}
		}
	}
	vals := vectest.Float32s(1<<16, 1)
	lengths := []int{1 << 16}
	for n := range 41 {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		w, g := make([]byte, 2*n), make([]byte, 2*n)
		off()
		encode(w, vals[:n])
		on()
		encode(g, vals[:n])
		if !slices.Equal(w, g) {
			t.Fatalf("n=%d: BF16 encode with the kernels differs from the portable loop", n)
		}
	}
	b16 := make([]byte, 2<<13)
	f32 := make([]float32, 1<<13)
	if a := testing.AllocsPerRun(5, func() { decode(f32, b16); encode(b16, f32) }); a != 0 {
		t.Errorf("BF16 conversions with the kernels allocate %v times", a)
	}
}

// The parameter block and scratch of TestCountWindowKernel: not on the stack, which may
// move between taking an address and the call (the engine's are pooled heap objects).
var (
	countWindowParams [16]uint64
	countWindowKeys   [512]uint32
)

// TestCountWindowKernel calls the countWindow kernel directly and checks its counts and
// window elements (index and key, in index order) against the loop it replaces, written
// out here: windows of no bucket, one, several and all, around common buckets and the
// ±2^-7 ties of vectest.Deltas, at lengths that leave every tail of its 512-element blocks
// and four-element groups, at offsets past 2^32, on float32 inputs and on BF16 ones
// (the same values rounded, and raw bit patterns: NaN payloads, infinities, subnormals).
func TestCountWindowKernel(t *testing.T) {
	if kernelsLoaded() == 0 {
		t.Fatal("no kernels: run under tools/go_js_wasm_exec (make test-wasm)")
	}
	const n = 1 << 12
	b, x, _ := vectest.Deltas(n, 9)
	b16, x16 := encodeBF16(b), encodeBF16(x)
	for i := 0; i < n; i += 13 {
		x16[2*i], x16[2*i+1] = byte(i*7), byte(i*5) // any bit pattern
	}
	bd, xd := make([]float32, n), make([]float32, n)
	dtype.Decode(bd, b16, dtype.BF16)
	dtype.Decode(xd, x16, dtype.BF16)
	ptr := func(p unsafe.Pointer) uint64 { return uint64(uintptr(p)) }
	keys, p := &countWindowKeys, &countWindowParams
	out := make([]uint64, n)
	for _, in := range []struct {
		x, b   []float32 // the values the kernel sees
		xa, ba uint64
		bf16   uint64
	}{
		{x, b, ptr(unsafe.Pointer(&x[0])), ptr(unsafe.Pointer(&b[0])), 0},
		{xd, bd, ptr(unsafe.Pointer(&x16[0])), ptr(unsafe.Pointer(&b16[0])), 1},
	} {
		key := func(i int) uint32 { return math.Float32bits(in.x[i]-in.b[i]) &^ (1 << 31) }
		common, tie := key(0)>>16, math.Float32bits(1.0/128)>>16
		for _, w := range [][2]uint32{{1 << 16, 0}, {common, 0}, {common - 30, 60}, {tie, 0}, {tie - 1, 1}, {0, 0xffff}} {
			for _, l := range []int{0, 1, 3, 4, 5, 511, 512, 513, 516, 1027, n} {
				off := int64(l) << 24
				want, got := new([1 << 16]uint32), new([1 << 16]uint32)
				var wantOut []uint64
				for i := range l {
					k := key(i)
					want[k>>16]++
					if k>>16-w[0] <= w[1] {
						wantOut = append(wantOut, uint64(off+int64(i))<<32|uint64(k))
					}
				}
				*p = [16]uint64{ptr(unsafe.Pointer(got)), in.xa, in.ba, uint64(l),
					uint64(w[0]), uint64(w[1]), ptr(unsafe.Pointer(&out[0])), uint64(off), ptr(unsafe.Pointer(keys)), in.bf16}
				m := kernelCountWindow(uint32(uintptr(unsafe.Pointer(p))))
				if *want != *got {
					t.Fatalf("bf16 %d, window %#x+%d, n=%d: counts differ", in.bf16, w[0], w[1], l)
				}
				if !slices.Equal(wantOut, out[:m]) {
					t.Fatalf("bf16 %d, window %#x+%d, n=%d: window elements %x, want %x", in.bf16, w[0], w[1], l, out[:m], wantOut)
				}
			}
		}
		runtime.KeepAlive(x16)
		runtime.KeepAlive(b16)
	}
}

// tensor returns a tensor of n elements for method m with a base and two models, the
// parameters not given set to their defaults.
func tensor(m merge.Method, n int64, global merge.Params, args ...merge.Params) *merge.Tensor {
	t := &merge.Tensor{Name: "model.layers.0.mlp.up_proj.weight", Shape: []int64{n}, N: n, Seed: 1,
		HasBase: true, Models: []int{0}, Global: merge.Params{}}
	defaults := merge.Params{}
	for _, p := range m.Params() {
		if p.Default != nil {
			defaults[p.Name] = p.Default
			if p.Scope == merge.Global {
				t.Global[p.Name] = p.Default
			}
		}
	}
	for k, v := range global {
		t.Global[k] = v
	}
	t.Args = append(t.Args, defaults)
	for j, a := range args {
		p := merged(defaults, a)
		t.Models, t.Args = append(t.Models, j+1), append(t.Args, p)
	}
	return t
}

func merged(a, b merge.Params) merge.Params {
	p := merge.Params{}
	for k, v := range a {
		p[k] = v
	}
	for k, v := range b {
		p[k] = v
	}
	return p
}
