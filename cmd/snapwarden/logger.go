package main

import (
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/config"
)

// newLogger builds the process logger from the config's log section: JSON for
// journald and log shippers, a console format when a person is watching.
func newLogger(w io.Writer, c config.Log) (zerolog.Logger, error) {
	level := zerolog.InfoLevel
	if c.Level != "" {
		l, err := zerolog.ParseLevel(c.Level)
		if err != nil {
			return zerolog.Nop(), fmt.Errorf("log.level %q: %w", c.Level, err)
		}
		level = l
	}
	console := c.Format == "console"
	if c.Format == "" || c.Format == "auto" {
		if f, ok := w.(*os.File); ok {
			console = isatty.IsTerminal(f.Fd())
		}
	}
	if console {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05"}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}
