package merge

import "testing"

// benchShaped benchmarks Merge of one default chunk shaped [1024, 1024] (whole rows) for
// method name with the base and two models (or two models without a base).
func benchShaped(b *testing.B, name string, hasBase bool, global Params, a Params) {
	in := benchInputs(2)
	if !hasBase {
		in = in[1:]
	}
	args := []Params{a, a}
	if hasBase {
		args = append([]Params{{}}, args...)
	}
	m, ten := shapedTensor(b, name, []int64{1024, benchN / 1024}, hasBase, args, global)
	k := m.New(ten)
	work := make([][]float32, len(in))
	for j := range work {
		work[j] = make([]float32, benchN)
	}
	for pass := 0; k.NeedPass(pass); pass++ {
		for j := range in {
			copy(work[j], in[j])
		}
		k.Observe(pass, 0, work)
	}
	dst := make([]float32, benchN)
	b.SetBytes(int64(len(in)) * benchN * 2)
	b.ReportAllocs()
	for b.Loop() {
		for j := range in {
			copy(work[j], in[j])
		}
		k.Merge(dst, 0, work)
	}
}

func BenchmarkSlerp(b *testing.B) {
	m, ten := shapedTensor(b, "slerp", []int64{benchN}, true, []Params{{}, {}}, Params{"t": 0.3})
	in := benchInputs(1)
	k := m.New(ten)
	for pass := 0; k.NeedPass(pass); pass++ {
		k.Observe(pass, 0, in)
	}
	dst := make([]float32, benchN)
	b.SetBytes(2 * benchN * 2)
	b.ReportAllocs()
	for b.Loop() {
		k.Merge(dst, 0, in)
	}
}

func BenchmarkNuslerpRows(b *testing.B) {
	benchShaped(b, "nuslerp", true, Params{"nuslerp_flatten": false}, Params{"weight": 0.5})
}

func BenchmarkNuslerpRowWise(b *testing.B) {
	benchShaped(b, "nuslerp", false, Params{"nuslerp_flatten": false, "nuslerp_row_wise": true}, Params{"weight": 0.5})
}

func BenchmarkModelStock(b *testing.B) {
	benchShaped(b, "model_stock", true, nil, nil)
}

func BenchmarkModelStockFilterWise(b *testing.B) {
	benchShaped(b, "model_stock", true, Params{"filter_wise": true}, nil)
}

func BenchmarkBreadcrumbsTies(b *testing.B) {
	benchShaped(b, "breadcrumbs_ties", true, nil, Params{"weight": 0.5, "density": 0.3, "gamma": 0.01})
}

func BenchmarkDella(b *testing.B) {
	benchShaped(b, "della", true, nil, Params{"weight": 0.5, "density": 0.3, "epsilon": 0.1})
}
