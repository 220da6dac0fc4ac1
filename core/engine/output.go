package engine

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"freelunch/core/dtype"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
)

// TokenizerFiles are the files copied from the tokenizer source next to the output
// (design.md §7), when they exist.
var TokenizerFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
	"vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja",
	"generation_config.json",
}

// sideFileLimit bounds the size of a copied side file.
const sideFileLimit = 64 << 20

// checkSideFiles makes, and drops, what writeSideFiles will write from the inputs: the
// output config.json and the tokenizer files, so that their errors come before the merge.
// The files are read again at the end rather than held, to keep memory bounded.
func checkSideFiles(p *plan.Plan, opts Options) error {
	if p.BaseConfig != nil {
		if _, err := OutputConfig(p); err != nil {
			return err
		}
	}
	if opts.CopyTokenizer {
		for _, name := range TokenizerFiles {
			_, err := p.Tokenizer.ReadFile(name, sideFileLimit)
			if err != nil && !errors.Is(err, safetensors.ErrNotFound) {
				return fmt.Errorf("copy %s from %s: %w", name, p.Tokenizer.Path, err)
			}
		}
	}
	return nil
}

// writeSideFiles writes the index (sharded output), config.json, the tokenizer files and
// the model card after the shards.
func writeSideFiles(p *plan.Plan, sink Sink, opts Options, res *Result) error {
	put := func(name string, data []byte) error {
		w, err := sink.Create(name)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		res.Files = append(res.Files, name)
		res.BytesWritten += int64(len(data))
		return nil
	}
	if len(p.Shards) > 1 {
		if err := put("model.safetensors.index.json", safetensors.IndexJSON(p.Shards)); err != nil {
			return err
		}
	}
	if p.BaseConfig != nil {
		cfg, err := OutputConfig(p)
		if err != nil {
			return err
		}
		if err := put("config.json", cfg); err != nil {
			return err
		}
	}
	if opts.CopyTokenizer {
		for _, name := range TokenizerFiles {
			data, err := p.Tokenizer.ReadFile(name, sideFileLimit)
			if errors.Is(err, safetensors.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("copy %s from %s: %w", name, p.Tokenizer.Path, err)
			}
			if err := put(name, data); err != nil {
				return err
			}
		}
	}
	return put("README.md", ModelCard(p))
}

// TorchDType returns the config.json spelling of a float dtype ("bfloat16"), or "".
func TorchDType(d dtype.DType) string {
	switch d {
	case dtype.BF16:
		return "bfloat16"
	case dtype.F16:
		return "float16"
	case dtype.F32:
		return "float32"
	case dtype.F64:
		return "float64"
	}
	return ""
}

// OutputConfig returns the reference model's config.json with torch_dtype set to the
// output's float dtype (and, for slices, the layer count updated). Key order is kept.
func OutputConfig(p *plan.Plan) ([]byte, error) {
	set := map[string]string{}
	if td := TorchDType(outputFloatDType(p)); td != "" {
		set["torch_dtype"] = strconv.Quote(td)
	}
	if p.OutLayers > 0 {
		for _, k := range plan.LayerKeys {
			set[k] = strconv.Itoa(p.OutLayers)
		}
	}
	out, err := editJSONObject(p.BaseConfig, set)
	if err != nil {
		return nil, fmt.Errorf("config.json of %s: %w", p.Base.Path, err)
	}
	return out, nil
}

// outputFloatDType returns the dtype of the output's float tensors (the most common one).
func outputFloatDType(p *plan.Plan) dtype.DType {
	count := map[dtype.DType]int64{}
	var best dtype.DType
	for _, e := range p.Entries {
		if e.DType.IsFloat() {
			count[e.DType] += e.N
			if count[e.DType] > count[best] {
				best = e.DType
			}
		}
	}
	return best
}

// editJSONObject replaces the values of the top-level keys of obj named in set (values
// are JSON text) and re-indents it; keys absent from obj are left absent, except
// torch_dtype, which is added.
func editJSONObject(obj []byte, set map[string]string) ([]byte, error) {
	switch {
	case len(bytes.TrimSpace(obj)) == 0:
		return nil, errors.New("the file is empty; want a JSON object")
	case bytes.HasPrefix(obj, []byte("\xef\xbb\xbf")):
		return nil, errors.New("the file starts with a UTF-8 byte order mark, which JSON does not allow (transformers cannot read it either)")
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	// jsonErr says where the JSON went wrong: the decoder's messages name no position.
	jsonErr := func(err error) error {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, err)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("the JSON ends early, at byte %d", len(obj))
		}
		return fmt.Errorf("invalid JSON near byte %d: %v", dec.InputOffset(), err)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var b bytes.Buffer
	b.WriteByte('{')
	seen := map[string]bool{}
	first := true
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("invalid JSON near byte %d: an object key must be a string", dec.InputOffset())
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonErr(err)
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(key)
		b.Write(kb)
		b.WriteByte(':')
		if v, ok := set[key]; ok {
			b.WriteString(v)
			seen[key] = true
		} else {
			b.Write(raw)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, jsonErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("text after the JSON object, at byte %d", dec.InputOffset())
	}
	if v, ok := set["torch_dtype"]; ok && !seen["torch_dtype"] {
		if !first {
			b.WriteByte(',')
		}
		b.WriteString(`"torch_dtype":` + v)
	}
	b.WriteByte('}')
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// ModelCard returns the README.md written next to the merged model: YAML front matter,
// the method, the models, the seed and the verbatim config.
func ModelCard(p *plan.Plan) []byte {
	var b strings.Builder
	q := func(s string) string { v, _ := json.Marshal(s); return string(v) }
	b.WriteString("---\n")
	if p.Config.BaseModel != "" {
		fmt.Fprintf(&b, "base_model: %s\n", q(p.Config.BaseModel))
	}
	b.WriteString("tags:\n- merge\n- freelunch\n---\n\n")
	b.WriteString("# Merged model\n\n")
	fmt.Fprintf(&b, "This model was merged with freelunch using the `%s` method", p.Method.Name())
	if p.Config.BaseModel != "" {
		fmt.Fprintf(&b, " with `%s` as the base", p.Config.BaseModel)
	}
	b.WriteString(".\n\n## Models\n\n")
	seen := map[string]bool{}
	for _, m := range p.Config.Models {
		if !seen[m.Model] {
			seen[m.Model] = true
			fmt.Fprintf(&b, "- `%s`\n", m.Model)
		}
	}
	for _, s := range p.Config.Slices {
		for _, src := range s.Sources {
			if !seen[src.Model] {
				seen[src.Model] = true
				fmt.Fprintf(&b, "- `%s`\n", src.Model)
			}
		}
	}
	fmt.Fprintf(&b, "\n## Reproduce\n\nRandom seed: %d\n\n    freelunch merge --random-seed %d config.yml OUT_DIR\n\n", p.Seed, p.Seed)
	b.WriteString("## Configuration\n\n```yaml\n")
	raw := string(p.Config.Raw)
	b.WriteString(raw)
	if !strings.HasSuffix(raw, "\n") {
		b.WriteByte('\n')
	}
	b.WriteString("```\n")
	return []byte(b.String())
}
