package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"freelunch/core/merge"
)

// The bad-input matrix (issue 7): every malformed file, config or situation below makes
// `freelunch merge` exit 1 with one sentence on stderr that names what is wrong and where,
// and leaves nothing at OUT_DIR and no temporary folder next to it. The files are written
// byte by byte here, not by the package that reads them, so that a bug shared by the
// writer and the reader cannot hide.

// stFile returns a safetensors file: the 8-byte little-endian length of header, header,
// then data.
func stFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// f32s returns the little-endian bytes of vs.
func f32s(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// The models of the matrix have two F32 tensors: "model.layers.0.w" [2, 2] and
// "model.norm.weight" [2], 24 bytes of data.
const (
	goodHeader = `{"model.layers.0.w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},` +
		`"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}`
	wShard    = `{"model.layers.0.w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}`
	normShard = `{"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
)

var (
	goodData = f32s(0.5, -1, 2, 0.25, 1, 1)
	goodFile = stFile(goodHeader, goodData)
)

// linearConfig merges the models good and bad (folders under DIR).
const linearConfig = `merge_method: linear
models:
  - model: DIR/good
    parameters:
      weight: 0.5
  - model: DIR/bad
    parameters:
      weight: 0.5
`

// tiesConfig merges good2 and bad onto the base good with method; param is one more
// parameter line for bad (line 11).
func tiesConfig(method, param string) string {
	return fmt.Sprintf(`merge_method: %s
base_model: DIR/good
models:
  - model: DIR/good2
    parameters:
      weight: 0.5
      density: 0.5
  - model: DIR/bad
    parameters:
      weight: 0.5
      %s
`, method, param)
}

type badRow struct {
	name   string
	files  map[string][]byte // relative to DIR; good/model.safetensors and good2/model.safetensors are always there
	config string            // DIR stands for the row's folder; "" means linearConfig
	args   []string          // extra flags before CONFIG and OUT_DIR
	method string            // a merge method the row needs that may not be registered yet
	out    string            // OUT_DIR relative to DIR; "" means "out"
	noCfg  bool              // write no config file
	want   []string          // substrings of the one line on stderr
	// setup runs before the merge (create OUT_DIR, swap hooks); it returns a check of
	// OUT_DIR to run instead of "OUT_DIR does not exist".
	setup func(t *testing.T, out string) func(t *testing.T)
}

func badRows() []badRow {
	bad := func(b []byte) map[string][]byte { return map[string][]byte{"bad/model.safetensors": b} }
	hdrLen := func(n uint64, rest []byte) []byte { return append(binary.LittleEndian.AppendUint64(nil, n), rest...) }
	nan, inf := float32(math.NaN()), float32(math.Inf(-1))
	return []badRow{
		{name: "truncated before the header length", files: bad(goodFile[:5]),
			want: []string{"bad/model.safetensors", "5 bytes", "8-byte header length"}},
		{name: "truncated in the data", files: bad(goodFile[:len(goodFile)-5]),
			want: []string{"bad/model.safetensors", `"model.norm.weight"`, "[16, 24]", "past the data section of 19 bytes"}},
		{name: "header length past the end", files: bad(hdrLen(1000, []byte(`{"a":1}`))),
			want: []string{"bad/model.safetensors", "header length 1000", "7 bytes"}},
		{name: "header over the limit", files: bad(hdrLen(200_000_000, []byte(`{}`))),
			want: []string{"bad/model.safetensors", "header length 200000000", "limit of 100000000"}},
		{name: "not JSON", files: bad(stFile("PK\x03\x04 this is a zip", nil)),
			want: []string{"bad/model.safetensors", "not a safetensors JSON header"}},
		{name: "JSON syntax error", files: bad(stFile(`{"model.layers.0.w":{"dtype":"F32",,}}`, goodData)),
			want: []string{"bad/model.safetensors", `"model.layers.0.w"`, "byte"}},
		{name: "duplicate tensor names", files: bad(stFile(`{"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},`+
			`"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, goodData[:16])),
			want: []string{"bad/model.safetensors", `"model.norm.weight"`, "duplicate"}},
		{name: "unknown dtype", files: bad(stFile(strings.Replace(goodHeader, `"F32","shape":[2]`, `"F31","shape":[2]`, 1), goodData)),
			want: []string{"bad/model.safetensors", `"model.norm.weight"`, "F31"}},
		{name: "shape and offsets disagree", files: bad(stFile(strings.Replace(goodHeader, `"shape":[2,2]`, `"shape":[2,3]`, 1), goodData)),
			want: []string{"bad/model.safetensors", `"model.layers.0.w"`, "[0, 16]", "16 bytes", "[2 3]", "24"}},
		{name: "overlap", files: bad(stFile(`{"model.layers.0.w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},`+
			`"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, goodData[:16])),
			want: []string{"bad/model.safetensors", `"model.norm.weight"`, "overlap"}},
		{name: "hole", files: bad(stFile(`{"model.layers.0.w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},`+
			`"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[20,28]}}`, append(goodData, 0, 0, 0, 0))),
			want: []string{"bad/model.safetensors", `"model.norm.weight"`, "bytes 16 to 20", "unused"}},
		{name: "offsets past the end", files: bad(stFile(`{"model.layers.0.w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},`+
			`"model.norm.weight":{"dtype":"F32","shape":[268435456],"data_offsets":[16,1073741840]}}`, goodData)),
			want: []string{"bad/model.safetensors", `"model.norm.weight"`, "1073741840", "past the data section of 24 bytes"}},
		{name: "shape product overflow", files: bad(stFile(`{"model.norm.weight":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}}`, goodData[:8])),
			want: []string{"bad/model.safetensors", `"model.norm.weight"`, "[4294967296 4294967296 4]", "too large"}},
		{name: "negative dimension", files: bad(stFile(`{"model.norm.weight":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, goodData[:8])),
			want: []string{"bad/model.safetensors", `"model.norm.weight"`, "-2"}},
		{name: "index names a missing shard", files: map[string][]byte{
			"bad/model.safetensors.index.json":     []byte(`{"weight_map":{"model.layers.0.w":"model-00001-of-00002.safetensors","model.norm.weight":"model-00002-of-00002.safetensors"}}`),
			"bad/model-00001-of-00002.safetensors": stFile(wShard, goodData[:16]),
		}, want: []string{"bad/model.safetensors.index.json", "model-00002-of-00002.safetensors", `"model.norm.weight"`, "no such file"}},
		{name: "index names a path outside the folder", files: map[string][]byte{
			"bad/model.safetensors.index.json": []byte(`{"weight_map":{"model.layers.0.w":"../good/model.safetensors","model.norm.weight":"../good/model.safetensors"}}`),
		}, want: []string{"bad/model.safetensors.index.json", "../good/model.safetensors", "not a plain file name"}},
		{name: "index names a tensor its shard lacks", files: map[string][]byte{
			"bad/model.safetensors.index.json":     []byte(`{"weight_map":{"model.layers.0.w":"model-00001-of-00002.safetensors","model.norm.weight":"model-00001-of-00002.safetensors"}}`),
			"bad/model-00001-of-00002.safetensors": stFile(wShard, goodData[:16]),
			"bad/model-00002-of-00002.safetensors": stFile(normShard, goodData[16:]),
		}, want: []string{"model-00001-of-00002.safetensors", `"model.norm.weight"`, "model.safetensors.index.json"}},
		{name: "index starts with a byte order mark", files: map[string][]byte{
			"bad/model.safetensors.index.json":     []byte("\xef\xbb\xbf" + `{"weight_map":{"model.layers.0.w":"model-00001-of-00002.safetensors","model.norm.weight":"model-00002-of-00002.safetensors"}}`),
			"bad/model-00001-of-00002.safetensors": stFile(wShard, goodData[:16]),
			"bad/model-00002-of-00002.safetensors": stFile(normShard, goodData[16:]),
		}, want: []string{"bad/model.safetensors.index.json", "byte order mark"}},
		{name: "index names a shard with a newline", files: map[string][]byte{
			"bad/model.safetensors.index.json": []byte(`{"weight_map":{"model.layers.0.w":"model\n.safetensors","model.norm.weight":"model\n.safetensors"}}`),
			"bad/model\n.safetensors":          goodFile,
		}, want: []string{"bad/model.safetensors.index.json", `"model.layers.0.w"`, `shard "model\n.safetensors" is not a plain file name`}},
		{name: "model path with an escape", files: bad(goodFile), config: strings.Replace(linearConfig, "DIR/bad", "\"DIR/bad\\e[2J\"", 1),
			want: []string{"line 6", "models[1].model", `bad\x1b[2J"`, "control characters"}},
		{name: "a model without tensors", files: bad(stFile("{}", nil)), config: strings.Replace(linearConfig, "DIR/good", "DIR/bad2", 1),
			setup: func(t *testing.T, out string) func(*testing.T) {
				p := filepath.Join(filepath.Dir(out), "bad2", "model.safetensors")
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, stFile(`{"__metadata__":{"format":"pt"}}`, nil), 0o644)
				return nil
			},
			want: []string{"model DIR/bad2 holds no tensors", "nothing to merge"}},
		{name: "the base's config.json is not JSON", files: map[string][]byte{
			"bad/model.safetensors": goodFile, "good/config.json": []byte(`{"num_hidden_layers": 1, oops}`)},
			want: []string{"config.json of DIR/good", "invalid JSON at byte 25", "invalid character 'o'"}},
		{name: "the base's config.json is empty", files: map[string][]byte{
			"bad/model.safetensors": goodFile, "good/config.json": []byte("\n")},
			want: []string{"config.json of DIR/good", "the file is empty"}},
		{name: "the base's config.json starts with a byte order mark", files: map[string][]byte{
			"bad/model.safetensors": goodFile, "good/config.json": []byte("\xef\xbb\xbf{\"num_hidden_layers\": 1}")},
			want: []string{"config.json of DIR/good", "byte order mark"}},
		{name: "the base's config.json has text after the object", files: map[string][]byte{
			"bad/model.safetensors": goodFile, "good/config.json": []byte(`{"num_hidden_layers": 1} {"x": 2}`)},
			want: []string{"config.json of DIR/good", "text after the JSON object"}},
		{name: "the base's config.json ends early", files: map[string][]byte{
			"bad/model.safetensors": goodFile, "good/config.json": []byte(`{"num_hidden_layers": 1,`)},
			want: []string{"config.json of DIR/good", "the JSON ends early"}},
		{name: "a shape of 100001 dimensions differs", files: bad(stFile(`{"model.layers.0.w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},`+
			`"model.norm.weight":{"dtype":"F32","shape":[`+strings.Repeat("1,", 100000)+`2],"data_offsets":[16,24]}}`, goodData)),
			want: []string{`"model.norm.weight"`, "[1 1 1 1 1 1 1 1] … (100001 dimensions) in DIR/bad", "[2] in DIR/good"}},
		{name: "a model lacks a tensor", files: bad(stFile(wShard, goodData[:16])),
			want: []string{"DIR/bad has no tensor", `"model.norm.weight"`, "DIR/good"}},
		{name: "shapes differ between models", files: bad(stFile(`{"model.layers.0.w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},`+
			`"model.norm.weight":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}`, goodData)),
			want: []string{`"model.layers.0.w"`, "[4] in DIR/bad", "[2 2] in DIR/good"}},
		{name: "NaN in an input", files: bad(stFile(goodHeader, f32s(0.5, nan, 2, nan, 1, 1))),
			want: []string{"DIR/bad", `"model.layers.0.w"`, "holds 2 NaN/Inf values (first at element 1)", "--allow-nonfinite"}},
		{name: "NaN in several chunks", files: bad(stFile(goodHeader, f32s(1, nan, inf, nan, 1, 1))), args: []string{"--chunk-size", "1"},
			want: []string{"DIR/bad", `"model.layers.0.w"`, "holds 3 NaN/Inf values (first at element 1)", "--allow-nonfinite"}},
		{name: "Inf in an input", files: bad(stFile(goodHeader, f32s(0.5, 1, 2, 3, inf, 1))),
			want: []string{"DIR/bad", `"model.norm.weight"`, "holds 1 NaN/Inf value (first at element 0)", "--allow-nonfinite"}},
		{name: "density above 1", files: bad(goodFile), config: tiesConfig("ties", "density: 1.5"),
			want: []string{"line 11", "models[1].parameters.density", "1.5", "[0, 1]"}},
		{name: "density below 0", files: bad(goodFile), config: tiesConfig("dare_ties", "density: -0.1"),
			want: []string{"line 11", "models[1].parameters.density", "-0.1", "[0, 1]"}},
		{name: "weight not a number", files: bad(goodFile), config: strings.Replace(linearConfig, "weight: 0.5\n", "weight: .nan\n", 1),
			want: []string{"line 5", "models[0].parameters.weight", "NaN", "not a finite number"}},
		{name: "weight infinite", files: bad(goodFile), config: strings.Replace(linearConfig, "weight: 0.5\n", "weight: -.inf\n", 1),
			want: []string{"line 5", "models[0].parameters.weight", "-Inf", "not a finite number"}},
		{name: "epsilon out of range", files: bad(goodFile), config: tiesConfig("della", "epsilon: 2"), method: "della",
			want: []string{"line 11", "models[1].parameters.epsilon", "value 2", "[0, 1]"}},
		{name: "t out of range", files: bad(goodFile), method: "slerp", config: `merge_method: slerp
base_model: DIR/good
models:
  - model: DIR/good
  - model: DIR/bad
parameters:
  t: [0, 1.2, 0.5]
`, want: []string{"line 7", "t", "1.2"}},
		{name: "unknown method", files: bad(goodFile), config: strings.Replace(linearConfig, "linear", "linaer", 1),
			want: []string{"line 1", `"linaer"`, `"linear"`}},
		{name: "unknown key", files: bad(goodFile), config: linearConfig + "mergemethod: ties\n",
			want: []string{"line 9", `"mergemethod"`}},
		{name: "unknown parameter", files: bad(goodFile), config: strings.Replace(linearConfig, "weight: 0.5\n", "weight: 0.5\n      wieght: 1\n", 1),
			want: []string{"line 6", `"wieght"`, `"weight"`}},
		{name: "empty model list", files: bad(goodFile), config: "merge_method: linear\nmodels: []\n",
			want: []string{"line 2", "models", "empty"}},
		{name: "a model listed twice", files: bad(goodFile), config: linearConfig + "  - model: DIR/good\n    parameters:\n      weight: 0.5\n",
			want: []string{"line 9", "DIR/good", "twice"}},
		{name: "model folder missing", files: bad(goodFile), config: strings.Replace(linearConfig, "DIR/bad", "DIR/nope", 1),
			want: []string{"DIR/nope", "no such file"}},
		{name: "output folder exists", files: bad(goodFile),
			setup: func(t *testing.T, out string) func(*testing.T) {
				if err := os.MkdirAll(out, 0o755); err != nil {
					t.Fatal(err)
				}
				os.WriteFile(filepath.Join(out, "keep.txt"), []byte("mine"), 0o644)
				return func(t *testing.T) {
					if b, err := os.ReadFile(filepath.Join(out, "keep.txt")); string(b) != "mine" {
						t.Errorf("OUT_DIR/keep.txt changed: %q, %v", b, err)
					}
					if ents, _ := os.ReadDir(out); len(ents) != 1 {
						t.Errorf("OUT_DIR holds %d files, want only keep.txt", len(ents))
					}
				}
			},
			want: []string{"DIR/out exists", "--overwrite"}},
		{name: "output folder is a file", files: bad(goodFile),
			setup: func(t *testing.T, out string) func(*testing.T) {
				os.WriteFile(out, []byte("mine"), 0o644)
				return func(t *testing.T) {
					if b, err := os.ReadFile(out); string(b) != "mine" {
						t.Errorf("OUT_DIR changed: %q, %v", b, err)
					}
				}
			},
			want: []string{"DIR/out exists and is not a folder"}},
		{name: "output folder is an input model", files: bad(goodFile), out: "good", args: []string{"--overwrite"},
			setup: func(t *testing.T, out string) func(*testing.T) {
				return func(t *testing.T) {
					if b, err := os.ReadFile(filepath.Join(out, "model.safetensors")); !bytes.Equal(b, goodFile) {
						t.Errorf("input model changed: %v", err)
					}
				}
			},
			want: []string{"output folder DIR/good holds the input model DIR/good"}},
		{name: "config file missing", files: bad(goodFile), noCfg: true,
			want: []string{"DIR/config.yml", "no such file"}},
		{name: "disk full", files: bad(goodFile),
			setup: func(t *testing.T, out string) func(*testing.T) {
				wrapOutputs(t, func(f *os.File) io.WriteCloser { return &fullDisk{f: f, left: 40} })
				return nil
			},
			want: []string{"DIR/out/model.safetensors", "no space left on device"}},
		{name: "fsync of an output file fails", files: bad(goodFile),
			setup: func(t *testing.T, out string) func(*testing.T) {
				wrapOutputs(t, func(f *os.File) io.WriteCloser { return failingSync{f} })
				return nil
			},
			want: []string{"DIR/out/model.safetensors", "input/output error"}},
		{name: "fsync of the temporary folder fails", files: bad(goodFile),
			setup: func(t *testing.T, out string) func(*testing.T) {
				failSyncDir(t, func(dir string) bool { return strings.Contains(dir, ".freelunch-tmp-") })
				return nil
			},
			want: []string{"sync DIR/out:", "input/output error"}},
		{name: "fsync of the parent folder fails", files: bad(goodFile),
			setup: func(t *testing.T, out string) func(*testing.T) {
				failSyncDir(t, func(dir string) bool { return dir == filepath.Dir(out) })
				return nil
			},
			want: []string{"sync the folder holding DIR/out", "input/output error", "removed"}},
	}
}

// failingSync is an output file whose fsync fails with EIO as fsync(2) reports it.
type failingSync struct{ *os.File }

func (f failingSync) Sync() error {
	return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
}

// failSyncDir makes syncDir fail with EIO, as fsync(2) reports it, for the folders fail
// picks, for the rest of the test.
func failSyncDir(t *testing.T, fail func(dir string) bool) {
	orig := syncDir
	syncDir = func(dir string) error {
		if fail(dir) {
			return &os.PathError{Op: "sync", Path: dir, Err: syscall.EIO}
		}
		return orig(dir)
	}
	t.Cleanup(func() { syncDir = orig })
}

// fullDisk is an output file on a disk with left bytes free: past them, writes fail
// with ENOSPC as write(2) reports it.
type fullDisk struct {
	f    *os.File
	left int
}

func (d *fullDisk) Write(p []byte) (int, error) {
	if len(p) <= d.left {
		d.left -= len(p)
		return d.f.Write(p)
	}
	n, _ := d.f.Write(p[:d.left])
	d.left = 0
	return n, &os.PathError{Op: "write", Path: d.f.Name(), Err: syscall.ENOSPC}
}

func (d *fullDisk) Close() error { return d.f.Close() }

func TestBadInput(t *testing.T) {
	for _, row := range badRows() {
		t.Run(row.name, func(t *testing.T) {
			if _, ok := merge.Lookup(row.method); row.method != "" && !ok {
				t.Skipf("merge method %s is not registered on this branch yet", row.method)
			}
			dir := t.TempDir()
			files := map[string][]byte{"good/model.safetensors": goodFile, "good2/model.safetensors": goodFile}
			for name, b := range row.files {
				files[name] = b
			}
			for name, b := range files {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg := row.config
			if cfg == "" {
				cfg = linearConfig
			}
			cfgPath := filepath.Join(dir, "config.yml")
			if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(cfg, "DIR", dir)), 0o644); err != nil {
				t.Fatal(err)
			}
			if row.noCfg {
				os.Remove(cfgPath)
			}
			out := filepath.Join(dir, "out")
			if row.out != "" {
				out = filepath.Join(dir, row.out)
			}
			var check func(*testing.T)
			if row.setup != nil {
				check = row.setup(t, out)
			}
			args := append(append([]string{"merge"}, row.args...), cfgPath, out)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, &stdout, &stderr)
			code := exitCode(err, &stderr)
			msg := stderr.String()
			t.Log(strings.ReplaceAll(msg, dir, "DIR"))
			if code != 1 {
				t.Errorf("exit %d, want 1; stderr:\n%s", code, msg)
			}
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") || !strings.HasPrefix(msg, "freelunch: ") {
				t.Errorf("stderr is not one line starting \"freelunch: \":\n%s", msg)
			}
			for _, w := range row.want {
				if w = strings.ReplaceAll(w, "DIR", dir); !strings.Contains(msg, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, msg)
				}
			}
			if check != nil {
				check(t)
			} else if _, err := os.Lstat(out); !os.IsNotExist(err) {
				t.Errorf("OUT_DIR exists after a failed merge (%v)", err)
			}
			checkNoTemp(t, dir)
		})
	}
}

