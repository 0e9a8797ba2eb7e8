package plan

import (
	"fmt"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// Item is one snapshot with its owner, the policy that applies and its verdict.
type Item struct {
	Snapshot facts.Snapshot
	// Customer is the owning customer's id; empty where no ownership rule matched.
	Customer string
	// Reachable is set when Customer is in the customer directory with
	// contacts; notices for anyone else go to support, never to a guess.
	Reachable bool
	// Policy is the customer's, shared by all of its items (never changed
	// through it): a copy in every one of a large fleet's decisions was a
	// sixth of their size, and serve holds two plans at once.
	Policy  *policy.Policy
	Verdict policy.Verdict
	// Backup names a managed (backup) snapshot on the same VM, "" when there
	// is none; Build fills it in: no consolidation runs beside a backup.
	Backup string
	// Disputed lists the owners the first matching ownership rule gives when
	// it gives more than one (two tags in the owner category); Customer is
	// then empty. No customer is told and nothing is committed: support is.
	Disputed []string
	// ExtendedUntil is the deadline the customer's extend links moved it to
	// (see Extend); zero when not extended.
	ExtendedUntil time.Time
}

// History is what the ledger remembers of one snapshot from earlier cycles.
// The zero value is a snapshot never seen before.
type History struct {
	FirstSeen time.Time
	// Creator recorded at first sight; survives vCenter's event purge.
	Creator string
	// Owner is the customer the snapshot belonged to at the last cycle; ""
	// when it had none (unknown or disputed) or was never seen.
	Owner string
	// ByCustomer holds the customer notices about the snapshot per customer
	// id: only notices of kind customer addressed to that customer, never a
	// support notice, count as telling that customer.
	ByCustomer map[string]Notices
	// Relayed are the warn and remind notices relayed to support for want
	// of a reachable owner. They pace those relays; they warn no customer.
	Relayed Notices
	// CustomerNotices, LastCustomerNotice and WarnedAt are the notices of the
	// snapshot's owner: the ledger fills them for Owner, and Build for the
	// owner of this cycle, so a new owner starts with none (its clock starts
	// at its own first notice). CustomerNotices counts warn and remind
	// notices issued (queued in the ledger's outbox, whether delivered yet
	// or not), so a notice awaiting delivery is never issued twice.
	CustomerNotices    int
	LastCustomerNotice time.Time
	// WarnedAt is when the first of those notices was delivered (accepted by
	// at least one contact); consolidation waits min_notice after it.
	WarnedAt       time.Time
	Escalations    int
	LastEscalation time.Time
	// SkewReported is set once support was told the create time lies in the
	// future, so clock skew is reported once, not every cycle.
	SkewReported bool
	// Attempts counts consolidation attempts that ended in failure.
	Attempts      int
	LastAttemptAt time.Time
	LastFault     string
	// InFlight is set while a consolidation task is running (or was running
	// when the process stopped) for this snapshot.
	InFlight bool
	TaskID   string
	// DiskModeRefusal is enforce's refusal of the latest attempt when a
	// disk of the VM was in a non-persistent mode (guard disk-mode, which
	// only enforce can see), with its time; empty when the latest attempt
	// was anything else.
	DiskModeRefusal   string
	DiskModeRefusedAt time.Time
	// BlockedReason is the guard refusal support was last told of, so a
	// blocked consolidation is escalated once per reason, not every cycle.
	BlockedReason string
	// Requests are the customer's self-service requests (extend, commit,
	// not-mine), oldest first.
	Requests []Request
}

// Notices are the notices about one snapshot to one recipient.
type Notices struct {
	// Count of notices issued: queued, delivered or refused.
	Count int
	// Last is when the last one was queued.
	Last time.Time
	// FirstDelivered is when the first one was accepted by at least one
	// recipient; zero until then.
	FirstDelivered time.Time
}

// owned is h as the item's owner of this cycle sees it: that customer's own
// notices, or for an item without a reachable owner the relays to support,
// which never count as a warning.
func (h History) owned(it Item) History {
	n := h.ByCustomer[it.Customer]
	if !it.Reachable {
		n = h.Relayed
		n.FirstDelivered = time.Time{}
	}
	h.CustomerNotices, h.LastCustomerNotice, h.WarnedAt = n.Count, n.Last, n.FirstDelivered
	return h
}

// Action is the decision for one snapshot, `next_action` in reports.
type Action int

// The actions, `next_action` in reports (docs/report.md).
const (
	ActionNone Action = iota
	ActionWarn
	ActionRemind
	ActionEscalate
	ActionConsolidate
	ActionBlocked
)

var actionNames = [...]string{"none", "warn", "remind", "escalate", "consolidate", "blocked"}

// String returns the report name of the action.
func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// MarshalText makes an Action render as its name in JSON.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Decision is the plan for one snapshot.
type Decision struct {
	Item
	History History
	// Action is due now when Due is set; otherwise it is the next action the
	// snapshot will get, at At.
	Action Action
	Due    bool
	At     time.Time
	// Reason is why the action was chosen (for blocked: the guard that refused).
	Reason Reason
	// Why explains the action in one sentence for people.
	Why string
	// CustomerNotice is the customer notice due this cycle (ActionWarn,
	// ActionRemind or ActionNone); it can come with an escalation.
	CustomerNotice Action
	// EscalateNow is set when support must be told this cycle (escalation,
	// blocked consolidation, stale managed snapshot, unknown owner).
	EscalateNow bool
	// CommitAt is the earliest time the snapshot can be committed, for a
	// reachable owner whose action is consolidate (zero otherwise):
	// max(deadline + grace, first notice delivered to the owner +
	// min_notice), projected from the next notice while none was delivered.
	// Customer notices state it.
	CommitAt time.Time
	// Growth is the snapshot's growth forecast (see Growth); FillsFirst is
	// set when its datastore is forecast to fill before its deadline.
	Growth     SnapshotGrowth
	FillsFirst *DatastoreGrowth
}

// Creator is who created the snapshot: vCenter's answer, else what the
// ledger recorded at first sight (vCenter purges the events it comes from).
func (d *Decision) Creator() string {
	if d.Snapshot.Creator != "" {
		return d.Snapshot.Creator
	}
	return d.History.Creator
}

// Plan is every decision of one cycle, computed without side effects.
type Plan struct {
	At   time.Time
	Mode string // dry-run | enforce
	VMs  int
	// VCenters counts the vCenters asked; when every one is in Errors the
	// cycle failed as a whole.
	VCenters  int
	Decisions []Decision
	Errors    []facts.VCenterError
	// VCenterIDs maps the config name of every vCenter that answered to its
	// instance UUID, the vCenter part of the snapshots' keys.
	VCenterIDs map[string]string
	// Window is the maintenance window the plan was judged with, carrying
	// the removal rate learnt from the ledger, so enforce's re-check
	// expects the same durations; nil when none is set.
	Window *Window
	// Problems customers cannot see; support only.
	Problems []Problem
	// Datastores holding snapshots, with their growth forecast.
	Datastores []DatastoreGrowth
}
