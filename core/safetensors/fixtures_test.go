package safetensors

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// findExternal returns ../shared/fixtures/external beside the repository root (the folder
// holding go.mod), or else /work/shared/fixtures/external (for a git worktree elsewhere), or ""
// if neither exists; candidates lists the folders tried.
func findExternal() (dir string, candidates []string) {
	root, err := os.Getwd()
	if err != nil {
		return "", nil
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			candidates = append(candidates, filepath.Join(root, "..", "shared", "fixtures", "external"))
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			break
		}
		root = parent
	}
	candidates = append(candidates, "/work/shared/fixtures/external")
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return c, candidates
		}
	}
	return "", candidates
}

// externalDir returns the external fixtures folder (see findExternal), or skips the test.
func externalDir(t testing.TB) string {
	t.Helper()
	dir, candidates := findExternal()
	if dir == "" {
		t.Skipf("no external fixtures: none of %v exists", candidates)
	}
	return dir
}

// malformed lists the fixtures that SOURCES.md marks as malformed or not safetensors, with the
// sentinel the error must wrap and words the message must contain.
var malformed = map[string]struct {
	err   error
	words []string
}{
	"JohnMasen__SafeTensorSharp/duplicate_keys_in_header.safetensors": {ErrFormat, []string{`"key01"`, "duplicate"}},
	"JohnMasen__SafeTensorSharp/header_size_too_big.safetensors":      {ErrFormat, []string{"header length 255", "8 bytes"}},
	"JohnMasen__SafeTensorSharp/zero_len_file.safetensors":            {ErrFormat, []string{"0 bytes", "too short"}},
	"syoyo__safetensors-cpp/safetensors_abuse_attempt_1.safetensors":  {ErrFormat, []string{"header length 1000", "80 bytes"}},
	"jeremieconte__granite-3.1-1b-a400m-instruct/model.safetensors":   {ErrHeaderTooLarge, []string{"Git LFS pointer"}},
	"ggerganov__llama.cpp/example.gguf":                               {ErrHeaderTooLarge, []string{"GGUF"}},
	"ggerganov__llama.cpp/ggml-vocab-bert-bge.gguf":                   {ErrHeaderTooLarge, []string{"GGUF"}},
	"ggerganov__llama.cpp/ggml-vocab-llama-spm.gguf":                  {ErrHeaderTooLarge, []string{"GGUF"}},
	"ggerganov__llama.cpp/test_writer.gguf":                           {ErrHeaderTooLarge, []string{"GGUF"}},
	"ollama__ollama/llama-2-tiny-random.gguf":                         {ErrHeaderTooLarge, []string{"GGUF"}},
	"ollama__ollama/test.gguf":                                        {ErrFormat, []string{"6 bytes", "too short"}},
}

// fixtureFiles returns the .safetensors and .gguf files under dir, relative and slash-separated.
func fixtureFiles(t testing.TB, dir string) []string {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".safetensors") || strings.HasSuffix(p, ".gguf")) {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

// TestExternalFixtures opens every fixture file: the valid ones open, every tensor reads in
// chunks, and a rewrite through the Writer reads back with identical tensors, header entries
// and metadata; the malformed ones fail with an error that says what is wrong.
func TestExternalFixtures(t *testing.T) {
	dir := externalDir(t)
	files := fixtureFiles(t, dir)
	if len(files) < 50 {
		t.Fatalf("found %d fixture files in %s, want the ~60 of SOURCES.md", len(files), dir)
	}
	seenBad := 0
	for _, rel := range files {
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Open(bytes.NewReader(data), int64(len(data)), rel)
			if bad, ok := malformed[rel]; ok {
				seenBad++
				if err == nil {
					t.Fatalf("Open(%s) succeeded, want an error", rel)
				}
				if !errors.Is(err, bad.err) {
					t.Errorf("Open(%s) = %v, want an error wrapping %v", rel, err, bad.err)
				}
				var fe *FormatError
				if !errors.As(err, &fe) || fe.File != rel {
					t.Errorf("Open(%s) = %#v, want a *FormatError naming the file", rel, err)
				}
				for _, w := range bad.words {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Open(%s) = %q, want it to mention %q", rel, err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%s): %v", rel, err)
			}
			if len(f.Tensors) == 0 {
				t.Fatalf("Open(%s): no tensors", rel)
			}
			checkRoundTrip(t, f, data, 7)
		})
	}
	if seenBad != len(malformed) {
		t.Errorf("saw %d of the %d malformed fixtures", seenBad, len(malformed))
	}
}

