//go:build js && wasm

package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"freelunch/core/merge"
)

// TestKernels checks Merge with the WebAssembly SIMD kernels against Merge with the
// portable loops, NaN for NaN and otherwise bit for bit, for TIES and DARE-TIES with
// normalize on and off, top-k boundaries with many ties, DARE's rescale by 1/ρ and to the
// L1 norm, models keeping
// everything or nothing, weights of either sign, inputs with every special value, and
// chunks at several offsets with odd lengths; and that it allocates nothing. It needs the
// kernels: make test-wasm runs it under tools/go_js_wasm_exec, which provides them.
func TestKernels(t *testing.T) {
	if kernelsLoaded() == 0 {
		t.Fatal("no kernels: run under tools/go_js_wasm_exec (make test-wasm)")
	}
	on := merge.WasmKernels{Consensus2: kernelConsensus2, DareMask: kernelDareMask, TopKMask: kernelTopKMask}
	defer merge.UseWasmKernels(on)
	const n = 1<<12 + 3
	b, x0, x1 := inputs(n)
	cases := []struct {
		method string
		global merge.Params
		a0, a1 merge.Params
	}{
		{"ties", nil, merge.Params{"weight": 0.6, "density": 0.3}, merge.Params{"weight": 0.4, "density": 0.7}},
		{"ties", merge.Params{"normalize": false, "lambda": 0.7}, merge.Params{"weight": 0.5, "density": 0.5}, merge.Params{"weight": -0.5, "density": 0.2}},
		{"ties", merge.Params{"normalize": false}, merge.Params{"weight": -0.6, "density": 0.4}, merge.Params{"weight": -0.4, "density": 1.0}},
		// the boundary among the deltas of ±2^-7 (see inputs): ties with it cut inside chunks
		{"ties", nil, merge.Params{"weight": 0.6, "density": 0.1}, merge.Params{"weight": 0.4, "density": 0.12}},
		{"dare_ties", nil, merge.Params{"weight": 0.6, "density": 0.3}, merge.Params{"weight": 0.4, "density": 0.7}},
		{"dare_ties", merge.Params{"rescale": false}, merge.Params{"weight": 1.0, "density": 0.5}, merge.Params{"weight": 1.0, "density": 0.5}},
		{"dare_ties", merge.Params{"normalize": false}, merge.Params{"weight": 1e-3, "density": 1.0}, merge.Params{"weight": 3.0, "density": 0.0}},
		{"dare_ties", merge.Params{"rescale_norm": "l1"}, merge.Params{"weight": 0.6, "density": 0.3}, merge.Params{"weight": 0.4, "density": 0.9}},
	}
	for _, c := range cases {
		m, _ := merge.Lookup(c.method)
		k := m.New(tensor(m, n, c.global, c.a0, c.a1))
		for pass := 0; k.NeedPass(pass); pass++ {
			k.Observe(pass, 0, [][]float32{slices.Clone(b), slices.Clone(x0), slices.Clone(x1)})
		}
		want, got := make([]float32, n), make([]float32, n)
		for _, chunk := range []int{n, 1001, 8} {
			for off := 0; off < n; off += chunk {
				end := min(n, off+chunk)
				in := [][]float32{b[off:end], x0[off:end], x1[off:end]}
				merge.UseWasmKernels(merge.WasmKernels{})
				k.Merge(want[off:end], int64(off), in)
				merge.UseWasmKernels(on)
				k.Merge(got[off:end], int64(off), in)
			}
			for i := range want {
				if w, g := want[i], got[i]; math.Float32bits(w) != math.Float32bits(g) && !(w != w && g != g) {
					t.Fatalf("%s %v %v %v, chunks of %d: element %d (base %g, models %g %g) is %g with the kernels, %g without",
						c.method, c.global, c.a0, c.a1, chunk, i, b[i], x0[i], x1[i], g, w)
				}
			}
		}
		whole := [][]float32{b, x0, x1}
		if a := testing.AllocsPerRun(5, func() { k.Merge(got, 0, whole) }); a != 0 {
			t.Errorf("%s: Merge with the kernels allocates %v times", c.method, a)
		}
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

// inputs returns n base and model values each: deltas of fine-tune size, and among them
// ±0, subnormals, ±Inf, NaNs, the largest finite values, equal values, signed zeros and
// an eighth of deltas of exactly ±2^-7.
func inputs(n int) (b, x0, x1 []float32) {
	r := rand.New(rand.NewPCG(3, 7))
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-45, -1e-40, float32(math.Inf(1)),
		float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), math.Float32frombits(0xffa00000),
		math.MaxFloat32, -math.MaxFloat32, 1, -1}
	v := func() float32 {
		if r.IntN(20) == 0 {
			return special[r.IntN(len(special))]
		}
		return float32(r.NormFloat64() * 0.02)
	}
	b, x0, x1 = make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range n {
		b[i] = v()
		x0[i], x1[i] = b[i]+v()*0.01, b[i]+v()*0.01
		if r.IntN(10) == 0 {
			x0[i] = b[i]
		}
		if r.IntN(10) == 0 {
			x1[i] = v()
		}
		switch r.IntN(8) {
		case 0: // signed zeros
			z := [2]float32{0, float32(math.Copysign(0, -1))}
			b[i], x0[i], x1[i] = z[r.IntN(2)], z[r.IntN(2)], z[r.IntN(2)]
		case 1: // deltas of exactly ±2^-7: many equal magnitudes, among the largest
			s := [2]float32{1.0 / 128, -1.0 / 128}
			b[i] = 0.25
			x0[i], x1[i] = b[i]+s[r.IntN(2)], b[i]+s[r.IntN(2)]
		}
	}
	return b, x0, x1
}
