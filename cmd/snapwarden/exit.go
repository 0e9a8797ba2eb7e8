package main

import "errors"

// Exit codes of the CLI contract.
const (
	exitOK      = 0
	exitRuntime = 1 // a vCenter, SMTP server or the ledger failed
	exitConfig  = 2 // bad config file or bad usage
)

// exitError carries the exit code an error should end the process with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(err error) error   { return &exitError{exitConfig, err} }
func runtimeErr(err error) error { return &exitError{exitRuntime, err} }

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
