package report

import (
	"html/template"
	"io"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// htmlPage is what the HTML template shows.
type htmlPage struct {
	Generated, At, Mode string
	States              []htmlState
	Total               int
	TotalSize           string
	Errors              []facts.VCenterError
	Rows                []htmlRow
	Problems            []htmlProblem
}

// htmlProblem is a problem with its names cleaned and its size for people.
type htmlProblem struct {
	ProblemRow
	Size string
}

// htmlState is one line of the summary.
type htmlState struct {
	Name  string
	Count int
	Size  string
}

// htmlRow is a row with its names cleaned and its cells rendered for people.
type htmlRow struct {
	Row
	Next, Age, Size string
}

var htmlTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>snapwarden report</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem; color: #1f2328; background: #fff; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
.meta { color: #57606a; margin: 0; }
table { border-collapse: collapse; font-size: .85rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left; vertical-align: top; }
thead th { background: #f6f8fa; position: sticky; top: 0; }
.num { text-align: right; white-space: nowrap; }
.nowrap { white-space: nowrap; }
.long { max-width: 22rem; overflow-wrap: anywhere; }
.sub { color: #57606a; font-size: .78rem; overflow-wrap: anywhere; }
.due { font-weight: 600; }
.errors li { color: #cf222e; overflow-wrap: anywhere; }
.state-overdue { background: #ffebe9; }
.state-overdue td:first-child { color: #cf222e; font-weight: 600; }
.state-warning { background: #fff8c5; }
.state-warning td:first-child { color: #9a6700; font-weight: 600; }
.state-ok td:first-child { color: #1a7f37; }
.state-managed { background: #ddf4ff; }
.state-exempt { background: #f6f8fa; color: #57606a; }
</style>
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
<table>
<thead><tr><th>Problem</th><th>vCenter</th><th>VM</th><th>Datastore</th><th>Path</th><th>Size</th><th>Customer</th><th>First seen</th><th>Detail</th></tr></thead>
<tbody>
{{range .Problems}}<tr class="problem">
<td class="nowrap">{{.Kind}}</td>
<td>{{.VCenter}}<div class="sub">{{.Datacenter}}</div></td>
<td class="long">{{or .VM "-"}}{{if .VMID}}<div class="sub">{{.VMID}}</div>{{end}}</td>
<td>{{or .Datastore "-"}}</td>
<td class="long">{{or .Path "-"}}</td>
<td class="num">{{.Size}}</td>
<td>{{or .Customer "-"}}</td>
<td class="nowrap">{{.FirstSeen}}</td>
<td class="long">{{.Detail}}</td>
</tr>
{{end}}</tbody>
</table>
{{end}}
<h2>Snapshots</h2>
{{if .Rows}}<table>
<thead><tr><th>State</th><th>Next action</th><th>vCenter</th><th>VM</th><th>Snapshot</th><th>Description</th><th>Customer</th><th>Creator</th><th>Created</th><th>Age</th><th>Size</th><th>Depth</th><th>Deadline</th><th>Reason</th><th>Why</th></tr></thead>
<tbody>
{{range .Rows}}<tr class="state-{{.State}}">
<td>{{.State}}</td>
<td class="nowrap{{if .Due}} due{{end}}">{{.Next}}<div class="sub">{{.ActionReason}}</div></td>
<td>{{.VCenter}}<div class="sub">{{.Datacenter}}</div></td>
<td class="long">{{.VM}}<div class="sub">{{.Folder}}</div></td>
<td class="long">{{.Snapshot}}<div class="sub">{{.SnapshotID}}{{if .Current}} · current{{end}}</div></td>
<td class="long">{{.Description}}</td>
<td>{{or .Customer "-"}}</td>
<td>{{or .Creator "-"}}</td>
<td class="nowrap">{{.Created}}</td>
<td class="num">{{.Age}}</td>
<td class="num">{{.Size}}</td>
<td class="num">{{.Depth}}</td>
<td class="nowrap">{{or .Deadline "-"}}</td>
<td class="long">{{.Reason}}</td>
<td class="long">{{.Why}}</td>
</tr>
{{end}}</tbody>
</table>
{{else}}<p>no snapshots</p>
{{end}}</body>
</html>
`))

// renderHTML writes the report as one self-contained HTML page; the template
// escapes every value, and control characters are cleaned from names.
func renderHTML(w io.Writer, p *plan.Plan, rows []Row, opt Options) error {
	sum := summarize(rows)
	page := htmlPage{
		Generated: stamp(generatedAt(p, opt)),
		At:        stamp(p.At),
		Mode:      mode(p),
		Total:     sum.Total,
		TotalSize: plan.IEC(sum.bytes()),
		Errors:    p.Errors,
		Rows:      make([]htmlRow, len(rows)),
	}
	for _, t := range sum.totals(true) {
		page.States = append(page.States, htmlState{Name: t.Name, Count: t.Count, Size: plan.IEC(t.Bytes)})
	}
	for i := range rows {
		r := rows[i]
		for _, s := range []*string{&r.VM, &r.Folder, &r.Snapshot, &r.Description, &r.Customer, &r.Creator,
			&r.Reason, &r.Why} {
			*s = Clean(*s)
		}
		page.Rows[i] = htmlRow{Row: r, Next: nextText(&r, p.At), Age: ageText(r.AgeHours), Size: plan.IEC(r.SizeBytes)}
	}
	for _, r := range ProblemRows(p, opt) {
		for _, s := range []*string{&r.VCenter, &r.Datacenter, &r.VM, &r.Datastore, &r.Path, &r.Customer, &r.Detail} {
			*s = Clean(*s)
		}
		page.Problems = append(page.Problems, htmlProblem{ProblemRow: r, Size: plan.IEC(r.SizeBytes)})
	}
	return htmlTemplate.Execute(w, page)
}
