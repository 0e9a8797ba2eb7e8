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
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	console := c.Format == "console" || (tty && (c.Format == "" || c.Format == "auto"))
	if console {
		// Colour codes only for a terminal: in a pipe or a file they are noise.
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05", NoColor: !tty}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}
