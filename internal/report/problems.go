package report

import (
	"strconv"
	"time"

	"github.com/snapwarden/snapwarden/internal/plan"
)

// ProblemRow is one problem of the report, flattened: the `problems` of the
// JSON report, for support only. Times are RFC 3339 in UTC.
type ProblemRow struct {
	Kind       string `json:"kind"`
	VCenter    string `json:"vcenter"`
	Datacenter string `json:"datacenter"`
	VM         string `json:"vm"`    // "" for an orphan file
	VMID       string `json:"vm_id"` // the VM's moref
	Datastore  string `json:"datastore"`
	Path       string `json:"path"` // the file concerned, "" for the whole VM
	SizeBytes  int64  `json:"size_bytes"`
	Customer   string `json:"customer"` // "" where unknown
	Detail     string `json:"detail"`
	FirstSeen  string `json:"first_seen"`
	// Fix is what snapwarden does about it (consolidation_needed with
	// enforcement.fix_consolidation_needed): "consolidate" (ConsolidateVMDisks_Task),
	// "blocked" (a guard refuses), or "none"; FixWhy says why and when.
	Fix    string `json:"fix"`
	FixWhy string `json:"fix_why"`

	firstSeen time.Time
}

// DetailAndFix is the detail followed by what snapwarden does about it, for
// people.
func (r *ProblemRow) DetailAndFix() string {
	if r.FixWhy == "" {
		return r.Detail
	}
	return r.Detail + ". snapwarden: " + r.FixWhy
}

// ProblemRows flattens the plan's problems, in the plan's order (by
// vCenter, kind, VM and path), keeping only the customer's when the
// options name one (the state filter does not apply: problems have no
// state). The result is never nil.
func ProblemRows(p *plan.Plan, opt Options) []ProblemRow {
	rows := []ProblemRow{}
	if p == nil {
		return rows
	}
	for i := range p.Problems {
		pr := &p.Problems[i]
		if opt.Customer != "" && pr.Customer != opt.Customer {
			continue
		}
		r := ProblemRow{Kind: string(pr.Kind), VCenter: pr.VCenter, Datacenter: pr.Datacenter, Datastore: pr.Datastore,
			Path: pr.Path, SizeBytes: pr.SizeBytes, Customer: pr.Customer, Detail: pr.Detail, FirstSeen: stamp(pr.FirstSeen),
			Fix: pr.Fix.Action.String(), FixWhy: pr.Fix.Why, firstSeen: pr.FirstSeen}
		if pr.VM != nil {
			r.VM, r.VMID = pr.VM.Name, pr.VM.MoRef
		}
		rows = append(rows, r)
	}
	return rows
}

// problemCSV are the CSV columns of problems: the JSON fields, in their order.
var problemCSV = []struct {
	name  string
	value func(r *ProblemRow) string
}{
	{"kind", func(r *ProblemRow) string { return r.Kind }},
	{"vcenter", func(r *ProblemRow) string { return r.VCenter }},
	{"datacenter", func(r *ProblemRow) string { return r.Datacenter }},
	{"vm", func(r *ProblemRow) string { return r.VM }},
	{"vm_id", func(r *ProblemRow) string { return r.VMID }},
	{"datastore", func(r *ProblemRow) string { return r.Datastore }},
	{"path", func(r *ProblemRow) string { return r.Path }},
	{"size_bytes", func(r *ProblemRow) string { return strconv.FormatInt(r.SizeBytes, 10) }},
	{"customer", func(r *ProblemRow) string { return r.Customer }},
	{"detail", func(r *ProblemRow) string { return r.Detail }},
	{"first_seen", func(r *ProblemRow) string { return r.FirstSeen }},
	{"fix", func(r *ProblemRow) string { return r.Fix }},
	{"fix_why", func(r *ProblemRow) string { return r.FixWhy }},
}

// problemTable are the columns of the text table of problems; the detail
// comes last, shrunk first.
var problemTable = []column[ProblemRow]{
	{header: "PROBLEM", cell: func(r *ProblemRow, _ *plan.Plan) string { return r.Kind }},
	{header: "VCENTER", flex: true, cell: func(r *ProblemRow, _ *plan.Plan) string { return Clean(r.VCenter) }},
	{header: "VM", flex: true, cell: func(r *ProblemRow, _ *plan.Plan) string { return orDash(Clean(r.VM)) }},
	{header: "PATH", flex: true, keepEnd: true, cell: func(r *ProblemRow, _ *plan.Plan) string { return orDash(Clean(r.Path)) }},
	{header: "SIZE", right: true, cell: func(r *ProblemRow, _ *plan.Plan) string { return plan.IEC(r.SizeBytes) }},
	{header: "CUSTOMER", flex: true, cell: func(r *ProblemRow, _ *plan.Plan) string { return orDash(Clean(r.Customer)) }},
	{header: "SINCE", cell: func(r *ProblemRow, p *plan.Plan) string { return sinceText(r.firstSeen, p.At) }},
	{header: "DETAIL", flex: true, cell: func(r *ProblemRow, _ *plan.Plan) string { return Clean(r.DetailAndFix()) }},
}

// sinceText renders a first sight as the age at the plan's time: "new"
// (first seen at it), "5.0h", "3.2d".
func sinceText(firstSeen, at time.Time) string {
	if !firstSeen.Before(at) {
		return "new"
	}
	return ageText(at.Sub(firstSeen).Hours())
}
