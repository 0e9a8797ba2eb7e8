package plan

import (
	"fmt"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// RequestAction is what a customer asked for through a self-service link.
type RequestAction string

// The self-service actions.
const (
	RequestExtend  RequestAction = "extend"   // keep it extend_by longer
	RequestCommit  RequestAction = "commit"   // commit it at the next enforce cycle
	RequestNotMine RequestAction = "not-mine" // the owner is wrong: support checks
)

// Valid reports whether a is a known action.
func (a RequestAction) Valid() bool {
	return a == RequestExtend || a == RequestCommit || a == RequestNotMine
}

// Request is one use of a self-service link, as the ledger recorded it.
type Request struct {
	Action RequestAction
	At     time.Time
	// Customer is who used the link. Only the snapshot's current owner's
	// requests count: after a VM moves, the previous owner's requests
	// must not extend or commit the new owner's snapshot.
	Customer string
}

// requests returns the current owner's requests.
func (it *Item) requests(h History) []Request {
	var out []Request
	for _, r := range h.Requests {
		if r.Customer == it.Customer && it.Customer != "" {
			out = append(out, r)
		}
	}
	return out
}

// RequestSettings are the self-service limits the planner applies.
type RequestSettings struct {
	ExtendBy   time.Duration
	MaxExtends int
	// DryRun: a commit request is not carried out, so support is told the
	// customer asked for it.
	DryRun bool
}

// Extend moves the deadline and action time of every item whose customer
// used extend links: by ExtendBy per request, at most MaxExtends of them,
// never past max_keep after creation. It runs on the items of the
// decisions before Build, so reminders, escalation and consolidation all
// follow the new deadline. It is pure and changes the items in place.
func Extend(ds []Decision, history map[facts.Key]History, set RequestSettings, now time.Time) {
	for i := range ds {
		it := &ds[i].Item
		if it.Verdict.State != policy.StateWarning && it.Verdict.State != policy.StateOverdue && it.Verdict.State != policy.StateOK {
			continue // exempt and managed snapshots have no deadline to move
		}
		n := 0
		for _, r := range it.requests(history[it.Snapshot.Key()]) {
			if r.Action == RequestExtend {
				n++
			}
		}
		n = min(n, set.MaxExtends)
		if n == 0 {
			continue
		}
		v := &it.Verdict
		until := v.DeadlineAt.Add(time.Duration(n) * set.ExtendBy)
		if limit := it.Snapshot.Created.Add(it.Policy.MaxKeep); it.Policy.MaxKeep > 0 && until.After(limit) {
			until = limit
		}
		if !until.After(v.DeadlineAt) {
			continue
		}
		shift := until.Sub(v.DeadlineAt)
		v.DeadlineAt, v.ActAt, it.ExtendedUntil = until, v.ActAt.Add(shift), until
		v.Detail += "; deadline extended at the customer's request to " + until.UTC().Format(time.RFC3339)
		if v.State == policy.StateOverdue && now.Before(until) {
			v.State, v.Reason = policy.StateWarning, policy.ReasonWarnAge
		}
	}
}

// ApplyRequests carries out the customer's commit and not-mine requests on
// the decisions of Build. It is pure and changes decisions in place.
//
// not-mine: the customer gets no more notices about the snapshot, nothing is
// consolidated, and support is told "owner disputed" at once, then every
// escalate_every. It wins over commit: a request from someone who may not own
// the snapshot must not delete it.
//
// commit: the snapshot is consolidated under every guard the planner judges
// (in flight, attempts, window, datastore, max_per_run), but without waiting
// for the deadline: the customer's own request is their notice. In dry-run
// support is told the customer asked for it.
func ApplyRequests(ds []Decision, reqs RequestSettings, set Settings, now time.Time) {
	var due []int
	for i := range ds {
		d := &ds[i]
		rs := d.requests(d.History)
		if notMine, ok := last(rs, RequestNotMine); ok {
			d.disputed(notMine, now)
		} else if commit, ok := last(rs, RequestCommit); ok {
			d.customerCommit(commit, reqs.DryRun, set, now)
		}
		if d.Action == ActionConsolidate && d.Due {
			due = append(due, i)
		}
	}
	limitPerRun(ds, due, set.MaxPerRun)
}

// last returns the latest request of kind a.
func last(rs []Request, a RequestAction) (Request, bool) {
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Action == a {
			return rs[i], true
		}
	}
	return Request{}, false
}

func (d *Decision) disputed(r Request, now time.Time) {
	// Whatever Build escalated (a blocked consolidation, say) is replaced by the dispute.
	d.CustomerNotice, d.EscalateNow = ActionNone, false
	why := "the customer says it is not theirs (owner disputed, " + r.At.UTC().Format(time.RFC3339) + "): support checks the owner; nothing is committed"
	if d.History.LastEscalation.Before(r.At) {
		d.EscalateNow = true
		d.set(ActionEscalate, true, now, ReasonOwnerDisputed, why)
		return
	}
	d.escalation(now, ReasonOwnerDisputed, why)
}

func (d *Decision) customerCommit(r Request, dryRun bool, set Settings, now time.Time) {
	switch d.Verdict.State {
	case policy.StateManaged, policy.StateExempt:
		return // never removed by snapwarden, whoever asks
	}
	if !d.Reachable || (d.Action == ActionConsolidate && d.Due) {
		return
	}
	// The request is the customer's notice: no deadline to wait for, and
	// no first-contact deletion (enforce checks WarnedAt again).
	d.Verdict.ActAt, d.CommitAt = r.At, r.At
	if d.History.WarnedAt.IsZero() || d.History.WarnedAt.After(r.At) {
		d.History.WarnedAt = r.At
	}
	d.CustomerNotice = ActionNone
	d.consolidation(set, now)
	asked := "the customer asked to commit it (" + r.At.UTC().Format(time.RFC3339) + ")"
	switch {
	case d.Action != ActionConsolidate || !d.Due:
		d.Why = asked + "; " + d.Why
	case dryRun:
		d.Reason, d.Why = ReasonCustomerCommit, asked+"; dry-run: support commits it or tells the customer"
		d.EscalateNow = d.History.LastEscalation.Before(r.At)
	default:
		d.Reason, d.Why = ReasonCustomerCommit, asked+": commit (remove with consolidation) this cycle"
	}
}

// Confirmation is the line a customer digest gives a request made since the
// customer's last notice, or "" when there is none to confirm.
func (d *Decision) Confirmation() string {
	var out string
	for _, r := range d.requests(d.History) {
		if !r.At.After(d.History.LastCustomerNotice) {
			continue
		}
		at := r.At.UTC().Format("2006-01-02 15:04 UTC")
		switch r.Action {
		case RequestExtend:
			out = fmt.Sprintf("On %s you asked us to keep it longer: the deadline is now %s.", at, d.Verdict.DeadlineAt.UTC().Format("2006-01-02 15:04 UTC"))
		case RequestCommit:
			out = fmt.Sprintf("On %s you asked us to commit it: we do so at the next opportunity.", at)
		}
	}
	return out
}
