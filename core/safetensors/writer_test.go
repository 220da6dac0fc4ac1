package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"freelunch/core/dtype"
)

var allDTypes = []dtype.DType{dtype.F64, dtype.F32, dtype.F16, dtype.BF16, dtype.I64, dtype.I32, dtype.I16,
	dtype.I8, dtype.U64, dtype.U32, dtype.U16, dtype.U8, dtype.BOOL, dtype.F8_E4M3, dtype.F8_E5M2}

// randomSpecs returns n tensors of random dtypes and shapes, including scalars and
// zero-element shapes, with names that need JSON escaping now and then.
func randomSpecs(r *rand.Rand, n int) []TensorSpec {
	names := []string{"w", "layer.%d.weight", "bias_%d", "ü\"\\\n\t%d", "<&>%d", "\x01%d"}
	specs := make([]TensorSpec, n)
	for i := range specs {
		shape := make([]int64, r.IntN(4))
		for j := range shape {
			shape[j] = int64(r.IntN(6))
			if r.IntN(10) == 0 {
				shape[j] = 0
			}
		}
		specs[i] = TensorSpec{
			Name:  fmt.Sprintf(names[r.IntN(len(names))], i) + fmt.Sprint("#", i),
			DType: allDTypes[r.IntN(len(allDTypes))],
			Shape: shape,
		}
	}
	return specs
}

// writeRandom writes specs with random data in random chunk sizes and returns the file and
// each tensor's data.
func writeRandom(t testing.TB, r *rand.Rand, specs []TensorSpec, meta map[string]string) ([]byte, [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, specs, meta)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	var all []byte
	datas := make([][]byte, len(specs))
	for i, s := range specs {
		n, _ := byteSize(s.DType, s.Shape)
		datas[i] = make([]byte, n)
		for j := range datas[i] {
			datas[i][j] = byte(r.Uint32())
		}
		all = append(all, datas[i]...)
	}
	for len(all) > 0 {
		k := min(len(all), r.IntN(40))
		if _, err := w.Write(all[:k]); err != nil {
			t.Fatalf("Write(%d bytes): %v", k, err)
		}
		all = all[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes(), datas
}

// TestWriterRoundTrip writes random specs with random data in random chunks and reads them
// back: same order, dtypes, shapes, bytes and metadata; header padded to 8 with spaces.
func TestWriterRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		specs := randomSpecs(r, r.IntN(8))
		var meta map[string]string
		if r.IntN(2) == 0 {
			meta = map[string]string{"format": "pt", "k\"ey": "v\\al\n", "ü": ""}
		}
		file, datas := writeRandom(t, r, specs, meta)
		f, err := openBytes(file, "rt")
		if err != nil {
			t.Fatalf("iter %d: Open(Writer output) = %v\nheader %s", iter, err, file[8:])
		}
		if f.DataOffset%8 != 0 {
			t.Errorf("iter %d: data offset %d not a multiple of 8", iter, f.DataOffset)
		}
		if hdr := file[8:f.DataOffset]; bytes.TrimRight(hdr, " ")[len(bytes.TrimRight(hdr, " "))-1] != '}' {
			t.Errorf("iter %d: header %q is not JSON padded with spaces", iter, hdr)
		}
		if len(f.Tensors) != len(specs) {
			t.Fatalf("iter %d: %d tensors, want %d", iter, len(f.Tensors), len(specs))
		}
		for i, s := range specs {
			g := f.Lookup(s.Name)
			if g == nil {
				t.Fatalf("iter %d: tensor %q missing", iter, s.Name)
			}
			if g.DType != s.DType || !slices.Equal(g.Shape, s.Shape) {
				t.Errorf("iter %d: tensor %q = %v %v, want %v %v", iter, s.Name, g.DType, g.Shape, s.DType, s.Shape)
			}
			if g.NumElements()*int64(s.DType.Size()) != g.Size() {
				t.Errorf("iter %d: tensor %q: NumElements %d × %d != Size %d", iter, s.Name, g.NumElements(), s.DType.Size(), g.Size())
			}
			got := make([]byte, g.Size())
			if err := f.ReadTensorAt(g, got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, datas[i]) {
				t.Errorf("iter %d: tensor %q bytes differ", iter, s.Name)
			}
		}
		// Spec order is data order: Tensors (sorted by Start) keeps it, except that zero-size
		// tensors at the same offset may only swap among themselves.
		for i := range specs {
			if f.Tensors[i].Name != specs[i].Name && f.Tensors[i].Size() != 0 {
				t.Errorf("iter %d: Tensors[%d] = %q, want %q", iter, i, f.Tensors[i].Name, specs[i].Name)
			}
		}
		if len(f.Metadata) != len(meta) {
			t.Errorf("iter %d: metadata %v, want %v", iter, f.Metadata, meta)
		}
		for k, v := range meta {
			if f.Metadata[k] != v {
				t.Errorf("iter %d: metadata[%q] = %q, want %q", iter, k, f.Metadata[k], v)
			}
		}
	}
}

