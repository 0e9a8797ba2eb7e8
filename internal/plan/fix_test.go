package plan

import (
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

func TestFixes(t *testing.T) {
	const gib = int64(1) << 30
	roomy := []facts.Datastore{{Name: "ds1", Capacity: 1000 * gib, Free: 500 * gib}}
	vm := func(name string, ds []facts.Datastore) *facts.VM {
		return &facts.VM{VCenter: "vc", VCenterID: "vc-uuid", Name: name, MoRef: "vm-" + name, InstanceUUID: "uuid-" + name, Datastores: ds}
	}
	stuck := func(v *facts.VM, customer string) Problem {
		return Problem{Problem: facts.Problem{Kind: facts.ConsolidationNeeded, VCenter: "vc", VM: v, SizeBytes: 10 * gib}, Customer: customer}
	}
	policies := map[string]policy.Action{"globex": policy.ActionConsolidate, "acme": policy.ActionEscalate}
	policyFor := func(id string) policy.Policy { return policy.Policy{Action: policies[id]} }
	closed, err := ParseWindow("0 22 * * *", 2*time.Hour, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	removing := vm("removing", roomy)
	full := vm("full", []facts.Datastore{{Name: "ds9", Capacity: 100 * gib, Free: 12 * gib}})

	cases := []struct {
		name    string
		problem Problem
		set     Settings
		hist    FixHistory
		due     []Decision // snapshot decisions of the plan
		action  Action
		isDue   bool
		why     string
	}{
		{name: "off by default", problem: stuck(vm("a", roomy), "globex"), set: Settings{}, action: ActionNone},
		{name: "consolidate customer", problem: stuck(vm("a", roomy), "globex"), set: Settings{FixConsolidationNeeded: true},
			action: ActionConsolidate, isDue: true, why: "ConsolidateVMDisks_Task"},
		{name: "escalate customer", problem: stuck(vm("a", roomy), "acme"), set: Settings{FixConsolidationNeeded: true},
			action: ActionNone, why: "not consolidate"},
		{name: "no owner", problem: stuck(vm("a", roomy), ""), set: Settings{FixConsolidationNeeded: true},
			action: ActionNone, why: "no single owner"},
		{name: "in flight", problem: stuck(vm("a", roomy), "globex"), set: Settings{FixConsolidationNeeded: true},
			hist: FixHistory{InFlight: true, TaskID: "task-9"}, action: ActionConsolidate, why: "task-9 is running"},
		{name: "failed max_attempts times", problem: stuck(vm("a", roomy), "globex"), set: Settings{FixConsolidationNeeded: true, MaxAttempts: 3},
			hist: FixHistory{Attempts: 3, LastFault: "FileLocked"}, action: ActionBlocked, isDue: true, why: "failed 3 times (last: FileLocked)"},
		{name: "failed fewer times", problem: stuck(vm("a", roomy), "globex"), set: Settings{FixConsolidationNeeded: true, MaxAttempts: 3},
			hist: FixHistory{Attempts: 2}, action: ActionConsolidate, isDue: true},
		{name: "window closed", problem: stuck(vm("a", roomy), "globex"), set: Settings{FixConsolidationNeeded: true, Window: closed},
			action: ActionConsolidate, why: "outside the maintenance window"},
		{name: "datastore short", problem: stuck(full, "globex"), set: Settings{FixConsolidationNeeded: true, MinFreePercent: 10},
			action: ActionBlocked, isDue: true, why: "datastore ds9"},
		{name: "a removal of the VM is due", problem: stuck(removing, "globex"), set: Settings{FixConsolidationNeeded: true},
			due:    []Decision{{Item: Item{Snapshot: facts.Snapshot{VM: removing}}, Action: ActionConsolidate, Due: true}},
			action: ActionConsolidate, why: "removal due this cycle"},
		{name: "max_per_run spent by removals", problem: stuck(vm("a", roomy), "globex"), set: Settings{FixConsolidationNeeded: true, MaxPerRun: 1},
			due:    []Decision{{Item: Item{Snapshot: facts.Snapshot{VM: removing}}, Action: ActionConsolidate, Due: true}},
			action: ActionConsolidate, why: "max_per_run (1)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &Plan{Decisions: c.due, Problems: []Problem{c.problem, {Problem: facts.Problem{Kind: facts.PhantomDelta, VM: c.problem.VM}}}}
			Fixes(p, map[facts.Key]FixHistory{VMKey(c.problem.VM): c.hist}, policyFor, c.set, t0)
			f := p.Problems[0].Fix
			if f.Action != c.action || f.Due != c.isDue || !strings.Contains(f.Why, c.why) {
				t.Errorf("fix = %s due=%v %q, want %s due=%v containing %q", f.Action, f.Due, f.Why, c.action, c.isDue, c.why)
			}
			if p.Problems[0].FixDue() != (c.action == ActionConsolidate && c.isDue) {
				t.Errorf("FixDue = %v", p.Problems[0].FixDue())
			}
			if other := p.Problems[1].Fix; other != (Fix{}) {
				t.Errorf("a phantom_delta got fix %+v: only consolidation_needed VMs are fixed", other)
			}
		})
	}
}

// Two VMs due and max_per_run 1: the first is consolidated this cycle, the
// second waits for the next.
func TestFixesShareMaxPerRun(t *testing.T) {
	p := &Plan{}
	for _, name := range []string{"a", "b"} {
		v := &facts.VM{Name: name, InstanceUUID: name, Datastores: []facts.Datastore{{Capacity: 100, Free: 100}}}
		p.Problems = append(p.Problems, Problem{Problem: facts.Problem{Kind: facts.ConsolidationNeeded, VM: v}, Customer: "globex"})
	}
	Fixes(p, nil, func(string) policy.Policy { return policy.Policy{Action: policy.ActionConsolidate} },
		Settings{FixConsolidationNeeded: true, MaxPerRun: 1}, t0)
	if !p.Problems[0].FixDue() || p.Problems[1].FixDue() {
		t.Errorf("fixes due: %v, %v; want the first only", p.Problems[0].Fix, p.Problems[1].Fix)
	}
}
