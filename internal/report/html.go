package report

import (
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// htmlPage is what the HTML template shows.
type htmlPage struct {
	Generated, At, Mode string
	States              []StateTotal
	Total               int
	TotalSize           string
	Errors              []facts.VCenterError
	Rows                []Display
	Problems            []ProblemDisplay
}

// ProblemDisplay is a problem with its names cleaned and its size for
// people, as the HTML report and the console show it.
type ProblemDisplay struct {
	ProblemRow
	Size string
}

// DisplayProblems renders the plan's problems that opt keeps for people.
func DisplayProblems(p *plan.Plan, opt Options) []ProblemDisplay {
	var out []ProblemDisplay
	for _, r := range ProblemRows(p, opt) {
		r.Detail = r.DetailAndFix()
		for _, s := range []*string{&r.VCenter, &r.Datacenter, &r.VM, &r.Datastore, &r.Path, &r.Customer, &r.Detail, &r.FixWhy} {
			*s = Clean(*s)
		}
		out = append(out, ProblemDisplay{ProblemRow: r, Size: plan.IEC(r.SizeBytes)})
	}
	return out
}

// StateTotal is one line of the summary by state.
type StateTotal struct {
	Name  string
	Count int
	Size  string
}

// Totals summarises rows by state, most urgent first, listing every state,
// with the total count and size.
func Totals(rows []Row) (states []StateTotal, total int, size string) {
	sum := summarize(rows)
	for _, t := range sum.totals(true) {
		states = append(states, StateTotal{Name: t.Name, Count: t.Count, Size: plan.IEC(t.Bytes)})
	}
	return states, sum.Total, plan.IEC(sum.bytes())
}

// Display is a row with its names cleaned and its cells rendered for people,
// as the HTML report and the support console show them.
type Display struct {
	Row
	Next, Age, Size string
	// When, DueAt and Seen are Created, Deadline and FirstSeen for people:
	// "2026-11-24 12:00" (UTC; "" where unknown).
	When, DueAt, Seen string
}

// DisplayRow renders r for people; at is the plan's time, which the next
// action is counted from.
func DisplayRow(r Row, at time.Time) Display {
	for _, s := range []*string{&r.VM, &r.Folder, &r.Snapshot, &r.Description, &r.Customer, &r.Creator,
		&r.Reason, &r.Why} {
		*s = Clean(*s)
	}
	return Display{Row: r, Next: nextText(&r, at), Age: ageText(r.AgeHours), Size: plan.IEC(r.SizeBytes),
		When: Minutes(r.Created), DueAt: Minutes(r.Deadline), Seen: Minutes(r.FirstSeen)}
}

// Minutes shortens an RFC 3339 UTC stamp to "2006-01-02 15:04", which wraps
// between date and time in a narrow column; other text is returned as is.
func Minutes(stamp string) string {
	t, err := time.Parse(time.RFC3339, stamp)
	if err != nil {
		return stamp
	}
	return t.UTC().Format("2006-01-02 15:04")
}

// breakAfter are the separators a long name may wrap after.
const breakAfter = "-_./@"

// Breakable escapes a name for HTML (after Clean) and lets it wrap after its
// separators (-, _, ., /, @) with <wbr>, so a narrow column breaks
// "acme-app01" as "acme-" / "app01" and never inside a word.
func Breakable(s string) template.HTML {
	s = Clean(s)
	var b strings.Builder
	for {
		i := strings.IndexAny(s, breakAfter)
		if i < 0 {
			b.WriteString(template.HTMLEscapeString(s))
			return template.HTML(b.String())
		}
		b.WriteString(template.HTMLEscapeString(s[:i+1]))
		b.WriteString("<wbr>")
		s = s[i+1:]
	}
}

// Stylesheet is the layout the HTML report and the support console share:
// a table of seven columns that fits 1280 px; below 760 px a table of class
// cards turns into one card per row (each cell labelled by its data-label), with long names
// wrapping at the <wbr> Breakable inserts and, for a name without separators,
// inside it only as a last resort (overflow-wrap: break-word does not narrow
// a column the way anywhere does).
const Stylesheet = `
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; padding: 1.5rem; color: #1f2328; background: #fff; line-height: 1.4; overflow-wrap: break-word; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
.meta { color: #57606a; margin: 0; }
table { border-collapse: collapse; font-size: .85rem; }
table.rows, table.cards { width: 100%; table-layout: fixed; }
table.rows col:nth-child(1) { width: 12%; } table.rows col:nth-child(2) { width: 17%; }
table.rows col:nth-child(3) { width: 20%; } table.rows col:nth-child(4), table.rows col:nth-child(5), table.rows col:nth-child(6) { width: 10%; }
table.rows col:nth-child(7) { width: 21%; }
th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #f6f8fa; }
.num { text-align: right; white-space: nowrap; }
.sub { color: #57606a; font-size: .78rem; }
.due { font-weight: 600; }
.errors li { color: #cf222e; }
.state-overdue { background: #ffebe9; }
.state-overdue td:first-child { color: #cf222e; font-weight: 600; }
.state-warning { background: #fff8c5; }
.state-warning td:first-child { color: #9a6700; font-weight: 600; }
.state-ok td:first-child { color: #1a7f37; }
.state-managed { background: #ddf4ff; }
.state-exempt { background: #f6f8fa; color: #57606a; }
@media (max-width: 760px) {
	body { padding: .75rem; }
	table.cards, table.cards tbody, table.cards tr, table.cards td { display: block; width: 100%; }
	table.cards thead, table.cards colgroup { display: none; }
	table.cards tr { border: 1px solid #d0d7de; border-radius: 6px; margin: 0 0 .75rem; padding: .25rem 0; }
	table.cards td { border: 0; padding: .2rem .6rem; }
	table.cards td::before { content: attr(data-label); display: block; color: #57606a; font-size: .72rem; text-transform: uppercase; letter-spacing: .03em; }
}
`

// RowsTemplate defines the template "rows": a []Display as the snapshot
// table, shared by the report and the console. It calls vmName and
// customerName on a Display for the names (the console makes them links).
const RowsTemplate = `{{define "rows"}}{{if .}}<table class="rows cards">
<colgroup><col><col><col><col><col><col><col></colgroup>
<thead><tr><th>State / next</th><th>VM</th><th>Snapshot</th><th>Customer</th><th>Age / size</th><th>Deadline</th><th>Reason / why</th></tr></thead>
<tbody>
{{range .}}<tr class="state-{{.State}}">
<td data-label="State / next">{{.State}}<div class="{{if .Due}}due{{end}}">{{.Next}}</div><div class="sub">{{.ActionReason}}</div></td>
<td data-label="VM">{{vmName .}}<div class="sub">{{.VCenter}}{{if .Datacenter}} / {{.Datacenter}}{{end}}</div><div class="sub">{{wbr .Folder}}</div></td>
<td data-label="Snapshot">{{wbr .Snapshot}}<div class="sub">{{.SnapshotID}}{{if .Current}} · current{{end}}{{if gt .Depth 1}} · depth {{.Depth}}{{end}}</div>{{if .Description}}<div class="sub">{{.Description}}</div>{{end}}{{if .Creator}}<div class="sub">by {{wbr .Creator}}</div>{{end}}</td>
<td data-label="Customer">{{if .Customer}}{{customerName .}}{{else}}-{{end}}</td>
<td data-label="Age / size">{{.Age}} · {{.Size}}<div class="sub">{{.When}}</div></td>
<td data-label="Deadline">{{or .DueAt "-"}}</td>
<td data-label="Reason / why">{{.Reason}}<div class="sub">{{.Why}}</div></td>
</tr>
{{end}}</tbody>
</table>
{{else}}<p>no snapshots</p>
{{end}}{{end}}`

// ProblemsTemplate defines the template "problems": a []ProblemDisplay as
// a table, shared by the report and the console. It calls problemVM on a
// ProblemDisplay for the VM's name (the console makes it a link).
const ProblemsTemplate = `{{define "problems"}}<table class="cards">
<thead><tr><th>Problem</th><th>VM</th><th>Datastore / path</th><th>Size</th><th>Customer</th><th>First seen</th><th>Detail</th></tr></thead>
<tbody>
{{range .}}<tr class="problem">
<td data-label="Problem">{{wbr .Kind}}</td>
<td data-label="VM">{{if .VM}}{{problemVM .}}{{else}}-{{end}}<div class="sub">{{.VCenter}}{{if .Datacenter}} / {{.Datacenter}}{{end}}</div>{{if .VMID}}<div class="sub">{{wbr .VMID}}</div>{{end}}</td>
<td data-label="Datastore / path">{{or .Datastore "-"}}{{if .Path}}<div class="sub">{{wbr .Path}}</div>{{end}}</td>
<td data-label="Size">{{.Size}}</td>
<td data-label="Customer">{{if .Customer}}{{wbr .Customer}}{{else}}-{{end}}</td>
<td data-label="First seen">{{minutes .FirstSeen}}</td>
<td data-label="Detail">{{.Detail}}</td>
</tr>
{{end}}</tbody>
</table>
{{end}}`

var htmlTemplate = template.Must(template.Must(template.New("report").Funcs(template.FuncMap{
	"wbr": Breakable, "minutes": Minutes, "css": func() template.CSS { return template.CSS(Stylesheet) },
	"vmName": func(d Display) template.HTML { return Breakable(d.VM) }, "customerName": func(d Display) template.HTML { return Breakable(d.Customer) },
	"problemVM": func(d ProblemDisplay) template.HTML { return Breakable(d.VM) },
}).Parse(RowsTemplate + ProblemsTemplate)).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>snapwarden report</title>
<style>{{css}}</style>
</head>
<body>
<h1>snapwarden report</h1>
<p class="meta">Generated {{.Generated}} · at {{.At}} · mode {{.Mode}}</p>

<h2>Summary</h2>
<table>
<thead><tr><th>State</th><th>Snapshots</th><th>Size</th></tr></thead>
<tbody>
{{range .States}}<tr class="state-{{.Name}}"><td>{{.Name}}</td><td class="num">{{.Count}}</td><td class="num">{{.Size}}</td></tr>
{{end}}<tr><th>total</th><th class="num">{{.Total}}</th><th class="num">{{.TotalSize}}</th></tr>
</tbody>
</table>
{{if .Errors}}
<h2>vCenter errors</h2>
<ul class="errors">
{{range .Errors}}<li><strong>{{.VCenter}}</strong>: {{.Error}}</li>
{{end}}</ul>
{{end}}{{if .Problems}}
<h2>Problems customers cannot see (support only)</h2>
{{template "problems" .Problems}}{{end}}
<h2>Snapshots</h2>
{{template "rows" .Rows}}
</body>
</html>
`))

// renderHTML writes the report as one self-contained HTML page; the template
// escapes every value, and control characters are cleaned from names.
func renderHTML(w io.Writer, p *plan.Plan, rows []Row, opt Options) error {
	page := htmlPage{
		Generated: stamp(generatedAt(p, opt)),
		At:        stamp(p.At),
		Mode:      mode(p),
		Errors:    p.Errors,
		Rows:      make([]Display, len(rows)),
	}
	page.States, page.Total, page.TotalSize = Totals(rows)
	for i := range rows {
		page.Rows[i] = DisplayRow(rows[i], p.At)
	}
	page.Problems = DisplayProblems(p, opt)
	return htmlTemplate.Execute(w, page)
}
