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

// info holds the spelling and element size of each DType, indexed by DType.
var info = [...]struct {
	name string
	size int
}{
	Invalid: {"", 0},
	F64:     {"F64", 8},
	F32:     {"F32", 4},
	F16:     {"F16", 2},
	BF16:    {"BF16", 2},
	I64:     {"I64", 8},
	I32:     {"I32", 4},
	I16:     {"I16", 2},
	I8:      {"I8", 1},
	U64:     {"U64", 8},
	U32:     {"U32", 4},
	U16:     {"U16", 2},
	U8:      {"U8", 1},
	BOOL:    {"BOOL", 1},
	F8_E4M3: {"F8_E4M3", 1},
	F8_E5M2: {"F8_E5M2", 1},
}

// Parse returns the DType spelled s ("BF16"); unknown names give an error wrapping ErrUnsupported.
// The match is exact and case-sensitive, as in safetensors headers; "" is unknown.
// The error reads: dtype: unsupported dtype "F4".
func Parse(s string) (DType, error) {
	for d := Invalid + 1; int(d) < len(info); d++ {
		if info[d].name == s {
			return d, nil
		}
	}
	return Invalid, fmt.Errorf("%w %q", ErrUnsupported, s)
}

// String returns the safetensors spelling ("BF16").
// Invalid and values outside the known set print as "DType(n)".
func (d DType) String() string {
	if d != Invalid && int(d) < len(info) {
		return info[d].name
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size returns the size of one element in bytes (0 for Invalid).
// It is also 0 for values outside the known set.
func (d DType) Size() int {
	if int(d) < len(info) {
		return info[d].size
	}
	return 0
}

// IsFloat reports whether d is merged arithmetically: F64, F32, F16 or BF16.
func (d DType) IsFloat() bool { return d == F64 || d == F32 || d == F16 || d == BF16 }
