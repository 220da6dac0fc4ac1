package dtype

import (
	"errors"
	"testing"
)

// TestParseString checks every dtype name of the safetensors format (its Dtype enum)
// with its element size in bytes, and that Parse inverts String.
func TestParseString(t *testing.T) {
	tests := []struct {
		name    string
		want    DType
		size    int
		isFloat bool
	}{
		{"F64", F64, 8, true},
		{"F32", F32, 4, true},
		{"F16", F16, 2, true},
		{"BF16", BF16, 2, true},
		{"I64", I64, 8, false},
		{"I32", I32, 4, false},
		{"I16", I16, 2, false},
		{"I8", I8, 1, false},
		{"U64", U64, 8, false},
		{"U32", U32, 4, false},
		{"U16", U16, 2, false},
		{"U8", U8, 1, false},
		{"BOOL", BOOL, 1, false},
		{"F8_E4M3", F8_E4M3, 1, false},
		{"F8_E5M2", F8_E5M2, 1, false},
	}
	seen := map[DType]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Parse(tt.name)
			if err != nil || d != tt.want {
				t.Fatalf("Parse(%q) = %v, %v, want %v, nil", tt.name, d, err, tt.want)
			}
			if got := d.String(); got != tt.name {
				t.Errorf("%v.String() = %q, want %q", tt.want, got, tt.name)
			}
			if got := d.Size(); got != tt.size {
				t.Errorf("%v.Size() = %d, want %d", d, got, tt.size)
			}
			if got := d.IsFloat(); got != tt.isFloat {
				t.Errorf("%v.IsFloat() = %v, want %v", d, got, tt.isFloat)
			}
		})
		seen[tt.want] = true
	}
	// Every constant but Invalid is in the table once.
	for d := Invalid + 1; d <= F8_E5M2; d++ {
		if !seen[d] {
			t.Errorf("DType(%d) = %v is not in the table", uint8(d), d)
		}
	}
}

func TestParseUnsupported(t *testing.T) {
	// F4, F6_E2M3, F8_E8M0 and C64 are safetensors dtypes newer than this package's set.
	for _, s := range []string{"", "f32", "bf16", "Bf16", "FLOAT32", "F4", "F6_E2M3", "F8_E8M0", "C64", " F32", "F32 ", "Invalid", "DType(0)"} {
		t.Run(s, func(t *testing.T) {
			d, err := Parse(s)
			if !errors.Is(err, ErrUnsupported) || d != Invalid {
				t.Fatalf("Parse(%q) = %v, %v, want Invalid, error wrapping ErrUnsupported", s, d, err)
			}
		})
	}
}

func TestInvalidAndOutOfRange(t *testing.T) {
	tests := []struct {
		d    DType
		name string
	}{
		{Invalid, "DType(0)"},
		{F8_E5M2 + 1, "DType(16)"},
		{255, "DType(255)"},
	}
	for _, tt := range tests {
		if got := tt.d.String(); got != tt.name {
			t.Errorf("DType(%d).String() = %q, want %q", uint8(tt.d), got, tt.name)
		}
		if got := tt.d.Size(); got != 0 {
			t.Errorf("DType(%d).Size() = %d, want 0", uint8(tt.d), got)
		}
		if tt.d.IsFloat() {
			t.Errorf("DType(%d).IsFloat() = true, want false", uint8(tt.d))
		}
	}
}
