package plan

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

var update = flag.Bool("update", false, "rewrite golden files")

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const gib = int64(1) << 30

func item(name string, age time.Duration, action policy.Action, reachable bool) Item {
	vm := &facts.VM{VCenter: "vc1", Name: "vm-" + name, InstanceUUID: "uuid-" + name,
		Datastores: []facts.Datastore{{Name: "ds1", Capacity: 1000 * gib, Free: 500 * gib}}}
	p := policy.Default()
	p.Action = action
	s := facts.Snapshot{VM: vm, ID: "snapshot-" + name, Name: name, Created: t0.Add(-age), SizeBytes: gib}
	return Item{Snapshot: s, Customer: "acme", Reachable: reachable, Policy: &p}
}

func evaluate(it Item, now time.Time) Item {
	it.Verdict = policy.Evaluate(&it.Snapshot, *it.Policy, now)
	return it
}

// decisions wraps items as cycle.Evaluate hands them to Extend and Build.
func decisions(items ...Item) []Decision {
	ds := make([]Decision, len(items))
	for i := range items {
		ds[i].Item = items[i]
	}
	return ds
}

// build runs Build on decisions of items and returns them.
func build(items []Item, hist map[facts.Key]History, set Settings, now time.Time) []Decision {
	ds := decisions(items...)
	Build(ds, hist, set, now)
	return ds
}

func decideOne(t *testing.T, it Item, h History, set Settings, now time.Time) Decision {
	t.Helper()
	it = evaluate(it, now)
	return build([]Item{it}, map[facts.Key]History{it.Snapshot.Key(): ownedBy(h, it.Customer)}, set, now)[0]
}

// ownedBy files the owner's notices of a test history (written in the
// top-level fields, as Build hands them on) where the ledger puts them: the
// customer's own entry, and the relays for an item without a reachable owner.
func ownedBy(h History, customer string) History {
	if h.CustomerNotices == 0 && h.WarnedAt.IsZero() {
		return h
	}
	h.Owner = customer
	h.ByCustomer = map[string]Notices{customer: {Count: h.CustomerNotices, Last: h.LastCustomerNotice, FirstDelivered: h.WarnedAt}}
	h.Relayed = Notices{Count: h.CustomerNotices, Last: h.LastCustomerNotice}
	return h
}

func disputed(it Item, owners ...string) Item {
	it.Customer, it.Reachable, it.Disputed = "", false, owners
	return it
}

