package report

import (
	"encoding/json"
	"io"

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
	})
}
