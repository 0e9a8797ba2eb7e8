package notify

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/report"
)

// funcs are the helpers every template may call:
//
//	size   bytes as IEC units: "1.5 GiB"
//	age    a duration for people: "2 days 3 hours"
//	hours  a duration in hours as reports show it: "50.5h"
//	days   a duration in whole days: "14 days"
//	utc    a time in UTC: "2026-11-24 12:00 UTC" ("n/a" when zero)
//	date   a date in UTC: "2026-11-24"
//	plural n, singular, plural: the word that fits n
//	inc    n + 1, for numbered lists
//	dec    n - 1
//	oneline a string without line breaks
//	wbr    (HTML only) a name escaped, allowed to wrap after - _ . / @
var funcs = map[string]any{
	"size":    humanSize,
	"age":     humanAge,
	"hours":   hoursOf,
	"days":    daysOf,
	"utc":     utc,
	"date":    dateOf,
	"plural":  plural,
	"inc":     func(i int) int { return i + 1 },
	"add":     func(a, b int) int { return a + b },
	"dec":     func(i int) int { return i - 1 },
	"oneline": oneLine,
	"wbr":     report.Breakable,
}

// humanSize renders bytes in IEC units with at most one decimal.
func humanSize(b int64) string {
	const unit = 1024
	if b < unit {
		if b == 1 {
			return "1 byte"
		}
		return strconv.FormatInt(b, 10) + " bytes"
	}
	v, exp := float64(b), 0
	for v >= unit && exp < 6 {
		v /= unit
		exp++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + []string{"", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}[exp]
}

// humanAge renders a duration in days and hours, or hours and minutes when
// shorter than a day.
func humanAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	days := int(d / (24 * time.Hour))
	hours := int(d % (24 * time.Hour) / time.Hour)
	mins := int(d % time.Hour / time.Minute)
	switch {
	case days > 0 && hours > 0:
		return plural(days, "1 day", fmt.Sprintf("%d days", days)) + " " + plural(hours, "1 hour", fmt.Sprintf("%d hours", hours))
	case days > 0:
		return plural(days, "1 day", fmt.Sprintf("%d days", days))
	case hours > 0 && mins > 0:
		return plural(hours, "1 hour", fmt.Sprintf("%d hours", hours)) + " " + plural(mins, "1 minute", fmt.Sprintf("%d minutes", mins))
	case hours > 0:
		return plural(hours, "1 hour", fmt.Sprintf("%d hours", hours))
	default:
		return plural(mins, "1 minute", fmt.Sprintf("%d minutes", mins))
	}
}

// hoursOf renders a duration as hours with one decimal, like the reports.
func hoursOf(d time.Duration) string {
	return strings.TrimSuffix(strconv.FormatFloat(roundHours(d), 'f', 1, 64), ".0") + "h"
}

func roundHours(d time.Duration) float64 {
	h := d.Hours()
	if h < 0 {
		h = 0
	}
	return float64(int64(h*10+0.5)) / 10
}

// daysOf renders a duration in whole days, or hours when under two days.
func daysOf(d time.Duration) string {
	if d < 48*time.Hour {
		return plural(int(d/time.Hour), "1 hour", fmt.Sprintf("%d hours", int(d/time.Hour)))
	}
	n := int(d / (24 * time.Hour))
	return fmt.Sprintf("%d days", n)
}

// utc renders a time in UTC to the minute.
func utc(t time.Time) string {
	if t.IsZero() {
		return "n/a"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// dateOf renders the UTC date of a time.
func dateOf(t time.Time) string {
	if t.IsZero() {
		return "n/a"
	}
	return t.UTC().Format("2006-01-02")
}

// plural returns one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