// TestHeaderLayout checks the exact header bytes for a small case: metadata first, offsets
// contiguous, padding with spaces to a multiple of 8 counted in the length.
func TestHeaderLayout(t *testing.T) {
	specs := []TensorSpec{{"b", dtype.BF16, []int64{2, 3}}, {"a", dtype.I64, []int64{}}, {"z", dtype.F32, []int64{0}}}
	got, err := Header(specs, map[string]string{"format": "pt", "a": "<b>"})
	if err != nil {
		t.Fatal(err)
	}
	json := `{"__metadata__":{"a":"<b>","format":"pt"},"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},` +
		`"a":{"dtype":"I64","shape":[],"data_offsets":[12,20]},"z":{"dtype":"F32","shape":[0],"data_offsets":[20,20]}}`
	for len(json)%8 != 0 {
		json += " "
	}
	want := binary.LittleEndian.AppendUint64(nil, uint64(len(json)))
	want = append(want, json...)
	if !bytes.Equal(got, want) {
		t.Errorf("Header = %q\nwant     %q", got, want)
	}
	if got, _ := Header(nil, nil); string(got[8:]) != "{}      " || binary.LittleEndian.Uint64(got) != 8 {
		t.Errorf("Header(nil, nil) = %q", got)
	}
}

// TestHeaderErrors checks that invalid specs are rejected with an error naming the tensor.
func TestHeaderErrors(t *testing.T) {
	tests := []struct {
		name  string
		specs []TensorSpec
		meta  map[string]string
		words string
	}{
		{"duplicate", []TensorSpec{{"x", dtype.F32, nil}, {"x", dtype.F16, nil}}, nil, `"x": duplicate`},
		{"reserved", []TensorSpec{{"__metadata__", dtype.F32, nil}}, nil, "reserved"},
		{"invalid dtype", []TensorSpec{{"x", dtype.Invalid, nil}}, nil, `"x": invalid dtype`},
		{"negative", []TensorSpec{{"x", dtype.F32, []int64{2, -1}}}, nil, `"x": shape [2 -1]`},
		{"overflow", []TensorSpec{{"x", dtype.F32, []int64{1 << 31, 1 << 31}}}, nil, `"x": shape`},
		{"total overflow", []TensorSpec{{"x", dtype.U8, []int64{1 << 62}}, {"y", dtype.U8, []int64{1 << 62}}}, nil, `"y": shape`},
		{"bad utf8", []TensorSpec{{"x\xff", dtype.F32, nil}}, nil, "UTF-8"},
		{"bad utf8 metadata", nil, map[string]string{"k": "\xff"}, "UTF-8"},
	}
	for _, tt := range tests {
		_, err := Header(tt.specs, tt.meta)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tt.words) {
			t.Errorf("%s: Header = %v, want ErrFormat mentioning %q", tt.name, err, tt.words)
		}
		if _, err := NewWriter(&bytes.Buffer{}, tt.specs, tt.meta); err == nil {
			t.Errorf("%s: NewWriter succeeded", tt.name)
		}
	}
}

