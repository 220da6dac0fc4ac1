package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"freelunch/core/dtype"
	"freelunch/core/merge"
)

// maxNodes bounds the YAML nodes Parse visits, counting every alias expansion, so that a
// small document full of aliases ("billion laughs") is an error rather than a hang.
// Real configs have at most a few thousand nodes.
const maxNodes = 1 << 18

// maxLayer bounds layer_range values: no real model comes near it, and later stages may
// loop over layers.
const maxLayer = 1 << 20

// Top-level keys: the ones we implement, the ones mergekit has that we deliberately
// ignore because they do not change the merge, and the ones we do not implement yet.
var (
	topKeys = []string{
		"merge_method", "base_model", "models", "slices", "parameters",
		"dtype", "out_dtype", "tokenizer_source", "tokenizer",
	}
	// name labels a document in mergekit-multi files; it does not affect the merge.
	ignoredTopKeys = []string{"name"}
	unsupportedTop = map[string]string{
		"modules":       "not supported (multi-module merges); use models or slices",
		"chat_template": "not supported; freelunch copies the tokenizer files of the tokenizer source unchanged",
	}
	modelKeys  = []string{"model", "parameters"}
	sliceKeys  = []string{"sources", "parameters"}
	sourceKeys = []string{"model", "layer_range", "parameters"}
	filterKeys = []string{"filter", "value"}

	unsupportedSlice = map[string]string{
		"base_model":      "not supported per slice; set base_model at the top level",
		"residual_weight": "not supported",
	}
)

type parser struct {
	visits int
	method merge.Method
	decl   map[string]merge.Param
	names  []string // declared parameter names, in declaration order
	// floats caches decoded numbers by node: an alias expanded many times is decoded once.
	floats map[*yaml.Node]float64
}

// pair is one key: value of a mapping, aliases resolved.
type pair struct {
	key  string
	k, v *yaml.Node
}

func parse(data []byte) (*Config, error) {
	root, err := decode(data)
	if err != nil {
		return nil, err
	}
	p := &parser{}
	root, err = p.node(root)
	if err != nil {
		return nil, err
	}
	if root.Kind != yaml.MappingNode {
		return nil, errorf(root.Line, "", "the config must be a mapping of keys (merge_method, models, ...), got %s", describe(root))
	}
	top, err := p.pairs(root, "", topKeys, ignoredTopKeys, unsupportedTop)
	if err != nil {
		return nil, err
	}

	cfg := &Config{Raw: bytes.Clone(data), Parameters: Params{}}
	mm, ok := top["merge_method"]
	if !ok {
		return nil, errorf(root.Line, "merge_method", "missing; it names the merge method (one of %s)", strings.Join(knownMethods(), ", "))
	}
	if cfg.MergeMethod, err = p.str(mm.v, "merge_method"); err != nil {
		return nil, err
	}
	m, ok := merge.Lookup(cfg.MergeMethod)
	if !ok {
		known := knownMethods()
		list := strings.Join(known, ", ")
		if list == "" {
			list = "none are registered"
		}
		return nil, errorf(mm.v.Line, "merge_method", "unknown method %q%s; known methods: %s",
			cfg.MergeMethod, didYouMean(cfg.MergeMethod, known), list)
	}
	p.method = m
	p.decl = map[string]merge.Param{}
	for _, prm := range m.Params() {
		p.decl[prm.Name] = prm
		p.names = append(p.names, prm.Name)
	}

	if kv, ok := top["base_model"]; ok && !isNull(kv.v) {
		if cfg.BaseModel, err = p.modelRef(kv.v, "base_model"); err != nil {
			return nil, err
		}
	}
	if kv, ok := top["dtype"]; ok && !isNull(kv.v) {
		if cfg.DType, err = p.dtype(kv.v, "dtype"); err != nil {
			return nil, err
		}
	}
	if kv, ok := top["out_dtype"]; ok && !isNull(kv.v) {
		if cfg.OutDType, err = p.dtype(kv.v, "out_dtype"); err != nil {
			return nil, err
		}
	}
	if kv, ok := top["tokenizer_source"]; ok && !isNull(kv.v) {
		if tk, both := top["tokenizer"]; both && !isNull(tk.v) {
			return nil, errorf(tk.k.Line, "tokenizer", "give either tokenizer_source (line %d) or tokenizer, not both", kv.k.Line)
		}
		if cfg.TokenizerSource, err = p.tokenizerSource(kv.v, "tokenizer_source"); err != nil {
			return nil, err
		}
	}
	if kv, ok := top["tokenizer"]; ok && !isNull(kv.v) {
		if cfg.TokenizerSource, err = p.tokenizer(kv.v); err != nil {
			return nil, err
		}
	}
	if kv, ok := top["parameters"]; ok {
		if cfg.Parameters, err = p.params(kv.v, "parameters", scopeTop); err != nil {
			return nil, err
		}
	}

	models, hasModels := top["models"]
	slicesKV, hasSlices := top["slices"]
	hasModels = hasModels && !isNull(models.v)
	hasSlices = hasSlices && !isNull(slicesKV.v)
	switch {
	case hasModels && hasSlices:
		return nil, errorf(slicesKV.k.Line, "slices", "give either models (line %d) or slices, not both", models.k.Line)
	case hasModels:
		if cfg.Models, err = p.models(models.v); err != nil {
			return nil, err
		}
	case hasSlices:
		if cfg.Slices, err = p.slices(slicesKV.v); err != nil {
			return nil, err
		}
	default:
		return nil, errorf(root.Line, "", "the config needs a models list or a slices list")
	}

	modelsLine := 0
	if hasModels {
		modelsLine = models.k.Line
	}
	if err := p.checkInputs(cfg, mm.v.Line, modelsLine); err != nil {
		return nil, err
	}
	return cfg, nil
}

