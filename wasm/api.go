//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hack-pad/safejs"

	"freelunch/core/analyze"
	"freelunch/core/config"
	"freelunch/core/engine"
	"freelunch/core/merge"
	"freelunch/core/plan"
	"freelunch/core/safetensors"
)

// methods describes the registry for the page's form: every method, its inputs and its
// parameters, as the core declares them.
func methods() []any {
	var out []any
	for _, m := range merge.Methods() {
		var params []any
		for _, p := range m.Params() {
			q := map[string]any{
				"name": p.Name, "kind": [...]string{"float", "bool", "enum"}[p.Kind],
				"scope": [...]string{"model", "global"}[p.Scope], "required": p.Required,
				"default": p.Default, "enum": p.Enum, "doc": p.Doc, "minOpen": p.MinOpen,
			}
			if p.Kind == merge.Float {
				q["min"] = finite(p.Min)
				q["max"] = finite(p.Max)
			}
			params = append(params, q)
		}
		in := m.Inputs()
		out = append(out, map[string]any{
			"name": m.Name(), "params": params,
			"inputs": map[string]any{
				"base": in.Base == merge.Required, "minModels": in.MinModels,
				"maxModels": in.MaxModels, "baseIsInput": in.BaseIsInput,
			},
		})
	}
	return out
}

// finite returns v, or nil for an infinite bound (JSON has no Inf).
func finite(v float64) any {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return nil
	}
	return v
}

// inspect opens one model's headers and sums them up for the model list.
func inspect(fsys fileFS, name string) (map[string]any, error) {
	m, err := safetensors.OpenModel(fsys, name)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	dtypes := map[string]int{}
	var bytes, params int64
	for _, t := range m.Tensors() {
		dtypes[t.DType.String()]++
		bytes += t.Size()
		params += t.NumElements()
	}
	var notes []string
	if _, err := m.ReadFile("config.json", 1<<20); errors.Is(err, safetensors.ErrNotFound) {
		notes = append(notes, "no config.json: the layer count comes from the tensor names, and the output has no config.json when this is the base")
	}
	return map[string]any{
		"tensors": len(m.Tensors()), "dtypes": dtypes, "bytes": bytes, "params": params,
		"shards": m.Shards(), "notes": notes,
	}, nil
}

// parse returns the config as the form shows it; values that are not scalars (gradients,
// filter lists) come back as JSON, which is also valid YAML.
func parse(yaml string) (map[string]any, error) {
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		return nil, err
	}
	var models []any
	for _, e := range cfg.Models {
		models = append(models, map[string]any{"model": e.Model, "params": paramsJSON(e.Parameters)})
	}
	return map[string]any{
		"method": cfg.MergeMethod, "base": cfg.BaseModel, "models": models,
		"params": paramsJSON(cfg.Parameters), "slices": len(cfg.Slices) > 0,
		"dtype": engine.TorchDType(cfg.DType), "outDtype": engine.TorchDType(cfg.OutDType),
		"tokenizerSource": cfg.TokenizerSource,
	}, nil
}

func paramsJSON(ps config.Params) map[string]any {
	out := map[string]any{}
	for k, v := range ps {
		out[k] = valueJSON(v)
	}
	return out
}

func valueJSON(v config.Value) any {
	switch {
	case v.Scalar != nil:
		return v.Scalar
	case v.Gradient != nil:
		return v.Gradient
	}
	var fs []any
	for _, f := range v.Filters {
		item := map[string]any{"value": valueJSON(f.Value)}
		if f.Filter != "" {
			item["filter"] = f.Filter
		}
		fs = append(fs, item)
	}
	return fs
}

// build parses the config and plans it against the posted files.
func build(fsys fileFS, req request) (*plan.Plan, error) {
	cfg, err := config.Parse([]byte(req.Config))
	if err != nil {
		return nil, err
	}
	var seed uint64
	if s := strings.TrimSpace(req.Seed); s != "" {
		seed, err = strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("the seed %q is not a whole number from 0 to 18446744073709551615", req.Seed)
		}
	}
	return plan.Build(cfg, fsys, plan.Options{Seed: seed, ShardSize: req.ShardSize})
}

// validate plans the merge without reading tensor data (design.md §8).
func validate(fsys fileFS, req request) (map[string]any, error) {
	p, err := build(fsys, req)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	var dare []any // the DARE check against the page's analysis, if any (wasm/analyze.go)
	if len(req.Analysis) > 0 {
		if dare, err = dareRisks(p, req.Analysis); err != nil {
			return nil, err
		}
	}
	var shards []string
	for _, s := range p.Shards {
		shards = append(shards, s.FileName)
	}
	return map[string]any{
		"tensors": len(p.Entries), "inputBytes": p.InputBytes(), "outputBytes": p.OutputBytes(),
		"shards": shards, "warnings": p.Warnings, "summary": p.Summary(3), "method": p.Method.Name(),
		"dare": dare, "dropsAtRandom": analyze.DropsAtRandom(p.Method.Name()),
	}, nil
}

