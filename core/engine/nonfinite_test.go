package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"freelunch/core/config"
	"freelunch/core/dtype"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
)

// TestIssue7NonFiniteWholeTensor: the error for a NaN or Inf input once counted only the
// values in the chunk where a worker met the first one. It must count the whole tensor
// of that input and give the first position in the tensor, whatever the chunk size,
// the number of workers, and whether the method reads the tensor in statistics passes.
func TestIssue7NonFiniteWholeTensor(t *testing.T) {
	const n = 64
	for _, tc := range []struct {
		name string
		at   []int // elements of ft's "w" set to NaN, +Inf, -Inf in turn
		want string
	}{
		{"five over several chunks", []int{5, 17, 18, 40, 63}, `tensor "w" holds 5 NaN/Inf values (first at element 5)`},
		{"one in the last element", []int{63}, `tensor "w" holds 1 NaN/Inf value (first at element 63)`},
		{"every element", seq(n), `tensor "w" holds 64 NaN/Inf values (first at element 0)`},
	} {
		for _, d := range []dtype.DType{dtype.F32, dtype.BF16} {
			base := make([]float32, n)
			ft := make([]float32, n)
			for i := range ft {
				base[i], ft[i] = float32(i)/8, float32(i)/8+0.25
			}
			special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
			for j, i := range tc.at {
				ft[i] = special[j%len(special)]
			}
			spec := []safetensors.TensorSpec{{Name: "w", DType: d, Shape: []int64{8, 8}}}
			fsys := safetensors.MemFS{
				"base/model.safetensors": writeST(t, spec, encode(base, d)),
				"ft/model.safetensors":   writeST(t, spec, encode(ft, d)),
			}
			// ties reads the tensor in a statistics pass first, task_arithmetic does not.
			for method, params := range map[string]string{"task_arithmetic": "{weight: 1}", "ties": "{weight: 1, density: 0.5}"} {
				cfg, err := config.Parse([]byte(fmt.Sprintf("merge_method: %s\nbase_model: base\nmodels:\n  - model: ft\n    parameters: %s\n", method, params)))
				if err != nil {
					t.Fatal(err)
				}
				for _, chunk := range []int{1, 4, 7, 16, 64, 1000} {
					for _, threads := range []int{1, 3} {
						p, err := plan.Build(cfg, fsys, plan.Options{ShardSize: plan.DefaultShardSize})
						if err != nil {
							t.Fatal(err)
						}
						_, err = Run(context.Background(), p, &memSink{}, Options{ChunkSize: chunk, Threads: threads})
						p.Close()
						if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "model ft:") {
							t.Errorf("%s, %s, %s, chunk %d, %d threads: Run = %v; want ErrNonFinite saying model ft: %s",
								tc.name, d, method, chunk, threads, err, tc.want)
						}
					}
				}
			}
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func encode(x []float32, d dtype.DType) []byte {
	b := make([]byte, len(x)*d.Size())
	dtype.Encode(b, x, d)
	return b
}
