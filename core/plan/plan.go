package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"freelunch/core/config"
	"freelunch/core/dtype"
	"freelunch/core/merge"
	"freelunch/core/safetensors"
)

// ErrPlan is wrapped by every planning error (errors.Is(err, ErrPlan)) except those of
// opening a model's files, which wrap the safetensors errors (ErrNotFound, ErrFormat,
// ErrHeaderTooLarge) and name the model.
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

// source is one input model of a group as the planner sees it.
type source struct {
	path   string
	model  *safetensors.Model
	params config.Params // per-model parameters (nil for a base that is not listed)
	index  int           // §4 model number: position in models (or in its slice's sources)
	start  int           // first layer taken from the model (slices)
}

// group is a set of inputs merged together: all the models of a models config, or the
// sources of one slice.
type group struct {
	inputs  []*source // the base first when hasBase
	hasBase bool
	params  config.Params // slice parameters (nil for a models config)
	// For slices: the layers [start, start+n) of each source become output layers
	// [out, out+n). sliced is false for a models config.
	sliced bool
	n, out int
}

// ref returns the group's reference input: the base, else the first input.
func (g *group) ref() *source { return g.inputs[0] }

// Build opens the models of cfg through fsys, checks everything that can be checked from
// headers (design.md §8), and returns the plan. On error every opened model is closed.
func Build(cfg *config.Config, fsys safetensors.FS, opts Options) (_ *Plan, err error) {
	method, ok := merge.Lookup(cfg.MergeMethod)
	if !ok {
		return nil, errorf("unknown merge_method %q", cfg.MergeMethod)
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
			if strings.Contains(err.Error(), path) {
				// The error names the file, under path: saying path again is noise.
				return nil, err
			}
			return nil, fmt.Errorf("model %s: %w", path, err)
		}
		opened[path] = m
		p.Models = append(p.Models, m)
		return m, nil
	}

	var groups []*group
	if len(cfg.Slices) > 0 {
		out := 0
		for si, sl := range cfg.Slices {
			var entries []config.ModelEntry
			for _, src := range sl.Sources {
				entries = append(entries, config.ModelEntry{Model: src.Model, Parameters: src.Parameters, Line: src.Line})
			}
			g, err := newGroup(cfg, method, entries, open, fmt.Sprintf("slices[%d]: ", si))
			if err != nil {
				return nil, err
			}
			g.sliced, g.params, g.out = true, sl.Parameters, out
			g.n = -1
			for _, in := range g.inputs {
				for _, src := range sl.Sources {
					if src.Model == in.path {
						in.start = src.LayerRange[0]
						n := src.LayerRange[1] - src.LayerRange[0]
						if g.n >= 0 && n != g.n {
							return nil, errorf("slices[%d] (line %d): the sources' layer ranges differ in length (%d and %d layers)", si, sl.Line, g.n, n)
						}
						g.n = n
					}
				}
			}
			out += g.n
			groups = append(groups, g)
		}
		p.OutLayers = out
	} else {
		g, err := newGroup(cfg, method, cfg.Models, open, "")
		if err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}

	first, last := groups[0], groups[len(groups)-1]
	p.Base = first.ref().model
	p.Tokenizer = p.Base
	refPath := first.ref().path
	switch ts := cfg.TokenizerSource; ts {
	case "", "base":
	default:
		m, err := open(ts)
		if err != nil {
			return nil, fmt.Errorf("tokenizer_source: %w", err)
		}
		p.Tokenizer = m
	}
	p.BaseConfig, err = p.Base.ReadFile("config.json", configLimit)
	if err != nil {
		if !errors.Is(err, safetensors.ErrNotFound) {
			return nil, fmt.Errorf("model %s: config.json: %w", refPath, err)
		}
		p.BaseConfig = nil
	}
	p.Layers = layerCount(p.BaseConfig, p.Base)

	params := method.Params()
	add := func(g *group, name, outName string, layer, layers int) error {
		e, err := p.entry(cfg, method, params, g, name, outName, layer, layers)
		if err != nil {
			return err
		}
		p.Entries = append(p.Entries, e)
		return nil
	}
	if !first.sliced {
		for _, t := range p.Base.Tensors() {
			if err := add(first, t.Name, t.Name, config.LayerOf(t.Name), p.Layers); err != nil {
				return nil, err
			}
		}
		p.warnExtra(first)
	} else {
		// Tensors outside numbered layers come from the first slice, but the final norm
		// and the output head come from the last; the layers of each slice in between.
		var tail []*safetensors.Tensor
		for _, t := range p.Base.Tensors() {
			if config.LayerOf(t.Name) >= 0 {
				continue
			}
			if isFinal(t.Name) {
				tail = append(tail, t)
				continue
			}
			if err := add(first, t.Name, t.Name, -1, 0); err != nil {
				return nil, err
			}
		}
		for gi, g := range groups {
			for _, in := range g.inputs {
				if n := layerCount(nil, in.model); in.start+g.n > n {
					return nil, errorf("slices[%d]: layer_range [%d, %d) of %s is past its %d layers", gi, in.start, in.start+g.n, in.path, n)
				}
			}
			// Layer by layer, each in the model's tensor order. Only the layers that have
			// tensors are visited: a range is bounded by the largest layer number in a
			// tensor name, which a file may set as high as layer_range allows (2^20).
			byLayer := map[int][]*safetensors.Tensor{}
			var present []int
			start := g.ref().start
			for _, t := range g.ref().model.Tensors() {
				if l := config.LayerOf(t.Name); l >= start && l < start+g.n {
					if byLayer[l] == nil {
						present = append(present, l)
					}
					byLayer[l] = append(byLayer[l], t)
				}
			}
			sort.Ints(present)
			for _, l := range present {
				j := l - start
				for _, t := range byLayer[l] {
					if err := add(g, t.Name, renumber(t.Name, g.out+j), j, g.n); err != nil {
						return nil, err
					}
				}
			}
		}
		for _, t := range tail {
			if last.ref().model.Lookup(t.Name) == nil {
				return nil, errorf("model %s has no tensor %q (the last slice's model gives the final norm and output head)", last.ref().path, t.Name)
			}
			if err := add(last, t.Name, t.Name, -1, 0); err != nil {
				return nil, err
			}
		}
	}

	if len(p.Entries) == 0 {
		if len(p.Base.Tensors()) == 0 {
			return nil, errorf("model %s holds no tensors; there is nothing to merge", refPath)
		}
		return nil, errorf("the slices select no tensors of %s; there is nothing to merge", refPath)
	}
	specs := make([]safetensors.TensorSpec, len(p.Entries))
	seen := make(map[string]bool, len(p.Entries))
	for i, e := range p.Entries {
		if seen[e.Name] {
			return nil, errorf("two output tensors are named %q; check the slices' layer ranges", e.Name)
		}
		seen[e.Name] = true
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

// newGroup opens the models of entries (a models list or a slice's sources) and orders
// them for the method: the base first when the method has one.
func newGroup(cfg *config.Config, method merge.Method, entries []config.ModelEntry, open func(string) (*safetensors.Model, error), where string) (*group, error) {
	rule := method.Inputs()
	var base *source
	var others []*source
	for i, e := range entries {
		m, err := open(e.Model)
		if err != nil {
			return nil, err
		}
		s := &source{path: e.Model, model: m, params: e.Parameters, index: i}
		if cfg.BaseModel != "" && e.Model == cfg.BaseModel {
			base = s
			if !rule.BaseIsInput {
				continue // the base listed among the models is still just the base
			}
		}
		others = append(others, s)
	}
	if cfg.BaseModel != "" && base == nil && len(cfg.Slices) == 0 {
		m, err := open(cfg.BaseModel)
		if err != nil {
			return nil, err
		}
		base = &source{path: cfg.BaseModel, model: m, index: len(entries)}
		if rule.BaseIsInput {
			// The base of a method such as linear is merged like any model.
			others = append([]*source{base}, others...)
		}
	}
	if base == nil && rule.Base == merge.Required {
		if len(cfg.Slices) > 0 {
			return nil, errorf("%smerge_method %s needs the base_model among the slice's sources", where, method.Name())
		}
		return nil, errorf("merge_method %s needs a base_model", method.Name())
	}
	if len(others) < rule.MinModels {
		return nil, errorf("%smerge_method %s needs at least %d models besides the base, the config has %d",
			where, method.Name(), rule.MinModels, len(others))
	}
	if rule.MaxModels > 0 && len(others) > rule.MaxModels && rule.BaseIsInput && base != nil {
		return nil, errorf("%smerge_method %s takes at most %d model(s), base_model %s included; the config has %d",
			where, method.Name(), rule.MaxModels, cfg.BaseModel, len(others))
	}
	if rule.MaxModels > 0 && len(others) > rule.MaxModels {
		return nil, errorf("%smerge_method %s takes at most %d models besides the base, the config has %d",
			where, method.Name(), rule.MaxModels, len(others))
	}
	g := &group{hasBase: base != nil && !rule.BaseIsInput}
	if g.hasBase {
		g.inputs = append(g.inputs, base)
	}
	g.inputs = append(g.inputs, others...)
	return g, nil
}

// warnExtra notes tensors that inputs have and the reference model lacks.
func (p *Plan) warnExtra(g *group) {
	for _, s := range g.inputs {
		if s.model == p.Base {
			continue
		}
		extra := 0
		for _, t := range s.model.Tensors() {
			if p.Base.Lookup(t.Name) == nil {
				extra++
			}
		}
		if extra > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("model %s has %d tensors that %s lacks; they are left out of the output", s.path, extra, p.Base.Path))
		}
	}
}