func TestDecisions(t *testing.T) {
	set := Settings{MaxPerRun: 10, MaxAttempts: 3, MinFreePercent: 10, MinNotice: 24 * time.Hour}
	warned := History{CustomerNotices: 2, LastCustomerNotice: t0.Add(-20 * time.Hour), WarnedAt: t0.Add(-30 * time.Hour)}
	skewed := func(it Item) Item {
		it.Snapshot.Created = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
		return it
	}
	tests := []struct {
		name     string
		it       Item
		h        History
		set      Settings
		action   Action
		due      bool
		reason   Reason
		escalate bool
		notice   Action
	}{
		{"young: warn later", item("a", time.Hour, policy.ActionEscalate, true), History{}, set, ActionWarn, false, ReasonNotYetDue, false, ActionNone},
		{"warning: first notice", item("a", 30*time.Hour, policy.ActionEscalate, true), History{}, set, ActionWarn, true, ReasonFirstNotice, false, ActionWarn},
		{"warning: reminder not yet", item("a", 30*time.Hour, policy.ActionEscalate, true),
			History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-6 * time.Hour)}, set, ActionRemind, false, ReasonNotYetDue, false, ActionNone},
		{"warning: reminder due", item("a", 40*time.Hour, policy.ActionEscalate, true),
			History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-12 * time.Hour)}, set, ActionRemind, true, ReasonReminderDue, false, ActionRemind},
		{"overdue: escalate", item("a", 50*time.Hour, policy.ActionEscalate, true), warned, set, ActionEscalate, true, ReasonDeadlinePassed, true, ActionRemind},
		{"overdue: escalated recently", item("a", 60*time.Hour, policy.ActionEscalate, true),
			History{CustomerNotices: 3, LastCustomerNotice: t0.Add(-time.Hour), Escalations: 1, LastEscalation: t0.Add(-time.Hour)}, set,
			ActionEscalate, false, ReasonNotYetDue, false, ActionNone},
		{"overdue unowned consolidate customer escalates", item("a", 70*time.Hour, policy.ActionConsolidate, false), warned, set,
			ActionEscalate, true, ReasonDeadlinePassed, true, ActionRemind},
		{"consolidate: within grace", item("a", 50*time.Hour, policy.ActionConsolidate, true), warned, set,
			ActionRemind, true, ReasonReminderDue, false, ActionRemind},
		{"consolidate: due", item("a", 61*time.Hour, policy.ActionConsolidate, true), warned, set, ActionConsolidate, true, ReasonConsolidateDue, false, ActionRemind},
		{"consolidate: never warned, the notice starts the clock", item("a", 61*time.Hour, policy.ActionConsolidate, true), History{}, set,
			ActionWarn, true, ReasonFirstNotice, false, ActionWarn},
		{"consolidate: warned only this cycle", item("a", 61*time.Hour, policy.ActionConsolidate, true),
			History{CustomerNotices: 1, LastCustomerNotice: t0, WarnedAt: t0}, set, ActionConsolidate, false, ReasonMinNotice, false, ActionNone},
		{"consolidate: delivered 23h ago waits for min_notice", item("a", 100*time.Hour, policy.ActionConsolidate, true),
			History{CustomerNotices: 2, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-23 * time.Hour)}, set,
			ActionConsolidate, false, ReasonMinNotice, false, ActionNone},
		{"consolidate: queued but never delivered", item("a", 61*time.Hour, policy.ActionConsolidate, true),
			History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour)}, set,
			ActionConsolidate, false, ReasonMinNotice, false, ActionNone},
		{"consolidate: notices to the previous owner do not count", item("a", 100*time.Hour, policy.ActionConsolidate, true),
			History{Owner: "globex", ByCustomer: map[string]Notices{"globex": {Count: 5, Last: t0.Add(-time.Hour), FirstDelivered: t0.Add(-90 * time.Hour)}}}, set,
			ActionWarn, true, ReasonOwnerChanged, false, ActionWarn},
		{"consolidate: support relays never count as a warning", item("a", 100*time.Hour, policy.ActionConsolidate, true),
			History{Relayed: Notices{Count: 4, Last: t0.Add(-time.Hour), FirstDelivered: t0.Add(-90 * time.Hour)}}, set,
			ActionWarn, true, ReasonFirstNotice, false, ActionWarn},
		{"unreachable: relays to support are paced by earlier relays", item("a", 30*time.Hour, policy.ActionConsolidate, false),
			History{Relayed: Notices{Count: 1, Last: t0.Add(-time.Hour)}}, set, ActionRemind, false, ReasonNotYetDue, false, ActionNone},
		{"disputed: support told, no customer, nothing committed", disputed(item("a", 100*time.Hour, policy.ActionConsolidate, true), "acme", "zeta"),
			warned, set, ActionEscalate, true, ReasonOwnerDisputed, true, ActionNone},
		{"disputed: support told recently", disputed(item("a", 100*time.Hour, policy.ActionConsolidate, true), "acme", "zeta"),
			History{Escalations: 1, LastEscalation: t0.Add(-time.Hour)}, set, ActionEscalate, false, ReasonOwnerDisputed, false, ActionNone},
		{"disputed young", disputed(item("a", time.Hour, policy.ActionConsolidate, true), "acme", "zeta"),
			History{}, set, ActionEscalate, false, ReasonOwnerDisputed, false, ActionNone},
		{"clock skew: support told once", skewed(item("a", 0, policy.ActionConsolidate, true)), History{}, set,
			ActionEscalate, true, ReasonClockSkew, true, ActionNone},
		{"clock skew: already told", skewed(item("a", 0, policy.ActionConsolidate, true)), History{SkewReported: true}, set,
			ActionWarn, false, ReasonNotYetDue, false, ActionNone},
		{"consolidate: attempts exhausted", item("a", 61*time.Hour, policy.ActionConsolidate, true),
			History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-30 * time.Hour), Attempts: 3, LastFault: "TaskInProgress"}, set,
			ActionBlocked, true, ReasonGuardAttempts, true, ActionNone},
		{"consolidate: in flight", item("a", 61*time.Hour, policy.ActionConsolidate, true),
			History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-30 * time.Hour), InFlight: true, TaskID: "task-7"}, set,
			ActionConsolidate, false, ReasonInFlight, false, ActionNone},
		{"consolidate: outside window", item("a", 61*time.Hour, policy.ActionConsolidate, true),
			History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-30 * time.Hour)},
			Settings{MaxPerRun: 10, MaxAttempts: 3, Window: &Window{Start: fixed(t0.Add(2 * time.Hour)), Duration: time.Hour}},
			ActionBlocked, true, ReasonGuardWindow, true, ActionNone},
		{"consolidate: inside window", item("a", 61*time.Hour, policy.ActionConsolidate, true),
			History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-30 * time.Hour)},
			Settings{MaxPerRun: 10, MaxAttempts: 3, Window: &Window{Start: fixed(t0.Add(-30 * time.Minute)), Duration: time.Hour}},
			ActionConsolidate, true, ReasonConsolidateDue, false, ActionNone},
		{"consolidate: datastore too full", func() Item {
			it := item("a", 61*time.Hour, policy.ActionConsolidate, true)
			it.Snapshot.VM.Datastores[0].Free = 100 * gib // 100 - 1 < 10% of 1000
			return it
		}(), warned, set, ActionBlocked, true, ReasonGuardDatastore, true, ActionRemind},
		{"exempt", func() Item {
			it := item("a", 100*time.Hour, policy.ActionConsolidate, true)
			it.Snapshot.VM.Tags = []facts.Tag{{Category: "x", Name: "snapwarden-exempt"}}
			return it
		}(), History{}, set, ActionNone, false, ReasonNothingToDo, false, ActionNone},
		{"managed fresh", func() Item {
			it := item("a", 2*time.Hour, policy.ActionConsolidate, true)
			it.Snapshot.Name = "Restore Point 7"
			return it
		}(), History{}, set, ActionEscalate, false, ReasonNotYetDue, false, ActionNone},
		{"managed stale", func() Item {
			it := item("a", 200*time.Hour, policy.ActionConsolidate, true)
			it.Snapshot.Name = "Restore Point 7"
			return it
		}(), History{}, set, ActionEscalate, true, ReasonManagedStale, true, ActionNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decideOne(t, tt.it, tt.h, tt.set, t0)
			if d.Action != tt.action || d.Due != tt.due || d.Reason != tt.reason {
				t.Fatalf("got %s due=%v %s (%s), want %s due=%v %s", d.Action, d.Due, d.Reason, d.Why, tt.action, tt.due, tt.reason)
			}
			if d.EscalateNow != tt.escalate {
				t.Errorf("EscalateNow = %v, want %v", d.EscalateNow, tt.escalate)
			}
			if d.CustomerNotice != tt.notice {
				t.Errorf("CustomerNotice = %s, want %s", d.CustomerNotice, tt.notice)
			}
			if d.Due && d.Action != ActionBlocked && !d.At.Equal(t0) {
				t.Errorf("a due action is due now, got At %s", d.At)
			}
		})
	}
}

