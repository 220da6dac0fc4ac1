package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var assets = fstest.MapFS{
	"index.html":                   {Data: []byte("<!doctype html><title>freelunch</title>")},
	"web/app.js":                   {Data: []byte("export {};\n")},
	"web/main.wasm":                {Data: []byte("\x00asm\x01\x00\x00\x00")},
	"web/demo/a/model.safetensors": {Data: []byte("\x02\x00\x00\x00\x00\x00\x00\x00{}")},
	"web/.hidden":                  {Data: []byte("secret")},
}

// serve runs run() on a free loopback port and returns its base URL.
func serve(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, pw, io.Discard) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run after shutdown = %v, want nil", err)
		}
	})
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("server printed %q, want a URL", line)
	}
	return strings.Fields(line[i:])[0]
}

// raw sends a request line as written (no client-side cleaning) and returns the status.
func raw(t *testing.T, base, request string) int {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s\r\nHost: x\r\nConnection: close\r\n\r\n", request)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", request, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestHandler(t *testing.T) {
	h := newHandler(assets)
	srv := newServer(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/"

	tests := []struct {
		req  string
		want int
	}{
		{"GET / HTTP/1.1", 200},
		{"HEAD / HTTP/1.1", 200},
		{"GET /index.html HTTP/1.1", 200},
		{"GET /web/app.js HTTP/1.1", 200},
		{"GET /web/main.wasm HTTP/1.1", 200},
		{"GET /web/demo/a/model.safetensors HTTP/1.1", 200},
		{"POST / HTTP/1.1", 405},
		{"PUT /web/app.js HTTP/1.1", 405},
		{"DELETE /web/app.js HTTP/1.1", 405},
		{"OPTIONS * HTTP/1.1", 405},
		{"GET /web/ HTTP/1.1", 404},
		{"GET /web HTTP/1.1", 404},
		{"GET /web/demo HTTP/1.1", 404},
		{"GET /web/.hidden HTTP/1.1", 404},
		{"GET /../index.html HTTP/1.1", 404},
		{"GET /web/../index.html HTTP/1.1", 404},
		{"GET /web/%2e%2e/index.html HTTP/1.1", 404},
		{"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1", 404},
		{"GET /web/..%2findex.html HTTP/1.1", 404},
		{"GET /web\\..\\index.html HTTP/1.1", 404},
		{"GET /web%5c..%5cindex.html HTTP/1.1", 404},
		{"GET //etc/passwd HTTP/1.1", 404},
		{"GET /etc/passwd HTTP/1.1", 404},
		{"GET /main.go HTTP/1.1", 404},
		{"GET /web/app.js%00 HTTP/1.1", 404},
	}
	for _, tt := range tests {
		if got := raw(t, base, tt.req); got != tt.want {
			t.Errorf("%s = %d, want %d", tt.req, got, tt.want)
		}
	}

	resp, err := http.Get(base + "web/main.wasm")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k, want := range map[string]string{
		"Content-Type":           "application/wasm",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET /web/main.wasm: %s = %q, want %q", k, got, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "'wasm-unsafe-eval'") {
		t.Errorf("Content-Security-Policy = %q, want the own origin and 'wasm-unsafe-eval'", csp)
	}
	resp, err = http.Get(base + "web/demo/a/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); got != "application/octet-stream" {
		t.Errorf("GET .safetensors: Content-Type = %q, want application/octet-stream", got)
	}
	resp, err = http.Post(base, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST / = %d, Allow %q; want 405, Allow GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestServerLimits(t *testing.T) {
	base := serve(t)
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("server URL %s, want 127.0.0.1 (loopback by default)", base)
	}
	addr := strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/")

	// Oversized request headers: 431.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("a", 64<<10))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	c.Close()
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header: %v %v, want 431", resp, err)
	}

	// A slow client that never finishes its headers is disconnected (ReadHeaderTimeout).
	if testing.Short() {
		return
	}
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	start := time.Now()
	io.Copy(io.Discard, c)
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("slow client kept for %v, want the read-header timeout (5s)", el)
	}
}
