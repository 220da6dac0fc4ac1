// Command freelunch merges fine-tuned models that share a base model.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

//go:embed usage.txt
var usageText string

// errUsage marks errors that exit with status 2.
var errUsage = errors.New("usage")

// usageError wraps a command-line mistake: it exits 2 with a hint.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// commands maps subcommand names to their functions; each owns its flag.FlagSet.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	// The first signal cancels the command, which then cleans up; a second one ends the
	// process at once, in case something does not return (a blocked system call).
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err (one line) and returns the process exit status.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "freelunch: %v\nRun 'freelunch help' for usage.\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "freelunch: %v\n", err)
		return 1
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return usageError("no command given")
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Fprint(stdout, usageText)
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		return usageError("unknown command %q", name)
	}
	return cmd(ctx, args[1:], stdout, stderr)
}
