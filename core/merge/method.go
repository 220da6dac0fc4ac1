package merge

import (
	"fmt"
	"sort"
)

// Kind is the type of a parameter's value.
type Kind int

const (
	Float Kind = iota // a number; gradients and filter lists allowed
	Bool              // true/false
	Enum              // one of Param.Enum
)

// Scope says where a parameter may be written in a config.
type Scope int

const (
	// PerModel parameters (weight, density, ...) may be set per model, per slice, or at the
	// top level, where they are the default for every model.
	PerModel Scope = iota
	// Global parameters (lambda, normalize, ...) may be set at the top level or per slice only.
	Global
)

// Param declares one parameter of a method. The config validator, the CLI and the
// browser's form all read these declarations.
type Param struct {
	Name     string
	Kind     Kind
	Scope    Scope
	Required bool    // must be set for every non-base model (weight)
	Default  any     // float64, bool or string; nil when Required
	Min, Max float64 // inclusive range for Float (Max +Inf when unbounded)
	MinOpen  bool    // Min itself is excluded
	Enum     []string
	Doc      string
}

// Params holds resolved parameter values for one tensor: float64, bool or string by name.
// Defaults are filled in, so methods can read every declared name.
type Params map[string]any

// Float returns the float parameter name (0 if absent).
func (p Params) Float(name string) float64 { v, _ := p[name].(float64); return v }

// Bool returns the bool parameter name (false if absent).
func (p Params) Bool(name string) bool { v, _ := p[name].(bool); return v }

// String returns the enum parameter name ("" if absent).
func (p Params) String(name string) string { v, _ := p[name].(string); return v }

// Tensor is what a method needs to know about one output tensor.
type Tensor struct {
	Name  string  // output tensor name (also the random stream's name, design.md §4)
	Shape []int64 // output shape (= every input's shape)
	N     int64   // number of elements
	Seed  uint64  // --random-seed
	// Inputs are in the order the kernel receives their data. When HasBase, input 0 is the base.
	HasBase bool
	// Models holds, per input, its §4 model number (position in the config's models list as
	// written; with slices, the source's position within its slice).
	Models []int
	// Args holds, per input, its resolved per-model parameters (defaults filled in).
	Args []Params
	// Global holds the resolved global parameters (defaults filled in).
	Global Params
}

// Method is a merge method: its mergekit name, its parameters, and a kernel factory.
type Method interface {
	Name() string
	Params() []Param
	// Inputs describes the inputs the method accepts.
	Inputs() InputRule
	// Check validates parameters resolved for one tensor, beyond per-parameter ranges
	// (for example DELLA's density ± epsilon). Errors name the parameters and values.
	Check(t *Tensor) error
	// New returns the kernel that merges t.
	New(t *Tensor) Kernel
}

// InputRule says which inputs a method accepts.
type InputRule struct {
	Base      Need // whether base_model is required, optional or not used
	MinModels int  // minimum number of non-base models
	MaxModels int  // maximum (0: no limit)
	// BaseIsInput: the base model, if given, is merged like any other model and needs a
	// weight (linear); Tensor.HasBase is then false.
	BaseIsInput bool
}

// Need says whether something is required.
type Need int

const (
	Optional Need = iota
	Required
)

// Kernel merges one tensor in chunks. in[k] holds input k's elements [off, off+len(dst))
// as float32 (base first when Tensor.HasBase). A kernel may overwrite in.
//
// The engine calls, for pass := 0; k.NeedPass(pass); pass++, Observe(pass, ...) over every
// chunk of the tensor in element order from one goroutine (unless the kernel is a
// [PassKernel] that says otherwise); then Merge over every chunk, possibly concurrently
// and in any order. Chunk boundaries are multiples of Granule().
type Kernel interface {
	// NeedPass reports whether statistics pass number pass is needed; it is called after
	// pass-1 has seen every element.
	NeedPass(pass int) bool
	Observe(pass int, off int64, in [][]float32)
	// Granule returns the element count chunk boundaries must be a multiple of (1 for
	// element-wise methods, the row length for per-row methods).
	Granule() int64
	// Merge writes output elements [off, off+len(dst)) into dst.
	Merge(dst []float32, off int64, in [][]float32)
}

// A PassKernel is a Kernel that tells the engine how to save work in its statistics
// passes. Both methods may be called concurrently with Observe calls of an unordered pass.
type PassKernel interface {
	Kernel
	// Unordered reports whether pass may see its chunks in any order and concurrently:
	// Observe calls of that pass may then run at the same time on different chunks.
	Unordered(pass int) bool
	// Reads reports whether the current pass still needs input k. The engine passes nil
	// for an input it did not read, and ends an ordered pass early once no input is needed.
	Reads(pass, k int) bool
}

// A BF16Observer is a Kernel that can take some statistics passes' chunks as BF16 bytes,
// saving the decode into float32 (the selection pass of magnitude top-k reads every input
// once more than the merge and needs only each delta's magnitude).
type BF16Observer interface {
	// ObserveBF16 is Observe with input k's elements as little-endian BF16 values in in[k]
	// (nil where Observe's would be). It returns false, having done nothing, when it cannot
	// take this chunk that way; the engine then decodes it and calls Observe.
	ObserveBF16(pass int, off int64, in [][]byte) bool
}

// InputError is an error of Method.Check about one input (an index into Tensor.Args), so
// the caller can name that model's file.
type InputError struct {
	Input int
	Err   error
}

func (e *InputError) Error() string { return fmt.Sprintf("input %d: %v", e.Input, e.Err) }
func (e *InputError) Unwrap() error { return e.Err }

var registry = map[string]Method{}

// Register adds m to the registry. It panics if the name is taken (a programmer error).
func Register(m Method) {
	if _, dup := registry[m.Name()]; dup {
		panic(fmt.Sprintf("merge: method %q registered twice", m.Name()))
	}
	registry[m.Name()] = m
}

// Lookup returns the method named name.
func Lookup(name string) (Method, bool) { m, ok := registry[name]; return m, ok }

// Methods returns every registered method, sorted by name.
func Methods() []Method {
	out := make([]Method, 0, len(registry))
	for _, m := range registry {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}
