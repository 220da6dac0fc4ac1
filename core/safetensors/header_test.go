package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"freelunch/core/dtype"
)

// rawFile returns a safetensors file with the given header JSON (not padded) and data bytes.
func rawFile(header string, data int) []byte {
	b := make([]byte, 8, 8+len(header)+data)
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	for i := range data {
		b = append(b, byte(i))
	}
	return b
}

func openBytes(b []byte, name string) (*File, error) {
	return Open(bytes.NewReader(b), int64(len(b)), name)
}

// TestOpenValid covers shapes and layouts that must open: scalars, zero-element tensors,
// out-of-order offsets, unpadded headers, null and empty metadata, no tensors at all.
func TestOpenValid(t *testing.T) {
	tests := []struct {
		name, header string
		data         int
		want         []TensorInfo // in data order
		meta         map[string]string
	}{
		{"empty", `{}`, 0, nil, nil},
		{"padded empty", `{}      `, 0, nil, nil},
		{"metadata only", `{"__metadata__":{"a":"b"}}`, 0, nil, map[string]string{"a": "b"}},
		{"null metadata", `{"__metadata__":null,"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 2,
			[]TensorInfo{{Name: "x", DType: dtype.U8, Shape: []int64{2}, Start: 0, End: 2}}, nil},
		{"scalar", `{"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}`, 8,
			[]TensorInfo{{Name: "s", DType: dtype.I64, Shape: []int64{}, Start: 0, End: 8}}, nil},
		{"zero elements", `{"z":{"dtype":"F32","shape":[3,0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4,
			[]TensorInfo{{Name: "a", DType: dtype.F32, Shape: []int64{1}, Start: 0, End: 4}, {Name: "z", DType: dtype.F32, Shape: []int64{3, 0}, Start: 4, End: 4}}, nil},
		{"only zero elements", `{"z":{"dtype":"BF16","shape":[0],"data_offsets":[0,0]},"y":{"dtype":"F8_E4M3","shape":[0, 7],"data_offsets":[0,0]}}`, 0,
			[]TensorInfo{{Name: "z", DType: dtype.BF16, Shape: []int64{0}}, {Name: "y", DType: dtype.F8_E4M3, Shape: []int64{0, 7}}}, nil},
		{"out of order", `{"b":{"data_offsets":[2,4],"shape":[2],"dtype":"I8"},"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}}`, 4,
			[]TensorInfo{{Name: "a", DType: dtype.BOOL, Shape: []int64{2}, Start: 0, End: 2}, {Name: "b", DType: dtype.I8, Shape: []int64{2}, Start: 2, End: 4}}, nil},
		{"whitespace and escapes", "{ \"a\\u0062\" : { \"dtype\" : \"F8_E5M2\" , \"shape\" : [ 1 ] , \"data_offsets\" : [ 0 , 1 ] } }\n\t ", 1,
			[]TensorInfo{{Name: "ab", DType: dtype.F8_E5M2, Shape: []int64{1}, Start: 0, End: 1}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := openBytes(rawFile(tt.header, tt.data), tt.name)
			if err != nil {
				t.Fatalf("Open(%s) = %v", tt.header, err)
			}
			if len(f.Tensors) != len(tt.want) {
				t.Fatalf("Open(%s): %d tensors, want %d", tt.header, len(f.Tensors), len(tt.want))
			}
			for i, w := range tt.want {
				g := f.Tensors[i]
				if g.Name != w.Name || g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) || g.Start != w.Start || g.End != w.End {
					t.Errorf("Open(%s): tensor %d = %+v, want %+v", tt.header, i, g, w)
				}
				if f.Lookup(w.Name) != &f.Tensors[i] {
					t.Errorf("Lookup(%q) is not tensor %d", w.Name, i)
				}
			}
			if len(f.Metadata) != len(tt.meta) {
				t.Errorf("Metadata = %v, want %v", f.Metadata, tt.meta)
			}
			for k, v := range tt.meta {
				if f.Metadata[k] != v {
					t.Errorf("Metadata[%q] = %q, want %q", k, f.Metadata[k], v)
				}
			}
			if f.Lookup("nope") != nil {
				t.Error(`Lookup("nope") != nil`)
			}
		})
	}
}

// TestOpenMalformed checks that each malformed header fails with ErrFormat (or
// ErrHeaderTooLarge) and a message naming the problem, the tensor and the value.
func TestOpenMalformed(t *testing.T) {
	const ok = `{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`
	tests := []struct {
		name   string
		file   []byte
		err    error
		tensor string
		words  []string
	}{
		{"short", []byte{1, 0, 0}, ErrFormat, "", []string{"3 bytes"}},
		{"length past end", rawFile(`{}`, 0)[:9], ErrFormat, "", []string{"header length 2", "1 bytes after"}},
		{"huge length", append(binary.LittleEndian.AppendUint64(nil, 1<<62), "{}"...), ErrHeaderTooLarge, "", []string{"4611686018427387904"}},
		{"just over limit", binary.LittleEndian.AppendUint64(nil, MaxHeaderSize+1), ErrHeaderTooLarge, "", []string{"100000001"}},
		{"lfs", []byte("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n"), ErrHeaderTooLarge, "", []string{"Git LFS pointer"}},
		{"empty header", rawFile(``, 0), ErrFormat, "", []string{"'{'"}},
		{"array", rawFile(`[]`, 0), ErrFormat, "", []string{"'{'"}},
		{"leading space", rawFile(` {}`, 0), ErrFormat, "", []string{"'{'"}},
		{"bad utf8", rawFile("{\"\xff\":1}", 0), ErrFormat, "", []string{"UTF-8"}},
		{"truncated json", rawFile(`{"a":`, 0), ErrFormat, "a", []string{"JSON"}},
		{"syntax", rawFile(`{"a" 1}`, 0), ErrFormat, "a", []string{"JSON"}},
		{"trailing garbage", rawFile(`{}x`, 0), ErrFormat, "", []string{`"x"`, "after the header"}},
		{"two objects", rawFile(`{}{}`, 0), ErrFormat, "", []string{"after the header"}},
		{"unknown dtype", rawFile(`{"x":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, 1), ErrFormat, "x", []string{`dtype "F4" unknown`}},
		{"dtype number", rawFile(`{"x":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{"dtype is the number 4"}},
		{"negative dim", rawFile(`{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{"shape[0] = -2", "negative"}},
		{"float dim", rawFile(`{"x":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{"shape[0] = 2.0", "not an integer"}},
		{"exp dim", rawFile(`{"x":{"dtype":"F32","shape":[2e0],"data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{"2e0"}},
		{"huge dim", rawFile(`{"x":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{"99999999999999999999", "too large"}},
		{"string dim", rawFile(`{"x":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{`shape[0] is the string "2"`}},
		{"shape not array", rawFile(`{"x":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{"shape is the number 2"}},
		{"shape overflow", rawFile(`{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, 0), ErrFormat, "x", []string{"[4294967296 4294967296]", "too large"}},
		{"bytes overflow", rawFile(`{"x":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}}`, 0), ErrFormat, "x", []string{"too large"}},
		{"overflow before zero", rawFile(`{"x":{"dtype":"U8","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}`, 0), ErrFormat, "x", []string{"too large"}},
		{"one offset", rawFile(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, 8), ErrFormat, "x", []string{"data_offsets has 1 elements, want 2"}},
		{"three offsets", rawFile(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, 8), ErrFormat, "x", []string{"data_offsets has more than 2"}},
		{"reversed offsets", rawFile(`{"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, 8), ErrFormat, "x", []string{"[8, 0]"}},
		{"span mismatch", rawFile(`{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{"[0, 8]", "span 8 bytes", "needs 12"}},
		{"hole", rawFile(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), ErrFormat, "x", []string{"unused", "0 to 4"}},
		{"overlap", rawFile(`{"x":`+ok+`,"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), ErrFormat, "y", []string{"overlap", `"x"`}},
		{"same offsets", rawFile(`{"x":`+ok+`,"y":`+ok+`}`, 8), ErrFormat, "y", []string{"overlap"}},
		{"past end", rawFile(`{"x":`+ok+`}`, 4), ErrFormat, "x", []string{"past the data section of 4 bytes"}},
		{"trailing bytes", rawFile(`{"x":`+ok+`}`, 10), ErrFormat, "", []string{"2 trailing bytes"}},
		{"no tensors, data", rawFile(`{}`, 1), ErrFormat, "", []string{"1 trailing bytes"}},
		{"duplicate tensor", rawFile(`{"x":`+ok+`,"x":`+ok+`}`, 8), ErrFormat, "x", []string{"duplicate tensor name"}},
		{"duplicate escaped", rawFile(`{"x":`+ok+`,"\u0078":`+ok+`}`, 8), ErrFormat, "x", []string{"duplicate tensor name"}},
		{"duplicate metadata", rawFile(`{"__metadata__":{},"__metadata__":{}}`, 0), ErrFormat, "", []string{`duplicate key "__metadata__"`}},
		{"duplicate metadata key", rawFile(`{"__metadata__":{"a":"1","a":"2"}}`, 0), ErrFormat, "", []string{`duplicate key "a"`}},
		{"metadata number", rawFile(`{"__metadata__":{"a":1}}`, 0), ErrFormat, "", []string{`__metadata__["a"] is the number 1`}},
		{"metadata nested", rawFile(`{"__metadata__":{"a":{"b":"c"}}}`, 0), ErrFormat, "", []string{`__metadata__["a"] is an object`}},
		{"metadata array", rawFile(`{"__metadata__":["a"]}`, 0), ErrFormat, "", []string{"__metadata__ is an array"}},
		{"tensor not object", rawFile(`{"x":[1]}`, 0), ErrFormat, "x", []string{"entry is an array"}},
		{"tensor null", rawFile(`{"x":null}`, 0), ErrFormat, "x", []string{"entry is null"}},
		{"unknown key", rawFile(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"offset":3}}`, 8), ErrFormat, "x", []string{`unknown key "offset"`}},
		{"duplicate key", rawFile(`{"x":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{`duplicate key "dtype"`}},
		{"missing dtype", rawFile(`{"x":{"shape":[2],"data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{"missing dtype"}},
		{"missing shape", rawFile(`{"x":{"dtype":"F32","data_offsets":[0,8]}}`, 8), ErrFormat, "x", []string{"missing shape"}},
		{"missing offsets", rawFile(`{"x":{"dtype":"F32","shape":[2]}}`, 8), ErrFormat, "x", []string{"missing data_offsets"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := openBytes(tt.file, "m.safetensors")
			if err == nil {
				t.Fatalf("Open(%q) = %v tensors, want an error", tt.file, len(f.Tensors))
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("Open(%q) = %v, want %v", tt.file, err, tt.err)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Open(%q) = %v, want a *FormatError", tt.file, err)
			}
			if fe.File != "m.safetensors" || fe.Tensor != tt.tensor {
				t.Errorf("Open(%q): File, Tensor = %q, %q, want %q, %q", tt.file, fe.File, fe.Tensor, "m.safetensors", tt.tensor)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "safetensors: m.safetensors: ") {
				t.Errorf("Open(%q) = %q, want it to start with the file name", tt.file, msg)
			}
			for _, w := range tt.words {
				if !strings.Contains(msg, w) {
					t.Errorf("Open(%q) = %q, want it to mention %q", tt.file, msg, w)
				}
			}
		})
	}
}

// TestFormatError checks the message layout of FormatError.
func TestFormatError(t *testing.T) {
	tests := []struct {
		e    FormatError
		want string
	}{
		{FormatError{File: "m.safetensors", Tensor: "x", Offset: -1, Msg: `dtype "F4" unknown`}, `safetensors: m.safetensors: tensor "x": dtype "F4" unknown`},
		{FormatError{File: "m.safetensors", Tensor: "x", Offset: 0x1f8, Msg: "data ends past EOF"}, `safetensors: m.safetensors: tensor "x" at byte 0x1f8: data ends past EOF`},
		{FormatError{File: "m.safetensors", Offset: 16, Msg: "m"}, `safetensors: m.safetensors: at byte 0x10: m`},
		{FormatError{Offset: -1, Msg: "m"}, `safetensors: m`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v.Error() = %q, want %q", tt.e, got, tt.want)
		}
	}
}

// shortReader is a ReaderAt that holds fewer bytes than the size given to Open.
type shortReader struct{ b []byte }

func (r shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestOpenShortReader checks that a reader that ends before the size it claims gives
// io.ErrUnexpectedEOF, from Open and from ReadTensorAt.
func TestOpenShortReader(t *testing.T) {
	file := rawFile(`{"x":{"dtype":"U8","shape":[16],"data_offsets":[0,16]}}`, 16)
	for _, cut := range []int{0, 4, 8, 20} {
		_, err := Open(shortReader{file[:cut]}, int64(len(file)), "short")
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Open(first %d of %d bytes) = %v, want io.ErrUnexpectedEOF", cut, len(file), err)
		}
	}
	f, err := Open(shortReader{file[:len(file)-4]}, int64(len(file)), "short")
	if err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 16)
	if err := f.ReadTensorAt(&f.Tensors[0], p, 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadTensorAt past the reader's end = %v, want io.ErrUnexpectedEOF", err)
	}
	if err := f.ReadTensorAt(&f.Tensors[0], p[:12], 0); err != nil {
		t.Errorf("ReadTensorAt before the reader's end = %v", err)
	}
}

// TestReadTensorAtRange checks ReadTensorAt's bounds: reads of any range inside the tensor
// work and give the right bytes; anything outside is an error.
func TestReadTensorAtRange(t *testing.T) {
	file := rawFile(`{"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"b":{"dtype":"I16","shape":[2,2],"data_offsets":[3,11]}}`, 11)
	f, err := openBytes(file, "r")
	if err != nil {
		t.Fatal(err)
	}
	b := f.Lookup("b")
	for off := int64(0); off <= 8; off++ {
		for n := int64(0); off+n <= 8; n++ {
			p := make([]byte, n)
			if err := f.ReadTensorAt(b, p, off); err != nil {
				t.Fatalf("ReadTensorAt(b, %d bytes, %d) = %v", n, off, err)
			}
			if want := file[f.DataOffset+3+off:][:n]; !bytes.Equal(p, want) {
				t.Fatalf("ReadTensorAt(b, %d bytes, %d) = %v, want %v", n, off, p, want)
			}
		}
	}
	for _, c := range []struct{ n, off int64 }{{1, 8}, {9, 0}, {2, 7}, {1, -1}, {0, 9}, {0, -1}} {
		if err := f.ReadTensorAt(b, make([]byte, c.n), c.off); err == nil || !strings.Contains(err.Error(), `"b"`) {
			t.Errorf("ReadTensorAt(b, %d bytes, %d) = %v, want an error naming b", c.n, c.off, err)
		}
	}
}
