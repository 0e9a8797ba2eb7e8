package report

import (
	"encoding/json"
	"io"
	"math"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// jsonReport is the JSON report contract of docs/report.md.
type jsonReport struct {
	GeneratedAt string               `json:"generated_at"`
	At          string               `json:"at"`
	Mode        string               `json:"mode"`
	Snapshots   []Row                `json:"snapshots"`
	Summary     summary              `json:"summary"`
	Errors      []facts.VCenterError `json:"errors"`
	Problems    []ProblemRow         `json:"problems"`
	Datastores  []DatastoreRow       `json:"datastores"`
}

// DatastoreRow is a datastore holding snapshots with its growth forecast;
// FullAt is null when it is not filling.
type DatastoreRow struct {
	VCenter            string  `json:"vcenter"`
	Name               string  `json:"name"`
	CapacityBytes      int64   `json:"capacity_bytes"`
	FreeBytes          int64   `json:"free_bytes"`
	SnapshotBytes      int64   `json:"snapshot_bytes"`
	GrowthBytesPerHour float64 `json:"growth_bytes_per_hour"`
	FullAt             *string `json:"full_at"`
}

func datastoreRows(p *plan.Plan) []DatastoreRow {
	out := make([]DatastoreRow, 0, len(p.Datastores))
	for _, g := range p.Datastores {
		r := DatastoreRow{VCenter: g.VCenter, Name: g.Name, CapacityBytes: g.Capacity, FreeBytes: g.Free,
			SnapshotBytes: g.SnapshotBytes, GrowthBytesPerHour: math.Round(g.BytesPerHour)}
		if !g.FullAt.IsZero() {
			at := stamp(g.FullAt)
			r.FullAt = &at
		}
		out = append(out, r)
	}
	return out
}

// renderJSON writes the rows as the JSON report contract, indented.
func renderJSON(w io.Writer, p *plan.Plan, rows []Row, opt Options) error {
	errs := p.Errors
	if errs == nil {
		errs = []facts.VCenterError{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jsonReport{
		GeneratedAt: stamp(generatedAt(p, opt)),
		At:          stamp(p.At),
		Mode:        mode(p),
		Snapshots:   rows,
		Summary:     summarize(rows),
		Errors:      errs,
		Problems:    ProblemRows(p, opt),
		Datastores:  datastoreRows(p),
	})
}
