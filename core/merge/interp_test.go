package merge

import (
	"math"
	"testing"
)

// tensor returns the Tensor of method name for inputs of shape, with per-input args and
// global parameters over the method's defaults.
func shapedTensor(t testing.TB, name string, shape []int64, hasBase bool, args []Params, global Params) (Method, *Tensor) {
	t.Helper()
	m, ok := Lookup(name)
	if !ok {
		t.Fatalf("Lookup(%q) failed", name)
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	ten := &Tensor{Name: "model.layers.0.mlp.up_proj.weight", Shape: shape, N: n, HasBase: hasBase, Global: Params{}}
	for _, p := range m.Params() {
		if p.Scope == Global {
			if v, ok := global[p.Name]; ok {
				ten.Global[p.Name] = v
			} else if p.Default != nil {
				ten.Global[p.Name] = p.Default
			}
		}
	}
	for k, a := range args {
		full := Params{}
		for _, p := range m.Params() {
			if p.Scope != PerModel {
				continue
			}
			if v, ok := a[p.Name]; ok {
				full[p.Name] = v
			} else if p.Default != nil {
				full[p.Name] = p.Default
			}
		}
		ten.Args = append(ten.Args, full)
		ten.Models = append(ten.Models, k)
	}
	if err := m.Check(ten); err != nil {
		t.Fatalf("Check: %v", err)
	}
	return m, ten
}

// run merges inputs the way the engine does: statistics passes over chunks of about chunk
// elements in element order, then Merge over the chunks in reverse order (any order is
// allowed). Inputs are copied per chunk, since a kernel may overwrite them.
func runChunked(m Method, ten *Tensor, in [][]float32, chunk int64) []float32 {
	k := m.New(ten)
	g := k.Granule()
	size := max(g, chunk/g*g)
	slice := func(off int64) [][]float32 {
		end := min(off+size, ten.N)
		out := make([][]float32, len(in))
		for i := range in {
			out[i] = append([]float32(nil), in[i][off:end]...)
		}
		return out
	}
	for pass := 0; k.NeedPass(pass); pass++ {
		for off := int64(0); off < ten.N; off += size {
			k.Observe(pass, off, slice(off))
		}
	}
	dst := make([]float32, ten.N)
	var offs []int64
	for off := int64(0); off < ten.N; off += size {
		offs = append(offs, off)
	}
	for i := len(offs) - 1; i >= 0; i-- {
		off := offs[i]
		k.Merge(dst[off:min(off+size, ten.N)], off, slice(off))
	}
	return dst
}

// runAll runs the merge with several chunk sizes, checks that they agree bit for bit, and
// returns the result.
func runAll(t *testing.T, m Method, ten *Tensor, in [][]float32) []float32 {
	t.Helper()
	want := runChunked(m, ten, in, ten.N+1)
	for _, c := range []int64{1, 2, 3, 7} {
		got := runChunked(m, ten, in, c)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: chunk %d: element %d = %v, whole tensor gives %v", m.Name(), c, i, got[i], want[i])
			}
		}
	}
	return want
}

// near reports whether got is within tol (relative, or absolute below 1) of want.
func near(got float32, want, tol float64) bool {
	return math.Abs(float64(got)-want) <= tol*max(1, math.Abs(want))
}

func checkNear(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
	}
	for i := range want {
		// Within float32 rounding of the exact value: one rounding of the result plus
		// the float64 arithmetic before it.
		if !near(got[i], want[i], 1e-7) {
			t.Errorf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}
