package cycle

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// In enforce mode, a consolidate customer's overdue snapshot is committed
// only min_notice after a notice naming it reached the customer (which
// states that time), never at the next cycle or a restart's first one; then
// exactly where the dry-run plan said "consolidate", and the customer and
// support are told.
func TestEnforceCycle(t *testing.T) {
	e := newEnv(t, "demo.yaml")
	e.cfg.Enforcement.Mode = "enforce"
	r := e.runner(t)

	res := cycle(t, r, t0)
	if res.Actions["success"] != 0 {
		t.Fatalf("first contact: %v consolidations, want none before the customer was warned", res.Actions)
	}
	commitAt := t0.Add(e.cfg.Enforcement.MinNotice)
	for _, d := range res.Plan.Decisions {
		if d.Snapshot.VM.Name == "globex-web01" && (d.CustomerNotice != plan.ActionWarn || !d.CommitAt.Equal(commitAt)) {
			t.Errorf("globex-web01 at first sight: notice %s, commit at %s; want a first notice and commit at %s (min_notice after it)",
				d.CustomerNotice, d.CommitAt, commitAt)
		}
	}
	var told bool
	for _, m := range messages(t, e.sink, 0) {
		told = told || (m.to[0] == "noc@globex.example" && strings.Contains(m.body, "no earlier than "+commitAt.UTC().Format("2006-01-02 15:04 UTC")))
	}
	if !told {
		t.Errorf("globex's first notice does not state the earliest commit time %s", commitAt)
	}

	// A second later (serve restarted, say), and an hour later: still nothing.
	for _, at := range []time.Time{t0.Add(time.Second), t0.Add(time.Hour)} {
		if res := cycle(t, r, at); res.Actions["success"] != 0 {
			t.Fatalf("at %s, before min_notice passed: committed %v", at, res.Outcomes)
		}
	}
	p := r.mustPlan(t, t0.Add(2*time.Hour))
	for _, d := range p.Decisions {
		if d.Snapshot.VM.Name == "globex-web01" && (d.Action != plan.ActionConsolidate || d.Due || !d.At.Equal(commitAt) || d.Reason != plan.ReasonMinNotice) {
			t.Errorf("report of globex-web01 after its notice: %s due=%v at %s (%s), want consolidate at %s for min-notice",
				d.Action, d.Due, d.At, d.Reason, commitAt)
		}
	}

	// The dry-run plan of the next cycle is what the enforce cycle executes.
	at := commitAt
	want := map[string]bool{}
	for _, d := range r.mustPlan(t, at).Decisions {
		if d.Action == plan.ActionConsolidate && d.Due {
			want[d.Snapshot.VM.Name+"/"+d.Snapshot.Name] = true
		}
	}
	if !want["globex-web01/before-cms-migration"] {
		t.Fatalf("dry-run plan at +min_notice consolidates %v, want globex-web01's overdue snapshot", want)
	}
	n := len(e.sink.Messages())
	res = cycle(t, r, at)
	got := map[string]bool{}
	for _, o := range res.Outcomes {
		if o.Kind == "remove" && o.Result == "success" {
			got[o.Decision.Snapshot.VM.Name+"/"+o.Decision.Snapshot.Name] = true
		}
	}
	if len(got) != len(want) {
		t.Errorf("enforce cycle committed %v, the dry-run plan said %v", got, want)
	}
	for k := range got {
		if !want[k] {
			t.Errorf("committed %s, which the dry-run plan did not mark consolidate", k)
		}
	}
	if _, ok := e.sim.VMRef("globex-web01"); !ok {
		t.Fatal("globex-web01 missing from the simulator")
	}
	inv, err := Collect(context.Background(), r.pool, r.ledger)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range inv.Snapshots {
		if s.VM.Name == "globex-web01" && s.Name == "before-cms-migration" {
			t.Error("the committed snapshot is still in vCenter")
		}
	}

	// The customer hears what was committed; support sees it too.
	var toCustomer, toSupport bool
	for _, m := range messages(t, e.sink, n) {
		switch m.to[0] {
		case "noc@globex.example":
			toCustomer = strings.Contains(m.subject, "committed") && strings.Contains(m.body, "before-cms-migration")
		case "support@provider.example":
			toSupport = toSupport || strings.Contains(m.body, "before-cms-migration")
		}
	}
	if !toCustomer || !toSupport {
		t.Errorf("commit notices: customer %v, support %v; want both", toCustomer, toSupport)
	}

	// The ledger's audit trail has the action with its task id.
	events, err := r.ledger.Audit(context.Background(), ledger.Filter{VM: "globex-web01"})
	if err != nil {
		t.Fatal(err)
	}
	var action *ledger.Event
	for i := range events {
		if events[i].Kind == "action" {
			action = &events[i]
		}
	}
	if action == nil || action.TaskID == "" || action.Result != "success" {
		t.Errorf("history of globex-web01 lacks the successful removal with its task id: %+v", events)
	}

	// Nothing more to do: a later cycle removes nothing else.
	res = cycle(t, r, at.Add(time.Hour))
	if res.Actions["success"] != 0 {
		t.Errorf("a later cycle committed %v more", res.Actions)
	}
}

// In dry-run mode (the default) nothing is ever removed.
func TestDryRunRemovesNothing(t *testing.T) {
	e := newEnv(t, "demo.yaml")
	r := e.runner(t)
	cycle(t, r, t0)
	res := cycle(t, r, t0.Add(time.Hour))
	if len(res.Outcomes) != 0 {
		t.Errorf("dry-run cycle acted: %+v", res.Outcomes)
	}
	inv, err := Collect(context.Background(), r.pool, r.ledger)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Snapshots) != len(res.Plan.Decisions) || len(inv.Snapshots) != 27 {
		t.Errorf("dry-run: %d snapshots left of the demo's 27", len(inv.Snapshots))
	}
}
