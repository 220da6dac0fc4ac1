// Package testmodel writes small Llama-shaped safetensors models for tests, the demo and
// benchmarks: a base and fine-tunes of it whose deltas are small, all deterministic.
package testmodel

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"freelunch/core/dtype"
	"freelunch/core/safetensors"
)

// Spec describes a model family.
type Spec struct {
	Layers       int
	Hidden       int
	Intermediate int
	Vocab        int
	DType        dtype.DType // float dtype of the weights
	Shards       int         // >1 writes model-0000i-of-0000N.safetensors and an index
	IntTensor    bool        // add an I64 tensor (copied, never merged)
	Seed         uint64      // base weights
}

// Small is a tiny family for unit tests: 2 layers, hidden 16.
var Small = Spec{Layers: 2, Hidden: 16, Intermediate: 40, Vocab: 64, DType: dtype.BF16, Seed: 1}

// Tensor is one tensor of a generated model.
type Tensor struct {
	Name  string
	Shape []int64
	DType dtype.DType
}

// Tensors returns the model's tensors in the order they are written.
func (s Spec) Tensors() []Tensor {
	h, in, v := int64(s.Hidden), int64(s.Intermediate), int64(s.Vocab)
	ts := []Tensor{{"model.embed_tokens.weight", []int64{v, h}, s.DType}}
	for l := 0; l < s.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			Tensor{p + "input_layernorm.weight", []int64{h}, s.DType},
			Tensor{p + "self_attn.q_proj.weight", []int64{h, h}, s.DType},
			Tensor{p + "self_attn.k_proj.weight", []int64{h, h}, s.DType},
			Tensor{p + "self_attn.v_proj.weight", []int64{h, h}, s.DType},
			Tensor{p + "self_attn.o_proj.weight", []int64{h, h}, s.DType},
			Tensor{p + "post_attention_layernorm.weight", []int64{h}, s.DType},
			Tensor{p + "mlp.gate_proj.weight", []int64{in, h}, s.DType},
			Tensor{p + "mlp.up_proj.weight", []int64{in, h}, s.DType},
			Tensor{p + "mlp.down_proj.weight", []int64{h, in}, s.DType},
		)
	}
	ts = append(ts, Tensor{"model.norm.weight", []int64{h}, s.DType}, Tensor{"lm_head.weight", []int64{v, h}, s.DType})
	if s.IntTensor {
		ts = append(ts, Tensor{"model.position_ids", []int64{1, 8}, dtype.I64})
	}
	return ts
}

// Variant says how one model of a family differs from the base.
type Variant struct {
	Seed  uint64  // seed of the delta; 0 for the base itself
	Scale float64 // delta magnitude (standard deviation); 0 for the base
	// Unrelated replaces the weights by independent ones (a model not derived from the base).
	Unrelated bool
}

// Value returns element i of tensor name of variant v: the base weight (normal, sd 0.02;
// norms near 1) plus v.Scale times a normal delta. Values are rounded to the dtype by
// the writer.
func (s Spec) Value(v Variant, name string, i int64) float32 {
	seed := s.Seed
	if v.Unrelated {
		seed = v.Seed ^ 0xabcdef
	}
	base := 0.02 * normal(seed, name, i)
	if isNorm(name) {
		base = 1 + 0.1*normal(seed, name, i)
	}
	if v.Scale != 0 && !v.Unrelated {
		base += v.Scale * normal(v.Seed+0x1234, name, i)
	}
	return float32(base)
}

func isNorm(name string) bool { return strings.HasSuffix(name, "norm.weight") }

// normal returns a deterministic standard normal draw for (seed, name, i) (Box-Muller over
// a splitmix64 hash).
func normal(seed uint64, name string, i int64) float64 {
	h := uint64(0xcbf29ce484222325)
	for j := 0; j < len(name); j++ {
		h ^= uint64(name[j])
		h *= 0x100000001b3
	}
	z := mix(mix(seed) ^ h ^ uint64(i)*0x9e3779b97f4a7c15)
	u1 := (float64(z>>11) + 0.5) / (1 << 53)
	u2 := float64(mix(z)>>11) / (1 << 53)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

func mix(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

// Write writes variant v of the family into dir (created): the weights (single file or
// shards with an index), config.json, and small tokenizer and generation files.
func (s Spec) Write(dir string, v Variant) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := s.Tensors()
	specs := make([]safetensors.TensorSpec, len(ts))
	var total int64
	for i, t := range ts {
		specs[i] = safetensors.TensorSpec{Name: t.Name, DType: t.DType, Shape: t.Shape}
		total += numel(t.Shape) * int64(t.DType.Size())
	}
	limit := total + 1
	if s.Shards > 1 {
		limit = (total + int64(s.Shards) - 1) / int64(s.Shards)
	}
	shards, err := safetensors.SplitShards(specs, limit, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	k := 0
	for _, sh := range shards {
		if err := s.writeShard(filepath.Join(dir, sh.FileName), sh.Specs, ts[k:k+len(sh.Specs)], v); err != nil {
			return err
		}
		k += len(sh.Specs)
	}
	if len(shards) > 1 {
		if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), safetensors.IndexJSON(shards), 0o644); err != nil {
			return err
		}
	}
	cfg, _ := json.MarshalIndent(map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"hidden_size":             s.Hidden,
		"intermediate_size":       s.Intermediate,
		"num_hidden_layers":       s.Layers,
		"num_attention_heads":     max(1, s.Hidden/8),
		"vocab_size":              s.Vocab,
		"torch_dtype":             torchName(s.DType),
		"rms_norm_eps":            1e-5,
		"tie_word_embeddings":     false,
		"max_position_embeddings": 128,
	}, "", "  ")
	files := map[string]string{
		"config.json":             string(cfg) + "\n",
		"tokenizer_config.json":   `{"model_max_length": 128, "bos_token": "<s>", "eos_token": "</s>"}` + "\n",
		"tokenizer.json":          `{"version": "1.0", "model": {"type": "WordLevel", "vocab": {"<s>": 0, "</s>": 1}, "unk_token": "<s>"}}` + "\n",
		"generation_config.json":  `{"bos_token_id": 0, "eos_token_id": 1}` + "\n",
		"special_tokens_map.json": `{"bos_token": "<s>", "eos_token": "</s>"}` + "\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (s Spec) writeShard(path string, specs []safetensors.TensorSpec, ts []Tensor, v Variant) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := safetensors.NewWriter(f, specs, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	const chunk = 1 << 16
	vals := make([]float32, chunk)
	buf := make([]byte, chunk*8)
	for _, t := range ts {
		n := numel(t.Shape)
		for off := int64(0); off < n; off += chunk {
			m := min(chunk, n-off)
			if !t.DType.IsFloat() {
				b := buf[:m*int64(t.DType.Size())]
				for i := range b {
					b[i] = 0
				}
				for i := int64(0); i < m; i++ {
					b[i*int64(t.DType.Size())] = byte(off + i)
				}
				if _, err := w.Write(b); err != nil {
					return err
				}
				continue
			}
			for i := int64(0); i < m; i++ {
				vals[i] = s.Value(v, t.Name, off+i)
			}
			b := buf[:m*int64(t.DType.Size())]
			dtype.Encode(b, vals[:m], t.DType)
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.Close()
}

func numel(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

func torchName(d dtype.DType) string {
	switch d {
	case dtype.BF16:
		return "bfloat16"
	case dtype.F16:
		return "float16"
	case dtype.F64:
		return "float64"
	}
	return "float32"
}
