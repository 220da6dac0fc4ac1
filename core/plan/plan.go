package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"freelunch/core/config"
	"freelunch/core/dtype"
	"freelunch/core/merge"
	"freelunch/core/safetensors"
)

// ErrPlan is wrapped by every planning error (errors.Is(err, ErrPlan)).
var ErrPlan = errors.New("plan: invalid merge")

// DefaultShardSize is the default --out-shard-size: 5B bytes (5,000,000,000).
const DefaultShardSize = 5_000_000_000

// configLimit bounds the size of a model's config.json that is read.
const configLimit = 16 << 20

// Options are the planning settings that do not come from the config file.
type Options struct {
	Seed      uint64 // --random-seed
	ShardSize int64  // --out-shard-size in bytes; 0 means DefaultShardSize
}

// Input is one input of an output tensor: a model and its source tensor.
type Input struct {
	Model  *safetensors.Model
	Tensor *safetensors.Tensor
}

// Entry is one output tensor.
type Entry struct {
	Name   string
	DType  dtype.DType // output dtype
	Shape  []int64
	N      int64 // elements
	Inputs []Input
	// Merge is the method's view of the tensor; nil when the tensor is copied byte for
	// byte from Inputs[0] (non-float dtypes), with the other inputs compared against it.
	Merge *merge.Tensor
	Shard int   // index into Plan.Shards
	Bytes int64 // output size in bytes
}

// Plan is everything a merge will do, fixed before any tensor data is read.
type Plan struct {
	Config  *config.Config
	Method  merge.Method
	Seed    uint64
	Models  []*safetensors.Model // every opened model, base first when there is one
	Base    *safetensors.Model   // the reference model: base, or the first model
	Entries []Entry
	Shards  []safetensors.Shard
	// Tokenizer is the model whose tokenizer files are copied (the base unless
	// tokenizer_source names another).
	Tokenizer *safetensors.Model
	// BaseConfig is the reference model's config.json (nil when it has none).
	BaseConfig []byte
	Layers     int      // layer count used for gradients
	OutLayers  int      // layer count of the output when slices change it, else 0
	Warnings   []string // things worth telling the user that do not stop the merge
}

// InputBytes returns the number of input bytes a single pass over all inputs reads.
func (p *Plan) InputBytes() int64 {
	var n int64
	for i := range p.Entries {
		for _, in := range p.Entries[i].Inputs {
			n += in.Tensor.Size()
		}
	}
	return n
}

// OutputBytes returns the total size of the output shards, headers included.
func (p *Plan) OutputBytes() int64 {
	var n int64
	for _, s := range p.Shards {
		n += s.Size
	}
	return n
}

// Close closes every model the plan opened.
func (p *Plan) Close() error {
	var errs []error
	for _, m := range p.Models {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPlan, fmt.Sprintf(format, args...))
}

// source is one model of the config as the planner sees it.
type source struct {
	path   string
	model  *safetensors.Model
	params config.Params // per-model parameters (nil for a base that is not listed)
	index  int           // position in the config's models list, -1 if not listed
	line   int
}

