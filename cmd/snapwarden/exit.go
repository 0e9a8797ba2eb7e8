package main

import "github.com/snapwarden/snapwarden/internal/cli"

// Short names for the exit-code contract, used throughout the commands.
var (
	usageErr   = cli.Usage
	runtimeErr = cli.Runtime
	exitCode   = cli.Code
)