// isFinal reports whether a tensor outside numbered layers belongs after the layers: the
// final norm or the output head.
func isFinal(name string) bool {
	n := strings.ToLower(name)
	if strings.Contains(n, "embed") {
		return false
	}
	return strings.Contains(n, "lm_head") || strings.HasPrefix(n, "output.") ||
		strings.Contains(n, "norm") || strings.Contains(n, "ln_f")
}

// renumber returns name with its layer number (the component config.LayerOf reads)
// replaced by n.
func renumber(name string, n int) string {
	parts := strings.Split(name, ".")
	for i, c := range parts {
		if _, err := strconv.Atoi(c); err == nil && strings.Trim(c, "0123456789") == "" {
			parts[i] = strconv.Itoa(n)
			break
		}
	}
	return strings.Join(parts, ".")
}

// entry plans the output tensor outName from the tensors called name in g's inputs, at
// layer (of layers) for gradients.
func (p *Plan) entry(cfg *config.Config, method merge.Method, params []merge.Param, g *group, name, outName string, layer, layers int) (Entry, error) {
	ref := g.ref()
	t := ref.model.Lookup(name)
	e := Entry{Name: outName, Shape: t.Shape, N: t.NumElements()}
	for _, s := range g.inputs {
		srcName := name
		if g.sliced && layer >= 0 {
			srcName = renumber(name, s.start+layer)
		}
		st := s.model.Lookup(srcName)
		if st == nil {
			return e, errorf("model %s has no tensor %q, which %s has", s.path, srcName, ref.path)
		}
		if !equalShape(st.Shape, t.Shape) {
			return e, errorf("tensor %q has shape %s in %s but %s in %s", srcName, safetensors.ShapeString(st.Shape), s.path, safetensors.ShapeString(t.Shape), ref.path)
		}
		if st.DType.IsFloat() != t.DType.IsFloat() || (!st.DType.IsFloat() && st.DType != t.DType) {
			return e, errorf("tensor %q is %s in %s but %s in %s", srcName, st.DType, s.path, t.DType, ref.path)
		}
		e.Inputs = append(e.Inputs, Input{Model: s.model, Tensor: st})
	}
	if !t.DType.IsFloat() {
		// Copied byte for byte from the reference model (design.md §2); the others are
		// compared against it.
		e.DType = t.DType
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
		return e, errorf("tensor %q: %s elements overflow", name, safetensors.ShapeString(e.Shape))
	}
	e.Bytes = bytes

	mt := &merge.Tensor{
		Name: outName, Shape: t.Shape, N: e.N, Seed: p.Seed, HasBase: g.hasBase,
		Global: merge.Params{},
	}
	for _, prm := range params {
		if prm.Scope == merge.Global {
			mt.Global[prm.Name] = resolve(prm, name, layer, layers, g.params, cfg.Parameters)
		}
	}
	for k, s := range g.inputs {
		args := merge.Params{}
		for _, prm := range params {
			if prm.Scope != merge.PerModel {
				continue
			}
			if g.hasBase && k == 0 {
				// A base-relative method does not use the base's own parameters; fill
				// defaults so the kernel can read every name.
				if prm.Default != nil {
					args[prm.Name] = prm.Default
				}
				continue
			}
			v := resolve(prm, name, layer, layers, s.params, g.params, cfg.Parameters)
			if v == nil {
				return e, errorf("model %s: parameter %s is required for tensor %q but no value applies to it", s.path, prm.Name, name)
			}
			args[prm.Name] = v
		}
		mt.Args = append(mt.Args, args)
		mt.Models = append(mt.Models, s.index)
	}
	if err := method.Check(mt); err != nil {
		var ie *merge.InputError
		if errors.As(err, &ie) && ie.Input >= 0 && ie.Input < len(g.inputs) {
			return e, fmt.Errorf("%w: model %s, tensor %q: %w", ErrPlan, g.inputs[ie.Input].path, outName, ie.Err)
		}
		return e, fmt.Errorf("%w: tensor %q: %w", ErrPlan, outName, err)
	}
	e.Merge = mt
	return e, nil
}

// resolve returns prm's value for a tensor from the first set that has one that applies
// (config.ResolveParam), else the declared default (nil when there is none). Ranges were
// checked by the config parser for every scalar and gradient point.
func resolve(prm merge.Param, name string, layer, layers int, sets ...config.Params) any {
	if v, ok := config.ResolveParam(prm.Name, name, layer, layers, sets...); ok {
		return v
	}
	return prm.Default
}

// layerCount reads the layer count from config.json (num_hidden_layers, n_layer, ...) or
// else returns the largest layer index of the model's tensors + 1. A count above
// maxLayers is ignored: converting 1e300 to int gives a meaningless (negative) count.
func layerCount(cfgJSON []byte, m *safetensors.Model) int {
	if cfgJSON != nil {
		var c map[string]any
		if json.Unmarshal(cfgJSON, &c) == nil {
			for _, k := range LayerKeys {
				if f, ok := c[k].(float64); ok && f >= 1 && f <= maxLayers && f == math.Trunc(f) {
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

// maxLayers bounds a layer count read from config.json; no model comes near it (the
// config's layer_range has the same bound).
const maxLayers = 1 << 20

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
