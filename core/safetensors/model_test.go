package safetensors

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"freelunch/core/dtype"
)

// writeSharded writes specs with random data as a sharded model into fsys under dir, and
// returns each tensor's data by name.
func writeSharded(t testing.TB, r *rand.Rand, fsys MemFS, dir string, specs []TensorSpec, limit int64) (map[string][]byte, []Shard) {
	t.Helper()
	shards, err := SplitShards(specs, limit, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	datas := map[string][]byte{}
	for _, sh := range shards {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, sh.Specs, map[string]string{"format": "pt"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sh.Specs {
			n, _ := byteSize(s.DType, s.Shape)
			d := make([]byte, n)
			for i := range d {
				d[i] = byte(r.Uint32())
			}
			datas[s.Name] = d
			if _, err := w.Write(d); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if int64(buf.Len()) != sh.Size {
			t.Errorf("shard %s is %d bytes, Shard.Size says %d", sh.FileName, buf.Len(), sh.Size)
		}
		fsys[dir+"/"+sh.FileName] = buf.Bytes()
	}
	if len(shards) > 1 {
		fsys[dir+"/"+IndexName] = IndexJSON(shards)
	}
	return datas, shards
}

// TestShardedRoundTrip writes random specs through SplitShards, the Writer and IndexJSON and
// reads them back through OpenModel from the folder and from the index.
func TestShardedRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := range 50 {
		specs := randomSpecs(r, 1+r.IntN(12))
		fsys := MemFS{}
		datas, shards := writeSharded(t, r, fsys, "out", specs, int64(1+r.IntN(200)))
		paths := []string{"out"}
		if len(shards) > 1 {
			paths = append(paths, "out/"+IndexName)
		} else {
			paths = append(paths, "out/model.safetensors")
		}
		for _, p := range paths {
			m, err := OpenModel(fsys, p)
			if err != nil {
				t.Fatalf("iter %d: OpenModel(%s) = %v", iter, p, err)
			}
			if m.Dir != "out" {
				t.Errorf("OpenModel(%s).Dir = %q, want out", p, m.Dir)
			}
			ts := m.Tensors()
			if len(ts) != len(specs) {
				t.Fatalf("iter %d: %d tensors, want %d", iter, len(ts), len(specs))
			}
			// Model order is spec order here, up to zero-size tensors at equal offsets.
			for i, tn := range ts {
				if tn.Name != specs[i].Name && tn.Size() != 0 {
					t.Errorf("iter %d: Tensors()[%d] = %q, want %q", iter, i, tn.Name, specs[i].Name)
				}
				if m.Lookup(tn.Name) != tn {
					t.Errorf("Lookup(%q) is not the tensor of Tensors()", tn.Name)
				}
				got := make([]byte, tn.Size())
				if err := m.ReadAt(tn, got, 0); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, datas[tn.Name]) {
					t.Errorf("iter %d: tensor %q bytes differ", iter, tn.Name)
				}
			}
			if m.Metadata()["format"] != "pt" {
				t.Errorf("Metadata() = %v", m.Metadata())
			}
			if got := m.Shards(); len(got) != len(shards) {
				t.Errorf("Shards() = %v, want %d", got, len(shards))
			}
			m.Close()
		}
	}
}

// TestOpenModelOS writes a sharded model and a single file into a temporary folder and opens
// them through OSFS as a folder, an index, a file and a file without the extension.
func TestOpenModelOS(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	dir := t.TempDir()
	specs := []TensorSpec{{"a", dtype.F32, []int64{4, 4}}, {"b", dtype.BF16, []int64{8}}, {"c", dtype.I64, []int64{}}}
	mem := MemFS{}
	writeSharded(t, r, mem, "sharded", specs, 64)
	writeSharded(t, r, mem, "single", specs, 1<<20)
	for name, data := range mem {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "single", "config.json"), []byte(`{"x":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	noext := filepath.Join(dir, "weights")
	if err := os.WriteFile(noext, mem["single/model.safetensors"], 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.ToSlash(dir)
	for _, c := range []struct {
		p      string
		shards int
	}{
		{root + "/sharded", 2},
		{root + "/sharded/" + IndexName, 2},
		{root + "/single", 1},
		{root + "/single/model.safetensors", 1},
		{root + "/weights", 1},
	} {
		m, err := OpenModel(OSFS{}, c.p)
		if err != nil {
			t.Fatalf("OpenModel(%s) = %v", c.p, err)
		}
		if len(m.Shards()) != c.shards || len(m.Tensors()) != 3 {
			t.Errorf("OpenModel(%s): shards %v, %d tensors", c.p, m.Shards(), len(m.Tensors()))
		}
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}

	m, err := OpenModel(OSFS{}, root+"/single")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if b, err := m.ReadFile("config.json", 100); err != nil || string(b) != `{"x":1}` {
		t.Errorf("ReadFile(config.json) = %q, %v", b, err)
	}
	if _, err := m.ReadFile("config.json", 6); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("ReadFile(config.json, limit 6) = %v, want a size error", err)
	}
	if _, err := m.ReadFile("tokenizer.json", 100); !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v, want ErrNotFound and fs.ErrNotExist", err)
	}
	for _, bad := range []string{"../x", "/etc/passwd", "", "a\\b", "./x"} {
		if _, err := m.ReadFile(bad, 100); err == nil {
			t.Errorf("ReadFile(%q) succeeded", bad)
		}
	}

	if _, err := OpenModel(OSFS{}, root); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "neither") {
		t.Errorf("OpenModel(folder without a model) = %v, want ErrNotFound saying neither file was found", err)
	}
	if _, err := OpenModel(OSFS{}, root+"/nope"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("OpenModel(missing path) = %v, want ErrNotFound saying there is no such file", err)
	}
	if _, err := OpenModel(MemFS{}, "nope"); !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenModel(MemFS{}, nope) = %v, want ErrNotFound", err)
	}
	if _, err := OpenModel(OSFS{}, root+"/nope.safetensors"); !errors.Is(err, ErrNotFound) {
		t.Errorf("OpenModel(missing file) = %v, want ErrNotFound", err)
	}
}

// TestIndexErrors checks the errors of sharded models whose index or shards are wrong.
func TestIndexErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	specs := []TensorSpec{{"a", dtype.F32, []int64{4}}, {"b", dtype.F32, []int64{4}}, {"c", dtype.F32, []int64{4}}}
	base := MemFS{}
	writeSharded(t, r, base, "m", specs, 32) // a, b | c
	s1, s2 := "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	index := func(wm string) []byte { return []byte(`{"metadata":{"total_size":48},"weight_map":{` + wm + `}}`) }
	tests := []struct {
		name  string
		index []byte
		edit  func(MemFS)
		err   error
		words []string
	}{
		{"missing shard", nil, func(f MemFS) { delete(f, "m/"+s2) }, ErrNotFound, []string{s2, `"c"`}},
		{"parent", index(`"a":"../x.safetensors"`), nil, ErrFormat, []string{`"a"`, `"../x.safetensors"`, "plain file name"}},
		{"absolute", index(`"a":"/abs.safetensors"`), nil, ErrFormat, []string{`"/abs.safetensors"`}},
		{"subfolder", index(`"a":"a/b.safetensors"`), nil, ErrFormat, []string{`"a/b.safetensors"`}},
		{"backslash", index(`"a":"a\\b.safetensors"`), nil, ErrFormat, []string{`a\\b.safetensors`}},
		{"dotdot", index(`"a":".."`), nil, ErrFormat, []string{`".."`}},
		{"empty name", index(`"a":""`), nil, ErrFormat, []string{`""`}},
		{"tensor missing from shard", index(`"a":"` + s1 + `","b":"` + s1 + `","c":"` + s2 + `","zz":"` + s1 + `"`), nil, ErrFormat, []string{`"zz"`, s1, "missing from the shard"}},
		{"tensor not listed", index(`"a":"` + s1 + `","c":"` + s2 + `"`), nil, ErrFormat, []string{`"b"`, s1, "does not list it"}},
		{"tensor in the wrong shard", index(`"a":"` + s2 + `","b":"` + s1 + `","c":"` + s2 + `"`), nil, ErrFormat, []string{`"a"`, s1, `maps it to "` + s2}},
		{"duplicate entry", index(`"a":"` + s1 + `","a":"` + s1 + `"`), nil, ErrFormat, []string{`"a"`, "duplicate"}},
		{"no weight_map", []byte(`{"metadata":{}}`), nil, ErrFormat, []string{"no weight_map"}},
		{"empty weight_map", index(``), nil, ErrFormat, []string{"empty"}},
		{"weight_map array", []byte(`{"weight_map":[]}`), nil, ErrFormat, []string{"weight_map is an array"}},
		{"value number", index(`"a":1`), nil, ErrFormat, []string{`"a"`, "the number 1"}},
		{"not json", []byte(`{"weight_map":`), nil, ErrFormat, []string{"JSON"}},
		{"trailing", append(index(`"a":"`+s1+`"`), '{'), nil, ErrFormat, []string{"after the index"}},
		{"bad shard", nil, func(f MemFS) { f["m/"+s2] = []byte("xx") }, ErrFormat, []string{s2, "too short"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := MemFS{}
			for k, v := range base {
				fsys[k] = v
			}
			if tt.index != nil {
				fsys["m/"+IndexName] = tt.index
			}
			if tt.edit != nil {
				tt.edit(fsys)
			}
			for _, p := range []string{"m", "m/" + IndexName} {
				m, err := OpenModel(fsys, p)
				if err == nil {
					t.Fatalf("OpenModel(%s) succeeded with %d tensors", p, len(m.Tensors()))
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("OpenModel(%s) = %v, want %v", p, err, tt.err)
				}
				for _, w := range tt.words {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("OpenModel(%s) = %q, want it to mention %s", p, err, w)
					}
				}
			}
		})
	}
}

