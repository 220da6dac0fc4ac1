package main

import (
	"bytes"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// csp allows the page's own origin only; 'wasm-unsafe-eval' lets it compile main.wasm, and
// blob: is where the finished download's object URL points.
const csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// newHandler serves the regular files of assets: "/" is index.html, anything else must
// name a file exactly. Folders, dot files, backslashes and ".." are not found.
func newHandler(assets fs.FS) http.Handler {
	start := time.Now()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := assetName(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		data, err := fs.ReadFile(assets, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		// The files change only with a rebuild of the server: revalidate each time.
		h.Set("Cache-Control", "no-cache")
		if mime.TypeByExtension(path.Ext(name)) == "" {
			h.Set("Content-Type", "application/octet-stream") // never sniffed
		}
		http.ServeContent(w, r, name, start, bytes.NewReader(data))
	})
}

// assetName maps a URL path to a file name in the assets, and reports whether it may be
// one: a clean relative path with no "..", no backslash and no dot-file component.
func assetName(p string) (string, bool) {
	if p == "/" {
		return "index.html", true
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return "", false
	}
	name := p[1:]
	if name == "" || path.Clean(name) != name || !fs.ValidPath(name) {
		return "", false
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ".") {
			return "", false
		}
	}
	return name, true
}
