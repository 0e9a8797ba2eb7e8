package main

import "github.com/snapwarden/snapwarden/internal/cli"

// Short names for the exit-code contract (the same as snapwarden's).
var (
	usageErr = cli.Usage
	exitCode = cli.Code
)