// TestModelOrder checks that model order is shards by name, then data order within a shard,
// whatever the order of the weight_map and of the headers.
func TestModelOrder(t *testing.T) {
	fsys := MemFS{
		"m/s2.safetensors": rawFile(`{"y":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 2),
		"m/s1.safetensors": rawFile(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 2),
		"m/" + IndexName:   []byte(`{"weight_map":{"y":"s2.safetensors","a":"s1.safetensors","x":"s2.safetensors","b":"s1.safetensors"}}`),
	}
	m, err := OpenModel(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	var names, shards []string
	for _, tn := range m.Tensors() {
		names = append(names, tn.Name)
		shards = append(shards, tn.Shard)
	}
	if want := []string{"a", "b", "x", "y"}; !slices.Equal(names, want) {
		t.Errorf("model order %v, want %v", names, want)
	}
	if want := []string{"s1.safetensors", "s1.safetensors", "s2.safetensors", "s2.safetensors"}; !slices.Equal(shards, want) {
		t.Errorf("shards %v, want %v", shards, want)
	}
	if err := m.ReadAt(&Tensor{TensorInfo: TensorInfo{Name: "a", End: 1}}, make([]byte, 1), 0); err == nil {
		t.Error("ReadAt of a foreign Tensor succeeded")
	}
}
