// Package cli holds the exit-code contract both commands keep: 0 ok,
// 1 runtime failure, 2 bad config or usage.
package cli

import "errors"

// Exit codes of the CLI contract.
const (
	ExitOK      = 0
	ExitRuntime = 1 // a vCenter, SMTP server, ledger or file failed
	ExitUsage   = 2 // bad config, flags or input files
)

// exitError carries the exit code an error should end the process with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Usage marks err as a config or usage error (exit 2).
func Usage(err error) error { return &exitError{ExitUsage, err} }

// Runtime marks err as a runtime failure (exit 1).
func Runtime(err error) error { return &exitError{ExitRuntime, err} }

// Code maps an error to the process exit code; unmarked errors are runtime
// failures.
func Code(err error) int {
	if err == nil {
		return ExitOK
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return ExitRuntime
}