// decode parses data as exactly one YAML document. The YAML library is third-party
// code: a panic in it is turned into an error so that Parse never panics.
func decode(data []byte) (root *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, errorf(0, "", "YAML parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errorf(0, "", "empty config")
		}
		return nil, yamlError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, errorf(next.Line, "", "more than one YAML document; multi-document (mergekit-multi) files are not supported")
	case !errors.Is(err, io.EOF):
		return nil, yamlError(err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errorf(doc.Line, "", "empty config")
	}
	return doc.Content[0], nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError converts a YAML syntax error into an *Error, keeping its line.
func yamlError(err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Line: line, Msg: "YAML syntax: " + m[2]}
	}
	return &Error{Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
}

// node resolves aliases and counts the visit against maxNodes.
func (p *parser) node(n *yaml.Node) (*yaml.Node, error) {
	for range 64 {
		if n == nil || n.Kind != yaml.AliasNode {
			break
		}
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return nil, errorf(0, "", "unresolvable YAML alias")
	}
	p.visits++
	if p.visits > maxNodes {
		return nil, errorf(n.Line, "", "the config is too large (over %d YAML nodes after expanding aliases)", maxNodes)
	}
	return n, nil
}

// pairs returns the entries of mapping n by key, checking that keys are plain strings,
// unique, and among known; keys in ignored are dropped, keys in unsupported are errors
// with the given message.
func (p *parser) pairs(n *yaml.Node, path string, known, ignored []string, unsupported map[string]string) (map[string]pair, error) {
	out := map[string]pair{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := p.node(n.Content[i])
		if err != nil {
			return nil, err
		}
		v, err := p.node(n.Content[i+1])
		if err != nil {
			return nil, err
		}
		if k.Kind != yaml.ScalarNode {
			return nil, errorf(k.Line, path, "keys must be plain names, got %s", describe(k))
		}
		if k.ShortTag() == "!!merge" {
			return nil, errorf(k.Line, path, "YAML merge keys (<<) are not supported; write the keys out")
		}
		key := k.Value
		if prev, dup := out[key]; dup {
			return nil, errorf(k.Line, path, "key %q given twice (lines %d and %d)", key, prev.k.Line, k.Line)
		}
		switch {
		case slices.Contains(known, key):
		case slices.Contains(ignored, key):
		case unsupported[key] != "":
			return nil, errorf(k.Line, join(path, key), "%s", unsupported[key])
		default:
			return nil, errorf(k.Line, path, "unknown key %q%s", key, didYouMean(key, known))
		}
		out[key] = pair{key, k, v}
	}
	return out, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// str reads a non-empty string scalar.
func (p *parser) str(n *yaml.Node, key string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return "", errorf(n.Line, key, "expected a string, got %s", describe(n))
	}
	if n.Value == "" {
		return "", errorf(n.Line, key, "empty string")
	}
	return n.Value, nil
}

