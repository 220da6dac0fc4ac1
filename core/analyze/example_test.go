package analyze_test

import (
	"bytes"
	"context"
	"fmt"

	"freelunch/core/analyze"
	"freelunch/core/dtype"
	"freelunch/core/safetensors"
)

// file returns a safetensors file with one F32 tensor "w".
func file(vals ...float32) []byte {
	var buf bytes.Buffer
	w, _ := safetensors.NewWriter(&buf, []safetensors.TensorSpec{{Name: "w", DType: dtype.F32, Shape: []int64{int64(len(vals))}}}, nil)
	b := make([]byte, 4*len(vals))
	dtype.Encode(b, vals, dtype.F32)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// Run compares fine-tunes with their base; here through in-memory files, as the browser
// passes dropped ones.
func ExampleRun() {
	fsys := safetensors.MemFS{
		"base.safetensors":  file(1, -1, 0.5, 2),
		"small.safetensors": file(1.001, -1, 0.499, 2.0015),
		"other.safetensors": file(-1, 1, 0.25, 0),
	}
	open := func(name string) *safetensors.Model {
		m, err := safetensors.OpenModel(fsys, name)
		if err != nil {
			panic(err)
		}
		return m
	}
	base := open("base.safetensors")
	models := []*safetensors.Model{open("small.safetensors"), open("other.safetensors")}
	rep, err := analyze.Run(context.Background(), base, models, analyze.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range rep.Models {
		fmt.Printf("%s: rel_norm %.3f, within 0.002: %.2f, dare_noise(0.9) %.3f: %s\n",
			m.Model, m.Overall.RelNorm(), m.Overall.FracWithin(0), m.Overall.DARENoise(0.9), m.Verdict)
	}
	// By hand: small's δ ≈ (0.001, 0, -0.001, 0.0015), other's (-2, 2, -0.25, -2), ‖B‖ = 2.5;
	// both non-zero at 3 elements, signs opposite at 2 of them.
	p := rep.Pairs[0]
	fmt.Printf("cosine %.3f, sign conflict %.2f\n", p.Overall.Cosine(), p.Overall.SignConflict())
	// Output:
	// small.safetensors: rel_norm 0.001, within 0.002: 1.00, dare_noise(0.9) 0.002: a fine-tune of this base
	// other.safetensors: rel_norm 1.389, within 0.002: 0.00, dare_noise(0.9) 4.168: not derived from this base
	// cosine -0.663, sign conflict 0.67
}
