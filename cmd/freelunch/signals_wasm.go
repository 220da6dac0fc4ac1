//go:build js || wasip1

package main

import "os"

// stopSignals: these ports have no SIGTERM or SIGHUP (the CLI is not meant to run there;
// this keeps `GOOS=js go vet ./...` building it).
var stopSignals = []os.Signal{os.Interrupt}
