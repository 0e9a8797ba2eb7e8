package cycle

import (
	"maps"
	"slices"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/enforce"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/notify"
)

// EnforceSettings converts the config's enforcement section for the executor.
func EnforceSettings(cfg *config.Config, set *Planner) enforce.Settings {
	e := cfg.Enforcement
	return enforce.Settings{Mode: e.Mode, MaxConcurrent: e.MaxConcurrent, MinFreePercent: e.MinFreePercent,
		Window: set.Settings.Window, TaskTimeout: e.TaskTimeout, MinNotice: e.MinNotice, Rules: set.Rules}
}

// ActionNotices turns the act stage's outcomes into notices: each customer
// is told what was committed on their VMs, and support hears of every
// commit, every failed task, every VM that vanished under a task and every
// disk consolidation of a consolidation_needed VM that ended (a problem
// customers cannot see: they are not told).
// Refusals are in the ledger and the next plan; the planner escalates the
// ones that last. The executor calls it (through Runner.tell) for each
// result, whose notices are queued in the same ledger write.
func ActionNotices(cfg *config.Config, rd *notify.Renderer, outcomes []enforce.Outcome, now time.Time) ([]ledger.Notice, error) {
	byCustomer := map[string][]notify.Committed{}
	var sup notify.SupportDigest
	sup.At = now
	var items []ledger.Item
	for _, o := range outcomes {
		key := o.Decision.Snapshot.Key()
		if o.IsFix() {
			if dc, item, ok := diskConsolidation(o); ok {
				sup.Disks = append(sup.Disks, dc)
				items = append(items, item)
			}
			continue
		}
		switch {
		case o.Result == enforce.ResultSuccess && o.Kind == enforce.KindRemove:
			// The disk consolidation that may follow is part of the same commit.
			c := notify.Committed{Decision: o.Decision, At: o.At, TaskID: o.TaskID}
			sup.Committed = append(sup.Committed, c)
			// From the directory, not the decision: a removal resumed after a
			// restart carries only what the ledger knew.
			if cust, ok := cfg.Customer(o.Decision.Customer); ok && len(cust.Contacts) > 0 {
				byCustomer[o.Decision.Customer] = append(byCustomer[o.Decision.Customer], c)
			}
			items = append(items, ledger.Item{Key: key, Action: ledger.ItemConsolidated, Reason: o.TaskID})
		case o.Result == enforce.ResultError:
			sup.Failures = append(sup.Failures, notify.Failure{Decision: o.Decision, At: o.At, TaskID: o.TaskID,
				Fault: o.Fault, Attempts: o.Decision.History.Attempts + 1})
			items = append(items, ledger.Item{Key: key, Action: ledger.ItemFailed, Reason: o.Fault})
		case o.Result == enforce.ResultGone:
			// Not a commit: the customer is not told; support finds out why.
			sup.Failures = append(sup.Failures, notify.Failure{Decision: o.Decision, At: o.At, TaskID: o.TaskID,
				Fault: o.Detail, Attempts: o.Decision.History.Attempts + 1})
			items = append(items, ledger.Item{Key: key, Action: ledger.ItemGone, Reason: o.Detail})
		}
	}
	var out []ledger.Notice
	for _, id := range slices.Sorted(maps.Keys(byCustomer)) {
		var its []ledger.Item
		for _, cm := range byCustomer[id] {
			its = append(its, ledger.Item{Key: cm.Decision.Snapshot.Key(), Action: ledger.ItemConsolidated, Reason: cm.TaskID})
		}
		n, err := customerNotice(cfg, rd, now, id, ledger.KindAction, notify.CustomerDigest{Committed: byCustomer[id]}, its)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if len(items) == 0 {
		return out, nil
	}
	sn, err := supportNotices(cfg, rd, sup, items, now)
	if err != nil {
		return nil, err
	}
	return append(out, sn...), nil
}

// diskConsolidation is the support digest's line of a disk consolidation
// of a consolidation_needed VM that ended, and its ledger item; false for
// a task still running or a refusal that passes by itself.
func diskConsolidation(o enforce.Outcome) (notify.DiskConsolidation, ledger.Item, bool) {
	vm := o.Decision.Snapshot.VM
	dc := notify.DiskConsolidation{VCenter: vm.VCenter, VM: vm.Name, Customer: o.Decision.Customer, At: o.At, TaskID: o.TaskID}
	item := ledger.Item{Key: o.Decision.Snapshot.Key()}
	switch o.Result {
	case enforce.ResultSuccess:
		dc.Result, item.Action, item.Reason = "consolidated", ledger.ItemConsolidated, o.TaskID
	case enforce.ResultError:
		dc.Result, dc.Fault, item.Action, item.Reason = "failed", o.Fault, ledger.ItemFailed, o.Fault
	case enforce.ResultGone:
		dc.Result, dc.Fault, item.Action, item.Reason = "VM gone", o.Detail, ledger.ItemGone, o.Detail
	case enforce.ResultRefused:
		if o.Reason != enforce.GuardDisk {
			// Passing refusals (window, busy VM) are tried again next cycle.
			return dc, item, false
		}
		// Lasting until someone changes the disk: support decides; the
		// planner holds it back for plan.DiskModeRecheck, so this is said
		// at most once a day.
		dc.Result, dc.Fault, item.Action, item.Reason = "refused", o.Detail, ledger.ItemBlocked, o.Reason
	default:
		return dc, item, false
	}
	return dc, item, true
}
