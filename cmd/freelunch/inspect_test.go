package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"freelunch/core/dtype"
	"freelunch/core/safetensors"
)

// writeModel writes a model of specs with zero data into dir, sharded at limit bytes.
func writeModel(t *testing.T, dir string, specs []safetensors.TensorSpec, limit int64, meta map[string]string) {
	t.Helper()
	shards, err := safetensors.SplitShards(specs, limit, meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards {
		var buf bytes.Buffer
		w, err := safetensors.NewWriter(&buf, sh.Specs, meta)
		if err != nil {
			t.Fatal(err)
		}
		hdr := buf.Len()
		if _, err := w.Write(make([]byte, sh.Size-int64(hdr))); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sh.FileName), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(shards) > 1 {
		if err := os.WriteFile(filepath.Join(dir, safetensors.IndexName), safetensors.IndexJSON(shards), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var inspectSpecs = []safetensors.TensorSpec{
	{Name: "embed.weight", DType: dtype.BF16, Shape: []int64{10, 4}},
	{Name: "layers.0.scale", DType: dtype.F32, Shape: []int64{4}},
	{Name: "step", DType: dtype.I64, Shape: []int64{}},
	{Name: "lm_head.weight", DType: dtype.BF16, Shape: []int64{10, 4}},
}

// TestInspectJSON inspects a sharded model by folder and by index, and a single file, with
// --json before and after the path, and checks the tensors, shards, metadata and totals.
func TestInspectJSON(t *testing.T) {
	sharded, single := t.TempDir(), t.TempDir()
	meta := map[string]string{"format": "pt"}
	writeModel(t, sharded, inspectSpecs, 80, meta)
	writeModel(t, single, inspectSpecs, 1<<20, nil)
	for _, c := range []struct {
		args   []string
		shards int
		meta   map[string]string
	}{
		{[]string{"inspect", "--json", sharded}, 3, meta},
		{[]string{"inspect", filepath.Join(sharded, safetensors.IndexName), "--json"}, 3, meta},
		{[]string{"inspect", "-json", filepath.Join(single, "model.safetensors")}, 1, nil},
		{[]string{"inspect", "--json", single}, 1, nil},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), c.args, &stdout, &stderr); err != nil {
			t.Fatalf("run(%q) = %v", c.args, err)
		}
		var out struct {
			Tensors []struct {
				Name, DType, Shard string
				Shape              []int64
				Params, Bytes      int64
			}
			Metadata    map[string]string
			Shards      []string
			TotalBytes  int64 `json:"total_bytes"`
			TotalParams int64 `json:"total_params"`
		}
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
			t.Fatalf("run(%q): output is not JSON: %v\n%s", c.args, err, stdout.Bytes())
		}
		if len(out.Tensors) != len(inspectSpecs) || len(out.Shards) != c.shards {
			t.Fatalf("run(%q): %d tensors, %d shards; want %d, %d", c.args, len(out.Tensors), len(out.Shards), len(inspectSpecs), c.shards)
		}
		for i, s := range inspectSpecs {
			g := out.Tensors[i]
			if g.Name != s.Name || g.DType != s.DType.String() || len(g.Shape) != len(s.Shape) || g.Shard == "" {
				t.Errorf("run(%q): tensor %d = %+v, want %v", c.args, i, g, s)
			}
		}
		if out.TotalBytes != 80+16+8+80 || out.TotalParams != 40+4+1+40 {
			t.Errorf("run(%q): totals %d bytes, %d params; want 184, 85", c.args, out.TotalBytes, out.TotalParams)
		}
		if len(out.Metadata) != len(c.meta) || out.Metadata["format"] != c.meta["format"] {
			t.Errorf("run(%q): metadata %v, want %v", c.args, out.Metadata, c.meta)
		}
		if stderr.Len() != 0 {
			t.Errorf("run(%q): stderr %q", c.args, stderr.String())
		}
	}
}

// TestInspectTable checks the table: a row per tensor, totals per dtype, the metadata.
func TestInspectTable(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, dir, inspectSpecs, 80, map[string]string{"format": "pt"})
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"inspect", dir}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	got := stdout.String()
	for _, want := range []string{
		"NAME", "embed.weight", "BF16", "[10, 4]", "layers.0.scale", "[4]", "[]", "model-00003-of-00003.safetensors",
		"DTYPE", "total", `"format": "pt"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("inspect table lacks %q:\n%s", want, got)
		}
	}
	var bf16 []string
	for _, line := range strings.Split(got, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "BF16" {
			bf16 = f
		}
	}
	if strings.Join(bf16, " ") != "BF16 2 80 160" {
		t.Errorf("BF16 totals row = %q, want BF16 2 80 160:\n%s", bf16, got)
	}
}

// TestInspectErrors checks exit statuses and one-line messages: 1 for a bad model, 2 for usage
// mistakes, 0 for -h.
func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(bad, append([]byte{20, 0, 0, 0, 0, 0, 0, 0}, `{"x":{"dtype":"F4"}}`...), 0o644); err != nil {
		t.Fatal(err)
	}
	lfs := filepath.Join(dir, "lfs.safetensors")
	if err := os.WriteFile(lfs, []byte("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args  []string
		code  int
		words []string
	}{
		{[]string{"inspect"}, 2, []string{"want one PATH"}},
		{[]string{"inspect", "a", "b"}, 2, []string{"want one PATH, got 2"}},
		{[]string{"inspect", "--nope", dir}, 2, []string{"-nope"}},
		{[]string{"inspect", filepath.Join(dir, "missing")}, 1, []string{"missing", "no such file"}},
		{[]string{"inspect", dir}, 1, []string{"neither"}},
		{[]string{"inspect", bad}, 1, []string{"bad.safetensors", `"x"`, `dtype "F4" unknown`}},
		{[]string{"inspect", "--json", lfs}, 1, []string{"Git LFS pointer"}},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tt.args, &stdout, &stderr)
		code := exitCode(err, &stderr)
		if code != tt.code {
			t.Errorf("run(%q): exit %d (%v), want %d", tt.args, code, err, tt.code)
		}
		msg := stderr.String()
		if lines := strings.Count(strings.TrimRight(msg, "\n"), "\n") + 1; tt.code == 1 && lines != 1 {
			t.Errorf("run(%q): stderr has %d lines, want 1: %q", tt.args, lines, msg)
		}
		for _, w := range tt.words {
			if !strings.Contains(msg, w) {
				t.Errorf("run(%q): stderr %q lacks %q", tt.args, msg, w)
			}
		}
		if stdout.Len() != 0 {
			t.Errorf("run(%q): stdout %q, want nothing", tt.args, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"inspect", "-h"}, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) || exitCode(err, &stderr) != 0 || !strings.Contains(stdout.String(), "usage: freelunch inspect") {
		t.Errorf("inspect -h = %v, stdout %q", err, stdout.String())
	}
}

// TestInspectExternal inspects the FluxML sharded fixture: its total matches the index's
// metadata.total_size (4305) and its 36 tensors are listed.
func TestInspectExternal(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "fixtures", "external")
	if _, err := os.Stat(dir); err != nil {
		dir = "/work/shared/fixtures/external"
		if _, err := os.Stat(dir); err != nil {
			t.Skip("no external fixtures beside the repository or in /work/shared")
		}
	}
	var stdout, stderr bytes.Buffer
	p := filepath.Join(dir, "FluxML__SafeTensors.jl", "sharded")
	if err := run(context.Background(), []string{"inspect", "--json", p}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Tensors    []json.RawMessage
		TotalBytes int64 `json:"total_bytes"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Tensors) != 36 || out.TotalBytes != 4305 {
		t.Errorf("inspect %s: %d tensors, %d bytes; want 36, 4305", p, len(out.Tensors), out.TotalBytes)
	}
}

// TestInspectUnprintableNames: a tensor name with a control character or a bidirectional
// override (U+202E reverses the text after it on a terminal) is printed quoted, escapes
// visible; a plain name is printed as it is.
func TestInspectUnprintableNames(t *testing.T) {
	dir := t.TempDir()
	writeModel(t, dir, []safetensors.TensorSpec{
		{Name: "w\u202etxt.exe", DType: dtype.F32, Shape: []int64{1}},
		{Name: "a\x1b[2J", DType: dtype.F32, Shape: []int64{1}},
		{Name: "plain.weight", DType: dtype.F32, Shape: []int64{1}},
	}, 1<<30, nil)
	stdout, stderr, err := runCLI(t, "inspect", dir)
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, stderr)
	}
	for _, want := range []string{`"w\u202etxt.exe"`, `"a\x1b[2J"`, "\nplain.weight "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("inspect output lacks %s:\n%s", want, stdout)
		}
	}
	if strings.ContainsAny(stdout, "\u202e\x1b") {
		t.Errorf("inspect output holds a raw U+202E or ESC:\n%q", stdout)
	}
}
