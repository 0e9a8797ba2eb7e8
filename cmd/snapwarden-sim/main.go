// Command snapwarden-sim serves simulated vCenters seeded from fleet files and
// a loopback SMTP sink, for the demo and for end-to-end tests of the built
// binaries. It writes what a client needs (CA files, password files, sim.json,
// optionally a rendered snapwarden config) to --dir, then DIR/ready last, and
// serves until SIGINT or SIGTERM.
//
// Two subcommands play the customer in the demo: `links` lists the signed
// self-service links of delivered .eml files, `open` follows one (GET, or
// POST with --post) and prints the page's gist.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/snapwarden/snapwarden/internal/cli"
)

func main() {
	os.Exit(realMain(os.Args[1:]))
}

// realMain returns the exit code instead of exiting, so deferred cleanups run.
func realMain(args []string) int {
	// The demo's customer: list a message's links, open one.
	if len(args) > 0 && (args[0] == "links" || args[0] == "open") {
		sub := runLinks
		if args[0] == "open" {
			sub = runOpen
		}
		if err := sub(args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "snapwarden-sim:", err)
			return exitCode(err)
		}
		return cli.ExitOK
	}
	o, err := parseArgs(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return cli.ExitOK
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "snapwarden-sim:", err)
		return exitCode(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal, restore the default handling: a second Ctrl-C
	// kills at once if shutting down hangs.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, o, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "snapwarden-sim:", err)
		return exitCode(err)
	}
	return cli.ExitOK
}