// Build opens the models of cfg through fsys, checks everything that can be checked from
// headers (design.md §8), and returns the plan. On error every opened model is closed.
func Build(cfg *config.Config, fsys safetensors.FS, opts Options) (_ *Plan, err error) {
	method, ok := merge.Lookup(cfg.MergeMethod)
	if !ok {
		return nil, errorf("unknown merge_method %q", cfg.MergeMethod)
	}
	if len(cfg.Slices) > 0 {
		return nil, errorf("slices are not supported yet")
	}
	if opts.ShardSize <= 0 {
		opts.ShardSize = DefaultShardSize
	}
	p := &Plan{Config: cfg, Method: method, Seed: opts.Seed}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()

	opened := map[string]*safetensors.Model{}
	open := func(path string) (*safetensors.Model, error) {
		if m, ok := opened[path]; ok {
			return m, nil
		}
		m, err := safetensors.OpenModel(fsys, path)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", path, err)
		}
		opened[path] = m
		p.Models = append(p.Models, m)
		return m, nil
	}

	rule := method.Inputs()
	var base *source
	var others []*source
	if cfg.BaseModel != "" {
		m, err := open(cfg.BaseModel)
		if err != nil {
			return nil, err
		}
		base = &source{path: cfg.BaseModel, model: m, index: -1}
	} else if rule.Base == merge.Required {
		return nil, errorf("merge_method %s needs a base_model", method.Name())
	}
	for i, e := range cfg.Models {
		m, err := open(e.Model)
		if err != nil {
			return nil, err
		}
		s := &source{path: e.Model, model: m, params: e.Parameters, index: i, line: e.Line}
		if base != nil && e.Model == cfg.BaseModel {
			base.params, base.index, base.line = e.Parameters, i, e.Line
			if !rule.BaseIsInput {
				continue // the base listed among the models is still just the base
			}
			s = base
		}
		others = append(others, s)
	}
	if base != nil && rule.BaseIsInput && base.index < 0 {
		// The base of a method such as linear is merged like any model.
		others = append([]*source{base}, others...)
	}
	if len(others) < rule.MinModels {
		return nil, errorf("merge_method %s needs at least %d models besides the base, the config has %d",
			method.Name(), rule.MinModels, len(others))
	}
	if rule.MaxModels > 0 && len(others) > rule.MaxModels {
		return nil, errorf("merge_method %s takes at most %d models besides the base, the config has %d",
			method.Name(), rule.MaxModels, len(others))
	}

	var inputs []*source
	hasBase := base != nil && !rule.BaseIsInput
	if hasBase {
		inputs = append(inputs, base)
	}
	inputs = append(inputs, others...)
	ref := inputs[0]
	if base != nil {
		ref = base
	}
	p.Base = ref.model
	p.Tokenizer = ref.model
	switch ts := cfg.TokenizerSource; ts {
	case "", "base":
	default:
		m, err := open(ts)
		if err != nil {
			return nil, fmt.Errorf("tokenizer_source: %w", err)
		}
		p.Tokenizer = m
	}

	p.BaseConfig, err = ref.model.ReadFile("config.json", configLimit)
	if err != nil {
		if !errors.Is(err, safetensors.ErrNotFound) {
			return nil, fmt.Errorf("model %s: config.json: %w", ref.path, err)
		}
		p.BaseConfig = nil
	}
	p.Layers = layerCount(p.BaseConfig, ref.model)

	params := method.Params()
	for _, t := range ref.model.Tensors() {
		e, err := p.entry(cfg, method, params, t, inputs, hasBase)
		if err != nil {
			return nil, err
		}
		p.Entries = append(p.Entries, e)
	}
	for _, s := range inputs {
		if s.model == ref.model {
			continue
		}
		extra := 0
		for _, t := range s.model.Tensors() {
			if ref.model.Lookup(t.Name) == nil {
				extra++
			}
		}
		if extra > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("model %s has %d tensors that %s lacks; they are left out of the output", s.path, extra, ref.path))
		}
	}

	specs := make([]safetensors.TensorSpec, len(p.Entries))
	for i, e := range p.Entries {
		specs[i] = safetensors.TensorSpec{Name: e.Name, DType: e.DType, Shape: e.Shape}
	}
	p.Shards, err = safetensors.SplitShards(specs, opts.ShardSize, map[string]string{"format": "pt"})
	if err != nil {
		return nil, fmt.Errorf("plan output shards: %w", err)
	}
	i := 0
	for si, s := range p.Shards {
		for range s.Specs {
			p.Entries[i].Shard = si
			i++
		}
	}
	return p, nil
}

// entry plans the output tensor named like t of the reference model.
func (p *Plan) entry(cfg *config.Config, method merge.Method, params []merge.Param, t *safetensors.Tensor, inputs []*source, hasBase bool) (Entry, error) {
	e := Entry{Name: t.Name, Shape: t.Shape, N: t.NumElements()}
	for _, s := range inputs {
		st := s.model.Lookup(t.Name)
		if st == nil {
			return e, errorf("model %s has no tensor %q, which %s has", s.path, t.Name, p.Base.Path)
		}
		if !equalShape(st.Shape, t.Shape) {
			return e, errorf("tensor %q has shape %v in %s but %v in %s", t.Name, st.Shape, s.path, t.Shape, p.Base.Path)
		}
		if st.DType.IsFloat() != t.DType.IsFloat() {
			return e, errorf("tensor %q is %s in %s but %s in %s", t.Name, st.DType, s.path, t.DType, p.Base.Path)
		}
		if !st.DType.IsFloat() && st.DType != t.DType {
			return e, errorf("tensor %q is %s in %s but %s in %s", t.Name, st.DType, s.path, t.DType, p.Base.Path)
		}
		e.Inputs = append(e.Inputs, Input{Model: s.model, Tensor: st})
	}
	if !t.DType.IsFloat() {
		// Copied byte for byte from the reference model (design.md §2).
		e.DType = t.DType
		e.Inputs = []Input{{Model: p.Base, Tensor: t}}
		for _, s := range inputs {
			if s.model != p.Base {
				e.Inputs = append(e.Inputs, Input{Model: s.model, Tensor: s.model.Lookup(t.Name)})
			}
		}
		e.Bytes = t.Size()
		return e, nil
	}
	e.DType = t.DType
	if cfg.DType != dtype.Invalid {
		e.DType = cfg.DType
	}
	if cfg.OutDType != dtype.Invalid {
		e.DType = cfg.OutDType
	}
	bytes, ok := mulCheck(e.N, int64(e.DType.Size()))
	if !ok {
		return e, errorf("tensor %q: %v elements overflow", t.Name, e.Shape)
	}
	e.Bytes = bytes

	layer := config.LayerOf(t.Name)
	mt := &merge.Tensor{
		Name: t.Name, Shape: t.Shape, N: e.N, Seed: p.Seed, HasBase: hasBase,
		Global: merge.Params{},
	}
	for _, prm := range params {
		if prm.Scope != merge.Global {
			continue
		}
		v, err := resolve(prm, t.Name, layer, p.Layers, cfg.Parameters)
		if err != nil {
			return e, err
		}
		mt.Global[prm.Name] = v
	}
	for k, s := range inputs {
		args := merge.Params{}
		for _, prm := range params {
			if prm.Scope != merge.PerModel {
				continue
			}
			if hasBase && k == 0 {
				// The base's own parameters are not used by base-relative methods;
				// fill defaults so the kernel can read every name.
				if prm.Default != nil {
					args[prm.Name] = prm.Default
				}
				continue
			}
			v, err := resolve(prm, t.Name, layer, p.Layers, s.params, cfg.Parameters)
			if err != nil {
				return e, err
			}
			if v == nil {
				return e, errorf("model %s: parameter %s is required for tensor %q but no value applies to it", s.path, prm.Name, t.Name)
			}
			args[prm.Name] = v
		}
		mt.Args = append(mt.Args, args)
		idx := s.index
		if idx < 0 {
			idx = 0 // the base when unlisted; its stream is never drawn
		}
		mt.Models = append(mt.Models, idx)
	}
	if err := method.Check(mt); err != nil {
		return e, fmt.Errorf("%w: tensor %q: %w", ErrPlan, t.Name, err)
	}
	e.Merge = mt
	return e, nil
}

