package plan

import (
	"fmt"
	"sort"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// Settings are the enforcement limits the planner applies. The guards that
// need a fresh look at vCenter (the snapshot still exists, no task on the VM,
// live datastore space) are enforce's; these are the ones decidable from the
// collected facts, so the report already shows them.
type Settings struct {
	MaxPerRun      int
	MaxAttempts    int
	MinFreePercent float64
	// Window is the maintenance window; nil means consolidation may run at any time.
	Window *Window
}

// Build decides, for every item, what is due at now given the ledger's
// history (missing entries are snapshots never seen before). It is pure.
// Decisions come back in the order of items.
func Build(items []Item, history map[facts.Key]History, set Settings, now time.Time) []Decision {
	out := make([]Decision, len(items))
	var consolidations []int
	backups := backupSnapshots(items)
	for i := range items {
		d := &out[i]
		d.Item = items[i]
		d.Backup = backups[items[i].Snapshot.VM]
		d.History = history[items[i].Snapshot.Key()]
		decide(d, set, now)
		if d.Action == ActionConsolidate && d.Due {
			consolidations = append(consolidations, i)
		}
	}
	limitPerRun(out, consolidations, set.MaxPerRun)
	return out
}

func decide(d *Decision, set Settings, now time.Time) {
	v, p := d.Verdict, d.Policy
	switch v.State {
	case policy.StateManaged:
		if v.Reason != policy.ReasonManagedStale {
			d.set(ActionEscalate, false, d.Snapshot.Created.Add(p.ManagedStaleAfter), ReasonNotYetDue,
				"never removed by snapwarden; support is told if it is still here after managed_stale_after")
			return
		}
		d.escalation(now, ReasonManagedStale, "backup snapshot older than managed_stale_after: support should check the backup job")
	case policy.StateExempt:
		if v.ExemptUntil.IsZero() && v.Age >= p.MaxKeep {
			// The tag has no end: support hears of it, the customer does not.
			d.escalation(now, ReasonExemptLong, "exempt by tag for longer than max_keep: support should ask whether it is still needed")
			return
		}
		if v.ExemptUntil.IsZero() {
			d.set(ActionNone, false, time.Time{}, ReasonNothingToDo, "exempt: never notified or removed")
			return
		}
		d.set(ActionNone, false, v.ExemptUntil, ReasonNotYetDue, "exempt until the keep-until marker ends; judged by age again then")
	case policy.StateOK:
		d.set(ActionWarn, false, v.WarnAt, ReasonNotYetDue, "first notice when the snapshot reaches warn_after")
	case policy.StateWarning:
		d.customerNotice(now)
		if !d.Due {
			d.set(ActionRemind, false, d.At, ReasonNotYetDue, "next reminder after reminder_every")
		}
	case policy.StateOverdue:
		d.customerNotice(now)
		notice := *d
		if p.Action == policy.ActionConsolidate && d.Reachable {
			d.consolidation(set, now)
		} else {
			d.escalation(now, ReasonDeadlinePassed, "past the deadline: support takes over")
		}
		// Show the customer notice when it is due and the main action is not.
		if notice.Due && !d.Due {
			d.set(notice.Action, true, notice.At, notice.Reason, notice.Why+"; then "+d.Action.String()+" at "+d.At.UTC().Format(time.RFC3339))
		}
	}
}

func (d *Decision) set(a Action, due bool, at time.Time, r Reason, why string) {
	d.Action, d.Due, d.At, d.Reason, d.Why = a, due, at, r, why
}

// customerNotice sets the warn/remind cadence: the first notice at once, then
// one every reminder_every after the last one issued.
func (d *Decision) customerNotice(now time.Time) {
	h := d.History
	switch {
	case h.CustomerNotices == 0:
		d.CustomerNotice = ActionWarn
		d.set(ActionWarn, true, now, ReasonFirstNotice, "first notice to the customer")
	case !now.Before(h.LastCustomerNotice.Add(d.Policy.ReminderEvery)):
		d.CustomerNotice = ActionRemind
		d.set(ActionRemind, true, now, ReasonReminderDue,
			fmt.Sprintf("reminder %d: reminder_every passed since the last notice", h.CustomerNotices))
	default:
		d.set(ActionRemind, false, h.LastCustomerNotice.Add(d.Policy.ReminderEvery), ReasonNotYetDue, "next reminder after reminder_every")
	}
	if !d.Reachable {
		d.Why += "; no reachable owner, so support receives it"
	}
}

// escalation tells support at once, then again every escalate_every.
func (d *Decision) escalation(now time.Time, r Reason, why string) {
	h := d.History
	if h.Escalations > 0 && now.Before(h.LastEscalation.Add(d.Policy.EscalateEvery)) {
		d.set(ActionEscalate, false, h.LastEscalation.Add(d.Policy.EscalateEvery), ReasonNotYetDue,
			"support was told; again after escalate_every")
		return
	}
	d.EscalateNow = true
	d.set(ActionEscalate, true, now, r, why)
}

// consolidation applies the guards the planner can judge from facts and
// history. A refusal is blocked with its guard; support hears of each guard
// once, not every cycle.
func (d *Decision) consolidation(set Settings, now time.Time) {
	v, h := d.Verdict, d.History
	if now.Before(v.ActAt) {
		d.set(ActionConsolidate, false, v.ActAt, ReasonNotYetDue, "committed automatically after deadline + grace")
		return
	}
	if h.InFlight {
		d.set(ActionConsolidate, false, now, ReasonInFlight, fmt.Sprintf("consolidation task %s is running", h.TaskID))
		return
	}
	if set.MaxAttempts > 0 && h.Attempts >= set.MaxAttempts {
		d.block(now, ReasonGuardAttempts, fmt.Sprintf("consolidation failed %d times (last: %s); left to support", h.Attempts, h.LastFault))
		return
	}
	if h.WarnedAt.IsZero() || !h.WarnedAt.Before(now) {
		d.block(now, ReasonGuardNotWarned, "the customer has not been warned in an earlier cycle: no first-contact deletion")
		return
	}
	if d.Backup != "" {
		d.block(now, ReasonGuardBackup, BackupRefusal(d.Backup))
		return
	}
	if why, next := set.Window.Fits(now, d.Snapshot.SizeBytes); why != "" {
		d.block(next, ReasonGuardWindow, why)
		return
	}
	if short := DatastoreShort(d.Snapshot, set.MinFreePercent); short != "" {
		d.block(now, ReasonGuardDatastore, short)
		return
	}
	d.set(ActionConsolidate, true, now, ReasonConsolidateDue, "past deadline + grace: commit (remove with consolidation)")
}

func (d *Decision) block(at time.Time, r Reason, why string) {
	d.EscalateNow = d.History.BlockedReason != r.String()
	d.set(ActionBlocked, true, at, r, why)
}

// DatastoreShort is the datastore guard, shared by the planner (on the
// collected space) and enforce (on space read just before the task): a
// sentence naming the first datastore of the VM that would keep less than
// minFreePercent of its capacity free after the merge, or "" when all have room.
func DatastoreShort(s facts.Snapshot, minFreePercent float64) string {
	if s.VM == nil {
		return ""
	}
	for _, ds := range s.VM.Datastores {
		if float64(ds.Free-s.SizeBytes) < float64(ds.Capacity)*minFreePercent/100 {
			return fmt.Sprintf("datastore %s has %s free; the merge needs %s plus %g%% of its capacity",
				ds.Name, IEC(ds.Free), IEC(s.SizeBytes), minFreePercent)
		}
	}
	return ""
}

// limitPerRun keeps the oldest max consolidations due and blocks the rest.
func limitPerRun(out []Decision, due []int, max int) {
	if max <= 0 || len(due) <= max {
		return
	}
	sort.SliceStable(due, func(a, b int) bool {
		return out[due[a]].Snapshot.Created.Before(out[due[b]].Snapshot.Created)
	})
	for _, i := range due[max:] {
		d := &out[i]
		d.set(ActionBlocked, true, d.At, ReasonGuardMaxPerRun,
			fmt.Sprintf("max_per_run (%d) consolidations already planned this cycle; next cycle", max))
		// Waiting one cycle is routine, not worth a support escalation.
		d.EscalateNow = false
	}
}

// IEC renders a byte count in binary units with one decimal, as reports and
// refusals print sizes: "512 B", "1.5 GiB".
func IEC(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