// fixed is a schedule that fires once a day at the clock time of t.
func fixed(t time.Time) cron.Schedule {
	s, err := cron.ParseStandard(fmt.Sprintf("%d %d * * *", t.Minute(), t.Hour()))
	if err != nil {
		panic(err)
	}
	s.(*cron.SpecSchedule).Location = time.UTC
	return s
}

func TestMaxPerRunKeepsTheOldest(t *testing.T) {
	warned := ownedBy(History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-30 * time.Hour)}, "acme")
	var items []Item
	hist := map[facts.Key]History{}
	for i, age := range []time.Duration{70, 90, 65, 80} {
		it := evaluate(item(fmt.Sprint("s", i), age*time.Hour, policy.ActionConsolidate, true), t0)
		items = append(items, it)
		hist[it.Snapshot.Key()] = warned
	}
	ds := build(items, hist, Settings{MaxPerRun: 2, MaxAttempts: 3}, t0)
	var got []string
	for _, d := range ds {
		got = append(got, fmt.Sprintf("%s:%s", d.Snapshot.Name, d.Action))
		if d.Reason == ReasonGuardMaxPerRun && d.EscalateNow {
			t.Errorf("%s: waiting for the next cycle must not page support", d.Snapshot.Name)
		}
	}
	if want := "s0:blocked s1:consolidate s2:blocked s3:consolidate"; strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s (the two oldest)", got, want)
	}
}

