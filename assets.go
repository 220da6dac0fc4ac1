// Package freelunch holds the browser app's files for cmd/server: index.html and web/,
// including the build outputs main.wasm, wasm_exec.js and the demo models, which
// `make build` puts there before it builds the server (they are not committed).
//
// The package sits at the repository root because go:embed reads only files at or below
// the embedding package's folder. Embedding the whole web folder, not its files by name,
// lets `go vet ./...` and `go test ./...` build on a clean clone where the build outputs
// do not exist yet; the server says so when main.wasm is missing.
package freelunch

import "embed"

// Assets holds index.html and web/.
//
//go:embed index.html web
var Assets embed.FS
