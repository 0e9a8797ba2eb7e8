package plan

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// decideWith runs the planner as the cycle does: Extend, Build, ApplyRequests.
func decideWith(it Item, h History, reqs RequestSettings, set Settings, now time.Time) Decision {
	it = evaluate(it, now)
	hist := map[facts.Key]History{it.Snapshot.Key(): ownedBy(h, it.Customer)}
	ds := decisions(it)
	Extend(ds, hist, reqs, now)
	Build(ds, hist, set, now)
	ApplyRequests(ds, reqs, set, now)
	return ds[0]
}

func TestRequests(t *testing.T) {
	// min_notice does not hold back the customer's own commit request
	// (the "never warned" case would wait for it).
	set := Settings{MaxPerRun: 10, MaxAttempts: 3, MinFreePercent: 10, MinNotice: 24 * time.Hour}
	reqs := RequestSettings{ExtendBy: 24 * time.Hour, MaxExtends: 2}
	dry := reqs
	dry.DryRun = true
	asked := t0.Add(-2 * time.Hour)
	warned := History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-20 * time.Hour), WarnedAt: t0.Add(-30 * time.Hour)}
	with := func(h History, as ...RequestAction) History {
		for i, a := range as {
			h.Requests = append(h.Requests, Request{Action: a, At: asked.Add(time.Duration(i) * time.Minute), Customer: "acme"})
		}
		return h
	}
	// The VM moved from initech to acme: initech's requests no longer count.
	previousOwner := warned
	previousOwner.Requests = []Request{{Action: RequestCommit, At: asked, Customer: "initech"}, {Action: RequestExtend, At: asked, Customer: "initech"}}
	closed, _ := cron.ParseStandard("0 22 * * *")
	shortMaxKeep := item("a", 50*time.Hour, policy.ActionConsolidate, true)
	shortMaxKeep.Policy.MaxKeep = 60 * time.Hour
	tests := []struct {
		name     string
		it       Item
		h        History
		reqs     RequestSettings
		set      Settings
		action   Action
		due      bool
		reason   Reason
		escalate bool
		notice   Action
		// extended is the deadline's shift; zero when not extended.
		extended time.Duration
	}{
		{"no request: consolidate due", item("a", 61*time.Hour, policy.ActionConsolidate, true), warned, reqs, set,
			ActionConsolidate, true, ReasonConsolidateDue, false, ActionRemind, 0},
		{"extend once: back to a reminder", item("a", 61*time.Hour, policy.ActionConsolidate, true), with(warned, RequestExtend), reqs, set,
			ActionRemind, true, ReasonReminderDue, false, ActionRemind, 24 * time.Hour},
		{"extend thrice counts max_extends", item("a", 61*time.Hour, policy.ActionConsolidate, true),
			with(warned, RequestExtend, RequestExtend, RequestExtend), reqs, set, ActionRemind, true, ReasonReminderDue, false, ActionRemind, 48 * time.Hour},
		{"extend capped at max_keep", shortMaxKeep, with(warned, RequestExtend, RequestExtend), reqs, set,
			ActionRemind, true, ReasonReminderDue, false, ActionRemind, 12 * time.Hour},
		{"extended deadline passed again", item("a", 90*time.Hour, policy.ActionConsolidate, true), with(warned, RequestExtend), reqs, set,
			ActionConsolidate, true, ReasonConsolidateDue, false, ActionRemind, 24 * time.Hour},
		{"the previous owner's requests count for nothing", item("a", 61*time.Hour, policy.ActionConsolidate, true), previousOwner, reqs, set,
			ActionConsolidate, true, ReasonConsolidateDue, false, ActionRemind, 0},
		{"the previous owner's commit does not commit", item("a", 30*time.Hour, policy.ActionEscalate, true), previousOwner, reqs, set,
			ActionRemind, true, ReasonReminderDue, false, ActionRemind, 0},
		{"commit before the deadline", item("a", 30*time.Hour, policy.ActionEscalate, true), with(warned, RequestCommit), reqs, set,
			ActionConsolidate, true, ReasonCustomerCommit, false, ActionNone, 0},
		{"commit never warned: the request is the notice", item("a", 30*time.Hour, policy.ActionEscalate, true), with(History{}, RequestCommit), reqs, set,
			ActionConsolidate, true, ReasonCustomerCommit, false, ActionNone, 0},
		{"commit of a consolidate policy's, told only 3 h ago", item("a", 30*time.Hour, policy.ActionConsolidate, true),
			with(History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-3 * time.Hour), WarnedAt: t0.Add(-3 * time.Hour)}, RequestCommit), reqs, set,
			ActionConsolidate, true, ReasonCustomerCommit, false, ActionNone, 0},
		{"commit in dry-run: support told", item("a", 30*time.Hour, policy.ActionEscalate, true), with(warned, RequestCommit), dry, set,
			ActionConsolidate, true, ReasonCustomerCommit, true, ActionNone, 0},
		{"commit in dry-run: support told once", item("a", 30*time.Hour, policy.ActionEscalate, true),
			with(History{Escalations: 1, LastEscalation: t0.Add(-time.Hour)}, RequestCommit), dry, set,
			ActionConsolidate, true, ReasonCustomerCommit, false, ActionNone, 0},
		{"commit outside the window", item("a", 30*time.Hour, policy.ActionEscalate, true), with(warned, RequestCommit), reqs,
			Settings{MaxPerRun: 10, MaxAttempts: 3, MinFreePercent: 10, Window: &Window{Start: closed, Duration: time.Hour}},
			ActionBlocked, true, ReasonGuardWindow, true, ActionNone, 0},
		{"commit: the datastore lacks room", item("a", 30*time.Hour, policy.ActionEscalate, true), with(warned, RequestCommit), reqs,
			Settings{MaxPerRun: 1, MaxAttempts: 3, MinFreePercent: 99}, ActionBlocked, true, ReasonGuardDatastore, true, ActionNone, 0},
		{"commit of an unreachable customer's: nothing", item("a", 30*time.Hour, policy.ActionEscalate, false), with(warned, RequestCommit), reqs, set,
			ActionRemind, true, ReasonReminderDue, false, ActionRemind, 0},
		{"not-mine: support told, customer not", item("a", 30*time.Hour, policy.ActionConsolidate, true), with(warned, RequestNotMine), reqs, set,
			ActionEscalate, true, ReasonOwnerDisputed, true, ActionNone, 0},
		{"not-mine wins over commit", item("a", 61*time.Hour, policy.ActionConsolidate, true), with(warned, RequestCommit, RequestNotMine), reqs, set,
			ActionEscalate, true, ReasonOwnerDisputed, true, ActionNone, 0},
		{"not-mine: told already, again after escalate_every", item("a", 61*time.Hour, policy.ActionConsolidate, true),
			with(History{Escalations: 1, LastEscalation: t0.Add(-time.Hour), CustomerNotices: 1, LastCustomerNotice: t0.Add(-13 * time.Hour)}, RequestNotMine),
			reqs, set, ActionEscalate, false, ReasonNotYetDue, false, ActionNone, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := decideWith(tc.it, tc.h, tc.reqs, tc.set, t0)
			if d.Action != tc.action || d.Due != tc.due || d.Reason != tc.reason || d.EscalateNow != tc.escalate || d.CustomerNotice != tc.notice {
				t.Fatalf("got %s due=%v %s escalate=%v notice=%s (%s), want %s due=%v %s escalate=%v notice=%s",
					d.Action, d.Due, d.Reason, d.EscalateNow, d.CustomerNotice, d.Why, tc.action, tc.due, tc.reason, tc.escalate, tc.notice)
			}
			base := evaluate(tc.it, t0).Verdict
			if tc.extended == 0 {
				if !d.ExtendedUntil.IsZero() || !d.Verdict.DeadlineAt.Equal(base.DeadlineAt) {
					t.Fatalf("extended to %s, want no extension", d.ExtendedUntil)
				}
				return
			}
			if want := base.DeadlineAt.Add(tc.extended); !d.ExtendedUntil.Equal(want) || !d.Verdict.DeadlineAt.Equal(want) ||
				!d.Verdict.ActAt.Equal(base.ActAt.Add(tc.extended)) {
				t.Fatalf("extended until %s (deadline %s, act %s), want %s", d.ExtendedUntil, d.Verdict.DeadlineAt, d.Verdict.ActAt, want)
			}
		})
	}
}