// modelRef reads a model reference to a local path: a string, or the mapping form
// mergekit writes into model cards ({model: {path: P}} or {model: P}). mergekit's other
// features ("model+lora", "model@revision", lora:, revision:, override_architecture:)
// download or transform models and are errors.
func (p *parser) modelRef(n *yaml.Node, key string) (string, error) {
	if n.Kind == yaml.MappingNode {
		return p.modelRefMap(n, key)
	}
	s, err := p.str(n, key)
	if err != nil {
		return "", err
	}
	if err := checkPath(n, key, s); err != nil {
		return "", err
	}
	if strings.Contains(s, "+") {
		return "", errorf(n.Line, key, "%q: LoRA references (model+lora) are not supported; merge the adapter into the model first", s)
	}
	if strings.Contains(s, "@") {
		return "", errorf(n.Line, key, "%q: revisions (model@revision) are not supported; give a local folder", s)
	}
	return s, nil
}

func (p *parser) modelRefMap(n *yaml.Node, key string) (string, error) {
	kv, err := p.pairs(n, key, []string{"model", "lora", "override_architecture"}, nil, nil)
	if err != nil {
		return "", err
	}
	for _, k := range []string{"lora", "override_architecture"} {
		if e, ok := kv[k]; ok && !isNull(e.v) {
			return "", errorf(e.k.Line, join(key, k), "not supported")
		}
	}
	m, ok := kv["model"]
	if !ok {
		return "", errorf(n.Line, key, "missing model (the model's path)")
	}
	if m.v.Kind != yaml.MappingNode {
		return p.modelRef(m.v, join(key, "model"))
	}
	path := join(key, "model")
	mp, err := p.pairs(m.v, path, []string{"path", "revision"}, nil, nil)
	if err != nil {
		return "", err
	}
	if e, ok := mp["revision"]; ok && !isNull(e.v) {
		return "", errorf(e.k.Line, join(path, "revision"), "revisions are not supported; give a local folder")
	}
	pk, ok := mp["path"]
	if !ok {
		return "", errorf(m.v.Line, path, "missing path")
	}
	// A ModelPath's path may hold "+" (only whole references split on it), not "@".
	s, err := p.str(pk.v, join(path, "path"))
	if err != nil {
		return "", err
	}
	if err := checkPath(pk.v, join(path, "path"), s); err != nil {
		return "", err
	}
	if strings.Contains(s, "@") {
		return "", errorf(pk.v.Line, join(path, "path"), "%q: revisions (model@revision) are not supported; give a local folder", s)
	}
	return s, nil
}

// checkPath rejects a model path holding control characters (a newline, an escape):
// no file is named so, and error messages print the path, which must stay one line and
// must not drive the terminal.
func checkPath(n *yaml.Node, key, s string) error {
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return errorf(n.Line, key, "%q: a model path cannot hold control characters", s)
	}
	return nil
}

// dtypeNames maps mergekit's dtype names (and the short and safetensors spellings) to dtypes.
var dtypeNames = map[string]dtype.DType{
	"bfloat16": dtype.BF16, "bf16": dtype.BF16, "BF16": dtype.BF16,
	"float16": dtype.F16, "fp16": dtype.F16, "F16": dtype.F16, "half": dtype.F16,
	"float32": dtype.F32, "fp32": dtype.F32, "F32": dtype.F32, "float": dtype.F32,
}

