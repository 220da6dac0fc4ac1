package analyze

import (
	"context"
	"fmt"
	"math"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"freelunch/core/dtype"
	"freelunch/core/safetensors"
)

// DefaultChunkSize is the default number of elements per chunk, as the engine's.
const DefaultChunkSize = 1 << 20

// Quantiles are the levels q at which quantiles of |δ| are reported.
var Quantiles = [4]float64{0.5, 0.9, 0.99, 0.999}

// quantilePermille are Quantiles in thousandths, for exact integer ranks.
var quantilePermille = [4]int64{500, 900, 990, 999}

// Within are the thresholds t of the exact counts of |δ| ≤ t (the DARE paper's 0.002 and
// 0.005).
var Within = [2]float64{0.002, 0.005}

// DropRates are the DARE drop rates p (density 1-p) at which the expected perturbation is
// reported.
var DropRates = [3]float64{0.5, 0.9, 0.99}

// Thresholds of the verdicts; see the package doc.
const (
	// UnrelatedRelNorm: a tensor whose relative norm ‖δ‖/‖B‖ is at least this is counted as
	// not derived from the base.
	UnrelatedRelNorm = 0.5
	// UnrelatedShare: a model is "not derived from this base" when its overall relative
	// norm is at least UnrelatedRelNorm, or when tensors holding at least this share of
	// the compared elements are.
	UnrelatedShare = 0.5
	// MaxDARENoise is the largest expected DARE perturbation, relative to the base's norm,
	// counted as safe. A model whose overall perturbation at drop rate 0.9 exceeds it gets
	// "deltas too large for aggressive DARE"; merge --check-deltas warns for a density
	// whose perturbation exceeds it.
	MaxDARENoise = 0.1
)

// Verdicts, in plain words.
const (
	VerdictFineTune = "a fine-tune of this base"
	VerdictLarge    = "deltas too large for aggressive DARE"
	VerdictNotBase  = "not derived from this base"
	VerdictNothing  = "nothing to compare: no float tensor in common with this base"
)

// Options control a run. None of them changes the results.
type Options struct {
	ChunkSize int // elements per chunk; 0 means DefaultChunkSize
	// Threads is the number of goroutines that read and compare the models of a chunk;
	// 0 means runtime.NumCPU() (1 under js/wasm), 1 keeps everything in the caller's.
	Threads int
	// Progress, if set, is called after each chunk.
	Progress func(Progress)
	// Yield, if set, is called between chunks; the browser uses it to let messages
	// (cancel) in.
	Yield func()
}

// Progress is a snapshot of a running analysis.
type Progress struct {
	Elements     int64 // elements of the compared tensors, per model
	ElementsDone int64
	BytesRead    int64 // input bytes read so far, all models
	Tensors      int   // compared tensors
	TensorsDone  int
	Tensor       string // the tensor being read
}

// Stats are the statistics of the deltas δ = X − B of one model, over one tensor or over
// every compared tensor. Elements where the base or the model is NaN or ±Inf are left out
// of everything but NonFinite.
type Stats struct {
	N         int64   // elements counted
	NonFinite int64   // elements left out: NaN or ±Inf in the base or the model
	MaxAbs    float64 // max |δ|, exact
	// Quantiles[i] estimates the Quantiles[i] quantile of |δ| (see the package doc for the
	// definition and accuracy); NaN when N = 0.
	Quantiles [4]float64
	// WithinCount[i] is the exact number of elements with |δ| ≤ Within[i].
	WithinCount [2]int64
	NormDelta   float64 // ‖δ‖ (float64 accumulation)
	NormBase    float64 // ‖B‖ over the same elements
}

// FracWithin returns the fraction of elements with |δ| ≤ Within[i] (NaN when N = 0).
func (s *Stats) FracWithin(i int) float64 {
	if s.N == 0 {
		return math.NaN()
	}
	return float64(s.WithinCount[i]) / float64(s.N)
}

