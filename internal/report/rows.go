package report

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// Options select and shape what a report shows.
type Options struct {
	// GeneratedAt is when the report was made, `generated_at` in JSON; the
	// zero time stands for the plan's time. Plan.At is the report's `at`
	// (now, or --at).
	GeneratedAt time.Time
	// Customer keeps only this customer's rows; "" keeps all.
	Customer string
	// States keeps only rows in these states; nil keeps all.
	States []policy.State
	// Width is the table's width in runes; 0 means 120.
	Width int
}

// keeps reports whether the decision passes the filters.
func (o Options) keeps(d *plan.Decision) bool {
	if o.Customer != "" && d.Customer != o.Customer {
		return false
	}
	return len(o.States) == 0 || slices.Contains(o.States, d.Verdict.State)
}

// Row is one snapshot of the report, flattened. The JSON tags are the fields
// of the report contract (docs/report.md), in its order, followed by extras. Times
// are RFC 3339 in UTC, "" where unknown.
type Row struct {
	VCenter     string  `json:"vcenter"`
	Datacenter  string  `json:"datacenter"`
	VM          string  `json:"vm"`
	VMUUID      string  `json:"vm_uuid"`
	Folder      string  `json:"folder"`
	Snapshot    string  `json:"snapshot"`
	SnapshotID  string  `json:"snapshot_id"`
	Description string  `json:"description"`
	Created     string  `json:"created"`
	AgeHours    float64 `json:"age_hours"` // at the plan's time, rounded to 0.1
	SizeBytes   int64   `json:"size_bytes"`
	Depth       int     `json:"depth"`    // 1 for a root snapshot
	Customer    string  `json:"customer"` // "" where no ownership rule matched
	Creator     string  `json:"creator"`  // "" where unknown
	State       string  `json:"state"`
	Reason      string  `json:"reason"` // the verdict's sentence
	Deadline    string  `json:"deadline"`
	NextAction  string  `json:"next_action"`
	// NextActionAt is when the next action is due; "" when it has no time.
	NextActionAt string `json:"next_action_at"`

	ActionReason string `json:"action_reason"` // why the action was chosen
	Why          string `json:"why"`           // the action in one sentence
	Due          bool   `json:"due"`           // the action is due now
	PowerState   string `json:"power_state"`
	Current      bool   `json:"current"` // the VM runs from this snapshot
	FirstSeen    string `json:"first_seen"`
	LastNotice   string `json:"last_notice"`  // last customer notice
	NoticesSent  int    `json:"notices_sent"` // customer notices so far
	// GrowthBytesPerHour is the growth over the last 24 h of size samples;
	// ProjectedBytesAtDeadline the size at the deadline at that rate. Both
	// are null without two samples.
	GrowthBytesPerHour       *float64 `json:"growth_bytes_per_hour"`
	ProjectedBytesAtDeadline *int64   `json:"projected_bytes_at_deadline"`

	state   policy.State
	action  plan.Action
	created time.Time
	nextAt  time.Time
}

// Rows flattens the plan's decisions that pass the filters, sorted most urgent
// first: by state (overdue, warning, ok, managed, exempt), due actions first,
// consolidate, blocked and escalate before the rest, oldest first, then by
// vCenter, VM and snapshot id. The result is never nil.
func Rows(p *plan.Plan, opt Options) []Row {
	if p == nil {
		return []Row{}
	}
	rows := make([]Row, 0, len(p.Decisions))
	for i := range p.Decisions {
		if d := &p.Decisions[i]; opt.keeps(d) {
			rows = append(rows, newRow(d))
		}
	}
	slices.SortStableFunc(rows, compareRows)
	return rows
}