// ParseDType returns the dtype a config names: mergekit's "bfloat16", "float16" and
// "float32" (optionally prefixed "torch."), "bf16", "fp16", "fp32", "half", "float", or the
// safetensors spellings "BF16", "F16", "F32". ok is false for any other name.
func ParseDType(s string) (d dtype.DType, ok bool) {
	d, ok = dtypeNames[strings.TrimPrefix(s, "torch.")]
	return d, ok
}

func (p *parser) dtype(n *yaml.Node, key string) (dtype.DType, error) {
	s, err := p.str(n, key)
	if err != nil {
		return dtype.Invalid, err
	}
	d, ok := ParseDType(s)
	if !ok {
		return dtype.Invalid, errorf(n.Line, key, "unknown dtype %q; use bfloat16, float16 or float32 (also bf16, fp16, fp32, BF16, F16, F32)", s)
	}
	return d, nil
}

func (p *parser) tokenizerSource(n *yaml.Node, key string) (string, error) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		switch n.Value {
		case "union":
			return "", errorf(n.Line, key, "union is not supported yet; use base or a model")
		case "base":
			return "base", nil
		}
	}
	return p.modelRef(n, key)
}

// tokenizer reads mergekit's tokenizer section. Only its source is supported; it means the
// same as tokenizer_source, and like in mergekit it defaults to union.
func (p *parser) tokenizer(n *yaml.Node) (string, error) {
	if n.Kind != yaml.MappingNode {
		return "", errorf(n.Line, "tokenizer", "expected a mapping {source: ...}, got %s", describe(n))
	}
	kv, err := p.pairs(n, "tokenizer", []string{"source"}, nil, map[string]string{
		"tokens":             "not supported (token embedding surgery)",
		"pad_to_multiple_of": "not supported",
	})
	if err != nil {
		return "", err
	}
	src, ok := kv["source"]
	if !ok {
		return "", errorf(n.Line, "tokenizer", "missing source; mergekit's default, union, is not supported yet: use source: base or a model")
	}
	return p.tokenizerSource(src.v, "tokenizer.source")
}

// scope says where a parameters mapping is.
type scope int

const (
	scopeTop   scope = iota // top-level parameters
	scopeSlice              // a slice's parameters
	scopeModel              // a model entry's or a slice source's parameters
)

// params reads a parameters mapping at path.
func (p *parser) params(n *yaml.Node, path string, where scope) (Params, error) {
	out := Params{}
	if isNull(n) {
		return out, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, errorf(n.Line, path, "expected a mapping of parameter names to values, got %s", describe(n))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := p.node(n.Content[i])
		if err != nil {
			return nil, err
		}
		v, err := p.node(n.Content[i+1])
		if err != nil {
			return nil, err
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			return nil, errorf(k.Line, path, "parameter names must be plain names, got %s", describe(k))
		}
		name := k.Value
		if line, dup := seen[name]; dup {
			return nil, errorf(k.Line, path, "parameter %q given twice (lines %d and %d)", name, line, k.Line)
		}
		seen[name] = k.Line
		prm, ok := p.decl[name]
		if !ok {
			hint := didYouMean(name, p.names)
			if hint == "" {
				if len(p.names) == 0 {
					hint = "; it takes no parameters"
				} else {
					hint = "; it takes " + strings.Join(p.names, ", ")
				}
			}
			return nil, errorf(k.Line, path, "unknown parameter %q for method %s%s", name, p.method.Name(), hint)
		}
		if where == scopeModel && prm.Scope == merge.Global {
			return nil, errorf(k.Line, path, "%q is a global parameter of method %s: set it in the top-level or a slice's parameters, not per model", name, p.method.Name())
		}
		val, err := p.value(v, prm, join(path, name))
		if err != nil {
			return nil, err
		}
		out[name] = val
	}
	return out, nil
}