// runMerge plans and runs the merge, writing a stored zip into OPFS (req.Out) or, when the
// page passed a folder handle, the files into that folder.
func runMerge(ctx context.Context, fsys fileFS, req request, dir safejs.Value) (map[string]any, error) {
	p, err := build(fsys, req)
	if err != nil {
		return nil, err
	}
	defer p.Close()

	type sink interface {
		engine.Sink
		finish() error
	}
	var out sink
	var cleanup func()
	if dir.IsUndefined() || dir.IsNull() {
		h, err := openOPFS(req.Out)
		if err != nil {
			return nil, err
		}
		defer h.Call("close")
		z, err := newZipSink(h, strings.TrimSuffix(req.Out, ".zip")+"/")
		if err != nil {
			return nil, err
		}
		out = z
	} else {
		d, err := newDirSink(dir)
		if err != nil {
			return nil, err
		}
		out, cleanup = d, d.abort
	}

	start := time.Now()
	var lastPost time.Time
	opts := engine.Options{
		ChunkSize: req.ChunkSize, Threads: 1, AllowNonFinite: req.AllowNonFinite,
		CopyTokenizer: req.CopyTokenizer == nil || *req.CopyTokenizer,
		Progress: func(pr engine.Progress) {
			now := time.Now()
			if now.Sub(lastPost) < 100*time.Millisecond && pr.TensorsDone < pr.Tensors {
				return
			}
			lastPost = now
			post(map[string]any{"type": "progress", "id": req.ID,
				"bytesRead": pr.BytesRead, "bytesWritten": pr.BytesWritten, "totalBytes": pr.TotalBytes,
				"tensorsDone": pr.TensorsDone, "tensors": pr.Tensors, "tensor": pr.Tensor,
				"seconds": now.Sub(start).Seconds()})
		},
		Yield: yielder(),
	}
	res, err := engine.Run(ctx, p, out, opts)
	if err == nil {
		err = out.finish()
	}
	if err != nil {
		if cleanup != nil {
			cleanup()
		}
		return nil, err
	}
	return map[string]any{
		"tensors": len(p.Entries), "bytesRead": res.BytesRead, "bytesWritten": res.BytesWritten,
		"files": res.Files, "warnings": res.Warnings, "nonFinite": res.NonFinite,
		"seconds": time.Since(start).Seconds(), "seed": strconv.FormatUint(p.Seed, 10),
		"method": p.Method.Name(), "out": req.Out,
	}, nil
}

// openOPFS creates (or opens: newZipSink empties it) name in the origin private file
// system and opens a synchronous access handle on it (Worker only).
func openOPFS(name string) (safejs.Value, error) {
	fail := func(err error) (safejs.Value, error) {
		if strings.Contains(err.Error(), "QuotaExceeded") {
			return safejs.Undefined(), errStorage
		}
		return safejs.Undefined(), fmt.Errorf("open browser storage (OPFS) for %s: %w", name, err)
	}
	nav, err := safejs.Global().Get("navigator")
	if err != nil {
		return fail(err)
	}
	st, err := nav.Get("storage")
	if err != nil {
		return fail(err)
	}
	p, err := st.Call("getDirectory")
	if err != nil {
		return fail(err)
	}
	root, err := await(p)
	if err != nil {
		return fail(err)
	}
	opts, err := safejs.ValueOf(map[string]any{"create": true})
	if err != nil {
		return fail(err)
	}
	p, err = root.Call("getFileHandle", name, opts)
	if err != nil {
		return fail(err)
	}
	fh, err := await(p)
	if err != nil {
		return fail(err)
	}
	p, err = fh.Call("createSyncAccessHandle")
	if err != nil {
		return fail(err)
	}
	h, err := await(p)
	if err != nil {
		return fail(err)
	}
	return h, nil
}

// describe turns an error into the page's error message: the sentence, a code mirroring
// the core's sentinel, and where it points (the config line, the model).
func describe(err error, fsys fileFS) map[string]any {
	msg := map[string]any{"message": err.Error(), "code": "error"}
	var cerr *config.Error
	var ferr *safetensors.FormatError
	var perr *fs.PathError
	where := ""
	switch {
	case errors.As(err, &cerr):
		msg["code"], msg["line"], msg["key"] = "config", cerr.Line, cerr.Key
	case errors.Is(err, context.Canceled):
		msg["code"], msg["message"] = "canceled", "merge cancelled; nothing was kept"
	case errors.Is(err, errStorage) || errors.Is(err, errFolderFull):
		msg["code"] = "storage"
	case errors.As(err, &ferr):
		msg["code"], where = "format", ferr.File
	case errors.Is(err, safetensors.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		msg["code"] = "notfound"
		if errors.As(err, &perr) {
			where = perr.Path
		}
	case errors.Is(err, engine.ErrNonFinite):
		msg["code"] = "nonfinite"
	case errors.Is(err, plan.ErrPlan):
		msg["code"] = "plan"
	}
	if m := modelOf(where, err.Error(), fsys); m != "" {
		msg["model"] = m
	}
	return msg
}

// modelOf names the model an error is about: the first component of the file it names,
// else the longest model name the message mentions.
func modelOf(file, text string, fsys fileFS) string {
	names := map[string]bool{}
	for p := range fsys {
		names[strings.SplitN(p, "/", 2)[0]] = true
	}
	if file != "" {
		if top := strings.SplitN(path.Clean(file), "/", 2)[0]; names[top] {
			return top
		}
	}
	var list []string
	for n := range names {
		list = append(list, n)
	}
	sort.Slice(list, func(i, j int) bool { return len(list[i]) > len(list[j]) })
	for _, n := range list {
		if strings.Contains(text, n) {
			return n
		}
	}
	return ""
}

// yielder returns an Options.Yield for long work: js/wasm runs goroutines on one thread, so
// a cancel message gets in only when the work sleeps now and then (design.md §10).
func yielder() func() {
	var last time.Time
	return func() {
		if time.Since(last) > 150*time.Millisecond {
			time.Sleep(time.Millisecond)
			last = time.Now()
		}
	}
}
