package main

import "errors"

// Exit codes, as in the snapwarden CLI contract.
const (
	exitOK      = 0
	exitRuntime = 1 // a simulator, the SMTP sink or a file write failed
	exitUsage   = 2 // bad flags, fleet file or config template
)

// exitError carries the exit code an error should end the process with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error { return &exitError{exitUsage, err} }

// exitCode maps an error to the process exit code; unknown errors are runtime failures.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitRuntime
}
