package safetensors_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log"
	"math"

	"freelunch/core/dtype"
	"freelunch/core/safetensors"
)

// Write a file with two tensors through a Writer, in chunks, then open it and read one back.
func Example() {
	specs := []safetensors.TensorSpec{
		{Name: "weight", DType: dtype.F32, Shape: []int64{2, 2}},
		{Name: "step", DType: dtype.I64, Shape: []int64{}}, // a scalar
	}
	var buf bytes.Buffer
	w, err := safetensors.NewWriter(&buf, specs, map[string]string{"format": "pt"})
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range []float32{1, 2, 3, 4} { // one element at a time
		w.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
	}
	w.Write(binary.LittleEndian.AppendUint64(nil, 7))
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	f, err := safetensors.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "example.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	for _, t := range f.Tensors {
		fmt.Println(t.Name, t.DType, t.Shape, t.Start, t.End)
	}
	t := f.Lookup("weight")
	p := make([]byte, 4)
	if err := f.ReadTensorAt(t, p, 8); err != nil { // the third element
		log.Fatal(err)
	}
	fmt.Println(math.Float32frombits(binary.LittleEndian.Uint32(p)), f.Metadata["format"], f.DataOffset%8)
	// Output:
	// weight F32 [2 2] 0 16
	// step I64 [] 16 24
	// 3 pt 0
}

// A malformed header gives a *FormatError naming the file, the tensor and the value.
func ExampleOpen_error() {
	hdr := `{"x":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`
	file := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	file = append(append(file, hdr...), 0)
	_, err := safetensors.Open(bytes.NewReader(file), int64(len(file)), "model.safetensors")
	fmt.Println(err)
	// Output:
	// safetensors: model.safetensors: tensor "x" at byte 0x16: dtype "F4" unknown
}
