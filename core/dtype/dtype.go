package dtype

import (
	"errors"
	"fmt"
)

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
func Parse(s string) (DType, error) {
	for d := F64; d <= F8_E5M2; d++ {
		if names[d] == s {
			return d, nil
		}
	}
	return Invalid, unknownError(s)
}

// unknownError is the error of Parse: `dtype: unknown dtype "X"`, wrapping ErrUnsupported.
type unknownError string

func (e unknownError) Error() string { return fmt.Sprintf("dtype: unknown dtype %q", string(e)) }
func (e unknownError) Unwrap() error { return ErrUnsupported }

// names and sizes are indexed by DType. (Minimal copy for the safetensors branch;
// the dtype branch's version replaces it.)
var (
	names = [...]string{"", "F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8", "BOOL", "F8_E4M3", "F8_E5M2"}
	sizes = [...]int{0, 8, 4, 2, 2, 8, 4, 2, 1, 8, 4, 2, 1, 1, 1, 1}
)

// String returns the safetensors spelling ("BF16").
func (d DType) String() string {
	if int(d) < len(names) && d != Invalid {
		return names[d]
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size returns the size of one element in bytes (0 for Invalid).
func (d DType) Size() int {
	if int(d) < len(sizes) {
		return sizes[d]
	}
	return 0
}

// IsFloat reports whether d is merged arithmetically: F64, F32, F16 or BF16.
func (d DType) IsFloat() bool { return d == F64 || d == F32 || d == F16 || d == BF16 }

// Decode converts len(dst) elements of dtype d from little-endian src to float32.
// It panics if d is not a float dtype or len(src) != len(dst)*d.Size().
func Decode(dst []float32, src []byte, d DType) { panic("TODO") }

// Encode converts src to dtype d into little-endian dst, rounding to nearest even.
// It panics if d is not a float dtype or len(dst) != len(src)*d.Size().
func Encode(dst []byte, src []float32, d DType) { panic("TODO") }
