// Command server hosts the freelunch browser app: index.html, web/ (the page's modules, the
// Worker, main.wasm, wasm_exec.js) and the demo models, all embedded in the binary. It has
// no upload endpoint: model files are read by the page and never leave the browser.
//
//	freelunch-server [-addr 127.0.0.1:8080]
//
// It serves GET and HEAD only (405 otherwise), embedded files only (no directory listings),
// with a Content-Security-Policy limited to its own origin plus 'wasm-unsafe-eval',
// X-Content-Type-Options: nosniff, read-header and idle timeouts, a small header limit, and
// a graceful shutdown on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"freelunch"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "freelunch-server:", err)
		if errors.Is(err, flag.ErrHelp) || errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// newServer returns the server with its limits: a client has 5 s to send its headers,
// which may not exceed 16 KiB, and "OPTIONS *" reaches the handler (which refuses it).
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:                      h,
		ReadHeaderTimeout:            5 * time.Second,
		ReadTimeout:                  10 * time.Second,
		IdleTimeout:                  60 * time.Second,
		MaxHeaderBytes:               16 << 10,
		DisableGeneralOptionsHandler: true,
	}
}

type usageError string

func (e usageError) Error() string { return string(e) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("freelunch-server", flag.ContinueOnError)
	fl.SetOutput(stderr)
	addr := fl.String("addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q (try -addr host:port)", fl.Arg(0)))
	}
	if _, err := fs.Stat(freelunch.Assets, "web/main.wasm"); err != nil {
		fmt.Fprintln(stderr, "warning: web/main.wasm is not embedded: build with `make build` (or `make run`), not `go build`")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := newServer(newHandler(freelunch.Assets))
	fmt.Fprintf(stdout, "freelunch: open http://%s/ (Ctrl-C stops)\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shut)
}