func TestWindowOpen(t *testing.T) {
	w := &Window{Start: fixed(time.Date(0, 1, 1, 22, 0, 0, 0, time.UTC)), Duration: 6 * time.Hour}
	for _, tt := range []struct {
		at   string
		open bool
		next string
	}{
		{"2026-11-24T21:59:00Z", false, "2026-11-24T22:00:00Z"},
		{"2026-11-24T22:00:00Z", true, ""},
		{"2026-11-25T03:59:00Z", true, ""},
		{"2026-11-25T04:00:00Z", false, "2026-11-25T22:00:00Z"},
	} {
		at, _ := time.Parse(time.RFC3339, tt.at)
		open, next := w.Open(at)
		if open != tt.open || (!open && next.Format(time.RFC3339) != tt.next) {
			t.Errorf("at %s: open=%v next=%s, want %v %s", tt.at, open, next.Format(time.RFC3339), tt.open, tt.next)
		}
	}
}

// TestGoldenTimeline runs hourly cycles over a week for snapshots of an
// escalating and a consolidating customer, feeding each cycle's decisions back
// into the history as the service does, and pins the sequence of actions.
func TestGoldenTimeline(t *testing.T) {
	set := Settings{MaxPerRun: 10, MaxAttempts: 3, MinFreePercent: 10, MinNotice: 24 * time.Hour}
	base := []Item{
		item("esc", 0, policy.ActionEscalate, true),
		item("cons", 0, policy.ActionConsolidate, true),
		item("orphan", 0, policy.ActionConsolidate, false),
		// Found already 100h old (a first deployment): committed min_notice
		// after its first notice, not at the next cycle.
		item("found-old", 100*time.Hour, policy.ActionConsolidate, true),
	}
	hist := map[facts.Key]History{}
	removed := map[string]bool{}
	var b strings.Builder
	for h := 0; h <= 24*7; h++ {
		now := t0.Add(time.Duration(h) * time.Hour)
		var items []Item
		for _, it := range base {
			if !removed[it.Snapshot.Name] {
				items = append(items, evaluate(it, now))
			}
		}
		for _, d := range build(items, hist, set, now) {
			if !d.Due {
				continue
			}
			fmt.Fprintf(&b, "+%3dh %-6s %-8s %-11s notice=%-6s escalate=%-5v %s: %s\n", h, d.Snapshot.Name, d.Verdict.State,
				d.Action, d.CustomerNotice, d.EscalateNow, d.Reason, d.Why)
			k := d.Snapshot.Key()
			hist[k] = remember(hist[k], d, now, now)
			if d.Action == ActionConsolidate {
				removed[d.Snapshot.Name] = true
			}
		}
	}
	goldenFile(t, "timeline.golden", b.String())
}

