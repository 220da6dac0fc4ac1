//go:build js && wasm

// Command wasm is freelunch's core in a Web Worker: web/worker.js loads it, and it answers
// the page's messages {type, id, ...}: methods (the registry the form is built from),
// inspect (one model's headers), parse (a config as the form shows it), plan (validation),
// merge (into OPFS as a stored zip, or into a folder the user picked), analyze (the deltas
// of the models against the base, wasm/analyze.go) and cancel.
// Replies are {type: "result" | "error" | "progress", id, ...}; errors carry a code that
// mirrors the core's sentinel errors. It is the only code that touches syscall/js,
// through github.com/hack-pad/safejs.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/hack-pad/safejs"
)

// request is the JSON part of a message; File objects and folder handles travel beside it.
type request struct {
	Type           string `json:"type"`
	ID             int    `json:"id"`
	Model          string `json:"model"`  // inspect: the model's path
	Config         string `json:"config"` // parse, plan, merge: the YAML
	Seed           string `json:"seed"`   // plan, merge: decimal uint64 ("" = 0)
	ChunkSize      int    `json:"chunkSize"`
	Out            string `json:"out"` // merge: OPFS file name of the zip
	CopyTokenizer  *bool  `json:"copyTokenizer"`
	AllowNonFinite bool   `json:"allowNonFinite"`
	ShardSize      int64  `json:"shardSize"` // plan, merge: --out-shard-size in bytes (0: the default)
	// analyze: the base's and the models' paths; plan: the page's last analysis (see
	// dareRisks), to check DARE densities against.
	Base     string          `json:"base"`
	Models   []string        `json:"models"`
	Analysis json.RawMessage `json:"analysis"`
}

var (
	mu      sync.Mutex
	cancels = map[int]context.CancelFunc{}
)

func main() {
	handle, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		if len(args) < 2 {
			return nil
		}
		s, err := args[0].String()
		if err != nil {
			return nil
		}
		var req request
		if err := json.Unmarshal([]byte(s), &req); err != nil {
			post(map[string]any{"type": "error", "code": "internal", "message": "bad message: " + err.Error()})
			return nil
		}
		dir := safejs.Undefined()
		if len(args) > 2 {
			dir = args[2]
		}
		if req.Type == "cancel" {
			mu.Lock()
			if c := cancels[req.ID]; c != nil {
				c()
			}
			mu.Unlock()
			return nil
		}
		// A JS callback must not block: the work runs in its own goroutine.
		go serve(req, args[1], dir)
		return nil
	})
	if err != nil {
		panic(err)
	}
	ready, err := safejs.Global().Get("__freelunchReady")
	if err == nil {
		_, err = ready.Invoke(handle.Value())
	}
	if err != nil {
		panic(fmt.Sprintf("freelunch: worker.js did not define __freelunchReady: %v", err))
	}
	select {}
}

// serve answers one request, turning a panic into an error reply (safejs catch.Try).
func serve(req request, files, dir safejs.Value) {
	defer func() {
		if r := recover(); r != nil {
			post(map[string]any{"type": "error", "id": req.ID, "code": "internal",
				"message": fmt.Sprintf("internal error (please report it): %v\n%s", r, debug.Stack())})
		}
	}()
	var res map[string]any
	var err error
	var fsys fileFS
	fsys, err = newFileFS(files)
	if err == nil {
		switch req.Type {
		case "methods":
			res = map[string]any{"methods": methods()}
		case "inspect":
			res, err = inspect(fsys, req.Model)
		case "parse":
			res, err = parse(req.Config)
		case "plan":
			res, err = validate(fsys, req)
		case "analyze", "merge":
			ctx, cancel := context.WithCancel(context.Background())
			mu.Lock()
			cancels[req.ID] = cancel
			mu.Unlock()
			if req.Type == "analyze" {
				res, err = runAnalyze(ctx, fsys, req)
			} else {
				res, err = runMerge(ctx, fsys, req, dir)
			}
			cancel()
			mu.Lock()
			delete(cancels, req.ID)
			mu.Unlock()
		default:
			err = fmt.Errorf("unknown request type %q", req.Type)
		}
	}
	if err != nil {
		e := describe(err, fsys)
		e["type"], e["id"] = "error", req.ID
		post(e)
		return
	}
	res["type"], res["id"] = "result", req.ID
	post(res)
}

// post sends msg to the page through worker.js, as JSON.
func post(msg map[string]any) {
	b, err := json.Marshal(msg)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"type": "error", "id": msg["id"], "code": "internal", "message": err.Error()})
	}
	if fn, err := safejs.Global().Get("__freelunchPost"); err == nil {
		fn.Invoke(string(b))
	}
}
