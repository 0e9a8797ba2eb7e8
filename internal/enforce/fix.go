package enforce

import (
	"context"
	"errors"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

// A disk consolidation of a consolidation_needed VM
// (enforcement.fix_consolidation_needed) goes through the scheduler and the
// ledger as a decision whose snapshot has no id: it stands for the VM, and
// its Key is plan.VMKey, so the one-per-VM rule, the in-flight check and
// Resume treat it like any consolidation of that VM.

// fixDecision is a due disk consolidation as the scheduler's decision.
func fixDecision(pr plan.Problem) plan.Decision {
	return plan.Decision{
		// The zero policy: a VM's disks are nobody's snapshot (readers
		// dereference Policy).
		Item: plan.Item{Snapshot: facts.Snapshot{VM: pr.VM, SizeBytes: pr.SizeBytes}, Customer: pr.Customer,
			Policy: &policy.Policy{}},
		Action: plan.ActionConsolidate, Due: true, At: pr.Fix.At, Reason: plan.ReasonConsolidateDue, Why: pr.Fix.Why,
	}
}

// isFix reports whether d is a disk consolidation of a consolidation_needed
// VM rather than a snapshot's removal.
func isFix(d plan.Decision) bool { return d.Snapshot.ID == "" }

// IsFix reports whether the outcome is a disk consolidation of a
// consolidation_needed VM (run or resumed), not part of a snapshot's commit.
func (o Outcome) IsFix() bool { return o.Kind == KindConsolidate && isFix(o.Decision) }

// kindOf is the ledger's kind of an attempt on d.
func kindOf(d plan.Decision) string {
	if isFix(d) {
		return KindConsolidate
	}
	return KindRemove
}

// fix re-checks the guards for one disk consolidation and, when all pass,
// runs ConsolidateVMDisks_Task: the window (for the VM's delta files), no
// other consolidation in flight, the flag still set once the VM is
// reloaded (a stale flag would stun the VM for nothing), the owner, the
// disk modes, no task on the VM and room on its datastores. No notice is
// needed first: it removes no snapshot.
func (r *run) fix(ctx context.Context, d plan.Decision, inFlight string) []Outcome {
	e, s := r.e, r.s
	vm := d.Snapshot.VM
	refuse := func(guard, detail, fault string) []Outcome {
		return []Outcome{r.refuse(ctx, d, KindConsolidate, guard, detail, fault)}
	}
	if why, _ := s.Window.Fits(r.clock(), d.Snapshot.SizeBytes); why != "" {
		return refuse(GuardWindow, why, "")
	}
	if inFlight != "" {
		return refuse(GuardInFlight, "another consolidation of the VM is in flight: "+inFlight, "")
	}
	c, err := e.Pool.Client(ctx, vm.VCenter)
	if err != nil {
		return refuse(GuardVCenter, "vCenter could not be reached: "+err.Error(), "")
	}
	// Reloaded first, so the re-read's consolidationNeeded is not stale.
	if err := c.Reload(ctx, vm.MoRef); errors.Is(err, vsphere.ErrNotFound) {
		return refuse(GuardGone, "the VM no longer exists", "")
	}
	rr, err := c.Recheck(ctx, vm.MoRef, "")
	switch {
	case err != nil:
		return refuse(GuardVCenter, "the VM could not be read again: "+err.Error(), vsphere.FaultOf(err))
	case rr.VM == nil || !rr.VM.ConsolidationNeeded:
		return refuse(GuardNotNeeded, "the VM no longer needs its disks consolidated", "")
	}
	keepUnread(rr.VM, vm)
	if why := r.owner(rr.VM, d); why != "" {
		return refuse(GuardOwner, why, "")
	}
	if odd := diskRefusal(rr.SpecialDisks, "consolidating its disks"); odd != "" {
		return refuse(GuardDisk, odd, "")
	}
	if rr.Busy != "" {
		return refuse(GuardBusy, "the VM is busy: "+rr.Busy, "")
	}
	if short := plan.DatastoreShort(facts.Snapshot{VM: rr.VM, SizeBytes: d.Snapshot.SizeBytes}, s.MinFreePercent); short != "" {
		return refuse(GuardDatastore, short, "")
	}
	return []Outcome{r.task(ctx, d, KindConsolidate, func(ctx context.Context) (string, error) {
		return c.ConsolidateDisks(ctx, vm.MoRef)
	}, func(ctx context.Context) (bool, error) {
		need, err := c.ConsolidationNeeded(ctx, vm.MoRef)
		return !need, err
	})}
}
