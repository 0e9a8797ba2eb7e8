package report

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/snapwarden/snapwarden/internal/plan"
)

const (
	defaultWidth = 120
	columnGap    = "  "
	// minShrink is the narrowest a flexible column is shrunk to.
	minShrink = 3
)

// column is one column of a text table of R rows.
type column[R any] struct {
	header string
	right  bool // right-aligned (numbers)
	flex   bool // shrunk first when the table is too wide (names)
	// keepEnd cuts a shrunk cell at its start: a file path's end names the file.
	keepEnd bool
	cell    func(r *R, p *plan.Plan) string
}

var tableColumns = []column[Row]{
	{header: "STATE", cell: func(r *Row, _ *plan.Plan) string { return r.State }},
	{header: "NEXT", cell: func(r *Row, p *plan.Plan) string { return nextText(r, p.At) }},
	{header: "VM", flex: true, cell: func(r *Row, _ *plan.Plan) string { return Clean(r.VM) }},
	{header: "SNAPSHOT", flex: true, cell: func(r *Row, _ *plan.Plan) string { return Clean(r.Snapshot) }},
	{header: "CUSTOMER", flex: true, cell: func(r *Row, _ *plan.Plan) string { return orDash(Clean(r.Customer)) }},
	{header: "AGE", right: true, cell: func(r *Row, _ *plan.Plan) string { return ageText(r.AgeHours) }},
	{header: "SIZE", right: true, cell: func(r *Row, _ *plan.Plan) string { return plan.IEC(r.SizeBytes) }},
	{header: "DEPTH", right: true, cell: func(r *Row, _ *plan.Plan) string { return strconv.Itoa(r.Depth) }},
	{header: "CREATOR", flex: true, cell: func(r *Row, _ *plan.Plan) string { return orDash(Clean(r.Creator)) }},
}

// renderTable writes the rows as a table that fits opt.Width, a summary line
// and one line per vCenter error.
func renderTable(w io.Writer, p *plan.Plan, rows []Row, opt Options) error {
	width := opt.Width
	if width <= 0 {
		width = defaultWidth
	}
	bw := bufio.NewWriter(w)
	if len(rows) == 0 {
		bw.WriteString("no snapshots\n")
	} else {
		writeTable(bw, tableColumns, rows, p, width)
		bw.WriteByte('\n')
		for _, l := range wrap(summaryLine(summarize(rows), len(p.Errors)), width) {
			bw.WriteString(l)
			bw.WriteByte('\n')
		}
	}
	for _, e := range p.Errors {
		for _, l := range wrap("error: vcenter "+Clean(e.VCenter)+": "+Clean(e.Error), width) {
			bw.WriteString(l)
			bw.WriteByte('\n')
		}
	}
	if probs := ProblemRows(p, opt); len(probs) > 0 {
		bw.WriteByte('\n')
		for _, l := range wrap(plural(len(probs), "problem")+" customers cannot see (support only):", width) {
			bw.WriteString(l)
			bw.WriteByte('\n')
		}
		writeTable(bw, problemTable, probs, p, width)
	}
	return bw.Flush()
}

// writeTable writes a header and one line per row, each column as wide as
// its widest cell, flexible columns shrunk until the table fits width.
func writeTable[R any](bw *bufio.Writer, cols []column[R], rows []R, p *plan.Plan, width int) {
	cells := make([][]string, 0, len(rows)+1)
	header := make([]string, len(cols))
	flex := make([]bool, len(cols))
	for i, c := range cols {
		header[i], flex[i] = c.header, c.flex
	}
	cells = append(cells, header)
	for i := range rows {
		line := make([]string, len(cols))
		for j, c := range cols {
			line[j] = c.cell(&rows[i], p)
		}
		cells = append(cells, line)
	}
	widths := fitWidths(cells, flex, width)
	var b strings.Builder
	for _, line := range cells {
		b.Reset()
		for j, c := range cols {
			cell := Truncate(line[j], widths[j])
			if c.keepEnd {
				cell = truncateStart(line[j], widths[j])
			}
			pad := strings.Repeat(" ", widths[j]-utf8.RuneCountInString(cell))
			if j > 0 {
				b.WriteString(columnGap)
			}
			if c.right {
				b.WriteString(pad)
				b.WriteString(cell)
			} else {
				b.WriteString(cell)
				b.WriteString(pad)
			}
		}
		bw.WriteString(Truncate(strings.TrimRight(b.String(), " "), width))
		bw.WriteByte('\n')
	}
}

// truncateStart shortens s to at most n runes, starting with "…" when cut.
func truncateStart(s string, n int) string {
	runes := []rune(s)
	if len(runes) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	return "…" + string(runes[len(runes)-n+1:])
}

// fitWidths returns each column's width: its widest cell, with the widest
// flexible column shrunk one rune at a time while the table is wider than
// width. Lines still too wide (very small widths) are cut by the caller.
func fitWidths(cells [][]string, flex []bool, width int) []int {
	widths := make([]int, len(flex))
	for _, line := range cells {
		for j, cell := range line {
			widths[j] = max(widths[j], utf8.RuneCountInString(cell))
		}
	}
	total := len(columnGap) * (len(widths) - 1)
	for _, n := range widths {
		total += n
	}
	for total > width {
		widest := -1
		for j, f := range flex {
			if f && widths[j] > minShrink && (widest < 0 || widths[j] > widths[widest]) {
				widest = j
			}
		}
		if widest < 0 {
			break
		}
		widths[widest]--
		total--
	}
	return widths
}

// summaryLine is "6 snapshots: 2 overdue (3.0 GiB), 1 warning (1.0 GiB); 1
// vCenter error".
func summaryLine(s summary, errors int) string {
	var b strings.Builder
	b.WriteString(plural(s.Total, "snapshot"))
	for i, t := range s.totals(false) {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(t.Count) + " " + t.Name + " (" + plan.IEC(t.Bytes) + ")")
	}
	if errors > 0 {
		b.WriteString("; " + plural(errors, "vCenter error"))
	}
	return b.String()
}
