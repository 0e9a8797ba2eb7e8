package report

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"

	"github.com/snapwarden/snapwarden/internal/plan"
)

// csvColumns are the CSV columns: the JSON row fields, in their order.
var csvColumns = []struct {
	name  string
	value func(r *Row) string
}{
	{"vcenter", func(r *Row) string { return r.VCenter }},
	{"datacenter", func(r *Row) string { return r.Datacenter }},
	{"vm", func(r *Row) string { return r.VM }},
	{"vm_uuid", func(r *Row) string { return r.VMUUID }},
	{"folder", func(r *Row) string { return r.Folder }},
	{"snapshot", func(r *Row) string { return r.Snapshot }},
	{"snapshot_id", func(r *Row) string { return r.SnapshotID }},
	{"description", func(r *Row) string { return r.Description }},
	{"created", func(r *Row) string { return r.Created }},
	{"age_hours", func(r *Row) string { return strconv.FormatFloat(r.AgeHours, 'f', 1, 64) }},
	{"size_bytes", func(r *Row) string { return strconv.FormatInt(r.SizeBytes, 10) }},
	{"depth", func(r *Row) string { return strconv.Itoa(r.Depth) }},
	{"customer", func(r *Row) string { return r.Customer }},
	{"creator", func(r *Row) string { return r.Creator }},
	{"state", func(r *Row) string { return r.State }},
	{"reason", func(r *Row) string { return r.Reason }},
	{"deadline", func(r *Row) string { return r.Deadline }},
	{"next_action", func(r *Row) string { return r.NextAction }},
	{"next_action_at", func(r *Row) string { return r.NextActionAt }},
	{"action_reason", func(r *Row) string { return r.ActionReason }},
	{"why", func(r *Row) string { return r.Why }},
	{"due", func(r *Row) string { return strconv.FormatBool(r.Due) }},
	{"power_state", func(r *Row) string { return r.PowerState }},
	{"current", func(r *Row) string { return strconv.FormatBool(r.Current) }},
	{"first_seen", func(r *Row) string { return r.FirstSeen }},
	{"last_notice", func(r *Row) string { return r.LastNotice }},
	{"notices_sent", func(r *Row) string { return strconv.Itoa(r.NoticesSent) }},
	{"growth_bytes_per_hour", func(r *Row) string {
		return optional(r.GrowthBytesPerHour, func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) })
	}},
	{"projected_bytes_at_deadline", func(r *Row) string {
		return optional(r.ProjectedBytesAtDeadline, func(v int64) string { return strconv.FormatInt(v, 10) })
	}},
}

// optional renders a value that may be unknown: "" for nil.
func optional[T any](v *T, f func(T) string) string {
	if v == nil {
		return ""
	}
	return f(*v)
}

// renderCSV writes a header row and one record per row. vCenter errors and
// the summary are not part of the CSV form. Problems, when there are any,
// follow as a second table after an empty record: their own header and
// rows, padded with empty cells to the snapshot columns so every record has
// as many fields (what CSV readers expect).
func renderCSV(w io.Writer, p *plan.Plan, rows []Row, opt Options) error {
	cw := csv.NewWriter(w)
	record := make([]string, len(csvColumns))
	for i, c := range csvColumns {
		record[i] = c.name
	}
	if err := cw.Write(record); err != nil {
		return err
	}
	for i := range rows {
		for j, c := range csvColumns {
			record[j] = csvCell(c.value(&rows[i]))
		}
		if err := cw.Write(record); err != nil {
			return err
		}
	}
	if probs := ProblemRows(p, opt); len(probs) > 0 {
		clear(record)
		if err := cw.Write(record); err != nil {
			return err
		}
		for i, c := range problemCSV {
			record[i] = c.name
		}
		if err := cw.Write(record); err != nil {
			return err
		}
		for i := range probs {
			for j, c := range problemCSV {
				record[j] = csvCell(c.value(&probs[i]))
			}
			if err := cw.Write(record); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvCell strips control characters (clean) and neutralises a spreadsheet
// formula: a cell whose first non-space character is = + - or @ gets a
// leading single quote. Tabs and CRs, which spreadsheets also read as formula
// starts, are gone after clean.
func csvCell(s string) string {
	s = Clean(s)
	if t := strings.TrimLeft(s, " "); t != "" && strings.ContainsRune("=+-@", rune(t[0])) {
		return "'" + s
	}
	return s
}
