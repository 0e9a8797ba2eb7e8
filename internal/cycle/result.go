package cycle

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/enforce"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// Result is what one cycle did, for logs, metrics, sd_notify STATUS and the
// /report page.
type Result struct {
	Started  time.Time
	Duration time.Duration
	Plan     *plan.Plan
	// Queued counts the notices the plan put in the outbox this cycle, by
	// kind (those telling of actions are queued with each action's result).
	Queued map[string]int
	// Sent and Failed count delivery results this cycle (including retries of
	// earlier cycles' notices), by kind.
	Sent   map[string]int
	Failed map[string]int
	// Actions counts consolidation results by result (success, error,
	// refused, running).
	Actions map[string]int
	// Pending is the outbox backlog after the cycle's delivery: notices
	// still owed to some recipient (retried next time).
	Pending int
	// Outcomes are the act stage's results, for logs and the demo.
	Outcomes []enforce.Outcome
}

// acted adds the act stage's outcomes and returns the ledger failures among
// them: the cycle must then stop (fail closed).
func (r *Result) acted(outcomes []enforce.Outcome) error {
	var errs []error
	for _, o := range outcomes {
		r.Actions[o.Result]++
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
	}
	r.Outcomes = append(r.Outcomes, outcomes...)
	return errors.Join(errs...)
}

// merge adds o's counts and outcomes to r.
func (r *Result) merge(o *Result) {
	for _, m := range [][2]map[string]int{{r.Queued, o.Queued}, {r.Sent, o.Sent}, {r.Failed, o.Failed}, {r.Actions, o.Actions}} {
		for k, n := range m[1] {
			m[0][k] += n
		}
	}
	r.Outcomes = append(r.Outcomes, o.Outcomes...)
}

// newResult returns a Result with its maps ready.
func newResult(started time.Time) *Result {
	return &Result{Started: started, Queued: map[string]int{}, Sent: map[string]int{}, Failed: map[string]int{}, Actions: map[string]int{}}
}

// Cycle statuses, the result label of snapwarden_cycles_total.
const (
	StatusOK      = "ok"
	StatusPartial = "partial"
	StatusFailed  = "failed"
)

// Status is failed when the cycle broke off or no vCenter answered (a
// whole failure must not look like a partial one), partial when some
// vCenter or some delivery failed, else ok.
func (r *Result) Status() string {
	switch {
	case r == nil || r.Plan == nil:
		return StatusFailed
	case len(r.Plan.Errors) > 0 && len(r.Plan.Errors) >= r.Plan.VCenters:
		return StatusFailed
	case !r.OK():
		return StatusPartial
	}
	return StatusOK
}

// LogVCenterErrors logs each vCenter that could not be collected, at error
// level with its reason; `run` and `serve` call it once per cycle.
func (r *Result) LogVCenterErrors(log zerolog.Logger) {
	if r == nil || r.Plan == nil {
		return
	}
	for _, e := range r.Plan.Errors {
		log.Error().Str("vcenter", e.VCenter).Str("error", e.Error).Msg("vCenter could not be collected this cycle")
	}
}

// OK reports whether every vCenter answered and no delivery failed.
func (r *Result) OK() bool {
	return r != nil && r.Plan != nil && len(r.Plan.Errors) == 0 && sum(r.Failed) == 0
}

// Summary is a one-line account of the cycle, for sd_notify STATUS and logs.
func (r *Result) Summary() string {
	if r == nil || r.Plan == nil {
		return "no cycle yet"
	}
	by := map[policy.State]int{}
	for _, d := range r.Plan.Decisions {
		by[d.Verdict.State]++
	}
	return fmt.Sprintf("last cycle %s: %d snapshots (%d warning, %d overdue), %d notices sent, %d failed, %d consolidated, %d vCenter errors",
		r.Started.UTC().Format(time.RFC3339), len(r.Plan.Decisions), by[policy.StateWarning], by[policy.StateOverdue],
		sum(r.Sent), sum(r.Failed), r.Actions[enforce.ResultSuccess], len(r.Plan.Errors))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
