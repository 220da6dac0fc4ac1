package freelunch

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayout checks design.md §1's boundaries: every wasm/ file carries the js && wasm
// build tag, and only wasm/ imports syscall/js or github.com/hack-pad/safejs.
func TestLayout(t *testing.T) {
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (p == "node_modules" || strings.HasPrefix(d.Name(), ".") && p != ".") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		src := string(data)
		inWasm := strings.HasPrefix(p, "wasm"+string(filepath.Separator))
		if inWasm && !strings.HasPrefix(src, "//go:build js && wasm\n") {
			t.Errorf("%s: want //go:build js && wasm on the first line", p)
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, data, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if v := strings.Trim(imp.Path.Value, `"`); !inWasm && (v == "syscall/js" || v == "github.com/hack-pad/safejs") {
				t.Errorf("%s imports %s; only wasm/ may", p, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
