package analyze

import (
	"bytes"
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"freelunch/core/dtype"
	"freelunch/core/safetensors"
)

// tdata is one tensor of a hand-built file: float values (encoded to DType) or raw bytes.
type tdata struct {
	name  string
	dt    dtype.DType
	shape []int64
	vals  []float32
	raw   []byte
}

// writeFile adds a safetensors file holding ts to fsys under name.
func writeFile(t testing.TB, fsys safetensors.MemFS, name string, ts []tdata) {
	t.Helper()
	specs := make([]safetensors.TensorSpec, len(ts))
	for i, d := range ts {
		specs[i] = safetensors.TensorSpec{Name: d.name, DType: d.dt, Shape: d.shape}
	}
	var buf bytes.Buffer
	w, err := safetensors.NewWriter(&buf, specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ts {
		b := d.raw
		if b == nil {
			b = make([]byte, len(d.vals)*d.dt.Size())
			dtype.Encode(b, d.vals, d.dt)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fsys[name] = buf.Bytes()
}

func open(t testing.TB, fsys safetensors.FS, names ...string) []*safetensors.Model {
	t.Helper()
	var ms []*safetensors.Model
	for _, n := range names {
		m, err := safetensors.OpenModel(fsys, n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		ms = append(ms, m)
	}
	return ms
}

func run(t testing.TB, ms []*safetensors.Model, chunk int) *Report {
	t.Helper()
	return runThreads(t, ms, chunk, 0)
}

func runThreads(t testing.TB, ms []*safetensors.Model, chunk, threads int) *Report {
	t.Helper()
	r, err := Run(context.Background(), ms[0], ms[1:], Options{ChunkSize: chunk, Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// u is the unit of the hand-built deltas: 2^-12, so 0.5 + k·u is exact in float32 and
// |δ| ≤ 0.002 means |k| ≤ 8, |δ| ≤ 0.005 means |k| ≤ 20.
const u = 1.0 / 4096

// TestHandComputed checks every statistic on a 10-element tensor whose deltas are chosen.
func TestHandComputed(t *testing.T) {
	ka := []float64{0, 1, -2, 4, 8, -9, 16, 20, -21, 40}
	kb := []float64{3, 0, 2, -4, 8, 9, -16, 0, -21, -40}
	base, a, b := make([]float32, 10), make([]float32, 10), make([]float32, 10)
	for i := range base {
		base[i] = 0.5
		a[i] = float32(0.5 + ka[i]*u)
		b[i] = float32(0.5 + kb[i]*u)
	}
	fsys := safetensors.MemFS{}
	for name, v := range map[string][]float32{"base.safetensors": base, "a.safetensors": a, "b.safetensors": b} {
		writeFile(t, fsys, name, []tdata{{name: "w", dt: dtype.F32, shape: []int64{2, 5}, vals: v}})
	}
	r := run(t, open(t, fsys, "base.safetensors", "a.safetensors", "b.safetensors"), 3)

	s := r.Models[0].Overall
	// |k| sorted: 0 1 2 4 8 9 16 20 21 40. Ranks ceil(q·10): 5, 9, 10, 10.
	if s.N != 10 || s.WithinCount != [2]int64{5, 8} {
		t.Errorf("a: N = %d, WithinCount = %v, want 10, [5 8]", s.N, s.WithinCount)
	}
	if s.MaxAbs != 40*u {
		t.Errorf("a: MaxAbs = %v, want %v", s.MaxAbs, 40*u)
	}
	for i, want := range []float64{8 * u, 21 * u, 40 * u, 40 * u} {
		if got := s.Quantiles[i]; math.Abs(got-want) > quantileTol(want) {
			t.Errorf("a: quantile %v = %v, want %v", Quantiles[i], got, want)
		}
	}
	// Σk² = 0+1+4+16+64+81+256+400+441+1600 = 2863; ‖B‖ = sqrt(10·0.25).
	wantRel := math.Sqrt(2863) * u / math.Sqrt(2.5)
	if got := s.RelNorm(); math.Abs(got-wantRel) > 1e-12*wantRel {
		t.Errorf("a: RelNorm = %v, want %v", got, wantRel)
	}
	if got, want := s.DARENoise(0.9), 3*wantRel; math.Abs(got-want) > 1e-12*want {
		t.Errorf("a: DARENoise(0.9) = %v, want %v", got, want)
	}
	// Both non-zero at i = 2..6, 8, 9 (7 elements); opposite signs at 2 (-2,2), 3 (4,-4),
	// 5 (-9,9), 6 (16,-16), 9 (40,-40): 5 of 7.
	p := r.Pairs[0].Overall
	if p.BothNonZero != 7 || p.Conflicts != 5 {
		t.Errorf("pair: BothNonZero, Conflicts = %d, %d, want 7, 5", p.BothNonZero, p.Conflicts)
	}
	// Σ ka·kb = 0+0-4-16+64-81-256+0+441-1600 = -1452; Σkb² = 9+0+4+16+64+81+256+0+441+1600 = 2471.
	wantCos := -1452 / math.Sqrt(2863*2471)
	if got := p.Cosine(); math.Abs(got-wantCos) > 1e-12 {
		t.Errorf("pair: Cosine = %v, want %v", got, wantCos)
	}
	if got := r.Pairs[0].Tensors[0].Cosine(); got != p.Cosine() {
		t.Errorf("pair tensor w: Cosine = %v, want the overall %v (one tensor)", got, p.Cosine())
	}
}

// quantileTol is the documented accuracy of a quantile estimate of v.
func quantileTol(v float64) float64 {
	if v < 0x1p-126 {
		return 0x1p-132
	}
	return (0x1p-8 + 0x1p-24) * v
}

// lcg is a small deterministic generator for test data.
type lcg uint64

func (g *lcg) next() float64 {
	*g = *g*6364136223846793005 + 1442695040888963407
	return float64(uint64(*g)>>11) / (1 << 53)
}

// ref computes a model's Stats by brute force: every |δ| sorted.
type ref struct {
	abs          []float64
	sumD2, sumB2 float64
	nonFinite    int64
}

func (r *ref) add(b, x float32) {
	if isNonFinite(b) || isNonFinite(x) {
		r.nonFinite++
		return
	}
	d := float64(x) - float64(b)
	r.abs = append(r.abs, math.Abs(d))
	r.sumD2 += d * d
	r.sumB2 += float64(b) * float64(b)
}

func isNonFinite(f float32) bool { return math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) }

func (r *ref) check(t *testing.T, what string, s Stats) {
	t.Helper()
	a := slices.Clone(r.abs)
	slices.Sort(a)
	n := int64(len(a))
	if s.N != n || s.NonFinite != r.nonFinite {
		t.Errorf("%s: N, NonFinite = %d, %d, want %d, %d", what, s.N, s.NonFinite, n, r.nonFinite)
		return
	}
	if n == 0 {
		return
	}
	if s.MaxAbs != a[n-1] {
		t.Errorf("%s: MaxAbs = %v, want %v", what, s.MaxAbs, a[n-1])
	}
	for i, q := range Quantiles {
		k := int64(math.Ceil(q*float64(n) - 1e-9)) // q·n is within 1e-9 of an integer or not close
		k = max(k, 1)
		want := a[k-1]
		if got := s.Quantiles[i]; math.Abs(got-want) > quantileTol(want) {
			t.Errorf("%s: quantile %v = %v, want %v (rank %d of %d) within %v", what, q, got, want, k, n, quantileTol(want))
		}
	}
	for i, th := range Within {
		var c int64
		for _, v := range a {
			if v <= th {
				c++
			}
		}
		if s.WithinCount[i] != c {
			t.Errorf("%s: WithinCount[%v] = %d, want %d", what, th, s.WithinCount[i], c)
		}
	}
	want := math.Sqrt(r.sumD2) / math.Sqrt(r.sumB2)
	if got := s.RelNorm(); math.Abs(got-want) > 1e-9*want {
		t.Errorf("%s: RelNorm = %v, want %v", what, got, want)
	}
}

// TestAgainstReference compares Run with a brute-force reference on three models, three
// dtypes, deltas spanning many magnitudes (zeros, subnormals, large), and NaN/Inf elements,
// for several chunk sizes and thread counts, and checks that the results do not depend on
// them.
func TestAgainstReference(t *testing.T) {
	type tensor struct {
		name  string
		dt    dtype.DType
		shape []int64
	}
	tensors := []tensor{
		{"a.weight", dtype.F32, []int64{37, 29}},
		{"b.weight", dtype.BF16, []int64{501}},
		{"c.weight", dtype.F16, []int64{3, 7, 11}},
		{"d.scalar", dtype.F32, nil},
	}
	const models = 3
	g := lcg(42)
	vals := make([][][]float32, models+1) // [model][tensor] values; model 0 is the base
	for m := range vals {
		vals[m] = make([][]float32, len(tensors))
	}
	for ti, tn := range tensors {
		n := numel(tn.shape)
		for m := range vals {
			vals[m][ti] = make([]float32, n)
		}
		for i := range n {
			b := float32(0.05 * (g.next() - 0.5))
			vals[0][ti][i] = b
			for m := 1; m <= models; m++ {
				var d float64
				switch r := g.next(); {
				case r < 0.1:
					d = 0
				case r < 0.15:
					d = 1e-40 * g.next() // subnormal deltas (F32 only survives them)
				case r < 0.2:
					d = 0.5 * (g.next() - 0.5)
				default:
					d = 0.01 * (g.next() - 0.5) * math.Pow(10, -3*g.next())
				}
				vals[m][ti][i] = b + float32(d)
			}
		}
	}
	// Round to the dtypes, as the file will hold them, then plant non-finite values.
	for ti, tn := range tensors {
		for m := range vals {
			buf := make([]byte, len(vals[m][ti])*tn.dt.Size())
			dtype.Encode(buf, vals[m][ti], tn.dt)
			dtype.Decode(vals[m][ti], buf, tn.dt)
		}
	}
	vals[1][0][5] = float32(math.NaN())
	vals[0][1][7] = float32(math.Inf(1))
	vals[2][2][0] = float32(math.Inf(-1))

	fsys := safetensors.MemFS{}
	names := []string{"base", "m1", "m2", "m3"}
	for m, name := range names {
		var ts []tdata
		for ti, tn := range tensors {
			ts = append(ts, tdata{name: tn.name, dt: tn.dt, shape: tn.shape, vals: vals[m][ti]})
		}
		writeFile(t, fsys, name+".safetensors", ts)
		names[m] = name + ".safetensors"
	}
	ms := open(t, fsys, names...)

	var first *Report
	for _, chunk := range []int{1, 7, 64, 1 << 20} {
		for _, threads := range []int{1, 2, 3} {
			r := runThreads(t, ms, chunk, threads)
			if first == nil {
				first = r
			} else if !reflect.DeepEqual(r, first) {
				t.Errorf("chunk size %d, %d threads: report differs from chunk size 1, 1 thread", chunk, threads)
			}
		}
	}
	r := first
	for m := 1; m <= models; m++ {
		all := &ref{}
		for ti, tn := range tensors {
			one := &ref{}
			for i, b := range vals[0][ti] {
				one.add(b, vals[m][ti][i])
				all.add(b, vals[m][ti][i])
			}
			one.check(t, names[m]+" "+tn.name, r.Models[m-1].Tensors[ti].Stats)
		}
		all.check(t, names[m]+" overall", r.Models[m-1].Overall)
	}
	for _, p := range r.Pairs {
		var dot, na, nb float64
		var both, conf int64
		for ti := range tensors {
			for i, b := range vals[0][ti] {
				x, y := vals[p.A+1][ti][i], vals[p.B+1][ti][i]
				if isNonFinite(b) || isNonFinite(x) || isNonFinite(y) {
					continue
				}
				da, db := float64(x)-float64(b), float64(y)-float64(b)
				dot += da * db
				na += da * da
				nb += db * db
				if da != 0 && db != 0 {
					both++
					if da*db < 0 {
						conf++
					}
				}
			}
		}
		want := dot / math.Sqrt(na*nb)
		if got := p.Overall.Cosine(); math.Abs(got-want) > 1e-9 {
			t.Errorf("pair %d,%d: Cosine = %v, want %v", p.A, p.B, got, want)
		}
		if p.Overall.BothNonZero != both || p.Overall.Conflicts != conf {
			t.Errorf("pair %d,%d: BothNonZero, Conflicts = %d, %d, want %d, %d", p.A, p.B, p.Overall.BothNonZero, p.Overall.Conflicts, both, conf)
		}
	}
	if len(r.Pairs) != 3 || r.Pairs[0].A != 0 || r.Pairs[0].B != 1 || r.Pairs[2].A != 1 || r.Pairs[2].B != 2 {
		t.Errorf("pairs = %+v, want (0,1), (0,2), (1,2)", r.Pairs)
	}
}

func TestShapeMismatch(t *testing.T) {
	fsys := safetensors.MemFS{}
	writeFile(t, fsys, "base/model.safetensors", []tdata{{name: "w", dt: dtype.F32, shape: []int64{2, 3}, vals: make([]float32, 6)}})
	writeFile(t, fsys, "ft/model.safetensors", []tdata{{name: "w", dt: dtype.F32, shape: []int64{3, 2}, vals: make([]float32, 6)}})
	ms := open(t, fsys, "base", "ft")
	_, err := Run(context.Background(), ms[0], ms[1:], Options{})
	if err == nil {
		t.Fatal("Run with shapes [2 3] and [3 2]: no error")
	}
	for _, want := range []string{"ft/model.safetensors", `"w"`, "[3, 2]", "[2, 3]", "base/model.safetensors"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// TestSkipped checks that integer, missing and extra tensors are reported and not compared.
func TestSkipped(t *testing.T) {
	fsys := safetensors.MemFS{}
	w := []float32{1, 2, 3, 4}
	ids := tdata{name: "ids", dt: dtype.I64, shape: []int64{2}, raw: make([]byte, 16)}
	writeFile(t, fsys, "base.safetensors", []tdata{
		{name: "w", dt: dtype.F32, shape: []int64{4}, vals: w}, ids,
		{name: "only_base", dt: dtype.F32, shape: []int64{1}, vals: []float32{1}},
	})
	writeFile(t, fsys, "ft.safetensors", []tdata{
		{name: "w", dt: dtype.BF16, shape: []int64{4}, vals: []float32{1, 2, 3, 5}}, ids,
		{name: "extra", dt: dtype.F32, shape: []int64{1}, vals: []float32{1}},
	})
	r := run(t, open(t, fsys, "base.safetensors", "ft.safetensors"), 0)
	var got []string
	for _, s := range r.Skipped {
		got = append(got, s.Tensor)
	}
	if want := []string{"ids", "only_base", "extra"}; !slices.Equal(got, want) {
		t.Errorf("Skipped = %v, want %v", r.Skipped, want)
	}
	if len(r.Models[0].Tensors) != 1 || r.Models[0].Tensors[0].Name != "w" || r.Models[0].Overall.MaxAbs != 1 {
		t.Errorf("compared %+v, want w only with max |δ| 1", r.Models[0].Tensors)
	}
}

// TestCancel checks progress reports and that a cancelled context stops Run.
func TestCancel(t *testing.T) {
	fsys := safetensors.MemFS{}
	v := make([]float32, 100)
	for _, n := range []string{"b.safetensors", "m.safetensors"} {
		writeFile(t, fsys, n, []tdata{{name: "x", dt: dtype.F32, shape: []int64{100}, vals: v}, {name: "y", dt: dtype.F32, shape: []int64{100}, vals: v}})
	}
	ms := open(t, fsys, "b.safetensors", "m.safetensors")
	var last Progress
	calls, yields := 0, 0
	if _, err := Run(context.Background(), ms[0], ms[1:], Options{ChunkSize: 30, Yield: func() { yields++ }, Progress: func(p Progress) {
		if p.ElementsDone < last.ElementsDone {
			t.Errorf("progress went back: %+v after %+v", p, last)
		}
		last = p
		calls++
	}}); err != nil {
		t.Fatal(err)
	}
	if calls != 9 || last.ElementsDone != 200 || last.Elements != 200 || last.TensorsDone != 2 || last.BytesRead != 1600 {
		t.Errorf("%d progress calls, last %+v; want 9 (4 chunks per tensor, one at the end), 200 elements, 2 tensors, 1600 bytes", calls, last)
	}
	if yields != 8 {
		t.Errorf("Yield called %d times, want 8 (once per chunk)", yields)
	}

	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := Run(ctx, ms[0], ms[1:], Options{ChunkSize: 30, Progress: func(Progress) {
		if n++; n == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run after cancel = %v, want context.Canceled", err)
	}
}

// TestNothingToCompare checks a model with no float tensor in common with the base: its
// verdict says so and its statistics are undefined (null in JSON), not zero.
func TestNothingToCompare(t *testing.T) {
	fsys := safetensors.MemFS{}
	writeFile(t, fsys, "b.safetensors", []tdata{{name: "ids", dt: dtype.I32, shape: []int64{2}, raw: make([]byte, 8)}})
	writeFile(t, fsys, "m.safetensors", []tdata{{name: "ids", dt: dtype.I32, shape: []int64{2}, raw: make([]byte, 8)}})
	r := run(t, open(t, fsys, "b.safetensors", "m.safetensors"), 0)
	m := r.Models[0]
	if m.Verdict != VerdictNothing || m.Overall.N != 0 || !math.IsNaN(m.Overall.Quantiles[0]) || !math.IsNaN(m.Overall.FracWithin(0)) {
		t.Errorf("verdict %q, overall %+v; want %q, N 0 and NaN statistics", m.Verdict, m.Overall, VerdictNothing)
	}
	data, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"max_abs":null,"quantiles":{"0.5":null`) {
		t.Errorf("JSON %s: want null statistics", data)
	}
}

// TestHugeDeltas checks deltas beyond the float32 range (6e38 from ±3e38): they are exact in
// float64, land in the histogram's +Inf bin, and the quantiles there are the exact maximum.
func TestHugeDeltas(t *testing.T) {
	fsys := safetensors.MemFS{}
	writeFile(t, fsys, "b.safetensors", []tdata{{name: "w", dt: dtype.F32, shape: []int64{2}, vals: []float32{-3e38, 1}}})
	writeFile(t, fsys, "m.safetensors", []tdata{{name: "w", dt: dtype.F32, shape: []int64{2}, vals: []float32{3e38, 1}}})
	s := run(t, open(t, fsys, "b.safetensors", "m.safetensors"), 0).Models[0].Overall
	want := 2 * float64(float32(3e38))
	if s.MaxAbs != want || s.Quantiles[3] != want || s.Quantiles[0] != 0 {
		t.Errorf("MaxAbs %v, quantiles %v; want %v, [0 %v %v %v]", s.MaxAbs, s.Quantiles, want, want, want, want)
	}
}
