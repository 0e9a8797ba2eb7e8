package cycle

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/enforce"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// fixOf is the plan's fix of a VM's consolidation_needed problem.
func fixOf(t *testing.T, p *plan.Plan, vm string) plan.Fix {
	t.Helper()
	for _, pr := range p.Problems {
		if pr.Kind == facts.ConsolidationNeeded && pr.VM != nil && pr.VM.Name == vm {
			return pr.Fix
		}
	}
	t.Fatalf("no consolidation_needed problem for %s", vm)
	return plan.Fix{}
}

// TestFixConsolidationNeeded: with enforcement.fix_consolidation_needed, a
// consolidate customer's VM left on its deltas gets ConsolidateVMDisks_Task
// once, recorded in the ledger and told to support only; an escalate
// customer's is left to support; a VM with a non-persistent disk is refused;
// the dry-run report says what enforce will do and does nothing.
func TestFixConsolidationNeeded(t *testing.T) {
	e := newEnv(t, "fix.yaml")
	for _, vm := range []string{"globex-stuck01", "globex-stuck02", "acme-stuck01"} {
		if err := e.sim.EnableConsolidate(vm); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.sim.SetDiskMode("globex-stuck02", "independent_nonpersistent"); err != nil {
		t.Fatal(err)
	}
	e.cfg.Enforcement.FixConsolidationNeeded = true
	r := e.runner(t)

	// Dry-run: the plan says what enforce would do; nothing runs.
	res := cycle(t, r, t0)
	if f := fixOf(t, res.Plan, "globex-stuck01"); f.Action != plan.ActionConsolidate || !f.Due {
		t.Errorf("dry-run fix of globex-stuck01 = %+v, want consolidate due", f)
	}
	if f := fixOf(t, res.Plan, "acme-stuck01"); f.Action != plan.ActionNone || !strings.Contains(f.Why, "not consolidate") {
		t.Errorf("fix of acme-stuck01 (an escalate customer) = %+v, want none, left to support", f)
	}
	if n := e.sim.Consolidations("globex-stuck01"); n != 0 || len(res.Outcomes) != 0 {
		t.Fatalf("dry-run: %d consolidations, outcomes %v", n, res.Outcomes)
	}

	// Enforce: globex-stuck01 is consolidated; globex-stuck02's
	// independent non-persistent disk refuses it; acme's is not touched.
	cfg := *e.cfg
	cfg.Enforcement.Mode = enforce.ModeEnforce
	if err := r.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	n := len(e.sink.Messages())
	res = cycle(t, r, t0.Add(time.Hour))
	results := map[string]string{}
	for _, o := range res.Outcomes {
		if !o.IsFix() {
			t.Errorf("outcome %+v is not a disk consolidation", o)
		}
		results[o.Decision.Snapshot.VM.Name] = o.Result + "/" + o.Reason
	}
	if want := map[string]string{"globex-stuck01": "success/", "globex-stuck02": "refused/disk-mode"}; len(results) != 2 ||
		results["globex-stuck01"] != want["globex-stuck01"] || results["globex-stuck02"] != want["globex-stuck02"] {
		t.Errorf("outcomes %v, want %v", results, want)
	}
	for vm, want := range map[string]int{"globex-stuck01": 1, "globex-stuck02": 0, "acme-stuck01": 0} {
		if got := e.sim.Consolidations(vm); got != want {
			t.Errorf("%s: %d ConsolidateVMDisks_Task calls, want %d", vm, got, want)
		}
	}
	var consolidated, refusedTold bool
	for _, m := range messages(t, e.sink, n) {
		if m.to[0] != "support@provider.example" {
			for _, s := range []string{"globex-stuck", "consolidat"} {
				if strings.Contains(m.body, s) {
					t.Errorf("a message to %v mentions %q: disk consolidations are for support only", m.to, s)
				}
			}
			continue
		}
		consolidated = consolidated || strings.Contains(m.body, "DISK CONSOLIDATIONS") && strings.Contains(m.body, "globex-stuck01 on vc-test: consolidated")
		refusedTold = refusedTold || strings.Contains(m.body, "DISK CONSOLIDATIONS") && strings.Contains(m.body, "globex-stuck02 on vc-test: refused")
	}
	if !consolidated || !refusedTold {
		t.Errorf("support told of globex-stuck01's disk consolidation %v, of globex-stuck02's refusal %v; want both", consolidated, refusedTold)
	}
	events, err := r.ledger.Audit(context.Background(), ledger.Filter{VM: "globex-stuck02"})
	if err != nil {
		t.Fatal(err)
	}
	var refused bool
	for _, ev := range events {
		refused = refused || ev.Kind == ledger.EventAction && strings.Contains(ev.What, "disk-mode") && strings.Contains(ev.What, "independent_nonpersistent")
	}
	if !refused {
		t.Errorf("the ledger has no refusal naming the disk mode of globex-stuck02: %+v", events)
	}

	// The next cycle finds globex-stuck01 fixed and starts nothing more;
	// globex-stuck02 is held back on the refusal (the collection does not
	// read disk modes) even though its disk was made persistent meanwhile,
	// and support is not told again.
	if err := e.sim.SetDiskMode("globex-stuck02", "persistent"); err != nil {
		t.Fatal(err)
	}
	n = len(e.sink.Messages())
	res = cycle(t, r, t0.Add(2*time.Hour))
	for _, p := range res.Plan.Problems {
		if p.VM != nil && p.VM.Name == "globex-stuck01" {
			t.Errorf("globex-stuck01 still has problem %s after its consolidation", p.Kind)
		}
	}
	if f := fixOf(t, res.Plan, "globex-stuck02"); f.Action != plan.ActionBlocked || !strings.Contains(f.Why, "independent_nonpersistent") {
		t.Errorf("fix of globex-stuck02 after its refusal = %+v, want blocked naming the disk mode", f)
	}
	if len(res.Outcomes) != 0 || len(messages(t, e.sink, n)) != 0 {
		t.Errorf("the cycle after the refusal: outcomes %v, %d messages; want none", res.Outcomes, len(messages(t, e.sink, n)))
	}
	// A day after the refusal the disks are read again: now persistent,
	// globex-stuck02 is consolidated.
	res = cycle(t, r, t0.Add(time.Hour+plan.DiskModeRecheck+time.Minute))
	for vm, want := range map[string]int{"globex-stuck01": 1, "globex-stuck02": 1, "acme-stuck01": 0} {
		if got := e.sim.Consolidations(vm); got != want {
			t.Errorf("after the second enforce cycle %s: %d ConsolidateVMDisks_Task calls, want %d", vm, got, want)
		}
	}
}