// The customer's own commit request competes for max_per_run with the
// planner's consolidations: the oldest snapshots win.
func TestCommitRequestCountsTowardsMaxPerRun(t *testing.T) {
	set := Settings{MaxPerRun: 1, MaxAttempts: 3, MinFreePercent: 10}
	warned := History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-20 * time.Hour), WarnedAt: t0.Add(-20 * time.Hour)}
	old := evaluate(item("old", 61*time.Hour, policy.ActionConsolidate, true), t0)
	asked := evaluate(item("asked", 30*time.Hour, policy.ActionEscalate, true), t0)
	hAsked := warned
	hAsked.Requests = []Request{{Action: RequestCommit, At: t0.Add(-time.Hour), Customer: "acme"}}
	hist := map[facts.Key]History{old.Snapshot.Key(): ownedBy(warned, "acme"), asked.Snapshot.Key(): ownedBy(hAsked, "acme")}
	ds := build([]Item{old, asked}, hist, set, t0)
	ApplyRequests(ds, RequestSettings{}, set, t0)
	if ds[0].Action != ActionConsolidate || !ds[0].Due || ds[1].Action != ActionBlocked || ds[1].Reason != ReasonGuardMaxPerRun {
		t.Fatalf("got %s/%s and %s/%s", ds[0].Action, ds[0].Reason, ds[1].Action, ds[1].Reason)
	}
}

func TestConfirmation(t *testing.T) {
	it := evaluate(item("a", 30*time.Hour, policy.ActionEscalate, true), t0)
	h := History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-13 * time.Hour),
		Requests: []Request{{Action: RequestExtend, At: t0.Add(-20 * time.Hour), Customer: "acme"}, {Action: RequestExtend, At: t0.Add(-time.Hour), Customer: "acme"}}}
	d := decideWith(it, h, RequestSettings{ExtendBy: 24 * time.Hour, MaxExtends: 2}, Settings{MaxPerRun: 10}, t0)
	got := d.Confirmation()
	want := "On 2026-11-24 11:00 UTC you asked us to keep it longer: the deadline is now 2026-11-27 06:00 UTC."
	if got != want {
		t.Fatalf("Confirmation = %q, want %q", got, want)
	}
	d.History.LastCustomerNotice = t0
	if got := d.Confirmation(); got != "" {
		t.Fatalf("a request told already is confirmed again: %q", got)
	}
}
