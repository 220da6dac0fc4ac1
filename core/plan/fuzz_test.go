package plan

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"freelunch/core/config"
	"freelunch/core/dtype"
	"freelunch/core/safetensors"
)

// fuzzModel returns the bytes of a safetensors file holding specs, with zero data.
func fuzzModel(specs []safetensors.TensorSpec) []byte {
	h, err := safetensors.Header(specs, nil)
	if err != nil {
		panic(err)
	}
	var n int64
	for _, s := range specs {
		k := int64(s.DType.Size())
		for _, d := range s.Shape {
			k *= d
		}
		n += k
	}
	return append(h, make([]byte, n)...)
}

// llamaSpecs returns a two-layer llama-like model's tensors in dtype d, with an
// intermediate size of inter.
func llamaSpecs(d dtype.DType, inter int64) []safetensors.TensorSpec {
	specs := []safetensors.TensorSpec{{Name: "model.embed_tokens.weight", DType: d, Shape: []int64{8, 4}}}
	for l := range 2 {
		p := fmt.Sprintf("model.layers.%d.", l)
		specs = append(specs,
			safetensors.TensorSpec{Name: p + "self_attn.q_proj.weight", DType: d, Shape: []int64{4, 4}},
			safetensors.TensorSpec{Name: p + "mlp.up_proj.weight", DType: d, Shape: []int64{inter, 4}},
			safetensors.TensorSpec{Name: p + "input_layernorm.weight", DType: d, Shape: []int64{4}},
		)
	}
	return append(specs,
		safetensors.TensorSpec{Name: "model.norm.weight", DType: d, Shape: []int64{4}},
		safetensors.TensorSpec{Name: "lm_head.weight", DType: d, Shape: []int64{8, 4}},
		safetensors.TensorSpec{Name: "position_ids", DType: dtype.I64, Shape: []int64{3}},
	)
}

// fixedFS holds the models of FuzzBuild that no input changes, built once: rebuilding
// them took three quarters of each execution.
//
//	base, a, b  two-layer BF16 models with config.json
//	c           like a with a wider mlp.up_proj (a shape mismatch)
//	d           like a in F32
//	e           one layer only (missing tensors)
//	s           a sharded copy of a (index + two shards)
var fixedFS = sync.OnceValue(func() safetensors.MemFS {
	fsys := safetensors.MemFS{}
	cj := []byte(`{"num_hidden_layers": 2, "torch_dtype": "bfloat16"}`)
	for _, name := range []string{"base", "a", "b"} {
		fsys[name+"/model.safetensors"] = fuzzModel(llamaSpecs(dtype.BF16, 6))
		fsys[name+"/config.json"] = cj
	}
	fsys["c/model.safetensors"] = fuzzModel(llamaSpecs(dtype.BF16, 7))
	fsys["d/model.safetensors"] = fuzzModel(llamaSpecs(dtype.F32, 6))
	var one []safetensors.TensorSpec
	for _, s := range llamaSpecs(dtype.BF16, 6) {
		if config.LayerOf(s.Name) < 1 {
			one = append(one, s)
		}
	}
	fsys["e/model.safetensors"] = fuzzModel(one)
	shards, err := safetensors.SplitShards(llamaSpecs(dtype.BF16, 6), 100, nil)
	if err != nil {
		panic(err)
	}
	for _, s := range shards {
		fsys["s/"+s.FileName] = fuzzModel(s.Specs)
	}
	fsys["s/"+safetensors.IndexName] = safetensors.IndexJSON(shards)
	return fsys
})

// fuzzFS returns the fixed models plus the model "x" built from the fuzzed header JSON
// (followed by dataLen zero bytes) and config.json. Readers of a MemFS never write to
// its bytes, so the fixed models are shared between executions.
func fuzzFS(header, configJSON []byte, dataLen int) safetensors.MemFS {
	fsys := maps.Clone(fixedFS())
	x := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	x = append(append(x, header...), make([]byte, dataLen)...)
	fsys["x/model.safetensors"] = x
	if configJSON != nil {
		fsys["x/config.json"] = configJSON
	}
	return fsys
}