// value reads a parameter value: a scalar, a gradient, a list of {filter, value}, or a
// single {filter, value} mapping (read as a one-item filter list).
func (p *parser) value(n *yaml.Node, prm merge.Param, key string) (Value, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		s, err := p.scalar(n, prm, key)
		return Value{Scalar: s, Line: n.Line}, err
	case yaml.MappingNode:
		f, err := p.filter(n, prm, key)
		return Value{Filters: []Filter{f}, Line: n.Line}, err
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return Value{}, errorf(n.Line, key, "empty list; give a value, a gradient of at least 2 numbers or a list of {filter, value}")
		}
		first, err := p.node(n.Content[0])
		if err != nil {
			return Value{}, err
		}
		if first.Kind != yaml.MappingNode {
			return p.gradient(n, prm, key)
		}
		v := Value{Line: n.Line}
		for i, item := range n.Content {
			item, err := p.node(item)
			if err != nil {
				return Value{}, err
			}
			ikey := fmt.Sprintf("%s[%d]", key, i)
			if item.Kind != yaml.MappingNode {
				return Value{}, errorf(item.Line, ikey, "expected a {filter, value} item like the first one, got %s", describe(item))
			}
			f, err := p.filter(item, prm, ikey)
			if err != nil {
				return Value{}, err
			}
			v.Filters = append(v.Filters, f)
		}
		return v, nil
	}
	return Value{}, errorf(n.Line, key, "expected a value, got %s", describe(n))
}

// filter reads one {filter, value} mapping. A missing or null filter, and mergekit's "*",
// match every tensor and are stored as "".
func (p *parser) filter(n *yaml.Node, prm merge.Param, key string) (Filter, error) {
	kv, err := p.pairs(n, key, filterKeys, nil, nil)
	if err != nil {
		return Filter{}, err
	}
	var f Filter
	if fk, ok := kv["filter"]; ok && !isNull(fk.v) {
		if fk.v.Kind != yaml.ScalarNode || fk.v.ShortTag() != "!!str" {
			return Filter{}, errorf(fk.v.Line, key+".filter", "expected a string (part of a tensor name), got %s", describe(fk.v))
		}
		if fk.v.Value != "*" {
			f.Filter = fk.v.Value
		}
	}
	vk, ok := kv["value"]
	if !ok {
		return Filter{}, errorf(n.Line, key, "missing value")
	}
	switch vk.v.Kind {
	case yaml.ScalarNode:
		s, err := p.scalar(vk.v, prm, key+".value")
		if err != nil {
			return Filter{}, err
		}
		f.Value = Value{Scalar: s, Line: vk.v.Line}
	case yaml.SequenceNode:
		if f.Value, err = p.gradient(vk.v, prm, key+".value"); err != nil {
			return Filter{}, err
		}
	default:
		return Filter{}, errorf(vk.v.Line, key+".value", "expected a value or a gradient, got %s", describe(vk.v))
	}
	return f, nil
}

// gradient reads a list of at least 2 numbers.
func (p *parser) gradient(n *yaml.Node, prm merge.Param, key string) (Value, error) {
	if prm.Kind != merge.Float {
		return Value{}, errorf(n.Line, key, "a list of values (gradient) is only allowed for numeric parameters; %s expects %s", prm.Name, expects(prm))
	}
	if len(n.Content) < 2 {
		return Value{}, errorf(n.Line, key, "a gradient needs at least 2 numbers, got %d", len(n.Content))
	}
	v := Value{Gradient: make([]float64, 0, len(n.Content)), Line: n.Line}
	for i, item := range n.Content {
		item, err := p.node(item)
		if err != nil {
			return Value{}, err
		}
		if item.Kind != yaml.ScalarNode {
			return Value{}, errorf(item.Line, fmt.Sprintf("%s[%d]", key, i), "a gradient holds numbers, got %s", describe(item))
		}
		// The element's key is formatted only on error: aliases can make gradients long.
		s, err := p.scalar(item, prm, "")
		if err != nil {
			err.(*Error).Key = fmt.Sprintf("%s[%d]", key, i)
			return Value{}, err
		}
		v.Gradient = append(v.Gradient, s.(float64))
	}
	return v, nil
}

