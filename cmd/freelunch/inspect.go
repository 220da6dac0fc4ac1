package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"freelunch/core/dtype"
	"freelunch/core/safetensors"
)

func init() { commands["inspect"] = runInspect }

const inspectUsage = `usage: freelunch inspect [--json] PATH

Lists the tensors of the model at PATH: a folder (holding model.safetensors.index.json or
model.safetensors), an index file, or a .safetensors file. Only headers are read.

Flags:
  --json   print {"tensors": [...], "metadata": {...}, "total_bytes": N, "total_params": N}
`

// inspectTensor is one tensor of inspect's JSON output.
type inspectTensor struct {
	Name   string  `json:"name"`
	DType  string  `json:"dtype"`
	Shape  []int64 `json:"shape"`
	Shard  string  `json:"shard"`
	Params int64   `json:"params"`
	Bytes  int64   `json:"bytes"`
}

// inspectOutput is inspect's JSON output.
type inspectOutput struct {
	Tensors     []inspectTensor   `json:"tensors"`
	Metadata    map[string]string `json:"metadata"`
	Shards      []string          `json:"shards"`
	TotalBytes  int64             `json:"total_bytes"`
	TotalParams int64             `json:"total_params"`
}

// runInspect is "freelunch inspect [--json] PATH". Flags may come before or after PATH.
func runInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned and printed once by main
	fs.Usage = func() {}
	asJSON := fs.Bool("json", false, "print JSON")
	var paths []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, inspectUsage)
				return err
			}
			return usageError("inspect: %v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(paths) != 1 {
		return usageError("inspect: want one PATH, got %d", len(paths))
	}
	m, err := safetensors.OpenModel(safetensors.OSFS{}, filepath.ToSlash(paths[0]))
	if err != nil {
		return err
	}
	defer m.Close()

	out := inspectOutput{Metadata: m.Metadata(), Shards: m.Shards(), Tensors: []inspectTensor{}}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	for _, t := range m.Tensors() {
		n := t.NumElements()
		out.Tensors = append(out.Tensors, inspectTensor{
			Name: t.Name, DType: t.DType.String(), Shape: t.Shape, Shard: t.Shard, Params: n, Bytes: t.Size(),
		})
		out.TotalBytes += t.Size()
		out.TotalParams += n
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return printInspectTable(stdout, out)
}

// printInspectTable prints the tensors, the totals per dtype and the metadata as aligned text.
func printInspectTable(w io.Writer, out inspectOutput) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDTYPE\tSHAPE\tPARAMS\tBYTES\tSHARD")
	type total struct{ tensors, params, bytes int64 }
	totals := map[string]*total{}
	for _, t := range out.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", printable(t.Name), t.DType, formatShape(t.Shape), t.Params, t.Bytes, printable(t.Shard))
		tt := totals[t.DType]
		if tt == nil {
			tt = &total{}
			totals[t.DType] = tt
		}
		tt.tensors++
		tt.params += t.Params
		tt.bytes += t.Bytes
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "DTYPE\tTENSORS\tPARAMS\tBYTES\t")
	names := make([]string, 0, len(totals))
	for d := range totals {
		names = append(names, d)
	}
	// Dtypes in their declaration order (F64, F32, F16, BF16, ...).
	slices.SortFunc(names, func(a, b string) int {
		da, _ := dtype.Parse(a)
		db, _ := dtype.Parse(b)
		return int(da) - int(db)
	})
	for _, d := range names {
		tt := totals[d]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", d, tt.tensors, tt.params, tt.bytes)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t\n", len(out.Tensors), out.TotalParams, out.TotalBytes)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d shard(s): %s\n", len(out.Shards), strings.Join(out.Shards, ", "))
	if len(out.Metadata) > 0 {
		fmt.Fprintln(w, "\nmetadata:")
		keys := make([]string, 0, len(out.Metadata))
		for k := range out.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s: %s\n", strconv.Quote(k), strconv.Quote(out.Metadata[k]))
		}
	}
	return nil
}

// formatShape formats a shape as [2, 3] ([] for a scalar).
func formatShape(shape []int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(d, 10))
	}
	b.WriteByte(']')
	return b.String()
}

// printable returns s, quoted if it holds a character that would break the table or
// mislead the reader: control characters, and the other runes strconv does not take as
// printable, such as U+202E (right-to-left override), which reverses the text after it.
func printable(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}
