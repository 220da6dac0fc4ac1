package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"freelunch/core/config"
	"freelunch/core/dtype"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
)

// writeST encodes one safetensors file of the given tensors (raw little-endian bytes).
func writeST(t *testing.T, specs []safetensors.TensorSpec, data ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := safetensors.NewWriter(&b, specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range data {
		if _, err := w.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// outputTensor returns the bytes of tensor name in the single-file output held by s.
func outputTensor(t *testing.T, s *memSink, name string) []byte {
	t.Helper()
	out := s.files["model.safetensors"].Bytes()
	f, err := safetensors.Open(bytes.NewReader(out), int64(len(out)), "model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	ti := f.Lookup(name)
	if ti == nil {
		t.Fatalf("output lacks %s", name)
	}
	b := make([]byte, ti.End-ti.Start)
	if err := f.ReadTensorAt(ti, b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func le(vals ...any) []byte {
	var b bytes.Buffer
	for _, v := range vals {
		binary.Write(&b, binary.LittleEndian, v)
	}
	return b.Bytes()
}

// Scalar ([]) and one-element tensors merge, an F16 result past 65504 becomes +Inf, and an
// integer tensor that differs between models is copied from the base with a warning.
func TestEdgeTensors(t *testing.T) {
	specs := []safetensors.TensorSpec{
		{Name: "scale", DType: dtype.F32, Shape: []int64{}},
		{Name: "one", DType: dtype.F32, Shape: []int64{1}},
		{Name: "ids", DType: dtype.I32, Shape: []int64{3}},
	}
	fsys := safetensors.MemFS{
		"base/model.safetensors": writeST(t, specs, le(float32(1.5)), le(float32(60000)), le(int32(1), int32(2), int32(3))),
		"ft/model.safetensors":   writeST(t, specs, le(float32(2.5)), le(float32(64992)), le(int32(1), int32(2), int32(4))),
	}
	cfg, err := config.Parse([]byte(`
merge_method: task_arithmetic
base_model: base
out_dtype: float16
parameters:
  lambda: 10
models:
  - model: ft
    parameters: {weight: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(cfg, fsys, plan.Options{ShardSize: plan.DefaultShardSize})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s := &memSink{}
	res, err := Run(context.Background(), p, s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte { return outputTensor(t, s, name) }
	got := make([]float32, 1)
	dtype.Decode(got, read("scale"), dtype.F16)
	if got[0] != 11.5 {
		t.Errorf("scalar: %v, want 1.5 + 10·1 = 11.5", got[0])
	}
	dtype.Decode(got, read("one"), dtype.F16)
	if !math.IsInf(float64(got[0]), 1) {
		t.Errorf("60000 + 10·4992 in F16: %v, want +Inf", got[0])
	}
	if ids := read("ids"); !bytes.Equal(ids, le(int32(1), int32(2), int32(3))) {
		t.Errorf("integer tensor %v, want the base's bytes", ids)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "ids") {
		t.Errorf("no warning names the differing integer tensor: %q", res.Warnings)
	}
}

// ties over deltas of one magnitude: every element ties at the top-k threshold, so the
// selectors keep the boundary bucket (n ≤ 2^21 per selector) or, past that, make a third
// pass in index order that ends once the cut is found. Both give the first ⌊ρn⌋ elements.
func TestTiesAllTied(t *testing.T) {
	for _, n := range []int{300_000, 2_100_000} {
		spec := []safetensors.TensorSpec{{Name: "w", DType: dtype.BF16, Shape: []int64{int64(n)}}}
		base, ft1, ft2 := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range n {
			ft1[i], ft2[i] = 0.5, 0.25
			if i%2 == 1 {
				ft2[i] = -0.25
			}
		}
		enc := func(x []float32) []byte { b := make([]byte, 2*len(x)); dtype.Encode(b, x, dtype.BF16); return b }
		fsys := safetensors.MemFS{
			"base/model.safetensors": writeST(t, spec, enc(base)),
			"ft1/model.safetensors":  writeST(t, spec, enc(ft1)),
			"ft2/model.safetensors":  writeST(t, spec, enc(ft2)),
		}
		cfg, err := config.Parse([]byte(`
merge_method: ties
base_model: base
models:
  - model: ft1
    parameters: {weight: 1, density: 0.3}
  - model: ft2
    parameters: {weight: 1, density: 0.3}
`))
		if err != nil {
			t.Fatal(err)
		}
		p, err := plan.Build(cfg, fsys, plan.Options{ShardSize: plan.DefaultShardSize})
		if err != nil {
			t.Fatal(err)
		}
		s := &memSink{}
		_, err = Run(context.Background(), p, s, Options{ChunkSize: 100_000, Threads: 2})
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float32, n)
		dtype.Decode(got, outputTensor(t, s, "w"), dtype.BF16)
		kept := int(math.Floor(0.3 * float64(n)))
		bad := 0
		for i, g := range got {
			// Both models keep i < kept; ft2 agrees with the elected + sign at even i:
			// (0.5 + 0.25)/2 there, 0.5/1 at odd i; nothing is kept past kept.
			want := float32(0)
			switch {
			case i < kept && i%2 == 0:
				want = 0.375
			case i < kept:
				want = 0.5
			}
			if g != want {
				if bad++; bad <= 3 {
					t.Errorf("n %d: element %d = %v, want %v", n, i, g, want)
				}
			}
		}
	}
}