func newRow(d *plan.Decision) Row {
	s := &d.Snapshot
	vm := s.VM
	if vm == nil {
		vm = &facts.VM{}
	}
	return Row{
		VCenter:      vm.VCenter,
		Datacenter:   vm.Datacenter,
		VM:           vm.Name,
		VMUUID:       vm.InstanceUUID,
		Folder:       vm.Folder,
		Snapshot:     s.Name,
		SnapshotID:   s.ID,
		Description:  s.Description,
		Created:      stamp(s.Created),
		AgeHours:     math.Round(d.Verdict.Age.Hours()*10) / 10,
		SizeBytes:    s.SizeBytes,
		Depth:        s.Depth,
		Customer:     d.Customer,
		Creator:      d.Creator(),
		State:        d.Verdict.State.String(),
		Reason:       d.Verdict.Detail,
		Deadline:     stamp(d.Verdict.DeadlineAt),
		NextAction:   d.Action.String(),
		NextActionAt: stamp(d.At),
		ActionReason: d.Reason.String(),
		Why:          d.Why,
		Due:          d.Due,
		PowerState:   vm.PowerState,
		Current:      s.Current,
		FirstSeen:    stamp(d.History.FirstSeen),
		LastNotice:   stamp(d.History.LastCustomerNotice),
		NoticesSent:  d.History.CustomerNotices,

		GrowthBytesPerHour:       roundedRate(d.Growth.BytesPerHour),
		ProjectedBytesAtDeadline: d.Growth.ProjectedAtDeadline,
		state:                    d.Verdict.State,
		action:                   d.Action,
		created:                  s.Created,
		nextAt:                   d.At,
	}
}

// roundedRate rounds a growth rate to whole bytes; nil stays nil.
func roundedRate(r *float64) *float64 {
	if r == nil {
		return nil
	}
	v := math.Round(*r)
	return &v
}

// stateOrder lists the states most urgent first; reports list states in it.
var stateOrder = []policy.State{
	policy.StateOverdue, policy.StateWarning, policy.StateOK, policy.StateManaged, policy.StateExempt,
}

// urgency ranks a state by stateOrder; unknown states rank last.
func urgency(s policy.State) int {
	if i := slices.Index(stateOrder, s); i >= 0 {
		return i
	}
	return len(stateOrder)
}

// actionGroup ranks the actions that touch the snapshot or support before
// customer notices and nothing.
func actionGroup(a plan.Action) int {
	switch a {
	case plan.ActionConsolidate, plan.ActionBlocked, plan.ActionEscalate:
		return 0
	}
	return 1
}

func compareRows(a, b Row) int {
	if c := cmp.Compare(urgency(a.state), urgency(b.state)); c != 0 {
		return c
	}
	if a.Due != b.Due {
		if a.Due {
			return -1
		}
		return 1
	}
	return cmp.Or(
		cmp.Compare(actionGroup(a.action), actionGroup(b.action)),
		a.created.Compare(b.created),
		cmp.Compare(a.VCenter, b.VCenter),
		cmp.Compare(a.VM, b.VM),
		cmp.Compare(a.SnapshotID, b.SnapshotID),
	)
}

// summary counts rows and their bytes per state name.
type summary struct {
	Total        int              `json:"total"`
	ByState      map[string]int   `json:"by_state"`
	BytesByState map[string]int64 `json:"bytes_by_state"`
}

func summarize(rows []Row) summary {
	s := summary{Total: len(rows), ByState: map[string]int{}, BytesByState: map[string]int64{}}
	for i := range rows {
		s.ByState[rows[i].State]++
		s.BytesByState[rows[i].State] += rows[i].SizeBytes
	}
	return s
}

// stateTotal is one state's share of the rows.
type stateTotal struct {
	Name  string
	Count int
	Bytes int64
}

// totals lists the summary by state, most urgent first, with the states
// that have no rows when all is set.
func (s summary) totals(all bool) []stateTotal {
	var out []stateTotal
	for _, st := range stateOrder {
		name := st.String()
		if n := s.ByState[name]; n > 0 || all {
			out = append(out, stateTotal{Name: name, Count: n, Bytes: s.BytesByState[name]})
		}
	}
	return out
}

// bytes is the size of all rows.
func (s summary) bytes() int64 {
	var n int64
	for _, b := range s.BytesByState {
		n += b
	}
	return n
}

// stamp renders a time as RFC 3339 in UTC, "" for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// generatedAt is the report's generation time: the option, or the plan's time.
func generatedAt(p *plan.Plan, opt Options) time.Time {
	if opt.GeneratedAt.IsZero() {
		return p.At
	}
	return opt.GeneratedAt
}

// mode is the plan's mode, dry-run where unset.
func mode(p *plan.Plan) string {
	if p.Mode == "" {
		return "dry-run"
	}
	return p.Mode
}