// TestWriterTooFewTooMany checks that the Writer refuses extra bytes and that Close reports
// a tensor that is short, naming it.
func TestWriterTooFewTooMany(t *testing.T) {
	specs := []TensorSpec{{"a", dtype.F32, []int64{2}}, {"b", dtype.U8, []int64{3}}, {"c", dtype.U8, []int64{0}}}
	for _, n := range []int{0, 1, 7, 8, 9, 10} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, specs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, n)); err != nil {
			t.Fatalf("Write(%d) = %v", n, err)
		}
		err = w.Close()
		want := `"a"`
		if n >= 8 {
			want = `"b"`
		}
		if !errors.Is(err, ErrTooLittleData) || !strings.Contains(err.Error(), want) {
			t.Errorf("after %d of 11 bytes: Close = %v, want ErrTooLittleData naming %s", n, err, want)
		}
	}
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, specs, nil)
	if _, err := w.Write(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	hdrLen := buf.Len() - 10
	if n, err := w.Write(make([]byte, 2)); !errors.Is(err, ErrTooMuchData) || n != 0 {
		t.Errorf("Write past the end = %d, %v, want 0, ErrTooMuchData", n, err)
	}
	if _, err := w.Write(make([]byte, 1)); err != nil {
		t.Errorf("Write of the last byte = %v", err)
	}
	if _, err := w.Write(make([]byte, 1)); !errors.Is(err, ErrTooMuchData) {
		t.Errorf("Write after the last byte = %v, want ErrTooMuchData", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if buf.Len() != hdrLen+11 {
		t.Errorf("output is %d bytes, want %d", buf.Len(), hdrLen+11)
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWriterSinkError checks that an error of the underlying writer is returned and sticks.
func TestWriterSinkError(t *testing.T) {
	specs := []TensorSpec{{"a", dtype.F32, []int64{16}}}
	if _, err := NewWriter(&failWriter{n: 3}, specs, nil); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("NewWriter on a failing writer = %v", err)
	}
	w, err := NewWriter(&failWriter{n: 100}, specs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 64)); err == nil {
		t.Fatal("Write past the sink's capacity succeeded")
	}
	if _, err := w.Write(make([]byte, 0)); err == nil {
		t.Error("Write after a sink error succeeded")
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close after a sink error = %v", err)
	}
}

// TestSplitShards checks the split at a byte limit, the names, the sizes and the index.
func TestSplitShards(t *testing.T) {
	specs := []TensorSpec{
		{"a", dtype.F32, []int64{10}},  // 40
		{"b", dtype.F32, []int64{10}},  // 40
		{"c", dtype.U8, []int64{100}},  // 100: bigger than the limit, own shard
		{"d", dtype.U8, []int64{20}},   // 20
		{"e", dtype.U8, []int64{0}},    // 0
		{"f", dtype.F16, []int64{30}},  // 60
		{"g", dtype.I64, []int64{}},    // 8
		{"h", dtype.BF16, []int64{40}}, // 80
	}
	shards, err := SplitShards(specs, 80, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"a", "b"}, {"c"}, {"d", "e", "f"}, {"g"}, {"h"}}
	if len(shards) != len(want) {
		t.Fatalf("SplitShards: %d shards, want %d", len(shards), len(want))
	}
	var total int64
	for i, sh := range shards {
		var names []string
		var data int64
		for _, s := range sh.Specs {
			names = append(names, s.Name)
			n, _ := byteSize(s.DType, s.Shape)
			data += n
		}
		total += data
		if !slices.Equal(names, want[i]) {
			t.Errorf("shard %d = %v, want %v", i, names, want[i])
		}
		if wantName := fmt.Sprintf("model-%05d-of-00005.safetensors", i+1); sh.FileName != wantName {
			t.Errorf("shard %d named %q, want %q", i, sh.FileName, wantName)
		}
		hdr, _ := Header(sh.Specs, map[string]string{"format": "pt"})
		if sh.Size != int64(len(hdr))+data {
			t.Errorf("shard %d: Size %d, want %d", i, sh.Size, int64(len(hdr))+data)
		}
	}
	var idx struct {
		Metadata struct {
			TotalSize int64 `json:"total_size"`
		}
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(IndexJSON(shards), &idx); err != nil {
		t.Fatalf("IndexJSON is not JSON: %v", err)
	}
	if idx.Metadata.TotalSize != total || len(idx.WeightMap) != len(specs) || idx.WeightMap["f"] != "model-00003-of-00005.safetensors" {
		t.Errorf("IndexJSON = %s", IndexJSON(shards))
	}

	one, err := SplitShards(specs, 1<<40, nil)
	if err != nil || len(one) != 1 || one[0].FileName != "model.safetensors" || len(one[0].Specs) != len(specs) {
		t.Errorf("SplitShards(big limit) = %+v, %v, want one model.safetensors", one, err)
	}
	if none, err := SplitShards(nil, 10, nil); err != nil || len(none) != 1 || none[0].FileName != "model.safetensors" {
		t.Errorf("SplitShards(nil) = %+v, %v, want one empty model.safetensors", none, err)
	}
	if _, err := SplitShards(specs, 0, nil); err == nil {
		t.Error("SplitShards(limit 0) succeeded")
	}
	if _, err := SplitShards(append(specs, specs[0]), 80, nil); !errors.Is(err, ErrFormat) {
		t.Errorf("SplitShards(duplicate name) = %v, want ErrFormat", err)
	}
}