// scalar reads a scalar of prm's kind and checks its range.
func (p *parser) scalar(n *yaml.Node, prm merge.Param, key string) (any, error) {
	tag := n.ShortTag()
	switch prm.Kind {
	case merge.Float:
		if tag != "!!int" && tag != "!!float" {
			break
		}
		f, err := p.float(n, key)
		if err != nil {
			return nil, err
		}
		if err := checkRange(f, prm); err != "" {
			return nil, errorf(n.Line, key, "%s", err)
		}
		return f, nil
	case merge.Bool:
		if tag != "!!bool" {
			break
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, errorf(n.Line, key, "%q is not true or false", n.Value)
		}
		return b, nil
	case merge.Enum:
		if tag != "!!str" {
			break
		}
		if !slices.Contains(prm.Enum, n.Value) {
			return nil, errorf(n.Line, key, "%q is not one of %s%s", n.Value, strings.Join(prm.Enum, ", "), didYouMean(n.Value, prm.Enum))
		}
		return n.Value, nil
	}
	return nil, errorf(n.Line, key, "%s expects %s, got %s", prm.Name, expects(prm), describe(n))
}

// float decodes a !!int or !!float scalar.
func (p *parser) float(n *yaml.Node, key string) (float64, error) {
	if f, ok := p.floats[n]; ok {
		return f, nil
	}
	var f float64
	if err := n.Decode(&f); err != nil {
		return 0, errorf(n.Line, key, "%q is not a number", n.Value)
	}
	if p.floats == nil {
		p.floats = map[*yaml.Node]float64{}
	}
	p.floats[n] = f
	return f, nil
}

// checkRange returns why f is out of prm's range, or "".
func checkRange(f float64, prm merge.Param) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Sprintf("value %v is not a finite number", f)
	}
	lowOK := f > prm.Min || (!prm.MinOpen && f == prm.Min)
	if lowOK && f <= prm.Max {
		return ""
	}
	open := "["
	if prm.MinOpen {
		open = "("
	}
	return fmt.Sprintf("value %s out of range %s%s, %s] for %s", fmtFloat(f), open, fmtFloat(prm.Min), fmtFloat(prm.Max), prm.Name)
}

func fmtFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// expects describes the values a parameter takes.
func expects(prm merge.Param) string {
	switch prm.Kind {
	case merge.Float:
		return "a number"
	case merge.Bool:
		return "true or false"
	case merge.Enum:
		return "one of " + strings.Join(prm.Enum, ", ")
	}
	return "a value"
}

// describe names the YAML type of n for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing (null)"
		case "!!bool":
			return "the boolean " + n.Value
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return fmt.Sprintf("%s %q", n.ShortTag(), n.Value)
	}
	return "an unexpected YAML node"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// models reads the models list.
