package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/snapwarden/snapwarden/internal/plan"
)

// Format is an output format of the report.
type Format int

// The report formats.
const (
	Table Format = iota
	JSON
	CSV
	Markdown
	HTML
)

var formatNames = [...]string{"table", "json", "csv", "markdown", "html"}

// String returns the format's name as ParseFormat reads it.
func (f Format) String() string {
	if f >= 0 && int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("format(%d)", int(f))
}

// ParseFormat reads a format name: table, json, csv, markdown (or md), html.
func ParseFormat(s string) (Format, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	if name == "md" {
		return Markdown, nil
	}
	for i, n := range formatNames {
		if n == name {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("unknown report format %q: use one of table, json, csv, markdown (md), html", s)
}

// Render writes the report of p in format f. A nil plan renders as an empty
// one.
func Render(w io.Writer, f Format, p *plan.Plan, opt Options) error {
	if p == nil {
		p = &plan.Plan{}
	}
	var render func(io.Writer, *plan.Plan, []Row, Options) error
	switch f {
	case Table:
		render = renderTable
	case JSON:
		render = renderJSON
	case CSV:
		render = renderCSV
	case Markdown:
		render = renderMarkdown
	case HTML:
		render = renderHTML
	default:
		return fmt.Errorf("report: unknown format %s", f)
	}
	return render(w, p, Rows(p, opt), opt)
}
