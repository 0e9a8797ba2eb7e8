package notify

import (
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
)

const gib = int64(1) << 30

// cycleAt is the fixed cycle time of every test.
var cycleAt = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func vm(name, customer string) *facts.VM {
	folder := "/DC0/vm/Customers/" + customer
	if customer == "" {
		folder = "/DC0/vm/Lost"
	}
	return &facts.VM{
		VCenter: "vc-east", Datacenter: "DC0", Name: name, MoRef: "vm-" + name, InstanceUUID: "uuid-" + name,
		Folder: folder, Path: folder + "/" + name, PowerState: "poweredOn",
	}
}

type snapSpec struct {
	vm       *facts.VM
	name     string
	id       string
	age      time.Duration
	size     int64
	depth    int
	customer string
	policy   policy.Policy
	state    policy.State
	detail   string
}

// decision builds a plan.Decision by hand: the verdict's times follow the
// policy from the create time, as the policy package computes them.
func decision(s snapSpec) plan.Decision {
	created := cycleAt.Add(-s.age)
	if s.depth == 0 {
		s.depth = 1
	}
	if s.policy.Deadline == 0 {
		s.policy = policy.Default()
	}
	return plan.Decision{
		Item: plan.Item{
			Snapshot: facts.Snapshot{
				VM: s.vm, ID: s.id, Name: s.name, Created: created, Depth: s.depth, SizeBytes: s.size,
			},
			Customer:  s.customer,
			Reachable: s.customer != "",
			Policy:    &s.policy,
			Verdict: policy.Verdict{
				State:      s.state,
				Detail:     s.detail,
				Age:        s.age,
				WarnAt:     created.Add(s.policy.WarnAfter),
				DeadlineAt: created.Add(s.policy.Deadline),
				ActAt:      created.Add(s.policy.Deadline + s.policy.Grace),
			},
		},
	}
}

func consolidatePolicy() policy.Policy {
	p := policy.Default()
	p.Deadline = 72 * time.Hour
	p.Action = policy.ActionConsolidate
	return p
}

// customerDigest is ACME's digest: an overdue snapshot (reminder, escalate
// policy), a young chained one on a consolidate policy (first warning), one
// with an unreadable keep-until marker, and a committed one.
func customerDigest() CustomerDigest {
	overdue := decision(snapSpec{vm: vm("web01", "acme"), name: "before-upgrade", id: "snapshot-11", age: 50*time.Hour + 30*time.Minute,
		size: 3 * gib / 2, customer: "acme", state: policy.StateOverdue, detail: "age 50.5h >= deadline 48h"})
	overdue.Action, overdue.Due, overdue.At = plan.ActionEscalate, true, cycleAt
	overdue.CustomerNotice, overdue.EscalateNow = plan.ActionRemind, true
	overdue.History.CustomerNotices = 1
	overdue.Why = "past the deadline: support takes over"

	chained := decision(snapSpec{vm: vm("db01", "acme"), name: "pre-patch", id: "snapshot-21", age: 30 * time.Hour,
		size: 12 * gib, depth: 2, customer: "acme", policy: consolidatePolicy(), state: policy.StateWarning, detail: "age 30h >= warn_after 24h"})
	chained.Action, chained.At = plan.ActionConsolidate, chained.Verdict.ActAt
	chained.CustomerNotice = plan.ActionWarn
	// Deadline + grace lies beyond a day's min_notice from this first notice.
	chained.CommitAt = chained.Verdict.ActAt
	chained.Why = "first notice to the customer; then consolidate at " + chained.Verdict.ActAt.Format(time.RFC3339)
	chained.FillsFirst = &plan.DatastoreGrowth{VCenter: "vc-east", Name: "ds-gold-01", FullAt: cycleAt.Add(20 * time.Hour)}

	marker := decision(snapSpec{vm: vm("app01", "acme"), name: "test", id: "snapshot-31", age: 25 * time.Hour,
		size: 700 << 20, customer: "acme", state: policy.StateWarning, detail: "age 25h >= warn_after 24h"})
	marker.Snapshot.Description = "keep-until=2026-13-45"
	marker.Verdict.MalformedMarker = "keep-until=2026-13-45"
	marker.Action, marker.At = plan.ActionEscalate, marker.Verdict.DeadlineAt
	marker.CustomerNotice = plan.ActionWarn

	done := decision(snapSpec{vm: vm("web02", "acme"), name: "old-snap", id: "snapshot-5", age: 100 * time.Hour,
		size: 2 * gib, customer: "acme", policy: consolidatePolicy(), state: policy.StateOverdue})

	return CustomerDigest{
		Customer:     Customer{ID: "acme", Name: "ACME Corp", Contacts: []string{"ops@acme.example", "cto@acme.example"}},
		At:           cycleAt,
		Attention:    []plan.Decision{overdue, chained, marker},
		Committed:    []Committed{{Decision: done, At: cycleAt.Add(-10 * time.Hour), TaskID: "task-101"}},
		SupportEmail: "support@provider.example",
		ExemptTag:    "snapwarden-exempt",
		MaxKeep:      336 * time.Hour,
	}
}

