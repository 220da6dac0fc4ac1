package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"

	"freelunch/core/dtype"
)

// allocBound is the most Open may allocate for an input of n bytes: a constant for the
// decoder and error messages plus a multiple of the input (JSON tokens, shapes, the index).
func allocBound(n int) uint64 { return 64<<10 + 64*uint64(n) }

// FuzzOpen opens arbitrary bytes as a safetensors file. It checks that Open never panics,
// requests no byte twice and none past the input, allocates at most allocBound, fails only with
// a *FormatError, and that a file that opens reads back, rewrites through the Writer and reopens
// with the same tensors. The seeds are testdata/fuzz/FuzzOpen (small fixture files, see
// testdata/README.md), a few synthetic edge cases, and the small files of the external fixtures
// when they are present.
func FuzzOpen(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"__metadata__":{"a":"b"},"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}`,
		`{"z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}}`,
		// Out of order and unpadded, as MLX writes.
		`{"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},"a":{"dtype":"F8_E5M2","shape":[4],"data_offsets":[0,4]}}`,
	} {
		f.Add(rawFile(s, 8))
	}
	if dir, _ := findExternal(); dir != "" {
		files, _ := filepath.Glob(filepath.Join(dir, "*", "*.safetensors"))
		for _, p := range files {
			if fi, err := os.Stat(p); err == nil && fi.Size() <= 4096 {
				if b, err := os.ReadFile(p); err == nil {
					f.Add(b)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		var file *File
		var err error
		n := allocated(func() { file, err = Open(cr, int64(len(data)), "fuzz") })
		if n > allocBound(len(data)) {
			t.Errorf("Open of %d bytes allocated %d bytes, more than %d", len(data), n, allocBound(len(data)))
		}
		if got := cr.requested.Load(); got > int64(len(data)) {
			t.Errorf("Open of %d bytes requested %d bytes", len(data), got)
		}
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || (!errors.Is(err, ErrFormat) && !errors.Is(err, ErrHeaderTooLarge)) || fe.File != "fuzz" {
				t.Fatalf("Open = %#v, want a *FormatError wrapping ErrFormat or ErrHeaderTooLarge", err)
			}
			if strings.IndexFunc(err.Error(), unicode.IsControl) >= 0 {
				t.Fatalf("Open error %q is not one line of printable text", err)
			}
			return
		}
		var pos int64
		for i := range file.Tensors {
			ti := &file.Tensors[i]
			if ti.Start != pos || ti.End < ti.Start || file.Lookup(ti.Name) != ti {
				t.Fatalf("tensor %d %+v: not contiguous from %d or not found by Lookup", i, ti, pos)
			}
			if ti.NumElements()*int64(ti.DType.Size()) != ti.Size() {
				t.Fatalf("tensor %q: %d elements of %v in %d bytes", ti.Name, ti.NumElements(), ti.DType, ti.Size())
			}
			pos = ti.End
		}
		if file.DataOffset+pos != int64(len(data)) {
			t.Fatalf("tensors end at %d, file at %d", file.DataOffset+pos, len(data))
		}
		checkRoundTrip(t, file, data, 1+len(data)%13)
	})
}

// FuzzIndex parses arbitrary bytes as model.safetensors.index.json. It checks that the parser
// never panics, fails only with a *FormatError, and that an index that parses has unique tensor
// names and plain shard names, and comes back the same through IndexJSON.
func FuzzIndex(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"total_size":12},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`,
		`{"weight_map":{"a":"../x"}}`,
		`{"weight_map":{"a":"x","a":"y"}}`,
		`{"weight_map":{}}`,
		`{"weight_map":{"a":"x\ny.safetensors"}}`,
		`{"weight_map":{"\u00fc\n":"s.safetensors"},"extra":[1,{"x":null}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := parseIndex(data, "index.json")
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("parseIndex = %#v, want a *FormatError wrapping ErrFormat", err)
			}
			if strings.IndexFunc(err.Error(), unicode.IsControl) >= 0 {
				t.Fatalf("parseIndex error %q is not one line of printable text", err)
			}
			return
		}
		if len(entries) == 0 {
			t.Fatal("parseIndex succeeded with no entries")
		}
		seen := map[string]bool{}
		byShard := map[string][]TensorSpec{}
		var shardOrder []string
		for _, e := range entries {
			if seen[e.Tensor] {
				t.Fatalf("tensor %q twice", e.Tensor)
			}
			seen[e.Tensor] = true
			if !validShardName(e.Shard) || strings.IndexFunc(e.Shard, unicode.IsControl) >= 0 {
				t.Fatalf("shard name %q accepted", e.Shard)
			}
			if byShard[e.Shard] == nil {
				shardOrder = append(shardOrder, e.Shard)
			}
			byShard[e.Shard] = append(byShard[e.Shard], TensorSpec{Name: e.Tensor, DType: dtype.U8, Shape: []int64{1}})
		}
		var shards []Shard
		for _, s := range shardOrder {
			shards = append(shards, Shard{FileName: s, Specs: byShard[s]})
		}
		again, err := parseIndex(IndexJSON(shards), "again")
		if err != nil {
			t.Fatalf("parseIndex(IndexJSON(...)) = %v\n%s", err, IndexJSON(shards))
		}
		key := func(e indexEntry) string { return e.Tensor + "\x00" + e.Shard }
		a, b := make([]string, len(entries)), make([]string, len(again))
		for i := range entries {
			a[i] = key(entries[i])
		}
		for i := range again {
			b[i] = key(again[i])
		}
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Fatalf("IndexJSON round trip: %q, want %q", b, a)
		}
	})
}