// remember is what the ledger records of decision d of a cycle at now,
// with its customer notice delivered at delivered (zero: not delivered):
// the owner, notices per customer (relays to support apart) and escalations.
func remember(h History, d Decision, now, delivered time.Time) History {
	if h.FirstSeen.IsZero() {
		h.FirstSeen = now
	}
	h.Owner = d.Customer
	if d.CustomerNotice != ActionNone {
		if d.Reachable {
			by := make(map[string]Notices, len(h.ByCustomer)+1)
			for c, n := range h.ByCustomer {
				by[c] = n
			}
			n := by[d.Customer]
			n.Count++
			n.Last = now
			if n.FirstDelivered.IsZero() {
				n.FirstDelivered = delivered
			}
			by[d.Customer] = n
			h.ByCustomer = by
		} else {
			h.Relayed.Count++
			h.Relayed.Last = now
		}
	}
	if d.EscalateNow {
		h.Escalations++
		h.LastEscalation = now
		if d.Action == ActionBlocked {
			h.BlockedReason = d.Reason.String()
		}
		h.SkewReported = h.SkewReported || d.Reason == ReasonClockSkew
	}
	return h
}

func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file; review and run go test -update:\n--- got\n%s", path, got)
	}
}

// CommitAt is max(deadline + grace, first delivered notice + min_notice),
// projected from the next notice while none was delivered; an overdue
// snapshot waiting for min_notice shows that time as its next action.
func TestCommitAt(t *testing.T) {
	set := Settings{MaxPerRun: 10, MaxAttempts: 3, MinNotice: 24 * time.Hour}
	tests := []struct {
		name   string
		age    time.Duration
		warned time.Duration // before t0; 0: never delivered
		commit time.Duration // after t0
		at     time.Duration // the decision's At after t0, when its action is consolidate
	}{
		{"overdue, never told: a day after this notice", 100 * time.Hour, 0, 24 * time.Hour, -1},
		{"overdue, told 10h ago", 100 * time.Hour, 10 * time.Hour, 14 * time.Hour, 14 * time.Hour},
		{"within grace, never told: min_notice binds", 50 * time.Hour, 0, 24 * time.Hour, -1},
		{"within grace, told long ago: deadline + grace binds", 50 * time.Hour, 30 * time.Hour, 10 * time.Hour, 10 * time.Hour},
		{"warning, never told: deadline + grace binds", 30 * time.Hour, 0, 30 * time.Hour, -1},
		{"young: from its first notice at warn_after", time.Hour, 0, 59 * time.Hour, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := History{}
			if tt.warned > 0 {
				h = History{CustomerNotices: 3, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-tt.warned)}
			}
			d := decideOne(t, item("a", tt.age, policy.ActionConsolidate, true), h, set, t0)
			if want := t0.Add(tt.commit); !d.CommitAt.Equal(want) {
				t.Errorf("CommitAt %s, want %s", d.CommitAt, want)
			}
			if tt.at >= 0 && (d.Action != ActionConsolidate || d.Due || !d.At.Equal(t0.Add(tt.at))) {
				t.Errorf("got %s due=%v at %s (%s), want consolidate at %s", d.Action, d.Due, d.At, d.Reason, t0.Add(tt.at))
			}
		})
	}
	// No commit time where nothing is committed.
	for _, it := range []Item{item("e", 100*time.Hour, policy.ActionEscalate, true), item("u", 100*time.Hour, policy.ActionConsolidate, false),
		disputed(item("d", 100*time.Hour, policy.ActionConsolidate, true), "a", "b")} {
		if d := decideOne(t, it, History{}, set, t0); !d.CommitAt.IsZero() {
			t.Errorf("%s: CommitAt %s, want none", it.Snapshot.Name, d.CommitAt)
		}
	}
}