// FuzzBuild plans a fuzzed config over a small set of in-memory models, one of which ("x")
// has a fuzzed header and config.json. It checks that Parse and Build never panic or hang,
// that Build allocates in proportion to its inputs, that every error wraps ErrPlan,
// ErrConfig or a safetensors sentinel and is one line without control characters, and that an accepted plan is
// consistent: each entry has inputs and the byte size of its shape, and the shards hold
// the entries in order. Seeds: testdata/fuzz/FuzzBuild.
func FuzzBuild(f *testing.F) {
	f.Add([]byte("merge_method: plan_test_first\nmodels:\n  - model: a\n  - model: x\n"),
		[]byte(`{"model.embed_tokens.weight":{"dtype":"BF16","shape":[8,4],"data_offsets":[0,64]}}`),
		[]byte(`{"num_hidden_layers": 2}`), uint16(64))
	f.Fuzz(func(t *testing.T, yaml, header, configJSON []byte, dataLen uint16) {
		if len(yaml) > 4096 || len(header) > 4096 || len(configJSON) > 1024 {
			return
		}
		// Everything runs under a watchdog: the fuzzer itself reports no hangs.
		done := make(chan struct{})
		var stage string
		go func() {
			defer close(done)
			stage = "Parse"
			cfg, err := config.Parse(yaml)
			if err != nil {
				checkError(t, err)
				return
			}
			fsys := fuzzFS(header, configJSON, int(dataLen))
			stage = "Build"
			var p *Plan
			alloc := allocated(func() { p, err = Build(cfg, fsys, Options{Seed: 1, ShardSize: 200}) })
			if limit := uint64(1<<20 + 256*(len(yaml)+len(header)+len(configJSON))); alloc > limit {
				t.Errorf("Build allocated %d bytes, more than %d", alloc, limit)
			}
			if err != nil {
				if p != nil {
					t.Error("Build returned a plan and an error")
				}
				checkError(t, err)
				return
			}
			defer p.Close()
			stage = "checkPlan"
			checkPlan(t, p)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%s hangs on\n%s\n%s", stage, yaml, buf)
		}
	})
}

// checkError checks that err wraps a sentinel callers branch on and reads as one line.
func checkError(t *testing.T, err error) {
	t.Helper()
	sentinel := false
	for _, s := range []error{ErrPlan, config.ErrConfig, safetensors.ErrFormat, safetensors.ErrHeaderTooLarge, safetensors.ErrNotFound} {
		sentinel = sentinel || errors.Is(err, s)
	}
	if !sentinel {
		t.Errorf("error %q (%T) wraps none of ErrPlan, ErrConfig, safetensors.ErrFormat, ErrHeaderTooLarge, ErrNotFound", err, err)
	}
	if msg := err.Error(); msg == "" || strings.IndexFunc(msg, unicode.IsControl) >= 0 {
		t.Errorf("error %q is not one line of printable text", msg)
	}
}

// checkPlan checks the promises of an accepted plan.
func checkPlan(t *testing.T, p *Plan) {
	t.Helper()
	if p.Layers < 0 {
		t.Errorf("Layers = %d", p.Layers)
	}
	if len(p.Entries) == 0 {
		t.Errorf("plan of no tensors from a base of %d", len(p.Base.Tensors()))
	}
	k := 0
	for si, s := range p.Shards {
		for _, spec := range s.Specs {
			if k >= len(p.Entries) {
				t.Errorf("shards hold more tensors than the %d entries", len(p.Entries))
				return
			}
			e := &p.Entries[k]
			if e.Name != spec.Name || e.Shard != si || e.DType != spec.DType {
				t.Errorf("entry %d %s (%v) in shard %d, spec %s (%v) in shard %d", k, e.Name, e.DType, e.Shard, spec.Name, spec.DType, si)
				return
			}
			k++
		}
	}
	if k != len(p.Entries) {
		t.Errorf("%d specs for %d entries", k, len(p.Entries))
		return
	}
	for _, e := range p.Entries {
		if len(e.Inputs) == 0 {
			t.Errorf("entry %s has no inputs", e.Name)
			return
		}
		n := int64(1)
		for _, d := range e.Shape {
			n *= d
		}
		if n != e.N || e.N*int64(e.DType.Size()) != e.Bytes {
			t.Errorf("entry %s: shape %v, %d elements, %d bytes of %v", e.Name, e.Shape, e.N, e.Bytes, e.DType)
			return
		}
		for _, in := range e.Inputs {
			if in.Tensor.NumElements() != e.N {
				t.Errorf("entry %s: input %s of %d elements, want %d", e.Name, in.Tensor.Name, in.Tensor.NumElements(), e.N)
				return
			}
		}
		if (e.Merge == nil) == e.DType.IsFloat() {
			t.Errorf("entry %s of %v: Merge %v", e.Name, e.DType, e.Merge)
			return
		}
	}
	if p.OutputBytes() <= 0 {
		t.Errorf("OutputBytes = %d", p.OutputBytes())
	}
	_ = p.Summary(3)
}

// allocated returns the heap bytes f allocated, read from runtime/metrics rather than
// runtime.ReadMemStats, which stops the world and cost more than Build itself. Small
// objects still in a per-P cache may go uncounted; large ones, the ones an unchecked
// length would make, are counted when allocated.
func allocated(f func()) uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	f()
	metrics.Read(s)
	return s[0].Value.Uint64() - before
}
