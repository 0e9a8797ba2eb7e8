package enforce_test

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/snapwarden/snapwarden/internal/enforce"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/simfleet"
)

// randomFleet is a few VMs of the consolidate customer (acme) and the
// escalate one (initech), each with a chain of 1-3 snapshots of random
// ages, some exempt or managed.
func randomFleet(rng *rand.Rand) *simfleet.Fleet {
	f := &simfleet.Fleet{Datastore: simfleet.Space{Capacity: 1 << 40, Free: 600 << 30}}
	if rng.Intn(5) == 0 {
		f.Datastore.Free = 110 << 30 // about min_free_percent: big snapshots do not fit
	}
	for i := 0; i < 1+rng.Intn(3); i++ {
		cust := "acme"
		if rng.Intn(4) == 0 {
			cust = "initech"
		}
		vm := simfleet.VM{Name: fmt.Sprintf("vm%02d", i), Folder: "Customers/" + cust, Tags: map[string]string{"Customer": cust}}
		// Ages fall along the chain: a child is younger than its parent.
		age := time.Duration(20+rng.Intn(140)) * time.Hour
		var chain []simfleet.Snap
		for j := 0; j < 1+rng.Intn(3); j++ {
			s := simfleet.Snap{Name: fmt.Sprintf("s%d", j), Age: simfleet.Duration(age), Size: simfleet.Size(int64(1+rng.Intn(30)) << 30)}
			switch rng.Intn(8) {
			case 0:
				s.Description = "keep-until=2099-01-01"
			case 1:
				s.Name = fmt.Sprintf("Rubrik-%d", j)
			}
			chain = append(chain, s)
			age -= time.Duration(1+rng.Intn(40)) * time.Hour
			if age <= 0 {
				break
			}
		}
		for j := len(chain) - 1; j > 0; j-- {
			chain[j-1].Children = []simfleet.Snap{chain[j]}
		}
		vm.Snapshots = chain[:1]
		f.VMs = append(f.VMs, vm)
	}
	return f
}

// TestPropertyEnforceOnlyRemovesWhatThePlanSaid: over random fleets, clocks,
// warnings, windows and interference, whatever enforce mode removes was
// marked consolidate and due by the plan (the dry-run report), and was past
// deadline + grace.
func TestPropertyEnforceOnlyRemovesWhatThePlanSaid(t *testing.T) {
	const iterations = 20
	rng := rand.New(rand.NewSource(20261124))
	window, err := cron.ParseStandard("0 * * * *") // open the first 20 minutes of every hour
	if err != nil {
		t.Fatal(err)
	}
	removedTotal := 0
	for it := 0; it < iterations; it++ {
		f := randomFleet(rng)
		e := newEnvFleet(t, f, t0)
		ctx := context.Background()
		now := t0.Add(time.Duration(rng.Intn(96*60)-48*60) * time.Minute)
		if rng.Intn(5) != 0 {
			e.warn(t, t0.Add(time.Duration(rng.Intn(96)-72)*time.Hour), nil)
		}
		p := e.plan(t, now)

		allowed := map[facts.Key]plan.Decision{}
		for _, d := range p.Decisions {
			if d.Action == plan.ActionConsolidate && d.Due {
				allowed[d.Snapshot.Key()] = d
			}
		}
		// Interference between the plan and the run.
		for _, d := range p.Decisions {
			switch rng.Intn(10) {
			case 0:
				if err := e.sim.RemoveSnapshot(d.Snapshot.VM.Name, d.Snapshot.Name); err != nil {
					t.Logf("iteration %d: interference: %v", it, err)
				}
			case 1:
				if err := e.sim.RenameSnapshot(d.Snapshot.VM.Name, d.Snapshot.Name, "", "keep-until=2099-12-31"); err != nil {
					t.Logf("iteration %d: interference: %v", it, err)
				}
			}
		}
		before := map[facts.Key]bool{}
		for _, s := range e.collect(t).Snapshots {
			before[s.Key()] = true
		}

		s := settings()
		s.MaxConcurrent = 1 + rng.Intn(3)
		if rng.Intn(4) == 0 {
			s.Window = &plan.Window{Start: window, Duration: 20 * time.Minute}
		}
		out := e.executor(now).Run(ctx, p, s)

		after := map[facts.Key]bool{}
		for _, s := range e.collect(t).Snapshots {
			after[s.Key()] = true
		}
		succeeded := map[facts.Key]bool{}
		for _, o := range out {
			if o.Kind == enforce.KindRemove && o.Result == enforce.ResultSuccess {
				succeeded[o.Decision.Snapshot.Key()] = true
			}
			if o.Result == enforce.ResultRunning {
				t.Errorf("iteration %d: a task outlived the run:%s", it, describe([]enforce.Outcome{o}))
			}
		}
		for k := range before {
			if after[k] {
				continue
			}
			removedTotal++
			d, ok := allowed[k]
			if !ok {
				t.Errorf("iteration %d (now %s): removed %s, which the plan did not mark consolidate+due", it, now, k)
				continue
			}
			if now.Before(d.Verdict.ActAt) {
				t.Errorf("iteration %d: removed %s at %s, before deadline + grace %s", it, k, now, d.Verdict.ActAt)
			}
			if !succeeded[k] {
				t.Errorf("iteration %d: %s vanished without a successful removal outcome", it, k)
			}
		}
		for k := range succeeded {
			if after[k] {
				t.Errorf("iteration %d: %s reported removed but still in vCenter", it, k)
			}
		}
		e.close()
	}
	// The property is vacuous if nothing was ever removed.
	if removedTotal == 0 {
		t.Error("no iteration removed anything: the generator never made a due consolidation")
	}
	t.Logf("%d snapshots removed over %d iterations", removedTotal, iterations)
}