// checkRoundTrip reads every tensor of f (whose file is data) in chunks of chunk bytes, checks
// the bytes against data, rewrites f through the Writer and checks that the output opens with
// the same tensors, metadata and bytes.
func checkRoundTrip(t testing.TB, f *File, data []byte, chunk int) {
	t.Helper()
	specs := make([]TensorSpec, len(f.Tensors))
	var buf bytes.Buffer
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		specs[i] = TensorSpec{Name: ti.Name, DType: ti.DType, Shape: ti.Shape}
	}
	w, err := NewWriter(&buf, specs, f.Metadata)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	p := make([]byte, chunk)
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		for off := int64(0); off < ti.Size(); off += int64(chunk) {
			q := p[:min(int64(chunk), ti.Size()-off)]
			if err := f.ReadTensorAt(ti, q, off); err != nil {
				t.Fatalf("ReadTensorAt(%q, %d bytes, %d): %v", ti.Name, len(q), off, err)
			}
			want := data[f.DataOffset+ti.Start+off:][:len(q)]
			if !bytes.Equal(q, want) {
				t.Fatalf("ReadTensorAt(%q, %d bytes, %d) = %x, want %x", ti.Name, len(q), off, q, want)
			}
			if _, err := w.Write(q); err != nil {
				t.Fatalf("Write: %v", err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Writer.Close: %v", err)
	}
	out := buf.Bytes()
	g, err := Open(bytes.NewReader(out), int64(len(out)), "rewritten")
	if err != nil {
		t.Fatalf("Open(rewrite of %s): %v", f.Name, err)
	}
	if (g.DataOffset)%8 != 0 {
		t.Errorf("rewrite: data offset %d is not a multiple of 8", g.DataOffset)
	}
	if len(g.Metadata) != len(f.Metadata) || (f.Metadata == nil) != (g.Metadata == nil) {
		t.Errorf("rewrite metadata = %v, want %v", g.Metadata, f.Metadata)
	}
	for k, v := range f.Metadata {
		if g.Metadata[k] != v {
			t.Errorf("rewrite metadata[%q] = %q, want %q", k, g.Metadata[k], v)
		}
	}
	if len(g.Tensors) != len(f.Tensors) {
		t.Fatalf("rewrite has %d tensors, want %d", len(g.Tensors), len(f.Tensors))
	}
	for i := range f.Tensors {
		a, b := &f.Tensors[i], g.Lookup(f.Tensors[i].Name)
		if b == nil {
			t.Fatalf("rewrite lacks tensor %q", a.Name)
		}
		if a.DType != b.DType || !slices.Equal(a.Shape, b.Shape) {
			t.Errorf("rewrite tensor %q: %v %v, want %v %v", a.Name, b.DType, b.Shape, a.DType, a.Shape)
		}
		x := data[f.DataOffset+a.Start : f.DataOffset+a.End]
		y := make([]byte, b.Size())
		if err := g.ReadTensorAt(b, y, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("rewrite tensor %q: bytes differ", a.Name)
		}
	}
}

// TestExternalShardedModel opens the FluxML sharded set through its folder and its index and
// checks it against the unsharded file of the same state dict.
func TestExternalShardedModel(t *testing.T) {
	dir := externalDir(t)
	flux := filepath.ToSlash(filepath.Join(dir, "FluxML__SafeTensors.jl"))
	whole, err := OpenModel(OSFS{}, flux+"/non_sharded/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	for _, p := range []string{flux + "/sharded", flux + "/sharded/model.safetensors.index.json"} {
		m, err := OpenModel(OSFS{}, p)
		if err != nil {
			t.Fatalf("OpenModel(%s): %v", p, err)
		}
		if got := len(m.Shards()); got != 6 {
			t.Errorf("OpenModel(%s): %d shards, want 6", p, got)
		}
		ts := m.Tensors()
		if len(ts) != len(whole.Tensors()) {
			t.Errorf("OpenModel(%s): %d tensors, want %d", p, len(ts), len(whole.Tensors()))
		}
		prevShard := ""
		for _, tn := range ts {
			if tn.Shard < prevShard {
				t.Errorf("tensor %q of shard %s comes after shard %s", tn.Name, tn.Shard, prevShard)
			}
			prevShard = tn.Shard
			w := whole.Lookup(tn.Name)
			if w == nil {
				t.Fatalf("tensor %q not in the unsharded file", tn.Name)
			}
			a, b := make([]byte, tn.Size()), make([]byte, w.Size())
			if err := m.ReadAt(tn, a, 0); err != nil {
				t.Fatal(err)
			}
			if err := whole.ReadAt(w, b, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) || tn.DType != w.DType || !slices.Equal(tn.Shape, w.Shape) {
				t.Errorf("tensor %q differs between the sharded and the unsharded model", tn.Name)
			}
		}
		if md := m.Metadata(); md["format"] != "pt" {
			t.Errorf("Metadata() = %v, want format pt", md)
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	}
}

// TestExternalIndexWithoutShards opens the real-world indexes whose shards are not included:
// the error names the missing shard and wraps ErrNotFound.
func TestExternalIndexWithoutShards(t *testing.T) {
	dir := externalDir(t)
	for _, rel := range []string{
		"ashishn-08__granite-3b-code-instruct-128k/model.safetensors.index.json",
		"jeremieconte__granite-3.1-1b-a400m-instruct/model.safetensors.index.json",
	} {
		_, err := OpenModel(OSFS{}, filepath.ToSlash(filepath.Join(dir, rel)))
		if !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "model-00001-of-00002.safetensors") {
			t.Errorf("OpenModel(%s) = %v, want ErrNotFound naming model-00001-of-00002.safetensors", rel, err)
		}
	}
}