// resolve finds prm's value for a tensor in the first level that has a matching value,
// falling back to the declared default (nil when there is none).
// Ranges were checked by the config parser for every scalar and gradient point, and
// interpolation stays between points.
func resolve(prm merge.Param, name string, layer, layers int, levels ...config.Params) (any, error) {
	for _, lv := range levels {
		v, ok := lv[prm.Name]
		if !ok {
			continue
		}
		val, ok := v.Resolve(name, layer, layers)
		if !ok {
			continue
		}
		return val, nil
	}
	return prm.Default, nil
}

// layerCount reads the layer count from config.json (num_hidden_layers, n_layer, ...) or
// else returns the largest layer index of the model's tensors + 1.
func layerCount(cfgJSON []byte, m *safetensors.Model) int {
	if cfgJSON != nil {
		var c map[string]any
		if json.Unmarshal(cfgJSON, &c) == nil {
			for _, k := range LayerKeys {
				if f, ok := c[k].(float64); ok && f >= 1 && f == math.Trunc(f) {
					return int(f)
				}
			}
		}
	}
	n := 0
	for _, t := range m.Tensors() {
		if l := config.LayerOf(t.Name); l+1 > n {
			n = l + 1
		}
	}
	return n
}

// LayerKeys are the config.json keys that hold a model's layer count, in order of preference.
var LayerKeys = []string{"num_hidden_layers", "n_layer", "num_layers", "n_layers"}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mulCheck(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	c := a * b
	if c/b != a || c < 0 {
		return 0, false
	}
	return c, true
}

// Summary returns a short human description of the plan for --dry-run: tensor count,
// output bytes and shards, and the resolved parameters of a few tensors.
func (p *Plan) Summary(sample int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "method:   %s\n", p.Method.Name())
	fmt.Fprintf(&b, "seed:     %d\n", p.Seed)
	merged, copied := 0, 0
	for _, e := range p.Entries {
		if e.Merge != nil {
			merged++
		} else {
			copied++
		}
	}
	fmt.Fprintf(&b, "tensors:  %d (%d merged, %d copied)\n", len(p.Entries), merged, copied)
	fmt.Fprintf(&b, "input:    %d bytes read per pass\n", p.InputBytes())
	fmt.Fprintf(&b, "output:   %d bytes in %d shard(s)\n", p.OutputBytes(), len(p.Shards))
	for _, s := range p.Shards {
		fmt.Fprintf(&b, "  %s  %d tensors  %d bytes\n", s.FileName, len(s.Specs), s.Size)
	}
	shown := 0
	for _, e := range p.Entries {
		if e.Merge == nil || shown >= sample {
			continue
		}
		shown++
		fmt.Fprintf(&b, "%s  %s %v\n", e.Name, e.DType, e.Shape)
		if len(e.Merge.Global) > 0 {
			fmt.Fprintf(&b, "    global: %s\n", formatParams(e.Merge.Global))
		}
		for k, in := range e.Inputs {
			role := "model"
			if e.Merge.HasBase && k == 0 {
				role = "base "
			}
			fmt.Fprintf(&b, "    %s %s: %s\n", role, in.Model.Path, formatParams(e.Merge.Args[k]))
		}
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}

func formatParams(ps merge.Params) string {
	keys := make([]string, 0, len(ps))
	for k := range ps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, ps[k])
	}
	return strings.Join(parts, " ")
}
