package report

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Clean makes a customer-controlled string safe for one line of text: each
// run of control characters (CR, LF, tab, ESC, ...) becomes one space, and
// bidirectional overrides, which can disguise text, are dropped.
func Clean(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) || isBidi(r) }) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case isBidi(r):
		case unicode.IsControl(r):
			if !space {
				b.WriteByte(' ')
			}
			space = true
		default:
			b.WriteRune(r)
			space = false
		}
	}
	return b.String()
}

// isBidi reports whether r is a bidirectional embedding, override or isolate.
func isBidi(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

// Truncate shortens s to at most n runes, ending in "…" when cut.
func Truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}

// wrap breaks s into lines of at most width runes, at spaces where it can;
// continuation lines are indented by two spaces.
func wrap(s string, width int) []string {
	const indent = "  "
	var lines []string
	prefix := ""
	for {
		room := width - len(prefix)
		runes := []rune(s)
		if len(runes) <= room || room < 1 {
			return append(lines, prefix+s)
		}
		cut := room
		for i := room; i > room/2; i-- {
			if runes[i] == ' ' {
				cut = i
				break
			}
		}
		lines = append(lines, prefix+strings.TrimRight(string(runes[:cut]), " "))
		s = strings.TrimLeft(string(runes[cut:]), " ")
		prefix = indent
	}
}

// ageText renders an age in hours, or in days above 72 hours: "50.5h", "3.2d".
func ageText(hours float64) string {
	if hours > 72 {
		return fmt.Sprintf("%.1fd", hours/24)
	}
	return fmt.Sprintf("%.1fh", hours)
}

// nextText renders a row's next action and when: "escalate now" when due,
// "remind in 5h" within two days of at, else "warn 11-26 14:00" (UTC, with
// the year when it differs from at's).
func nextText(r *Row, at time.Time) string {
	switch {
	case r.Due:
		return r.NextAction + " now"
	case r.nextAt.IsZero() || r.NextAction == "none":
		return r.NextAction
	}
	d := r.nextAt.Sub(at)
	switch {
	case d > 0 && d < time.Hour:
		return fmt.Sprintf("%s in %dm", r.NextAction, int(math.Ceil(d.Minutes())))
	case d > 0 && d < 48*time.Hour:
		return fmt.Sprintf("%s in %dh", r.NextAction, int(d.Round(time.Hour)/time.Hour))
	}
	t := r.nextAt.UTC()
	if t.Year() == at.UTC().Year() {
		return r.NextAction + " " + t.Format("01-02 15:04")
	}
	return r.NextAction + " " + t.Format("2006-01-02")
}

// orDash returns s, or "-" when s is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// plural renders a count with its noun, adding "s" unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