// checkNoTemp reports any temporary output folder left in dir.
func checkNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), "freelunch-tmp") {
			t.Errorf("temporary %s left in %s", e.Name(), dir)
		}
	}
}

// TestNonFiniteAllowed merges an input holding NaN and Inf with --allow-nonfinite: the
// output is written and the values are counted on stderr.
func TestNonFiniteAllowed(t *testing.T) {
	dir := t.TempDir()
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for name, b := range map[string][]byte{
		"good/model.safetensors": goodFile,
		"bad/model.safetensors":  stFile(goodHeader, f32s(0.5, nan, 2, nan, inf, 1)),
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "config.yml")
	os.WriteFile(cfgPath, []byte(strings.ReplaceAll(linearConfig, "DIR", dir)), 0o644)
	out := filepath.Join(dir, "out")
	_, stderr, err := runCLI(t, "merge", "--allow-nonfinite", cfgPath, out)
	if err != nil {
		t.Fatalf("merge --allow-nonfinite: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "3 NaN or Inf") {
		t.Errorf("stderr does not count the 3 NaN or Inf inputs:\n%s", stderr)
	}
	got := readModel(t, out)
	w, norm := got["model.layers.0.w"], got["model.norm.weight"]
	if len(w) != 4 || len(norm) != 2 {
		t.Fatalf("output tensors %v, %v", w, norm)
	}
	// linear with weights 0.5, 0.5 (normalized): the mean, NaN where an input is NaN.
	if w[0] != 0.5 || !math.IsNaN(float64(w[1])) || w[2] != 2 || !math.IsInf(float64(norm[0]), 1) || norm[1] != 1 {
		t.Errorf("merged w = %v, norm = %v; want [0.5 NaN 2 NaN], [+Inf 1]", w, norm)
	}
	checkNoTemp(t, dir)
}

// TestInterrupt sends each of the CLI's stop signals (SIGINT, SIGTERM, SIGHUP) to the built
// binary in the middle of a merge: it exits 1 with one line on stderr, and leaves neither
// OUT_DIR nor a temporary folder.
func TestInterrupt(t *testing.T) {
	dir := t.TempDir()
	bin := buildCLI(t, dir)
	cfgPath := writeSlowMerge(t, dir)
	for _, sig := range stopSignals {
		name := strings.ReplaceAll(sig.String(), " ", "-")
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+name)
			cmd, exited, stderr := startSlowMerge(t, bin, cfgPath, out)
			time.Sleep(100 * time.Millisecond)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-exited:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatal("merge still running 30s after SIGINT")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("interrupted merge: %v, want exit status 1", err)
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "interrupted") || !strings.Contains(msg, out) {
				t.Errorf("stderr is not one line saying the merge into %s was interrupted:\n%s", out, msg)
			}
			if _, err := os.Lstat(out); !os.IsNotExist(err) {
				t.Errorf("OUT_DIR exists after an interrupted merge (%v)", err)
			}
			checkNoTemp(t, dir)
		})
	}
}

