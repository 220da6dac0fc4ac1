package merge

import (
	"math/rand/v2"
	"testing"
)

// Kernel benchmarks: bytes are input bytes as BF16 (2 per element per input), the unit
// `make bench` reports, so ns/op compares with the I/O floor.

const benchN = 1 << 20 // one default chunk

func benchInputs(models int) [][]float32 {
	r := rand.New(rand.NewPCG(1, 1))
	in := make([][]float32, models+1)
	for j := range in {
		in[j] = make([]float32, benchN)
		for i := range in[j] {
			in[j][i] = float32(r.NormFloat64() * 0.02)
			if j > 0 {
				in[j][i] = in[0][i] + float32(r.NormFloat64()*0.002)
			}
		}
	}
	return in
}

func benchMerge(b *testing.B, name string, global Params, a Params) {
	m := method(b, name)
	in := benchInputs(2)
	work := make([][]float32, len(in))
	for j := range work {
		work[j] = make([]float32, benchN)
	}
	k := m.New(tensor(b, m, benchN, global, a, a))
	for pass := 0; k.NeedPass(pass); pass++ {
		for j := range in {
			copy(work[j], in[j]) // kernels may overwrite their inputs
		}
		k.Observe(pass, 0, work) // one chunk: the whole tensor
	}
	dst := make([]float32, benchN)
	b.SetBytes(int64(len(in)) * benchN * 2)
	b.ReportAllocs()
	for b.Loop() {
		for j := range in {
			copy(work[j], in[j]) // the engine hands fresh inputs per chunk; copying is the load
		}
		k.Merge(dst, 0, work)
	}
}

func BenchmarkTaskArithmetic(b *testing.B) {
	benchMerge(b, "task_arithmetic", nil, Params{"weight": 0.5})
}

func BenchmarkTies(b *testing.B) {
	benchMerge(b, "ties", nil, Params{"weight": 0.5, "density": 0.3})
}

func BenchmarkDareTies(b *testing.B) {
	benchMerge(b, "dare_ties", nil, Params{"weight": 0.5, "density": 0.3})
}

func BenchmarkDareLinearL1(b *testing.B) {
	benchMerge(b, "dare_linear", Params{"rescale_norm": "l1"}, Params{"weight": 0.5, "density": 0.3})
}

func BenchmarkLinear(b *testing.B) {
	m := method(b, "linear")
	in := benchInputs(1)
	dst := make([]float32, benchN)
	k := m.New(tensor(b, m, benchN, nil, Params{"weight": 0.5}, Params{"weight": 0.5}))
	b.SetBytes(2 * benchN * 2)
	b.ReportAllocs()
	for b.Loop() {
		k.Merge(dst, 0, in)
	}
}

// BenchmarkSelectorPass is one histogram pass of the top-k select over one chunk.
func BenchmarkSelectorPass(b *testing.B) {
	x := benchInputs(0)[0]
	zero := make([]float32, len(x))
	b.SetBytes(benchN * 4)
	b.ReportAllocs()
	s := newSelector(benchN/3, 1<<40, true, true)
	for b.Loop() {
		s.observe(0, x, zero)
	}
}

// BenchmarkSelectorWindowPass is BenchmarkSelectorPass for a tensor small enough that the
// pass also keeps the elements of its window of buckets.
func BenchmarkSelectorWindowPass(b *testing.B) {
	x := benchInputs(0)[0]
	zero := make([]float32, len(x))
	b.SetBytes(benchN * 4)
	b.ReportAllocs()
	s := newSelector(benchN/3, 64*benchN, true, true)
	for b.Loop() {
		s.win = s.win[:0] // as if each chunk were a new one of the tensor
		s.observe(0, x, zero)
	}
}

// BenchmarkStream is DARE's keep decision (§4 stream) per element.
func BenchmarkStream(b *testing.B) {
	s := NewStream(1, 1, "model.layers.0.mlp.up_proj.weight")
	b.SetBytes(benchN * 2)
	b.ReportAllocs()
	kept := 0
	for b.Loop() {
		for i := range int64(benchN) {
			if s.Keep(i, 0.3) {
				kept++
			}
		}
	}
	if kept == 0 {
		b.Fatal("nothing kept")
	}
}