func (p *parser) models(n *yaml.Node) ([]ModelEntry, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errorf(n.Line, "models", "expected a list of {model, parameters}, got %s", describe(n))
	}
	if len(n.Content) == 0 {
		return nil, errorf(n.Line, "models", "empty list; give at least one model")
	}
	var out []ModelEntry
	seen := map[string]int{}
	for i, item := range n.Content {
		item, err := p.node(item)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("models[%d]", i)
		if item.Kind == yaml.ScalarNode {
			return nil, errorf(item.Line, key, "expected {model, parameters}, got %s; write \"- model: %s\"", describe(item), item.Value)
		}
		if item.Kind != yaml.MappingNode {
			return nil, errorf(item.Line, key, "expected {model, parameters}, got %s", describe(item))
		}
		kv, err := p.pairs(item, key, modelKeys, nil, nil)
		if err != nil {
			return nil, err
		}
		mk, ok := kv["model"]
		if !ok {
			return nil, errorf(item.Line, key, "missing model")
		}
		e := ModelEntry{Line: item.Line}
		if e.Model, err = p.modelRef(mk.v, key+".model"); err != nil {
			return nil, err
		}
		// The key's line, not the value's: a value given through an alias (model: *m)
		// has its anchor's line, which would read "lines 3 and 3".
		if line, dup := seen[e.Model]; dup {
			return nil, errorf(mk.k.Line, key+".model", "model %q is listed twice (lines %d and %d)", e.Model, line, mk.k.Line)
		}
		seen[e.Model] = mk.k.Line
		e.Parameters = Params{}
		if pk, ok := kv["parameters"]; ok {
			if e.Parameters, err = p.params(pk.v, key+".parameters", scopeModel); err != nil {
				return nil, err
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// slices reads the slices list.
func (p *parser) slices(n *yaml.Node) ([]Slice, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errorf(n.Line, "slices", "expected a list of {sources, parameters}, got %s", describe(n))
	}
	if len(n.Content) == 0 {
		return nil, errorf(n.Line, "slices", "empty list; give at least one slice")
	}
	var out []Slice
	for i, item := range n.Content {
		item, err := p.node(item)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("slices[%d]", i)
		if item.Kind != yaml.MappingNode {
			return nil, errorf(item.Line, key, "expected {sources, parameters}, got %s", describe(item))
		}
		kv, err := p.pairs(item, key, sliceKeys, nil, unsupportedSlice)
		if err != nil {
			return nil, err
		}
		s := Slice{Line: item.Line, Parameters: Params{}}
		if pk, ok := kv["parameters"]; ok {
			if s.Parameters, err = p.params(pk.v, key+".parameters", scopeSlice); err != nil {
				return nil, err
			}
		}
		sk, ok := kv["sources"]
		if !ok {
			return nil, errorf(item.Line, key, "missing sources")
		}
		if s.Sources, err = p.sources(sk.v, key+".sources"); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// sources reads a slice's sources list.
func (p *parser) sources(n *yaml.Node, path string) ([]Source, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, errorf(n.Line, path, "expected a list of {model, layer_range, parameters}, got %s", describe(n))
	}
	if len(n.Content) == 0 {
		return nil, errorf(n.Line, path, "empty list; give at least one source")
	}
	var out []Source
	seen := map[string]int{}
	for i, item := range n.Content {
		item, err := p.node(item)
		if err != nil {
			return nil, err
		}
		key := fmt.Sprintf("%s[%d]", path, i)
		if item.Kind != yaml.MappingNode {
			return nil, errorf(item.Line, key, "expected {model, layer_range, parameters}, got %s", describe(item))
		}
		kv, err := p.pairs(item, key, sourceKeys, nil, nil)
		if err != nil {
			return nil, err
		}
		mk, ok := kv["model"]
		if !ok {
			return nil, errorf(item.Line, key, "missing model")
		}
		s := Source{Line: item.Line, Parameters: Params{}}
		if s.Model, err = p.modelRef(mk.v, key+".model"); err != nil {
			return nil, err
		}
		if line, dup := seen[s.Model]; dup { // the key's line, as for models
			return nil, errorf(mk.k.Line, key+".model", "model %q is listed twice in this slice (lines %d and %d)", s.Model, line, mk.k.Line)
		}
		seen[s.Model] = mk.k.Line
		lk, ok := kv["layer_range"]
		if !ok {
			return nil, errorf(item.Line, key, "missing layer_range")
		}
		if s.LayerRange, err = p.layerRange(lk.v, key+".layer_range"); err != nil {
			return nil, err
		}
		if len(out) > 0 {
			a, b := out[0].LayerRange, s.LayerRange
			if a[1]-a[0] != b[1]-b[0] {
				return nil, errorf(lk.v.Line, key+".layer_range", "[%d, %d) spans %d layers but the slice's first source (line %d) spans %d; every source of a slice must span the same number of layers",
					b[0], b[1], b[1]-b[0], out[0].Line, a[1]-a[0])
			}
		}
		if pk, ok := kv["parameters"]; ok {
			if s.Parameters, err = p.params(pk.v, key+".parameters", scopeModel); err != nil {
				return nil, err
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// layerRange reads [start, end) with 0 <= start < end.
func (p *parser) layerRange(n *yaml.Node, key string) ([2]int, error) {
	var r [2]int
	if n.Kind != yaml.SequenceNode || len(n.Content) != 2 {
		return r, errorf(n.Line, key, "expected [start, end], got %s", describe(n))
	}
	for i, item := range n.Content {
		item, err := p.node(item)
		if err != nil {
			return r, err
		}
		if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!int" {
			return r, errorf(item.Line, key, "layer numbers are integers, got %s", describe(item))
		}
		var v int64
		if err := item.Decode(&v); err != nil || v < 0 || v > maxLayer {
			return r, errorf(item.Line, key, "layer %s out of range [0, %d]", item.Value, maxLayer)
		}
		r[i] = int(v)
	}
	if r[0] >= r[1] {
		return r, errorf(n.Line, key, "[%d, %d) is empty; the end must be greater than the start", r[0], r[1])
	}
	return r, nil
}

// checkInputs checks the method's input rule and that every required parameter is set
// somewhere for every non-base model. Whether it is set for every tensor (filters may not
// match) is checked by the planner.
func (p *parser) checkInputs(cfg *Config, methodLine, modelsLine int) error {
	rule := p.method.Inputs()
	name := p.method.Name()
	if rule.Base == merge.Required && cfg.BaseModel == "" {
		return errorf(methodLine, "base_model", "missing; method %s needs a base model", name)
	}
	count := func(n, line int, where string) error {
		if n < rule.MinModels {
			return errorf(line, where, "method %s needs at least %d model(s) besides the base, got %d", name, rule.MinModels, n)
		}
		if rule.MaxModels > 0 && n > rule.MaxModels {
			return errorf(line, where, "method %s takes at most %d model(s) besides the base, got %d", name, rule.MaxModels, n)
		}
		return nil
	}
	var required, global []string
	for _, prm := range p.method.Params() {
		switch {
		case prm.Required && prm.Scope == merge.PerModel:
			required = append(required, prm.Name)
		case prm.Required:
			global = append(global, prm.Name)
		}
	}
	for _, g := range global {
		if _, ok := cfg.Parameters[g]; ok {
			continue
		}
		if cfg.Slices == nil {
			return errorf(methodLine, "parameters", "missing %s, which method %s requires", g, name)
		}
		for i, s := range cfg.Slices {
			if _, ok := s.Parameters[g]; !ok {
				return errorf(s.Line, fmt.Sprintf("slices[%d]", i), "missing %s, which method %s requires; set it in the slice's or the top-level parameters", g, name)
			}
		}
	}
	if cfg.Models != nil {
		n := 0
		for i, e := range cfg.Models {
			if e.Model == cfg.BaseModel {
				continue
			}
			n++
			for _, r := range required {
				if _, ok := e.Parameters[r]; ok {
					continue
				}
				if _, ok := cfg.Parameters[r]; ok {
					continue
				}
				return errorf(e.Line, fmt.Sprintf("models[%d]", i), "model %q has no %s, which method %s requires; set it in its parameters or the top-level parameters", e.Model, r, name)
			}
		}
		return count(n, modelsLine, "models")
	}
	for i, s := range cfg.Slices {
		n := 0
		for j, src := range s.Sources {
			if src.Model == cfg.BaseModel {
				continue
			}
			n++
			for _, r := range required {
				_, a := src.Parameters[r]
				_, b := s.Parameters[r]
				_, c := cfg.Parameters[r]
				if !a && !b && !c {
					return errorf(src.Line, fmt.Sprintf("slices[%d].sources[%d]", i, j), "model %q has no %s, which method %s requires; set it in the source's, the slice's or the top-level parameters", src.Model, r, name)
				}
			}
		}
		if err := count(n, s.Line, fmt.Sprintf("slices[%d].sources", i)); err != nil {
			return err
		}
	}
	return nil
}

func knownMethods() []string {
	var names []string
	for _, m := range merge.Methods() {
		names = append(names, m.Name())
	}
	return names
}

// ResolveParam returns parameter name's value for the tensor called tensor at layer (of
// layers), looking through sets in order of precedence (design.md §6: per-model, then
// slice, then top-level parameters) and taking the first value that resolves (a filter
// list where no filter matches falls through to the next set). ok is false when none does;
// the caller then uses the parameter's default.
func ResolveParam(name, tensor string, layer, layers int, sets ...Params) (val any, ok bool) {
	for _, s := range sets {
		if v, has := s[name]; has {
			if val, ok := v.Resolve(tensor, layer, layers); ok {
				return val, true
			}
		}
	}
	return nil, false
}