// supportDigest has one of each: an escalation, a blocked consolidation, a
// stale backup snapshot, an unowned notice, a failure and a commit.
func supportDigest() SupportDigest {
	c := customerDigest()
	overdue := c.Attention[0]

	blocked := decision(snapSpec{vm: vm("db02", "initech"), name: "upgrade-db", id: "snapshot-41", age: 90 * time.Hour,
		size: 40 * gib, depth: 3, customer: "initech", policy: consolidatePolicy(), state: policy.StateOverdue, detail: "age 90h >= deadline 72h"})
	blocked.Action, blocked.Due, blocked.At = plan.ActionBlocked, true, time.Date(2026, 11, 24, 22, 0, 0, 0, time.UTC)
	blocked.Reason, blocked.EscalateNow = plan.ReasonGuardWindow, true
	blocked.Why = "outside the maintenance window; it opens at 2026-11-24T22:00:00Z"

	stale := decision(snapSpec{vm: vm("file01", "initech"), name: "VEEAM BACKUP TEMPORARY SNAPSHOT", id: "snapshot-51", age: 30 * time.Hour,
		size: 5 * gib, customer: "initech", state: policy.StateManaged, detail: "managed (name matches VEEAM BACKUP TEMPORARY SNAPSHOT*), older than managed_stale_after 24h"})
	stale.Verdict.Reason = policy.ReasonManagedStale
	stale.Action, stale.Due, stale.At, stale.Reason, stale.EscalateNow = plan.ActionEscalate, true, cycleAt, plan.ReasonManagedStale, true
	stale.Why = "backup snapshot older than managed_stale_after: support should check the backup job"

	lost := decision(snapSpec{vm: vm("lost01", ""), name: "tmp", id: "snapshot-61", age: 26 * time.Hour,
		size: 300 << 20, state: policy.StateWarning, detail: "age 26h >= warn_after 24h"})
	lost.Action, lost.At, lost.CustomerNotice, lost.EscalateNow = plan.ActionEscalate, lost.Verdict.DeadlineAt, plan.ActionWarn, true
	lost.Why = "first notice to the customer; no reachable owner, so support receives it"

	failed := decision(snapSpec{vm: vm("app02", "initech"), name: "before-migration", id: "snapshot-71", age: 120 * time.Hour,
		size: 8 * gib, customer: "initech", policy: consolidatePolicy(), state: policy.StateOverdue, detail: "age 120h >= deadline 72h"})
	failed.Action = plan.ActionConsolidate

	return SupportDigest{
		At:           cycleAt,
		Escalations:  []plan.Decision{overdue, blocked, stale},
		Unowned:      []plan.Decision{lost},
		Failures:     []Failure{{Decision: failed, At: cycleAt.Add(-2 * time.Hour), TaskID: "task-99", Fault: "Insufficient disk space on datastore 'ds1'.", Attempts: 2}},
		Committed:    c.Committed,
		Problems:     problems(),
		OpenProblems: 5,
		Disks: []DiskConsolidation{
			{VCenter: "vc-east", VM: "web03", Customer: "acme", At: cycleAt.Add(-30 * time.Minute), TaskID: "task-120", Result: "consolidated"},
			{VCenter: "vc-east", VM: "<b>db09</b>", Customer: "initech", At: cycleAt.Add(-20 * time.Minute), TaskID: "task-121", Result: "failed",
				Fault: "FileLocked: unable to access file [ds1] db09/db09-000001.vmdk"},
		},
		Undeliverable: []Bounce{
			{Customer: "acme", Address: "old-ops@acme.example", Reply: "550 5.1.1 <old-ops@acme.example>: no such user", At: cycleAt.Add(-time.Hour)},
			{Customer: "initech", Address: "it@initech.example", Reply: "550 5.7.1 <script>alert(1)</script>\r\nX-Injected: yes", At: cycleAt.Add(-time.Hour),
				Unreachable: true, Snapshots: []string{"vc-east / app02 / before-migration"}},
		},
	}
}

// problems are the new problems of the support digest: a VM with
// consolidation needed and a hostile name, and an orphan file.
func problems() []plan.Problem {
	return []plan.Problem{
		{Problem: facts.Problem{Kind: facts.ConsolidationNeeded, VCenter: "vc-east", Datacenter: "DC0",
			VM: vm("<b>web09</b>\r\nBcc: x@evil.example", "acme"), Detail: "runtime.consolidationNeeded is set"},
			Customer: "acme", FirstSeen: cycleAt},
		{Problem: facts.Problem{Kind: facts.OrphanFile, VCenter: "vc-east", Datacenter: "DC0", Datastore: "ds1",
			Path: "[ds1] gone-vm/gone-vm-000001-sesparse.vmdk", SizeBytes: 7 * gib,
			Detail: "no registered VM or template references this file"}, FirstSeen: cycleAt},
	}
}