// RelNorm returns ‖δ‖/‖B‖: 0 when both are 0, +Inf when only ‖B‖ is.
func (s *Stats) RelNorm() float64 {
	if s.NormBase == 0 {
		if s.NormDelta == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return s.NormDelta / s.NormBase
}

// DARENoise returns the expected perturbation, relative to ‖B‖, that DARE with drop rate p
// and rescale 1/(1−p) adds to the fine-tune: sqrt(p/(1−p))·‖δ‖/‖B‖ (see the package doc).
func (s *Stats) DARENoise(p float64) float64 {
	return NoiseFactor(1-p, true) * s.RelNorm()
}

// NoiseFactor returns sqrt(E‖d̂−d‖²/‖d‖²) for DARE at density (keep probability) ρ:
// sqrt((1−ρ)/ρ) with rescale by 1/ρ, sqrt(1−ρ) without; 0 for ρ ≥ 1; 1 for ρ ≤ 0, where the
// delta is dropped whole.
func NoiseFactor(density float64, rescale bool) float64 {
	switch {
	case density >= 1:
		return 0
	case density <= 0:
		return 1
	case rescale:
		return math.Sqrt((1 - density) / density)
	}
	return math.Sqrt(1 - density)
}

// TensorStats are the Stats of one tensor.
type TensorStats struct {
	Name string
	Stats
}

// ModelReport is the analysis of one model against the base.
type ModelReport struct {
	Model   string // the model's path
	Verdict string // one of the Verdict constants
	Overall Stats
	Tensors []TensorStats // compared tensors, in the base's order
	// Histogram of |δ| over every compared tensor.
	Histogram *Histogram
}

// Tensor returns the stats of the named tensor, or nil when it was not compared.
func (m *ModelReport) Tensor(name string) *TensorStats {
	for i := range m.Tensors {
		if m.Tensors[i].Name == name {
			return &m.Tensors[i]
		}
	}
	return nil
}

// PairStats compare the deltas of two models on the same elements (those finite in the base
// and both models).
type PairStats struct {
	N   int64
	Dot float64 // Σ δa·δb
	// NormA, NormB are ‖δa‖, ‖δb‖ over the same elements.
	NormA, NormB float64
	// BothNonZero counts elements where δa ≠ 0 and δb ≠ 0; Conflicts those of them where
	// the signs differ.
	BothNonZero, Conflicts int64
}

// Cosine returns Σ δa·δb / (‖δa‖·‖δb‖), NaN when either norm is 0.
func (p *PairStats) Cosine() float64 {
	if p.NormA == 0 || p.NormB == 0 {
		return math.NaN()
	}
	return max(-1, min(1, p.Dot/(p.NormA*p.NormB)))
}

// SignConflict returns Conflicts/BothNonZero: among the elements where both deltas are
// non-zero, the fraction where they have opposite signs. NaN when there is none.
func (p *PairStats) SignConflict() float64 {
	if p.BothNonZero == 0 {
		return math.NaN()
	}
	return float64(p.Conflicts) / float64(p.BothNonZero)
}

// PairTensor is the PairStats of one tensor.
type PairTensor struct {
	Name string
	PairStats
}

// PairReport compares models A and B (indexes into Report.Models, A < B).
type PairReport struct {
	A, B    int
	Overall PairStats
	Tensors []PairTensor
}

// Skipped is a tensor left out of the analysis, and why.
type Skipped struct {
	Tensor string
	Reason string
}

// Report is the result of Run.
type Report struct {
	Base    string
	Models  []ModelReport
	Pairs   []PairReport // every pair i < j, in order (0,1), (0,2), ..., (1,2), ...
	Skipped []Skipped    // in the base's order, then tensors absent from the base
}

// fileOf names the file that holds t of m, for errors.
func fileOf(m *safetensors.Model, t *safetensors.Tensor) string {
	if strings.HasSuffix(m.Path, ".safetensors") || m.Dir == "" {
		return m.Path
	}
	return path.Join(m.Dir, t.Shard)
}

func shapeString(s []int64) string {
	return strings.ReplaceAll(fmt.Sprint(s), " ", ", ")
}

func numel(s []int64) int64 {
	n := int64(1)
	for _, d := range s {
		n *= d
	}
	return n
}

// job is one compared tensor: the base's and each model's.
type job struct {
	name string
	n    int64
	base *safetensors.Tensor
	ts   []*safetensors.Tensor
}

// plan picks the compared tensors and the skipped ones; a shape mismatch is an error.
func plan(base *safetensors.Model, models []*safetensors.Model) ([]job, []Skipped, error) {
	var jobs []job
	var skipped []Skipped
	for _, bt := range base.Tensors() {
		j := job{name: bt.Name, n: numel(bt.Shape), base: bt}
		reason := ""
		if !bt.DType.IsFloat() {
			reason = fmt.Sprintf("%s in the base, not a float dtype", bt.DType)
		}
		for _, m := range models {
			t := m.Lookup(bt.Name)
			if t == nil {
				if reason == "" {
					reason = "missing from " + m.Path
				}
				continue
			}
			if !slices.Equal(t.Shape, bt.Shape) {
				return nil, nil, fmt.Errorf("analyze: %s: tensor %q has shape %s but the base %s has %s",
					fileOf(m, t), bt.Name, shapeString(t.Shape), fileOf(base, bt), shapeString(bt.Shape))
			}
			if !t.DType.IsFloat() && reason == "" {
				reason = fmt.Sprintf("%s in %s, not a float dtype", t.DType, m.Path)
			}
			j.ts = append(j.ts, t)
		}
		if reason != "" {
			skipped = append(skipped, Skipped{Tensor: bt.Name, Reason: reason})
			continue
		}
		jobs = append(jobs, j)
	}
	seen := map[string]bool{}
	for _, m := range models {
		for _, t := range m.Tensors() {
			if base.Lookup(t.Name) == nil && !seen[t.Name] {
				seen[t.Name] = true
				skipped = append(skipped, Skipped{Tensor: t.Name, Reason: "not in the base (first seen in " + m.Path + ")"})
			}
		}
	}
	return jobs, skipped, nil
}

// acc accumulates one model's stats over one tensor.
type acc struct {
	n, nonFinite int64
	maxAbs       float64
	within       [2]int64
	sumD2, sumB2 float64
	hist         *Histogram
}

// pairAcc accumulates one pair's stats over one tensor.
type pairAcc struct {
	n                    int64
	dot, sumA2, sumB2    float64
	bothNonZero, conflic int64
}

// Run compares each model with base, tensor by tensor in chunks of opts.ChunkSize elements,
// and returns the Report. Models are identified by their Path.
//
// Only tensors that are float in the base and in every model are compared; the others are
// listed in Report.Skipped with the reason. Every header is checked before any data is
// read: a tensor whose shape differs from the base's is an error naming the file, the
// tensor and both shapes. Run stops when ctx is cancelled, returning ctx's cause; read errors
// are returned wrapped. Memory is bounded by the chunk size times the number of models plus
// two histograms per model (256 KiB each), never by tensor or model size. The results do
// not depend on the chunk size.
func Run(ctx context.Context, base *safetensors.Model, models []*safetensors.Model, opts Options) (*Report, error) {
	jobs, skipped, err := plan(base, models)
	if err != nil {
		return nil, err
	}
	chunk := int64(opts.ChunkSize)
	if chunk <= 0 {
		chunk = DefaultChunkSize
	}
	nm := len(models)
	rep := &Report{Base: base.Path, Skipped: skipped, Models: make([]ModelReport, nm)}
	overall := make([]acc, nm)
	cur := make([]acc, nm)
	for k, m := range models {
		rep.Models[k] = ModelReport{Model: m.Path, Histogram: &Histogram{}}
		overall[k].hist = rep.Models[k].Histogram
		cur[k].hist = &Histogram{}
	}
	for a := 0; a < nm; a++ {
		for b := a + 1; b < nm; b++ {
			rep.Pairs = append(rep.Pairs, PairReport{A: a, B: b})
		}
	}
	pairs := make([]pairAcc, len(rep.Pairs))
	pairsAll := make([]pairAcc, len(rep.Pairs))

	prog := Progress{Tensors: len(jobs)}
	for _, j := range jobs {
		prog.Elements += j.n
	}
	maxN := int64(0)
	for _, j := range jobs {
		maxN = max(maxN, min(j.n, chunk))
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	raw := make([][]byte, nm+1) // per input: the base's last
	xvals := make([][]float32, nm+1)
	deltas := make([][]float64, nm) // NaN marks a left-out element
	for k := range raw {
		raw[k] = make([]byte, maxN*8)
		xvals[k] = make([]float32, maxN)
	}
	for k := range deltas {
		deltas[k] = make([]float64, maxN)
	}
	bvals := xvals[nm]

	for _, j := range jobs {
		prog.Tensor = j.name
		for k := range cur {
			h := cur[k].hist
			h.reset()
			cur[k] = acc{hist: h}
		}
		clear(pairs)
		for off := int64(0); off < j.n; off += chunk {
			if err := context.Cause(ctx); err != nil {
				return nil, err
			}
			if opts.Yield != nil {
				opts.Yield()
			}
			c := min(chunk, j.n-off)
			if err := read(base, j.base, raw[nm], bvals[:c], off); err != nil {
				return nil, err
			}
			prog.BytesRead += c * int64(j.base.DType.Size())
			// Each model's and each pair's accumulators are touched by one goroutine per
			// chunk, chunks in order: the sums do not depend on threads.
			if err := parallel(nm, threads, func(k int) error {
				if err := read(models[k], j.ts[k], raw[k], xvals[k][:c], off); err != nil {
					return err
				}
				cur[k].observe(deltas[k][:c], bvals[:c], xvals[k][:c])
				return nil
			}); err != nil {
				return nil, err
			}
			for _, t := range j.ts {
				prog.BytesRead += c * int64(t.DType.Size())
			}
			parallel(len(pairs), threads, func(p int) error {
				pairs[p].observe(deltas[rep.Pairs[p].A][:c], deltas[rep.Pairs[p].B][:c])
				return nil
			})
			prog.ElementsDone += c
			if opts.Progress != nil {
				opts.Progress(prog)
			}
		}
		for k := range models {
			mr := &rep.Models[k]
			mr.Tensors = append(mr.Tensors, TensorStats{Name: j.name, Stats: cur[k].stats()})
			o := &overall[k]
			o.n += cur[k].n
			o.nonFinite += cur[k].nonFinite
			o.maxAbs = max(o.maxAbs, cur[k].maxAbs)
			o.within[0] += cur[k].within[0]
			o.within[1] += cur[k].within[1]
			o.sumD2 += cur[k].sumD2
			o.sumB2 += cur[k].sumB2
			o.hist.addAll(cur[k].hist)
		}
		for p := range rep.Pairs {
			rep.Pairs[p].Tensors = append(rep.Pairs[p].Tensors, PairTensor{Name: j.name, PairStats: pairs[p].stats()})
			a := &pairsAll[p]
			a.n += pairs[p].n
			a.dot += pairs[p].dot
			a.sumA2 += pairs[p].sumA2
			a.sumB2 += pairs[p].sumB2
			a.bothNonZero += pairs[p].bothNonZero
			a.conflic += pairs[p].conflic
		}
		prog.TensorsDone++
	}
	for k := range models {
		mr := &rep.Models[k]
		mr.Overall = overall[k].stats()
		mr.Verdict = verdict(mr)
	}
	for p := range rep.Pairs {
		rep.Pairs[p].Overall = pairsAll[p].stats()
	}
	if opts.Progress != nil {
		opts.Progress(prog)
	}
	return rep, nil
}

// parallel calls f(0), ..., f(n-1) on up to threads goroutines (in this one when threads is
// 1) and returns the first error by index.
func parallel(n, threads int, f func(i int) error) error {
	if threads <= 1 || n <= 1 {
		for i := range n {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(threads, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				errs[i] = f(i)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// read decodes elements [off, off+len(dst)) of t into dst, using raw as scratch.
func read(m *safetensors.Model, t *safetensors.Tensor, raw []byte, dst []float32, off int64) error {
	size := int64(t.DType.Size())
	b := raw[:int64(len(dst))*size]
	if err := m.ReadAt(t, b, off*size); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	dtype.Decode(dst, b, t.DType)
	return nil
}

// observe accumulates the elements of one chunk and writes their deltas to d (NaN where the
// element is left out). Sums run in element order, so they do not depend on the chunking.
func (a *acc) observe(d []float64, base, x []float32) {
	d = d[:len(base)]
	x = x[:len(base)]
	for i, bv := range base {
		b, v := float64(bv), float64(x[i])
		if math.IsInf(b, 0) || math.IsInf(v, 0) || b != b || v != v {
			a.nonFinite++
			d[i] = math.NaN()
			continue
		}
		dv := v - b
		d[i] = dv
		ab := math.Abs(dv)
		a.n++
		a.maxAbs = max(a.maxAbs, ab)
		if ab <= Within[0] {
			a.within[0]++
		}
		if ab <= Within[1] {
			a.within[1]++
		}
		a.sumD2 += dv * dv
		a.sumB2 += b * b
		a.hist.add(binOf(ab))
	}
}

func (a *acc) stats() Stats {
	s := Stats{
		N: a.n, NonFinite: a.nonFinite, MaxAbs: a.maxAbs, WithinCount: a.within,
		NormDelta: math.Sqrt(a.sumD2), NormBase: math.Sqrt(a.sumB2),
	}
	for i, pm := range quantilePermille {
		s.Quantiles[i] = a.hist.quantile(rank(a.n, pm), a.maxAbs)
	}
	return s
}

// rank returns the 1-based rank ceil(n·permille/1000), at least 1.
func rank(n, permille int64) int64 {
	return max(1, (n*permille+999)/1000)
}

func (p *pairAcc) observe(da, db []float64) {
	db = db[:len(da)]
	for i, a := range da {
		b := db[i]
		if a != a || b != b {
			continue
		}
		p.n++
		p.dot += a * b
		p.sumA2 += a * a
		p.sumB2 += b * b
		if a != 0 && b != 0 {
			p.bothNonZero++
			if (a < 0) != (b < 0) {
				p.conflic++
			}
		}
	}
}

func (p *pairAcc) stats() PairStats {
	return PairStats{
		N: p.n, Dot: p.dot, NormA: math.Sqrt(p.sumA2), NormB: math.Sqrt(p.sumB2),
		BothNonZero: p.bothNonZero, Conflicts: p.conflic,
	}
}

// verdict applies the package doc's rules to a finished model report.
func verdict(m *ModelReport) string {
	if m.Overall.N == 0 {
		return VerdictNothing
	}
	var far int64
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if t.N > 0 && t.RelNorm() >= UnrelatedRelNorm {
			far += t.N
		}
	}
	if m.Overall.RelNorm() >= UnrelatedRelNorm || float64(far) >= UnrelatedShare*float64(m.Overall.N) {
		return VerdictNotBase
	}
	if m.Overall.DARENoise(0.9) > MaxDARENoise {
		return VerdictLarge
	}
	return VerdictFineTune
}
