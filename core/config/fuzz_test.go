package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// FuzzParse checks that Parse never panics or hangs, that every error is an *Error wrapping
// ErrConfig, and that every accepted config keeps the promises of the Config type. Seeds:
// the mergekit examples in testdata and testdata/fuzz/*.yml.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/*.yml", "testdata/fuzz/*.yml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			if filepath.Dir(name) == "testdata" {
				f.Add(readExample(f, filepath.Base(name)))
				continue
			}
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(aliasBomb()))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			var e *Error
			if !errors.Is(err, ErrConfig) || !errors.As(err, &e) {
				t.Fatalf("Parse error %v (%T) is not an *Error wrapping ErrConfig", err, err)
			}
			if c != nil {
				t.Fatalf("Parse returned a config and an error")
			}
			return
		}
		if strings.IndexFunc(c.BaseModel+c.TokenizerSource, unicode.IsControl) >= 0 {
			t.Fatalf("control character in base_model %q or tokenizer_source %q", c.BaseModel, c.TokenizerSource)
		}
		if string(c.Raw) != string(data) {
			t.Fatalf("Raw differs from the input")
		}
		if (len(c.Models) == 0) == (len(c.Slices) == 0) {
			t.Fatalf("accepted config with %d models and %d slices", len(c.Models), len(c.Slices))
		}
		sets := []Params{c.Parameters}
		for _, m := range c.Models {
			if m.Model == "" || m.Line <= 0 || strings.IndexFunc(m.Model, unicode.IsControl) >= 0 {
				t.Fatalf("bad model entry %+v", m)
			}
			sets = append(sets, m.Parameters)
		}
		for _, s := range c.Slices {
			if len(s.Sources) == 0 {
				t.Fatalf("slice without sources")
			}
			sets = append(sets, s.Parameters)
			for _, src := range s.Sources {
				if r := src.LayerRange; r[0] < 0 || r[0] >= r[1] || src.Model == "" || strings.IndexFunc(src.Model, unicode.IsControl) >= 0 {
					t.Fatalf("bad source %+v", src)
				}
				sets = append(sets, src.Parameters)
			}
		}
		for _, ps := range sets {
			for name, v := range ps {
				checkValue(t, name, v, false)
				for _, tensor := range []string{"model.layers.1.mlp.up_proj.weight", "lm_head.weight"} {
					for _, layers := range []int{0, 1, 3} {
						if val, ok := v.Resolve(tensor, LayerOf(tensor), layers); ok && val == nil {
							t.Fatalf("%s resolved to nil, true", name)
						}
					}
				}
			}
		}
	})
}

// checkValue checks that v is exactly one of scalar, gradient (of at least 2 finite
// numbers) and filter list (of scalars or gradients).
func checkValue(t *testing.T, name string, v Value, inFilter bool) {
	t.Helper()
	n := 0
	if v.Scalar != nil {
		n++
		switch v.Scalar.(type) {
		case float64, bool, string:
		default:
			t.Fatalf("%s: scalar of type %T", name, v.Scalar)
		}
	}
	if v.Gradient != nil {
		n++
		if len(v.Gradient) < 2 {
			t.Fatalf("%s: gradient of %d values", name, len(v.Gradient))
		}
	}
	if v.Filters != nil {
		n++
		if inFilter || len(v.Filters) == 0 {
			t.Fatalf("%s: nested or empty filter list", name)
		}
		for _, f := range v.Filters {
			checkValue(t, name, f.Value, true)
		}
	}
	if n != 1 || v.Line <= 0 {
		t.Fatalf("%s: value %+v", name, v)
	}
}
