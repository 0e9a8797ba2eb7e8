package plan

import (
	"fmt"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// Fix is what snapwarden does about a consolidation_needed problem
// (enforcement.fix_consolidation_needed): nothing, run
// ConsolidateVMDisks_Task (Action consolidate; Due now, or waiting until
// At), or blocked by a guard. Other problems never get one.
type Fix struct {
	Action Action
	Due    bool
	At     time.Time
	// Why explains it in one sentence for support.
	Why string
}

// FixHistory is what the ledger remembers of the disk consolidations
// snapwarden ran on one VM for its consolidation_needed problem (actions
// of kind consolidate-disks that name no snapshot).
type FixHistory struct {
	// Attempts counts the failed ones since the last success.
	Attempts  int
	LastFault string
	// InFlight is set while one is running (or was when the process
	// stopped), with its task id.
	InFlight bool
	TaskID   string
	// DiskModeRefusal and DiskModeRefusedAt are as in History.
	DiskModeRefusal   string
	DiskModeRefusedAt time.Time
}

// VMKey is the ledger's identity of a VM, the key of its disk
// consolidations: a snapshot key without snapshot.
func VMKey(vm *facts.VM) facts.Key {
	return (&facts.Snapshot{VM: vm}).Key()
}

// Fixes decides, for every consolidation_needed problem of the plan, whether
// snapwarden consolidates the VM's disks. It is pure: the facts are the
// collected ones, the history the ledger's (keyed by VMKey), policyFor the
// customer's policy. A VM whose snapshot is committed this cycle is left to
// that removal, which consolidates too; fixes due count against max_per_run
// with the removals due, oldest removal first.
func Fixes(p *Plan, hist map[facts.Key]FixHistory, policyFor func(customer string) policy.Policy, set Settings, now time.Time) {
	removing := map[*facts.VM]bool{}
	budget := set.MaxPerRun
	for _, d := range p.Decisions {
		if d.Action == ActionConsolidate && d.Due {
			removing[d.Snapshot.VM] = true
			budget--
		}
	}
	for i := range p.Problems {
		pr := &p.Problems[i]
		if pr.Kind != facts.ConsolidationNeeded || pr.VM == nil || !set.FixConsolidationNeeded {
			continue
		}
		f := &pr.Fix
		h := hist[VMKey(pr.VM)]
		odd, held := diskModeHeld(h.DiskModeRefusal, h.DiskModeRefusedAt, now)
		switch {
		case pr.Customer == "":
			f.Why = "the VM has no single owner: support consolidates it"
		case policyFor(pr.Customer).Action != policy.ActionConsolidate:
			f.Why =
				fmt.Sprintf("the action of customer %q is not consolidate: support consolidates it", pr.Customer)
		case h.InFlight:
			f.Action, f.At, f.Why = ActionConsolidate, now, fmt.Sprintf("disk consolidation task %s is running", h.TaskID)
		case removing[pr.VM]:
			f.Action, f.At, f.Why = ActionConsolidate, now, "the snapshot removal due this cycle consolidates the disks too"
		case held:
			f.Action, f.Due, f.At, f.Why = ActionBlocked, true, now, odd
		case set.MaxAttempts > 0 && h.Attempts >= set.MaxAttempts:
			f.Action, f.Due, f.At = ActionBlocked, true, now
			f.Why = fmt.Sprintf("disk consolidation failed %d times (last: %s); left to support", h.Attempts, h.LastFault)
		default:
			f.Action, f.Due, f.At, f.Why = ActionConsolidate, true, now,
				"consolidate the VM's disks (ConsolidateVMDisks_Task)"
			if why, next := set.Window.Fits(now, pr.SizeBytes); why != "" {
				f.Due, f.At, f.Why = false, next, why
			} else if short := DatastoreShort(facts.Snapshot{VM: pr.VM, SizeBytes: pr.SizeBytes}, set.MinFreePercent); short != "" {
				f.Action, f.Why = ActionBlocked, short
			} else if set.MaxPerRun > 0 && budget <= 0 {
				f.Action, f.Due = ActionConsolidate, false
				f.Why = fmt.Sprintf("max_per_run (%d) consolidations already planned this cycle; next cycle", set.MaxPerRun)
			} else {
				budget--
			}
		}
	}
}

// FixDue reports whether a problem's disk consolidation is to start now.
func (p *Problem) FixDue() bool { return p.Fix.Action == ActionConsolidate && p.Fix.Due }

// DiskModeRecheck is how long a disk-mode refusal holds before enforce
// reads the VM's disks again: the collection does not read disk modes (it
// would slow by half), so the planner knows of a non-persistent disk only
// from enforce's last refusal. Support is told once; a VM whose disk was
// made persistent is acted on within a day.
const DiskModeRecheck = 24 * time.Hour

// GuardDiskMode is enforce's guard name for a disk in a non-persistent
// mode, the prefix of its refusal in the ledger.
const GuardDiskMode = "disk-mode"

// diskModeHeld says whether enforce's disk-mode refusal at at still holds
// at now, and why for support.
func diskModeHeld(refusal string, at, now time.Time) (string, bool) {
	if refusal == "" || !now.Before(at.Add(DiskModeRecheck)) {
		return "", false
	}
	return fmt.Sprintf("%s (found at %s; read again after %s)", refusal, at.UTC().Format(time.RFC3339),
		at.Add(DiskModeRecheck).UTC().Format(time.RFC3339)), true
}
