package report

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/snapwarden/snapwarden/internal/plan"
)

// mdEscaper backslash-escapes the characters that are markup in a Markdown
// table cell.
var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "|", `\|`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", `\<`, ">", `\>`, "~", `\~`, "&", `\&`,
)

// md makes s one line of literal Markdown text.
func md(s string) string { return mdEscaper.Replace(Clean(s)) }

// renderMarkdown writes a title, the report's times and mode, a summary
// table, the vCenter errors and a snapshot table.
func renderMarkdown(w io.Writer, p *plan.Plan, rows []Row, opt Options) error {
	bw := bufio.NewWriter(w)
	line := func(cells ...string) {
		bw.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	bw.WriteString("# snapwarden report\n\n")
	bw.WriteString("Generated " + stamp(generatedAt(p, opt)) + ", at " + stamp(p.At) + ", mode " + md(mode(p)) + ".\n\n")

	sum := summarize(rows)
	bw.WriteString("## Summary\n\n")
	line("State", "Snapshots", "Size")
	line("---", "---:", "---:")
	for _, t := range sum.totals(true) {
		line(t.Name, strconv.Itoa(t.Count), plan.IEC(t.Bytes))
	}
	line("**total**", "**"+strconv.Itoa(sum.Total)+"**", "**"+plan.IEC(sum.bytes())+"**")

	if len(p.Errors) > 0 {
		bw.WriteString("\n## vCenter errors\n\n")
		for _, e := range p.Errors {
			bw.WriteString("- **" + md(e.VCenter) + "**: " + md(e.Error) + "\n")
		}
	}

	if probs := ProblemRows(p, opt); len(probs) > 0 {
		bw.WriteString("\n## Problems customers cannot see (support only)\n\n")
		line("Problem", "vCenter", "VM", "Datastore", "Path", "Size", "Customer", "First seen", "Detail")
		line("---", "---", "---", "---", "---", "---:", "---", "---", "---")
		for i := range probs {
			r := &probs[i]
			line(r.Kind, md(r.VCenter), md(orDash(r.VM)), md(orDash(r.Datastore)), md(orDash(r.Path)), plan.IEC(r.SizeBytes),
				md(orDash(r.Customer)), r.FirstSeen, md(r.DetailAndFix()))
		}
	}

	bw.WriteString("\n## Snapshots\n\n")
	if len(rows) == 0 {
		bw.WriteString("no snapshots\n")
		return bw.Flush()
	}
	line("State", "Next action", "vCenter", "VM", "Snapshot", "Customer", "Creator", "Age", "Size", "Depth",
		"Deadline", "Reason")
	line("---", "---", "---", "---", "---", "---", "---", "---:", "---:", "---:", "---", "---")
	for i := range rows {
		r := &rows[i]
		line(r.State, md(nextText(r, p.At)), md(r.VCenter), md(r.VM), md(r.Snapshot), md(orDash(r.Customer)),
			md(orDash(r.Creator)), ageText(r.AgeHours), plan.IEC(r.SizeBytes), strconv.Itoa(r.Depth),
			orDash(r.Deadline), md(r.Reason))
	}
	return bw.Flush()
}
