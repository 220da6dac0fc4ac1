//go:build !(js || wasip1)

package main

import (
	"os"
	"syscall"
)

// stopSignals cancel a running command: Ctrl-C, kill's default, and a closed terminal.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}