// buildCLI builds the freelunch binary into dir.
func buildCLI(t *testing.T, dir string) string {
	t.Helper()
	gotool, err := exec.LookPath("go")
	if err != nil {
		gotool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "freelunch")
	if b, err := exec.Command(gotool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return bin
}

// writeSlowMerge writes two models, good and bad, of one 4M-element F32 tensor into dir,
// and a linear config of them: at 16 elements a chunk on one thread the merge takes about
// 3 s (measured here), long enough to be interrupted in the middle. It returns the
// config's path.
func writeSlowMerge(t *testing.T, dir string) string {
	t.Helper()
	const n = 4 << 20
	header := fmt.Sprintf(`{"model.layers.0.w":{"dtype":"F32","shape":[%d],"data_offsets":[0,%d]}}`, n, 4*n)
	for i, name := range []string{"good", "bad"} {
		data := make([]byte, 4*n)
		for j := 0; j < len(data); j += 4 {
			binary.LittleEndian.PutUint32(data[j:], math.Float32bits(float32(i+j%7)))
		}
		p := filepath.Join(dir, name, "model.safetensors")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, stFile(header, data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(linearConfig, "DIR", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// startSlowMerge starts bin merging cfgPath into out, slowly (16 elements a chunk, one
// thread), and returns once the merge's temporary folder exists: the merge is writing.
// exited receives the result of cmd.Wait.
func startSlowMerge(t *testing.T, bin, cfgPath, out string) (cmd *exec.Cmd, exited chan error, stderr *bytes.Buffer) {
	t.Helper()
	cmd = exec.Command(bin, "merge", "--chunk-size", "16", "--threads", "1", cfgPath, out)
	stderr = &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if tmp := tempFolders(t, out); len(tmp) > 0 {
			return cmd, exited, stderr
		}
		select {
		case err := <-exited:
			t.Fatalf("merge ended (%v) before its temporary folder was seen; stderr:\n%s", err, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("no temporary output folder after 30s")
		}
	}
}

// tempFolders returns the temporary folders of merges into out.
func tempFolders(t *testing.T, out string) []string {
	t.Helper()
	tmp, err := filepath.Glob(filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+tmpInfix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return tmp
}

// wrapOutputs has the merge write its output files through wrap for the rest of the test.
func wrapOutputs(t *testing.T, wrap func(*os.File) io.WriteCloser) {
	orig := createOutput
	createOutput = func(name string) (io.WriteCloser, error) {
		f, err := orig(name)
		if err != nil {
			return nil, err
		}
		return wrap(f.(*os.File)), nil
	}
	t.Cleanup(func() { createOutput = orig })
}
