// Command demomodels writes the browser app's demo: a small Llama-shaped base model, two
// fine-tunes of it with small deltas (a few MB in all, deterministic), a dare_ties config
// and a manifest.json the page's "Try the demo" button reads. The deltas' standard
// deviation (-delta, default 0.0005) puts nearly all of them within 0.002, as in the DARE
// paper's fine-tunes, and the relative norm near 0.013, so that the Analyze view calls the
// fine-tunes "a fine-tune of this base" and the demo config's densities safe (core/analyze:
// at 0.002 the relative norm, 0.05, is above its 1/30 for aggressive DARE). With -extra it also writes
// two models for the delta analysis (issue 8), left out of the manifest and the config:
// demo-large, a derivative of the base with deltas ten times the fine-tunes' (-delta), and
// demo-unrelated, independent weights of the same shapes.
//
//	demomodels [-hidden N] [-layers N] [-shards N] [-delta X] [-extra] DIR
//	demomodels -big BYTES [-prefix P] DIR
//
// -big writes the same three models at about BYTES each, fast (a repeated block of
// random BF16 weights rather than testmodel's per-element draws), for the browser's
// memory-bound test: inputs over 1 GiB in all.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"

	"freelunch/core/safetensors"

	"freelunch/core/dtype"
	"freelunch/internal/testmodel"
)

// Config is the demo's merge, named by the folders the page lists.
const Config = `merge_method: dare_ties
base_model: demo-base
models:
  - model: demo-math
    parameters:
      weight: 0.6
      density: 0.5
  - model: demo-code
    parameters:
      weight: 0.4
      density: 0.5
parameters:
  lambda: 1.0
dtype: bfloat16
`

// prefix starts the model folder names.
var prefix string

func main() {
	hidden := flag.Int("hidden", 128, "hidden size")
	layers := flag.Int("layers", 2, "layers")
	shards := flag.Int("shards", 1, "shards per model")
	delta := flag.Float64("delta", 0.0005, "standard deviation of the fine-tunes' deltas")
	extra := flag.Bool("extra", false, "also write demo-large and demo-unrelated (not in the manifest)")
	big := flag.Int64("big", 0, "write large models of about this many bytes each, fast")
	flag.StringVar(&prefix, "prefix", "demo-", "prefix of the model folder names (base, math, code)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: demomodels [-hidden N] [-layers N] [-shards N] [-delta X] [-extra] DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	write := write
	if *big > 0 {
		write = func(dir string, _, _, _ int, _ float64, _ bool) error { return writeBig(dir, *big) }
	}
	if err := write(flag.Arg(0), *hidden, *layers, *shards, *delta, *extra); err != nil {
		fmt.Fprintln(os.Stderr, "demomodels:", err)
		os.Exit(1)
	}
}

func write(dir string, hidden, layers, shards int, delta float64, extra bool) error {
	spec := testmodel.Spec{Layers: layers, Hidden: hidden, Intermediate: hidden * 11 / 4, Vocab: 512,
		DType: dtype.BF16, Shards: shards, Seed: 1}
	models := []struct {
		name, role string
		v          testmodel.Variant
	}{
		{prefix + "base", "base", testmodel.Variant{}},
		{prefix + "math", "model", testmodel.Variant{Seed: 2, Scale: delta}},
		{prefix + "code", "model", testmodel.Variant{Seed: 3, Scale: delta}},
	}
	if extra {
		for _, m := range []struct {
			name string
			v    testmodel.Variant
		}{
			{"demo-large", testmodel.Variant{Seed: 4, Scale: 10 * delta}},
			{"demo-unrelated", testmodel.Variant{Seed: 5, Unrelated: true}},
		} {
			d := filepath.Join(dir, m.name)
			if err := os.RemoveAll(d); err != nil {
				return err
			}
			if err := spec.Write(d, m.v); err != nil {
				return err
			}
		}
	}
	type entry struct {
		Name  string   `json:"name"`
		Role  string   `json:"role"`
		Files []string `json:"files"`
	}
	var manifest struct {
		Models []entry `json:"models"`
		Config string  `json:"config"`
	}
	manifest.Config = Config
	for _, m := range models {
		d := filepath.Join(dir, m.name)
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		if err := spec.Write(d, m.v); err != nil {
			return err
		}
		var files []string
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				files = append(files, e.Name())
			}
			return err
		})
		if err != nil {
			return err
		}
		sort.Strings(files)
		manifest.Models = append(manifest.Models, entry{m.name, m.role, files})
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(Config), 0o644); err != nil {
		return err
	}
	b, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifest.json"), append(b, '\n'), 0o644)
}

// writeBig writes demo-base, demo-math and demo-code of about size bytes each: layers of
// 2048×2048 BF16 weights filled from a 1 MiB block of values near ±0.02 (the fine-tunes'
// blocks differ slightly), so generating a GiB takes seconds.
func writeBig(dir string, size int64) error {
	const side = 2048
	n := max(1, size/(side*side*2))
	var specs []safetensors.TensorSpec
	for i := range n {
		specs = append(specs, safetensors.TensorSpec{Name: fmt.Sprintf("model.layers.%d.mlp.weight", i), DType: dtype.BF16, Shape: []int64{side, side}})
	}
	for k, name := range []string{prefix + "base", prefix + "math", prefix + "code"} {
		d := filepath.Join(dir, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		block := make([]byte, 1<<20)
		x := uint64(0x9e3779b97f4a7c15)
		for i := 0; i < len(block); i += 2 {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			v := float32(int64(x>>40)-1<<23) / (1 << 23) * 0.02 // uniform in [-0.02, 0.02)
			if k > 0 {
				v += float32(k) * 1e-4
			}
			binary.LittleEndian.PutUint16(block[i:], uint16(math.Float32bits(v)>>16))
		}
		f, err := os.Create(filepath.Join(d, "model.safetensors"))
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		w, err := safetensors.NewWriter(bw, specs, map[string]string{"format": "pt"})
		if err != nil {
			f.Close()
			return err
		}
		for left := n * side * side * 2; left > 0; left -= int64(len(block)) {
			if _, err := w.Write(block[:min(left, int64(len(block)))]); err != nil {
				f.Close()
				return err
			}
		}
		if err := w.Close(); err != nil {
			f.Close()
			return err
		}
		if err := bw.Flush(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
