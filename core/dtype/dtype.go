package dtype

import "errors"

// ErrUnsupported is returned (wrapped) for a dtype name that is not one of the known names.
var ErrUnsupported = errors.New("dtype: unsupported dtype")

// A DType is an element type of a safetensors tensor.
type DType uint8

// The known dtypes, spelled as in safetensors headers.
const (
	Invalid DType = iota
	F64
	F32
	F16
	BF16
	I64
	I32
	I16
	I8
	U64
	U32
	U16
	U8
	BOOL
	F8_E4M3
	F8_E5M2
)

// Parse returns the DType spelled s ("BF16"); unknown names give an error wrapping ErrUnsupported.
func Parse(s string) (DType, error) { panic("TODO") }

// String returns the safetensors spelling ("BF16").
func (d DType) String() string { panic("TODO") }

// Size returns the size of one element in bytes (0 for Invalid).
func (d DType) Size() int { panic("TODO") }

// IsFloat reports whether d is merged arithmetically: F64, F32, F16 or BF16.
func (d DType) IsFloat() bool { panic("TODO") }

// Decode converts len(dst) elements of dtype d from little-endian src to float32.
// It panics if d is not a float dtype or len(src) != len(dst)*d.Size().
func Decode(dst []float32, src []byte, d DType) { panic("TODO") }

// Encode converts src to dtype d into little-endian dst, rounding to nearest even.
// It panics if d is not a float dtype or len(dst) != len(src)*d.Size().
func Encode(dst []byte, src []float32, d DType) { panic("TODO") }
