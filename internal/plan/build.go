package plan

import (
	"fmt"
	"sort"
	"strings"
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
	// MinNotice is how long before a consolidation the owner must have
	// received a notice naming the snapshot (enforcement.min_notice).
	MinNotice time.Duration
	// Window is the maintenance window; nil means consolidation may run at any time.
	Window *Window
	// FixConsolidationNeeded consolidates the disks of consolidation_needed
	// VMs (enforcement.fix_consolidation_needed; see Fixes).
	FixConsolidationNeeded bool
}

// Build decides, for every decision whose Item is filled in (one per
// snapshot, see cycle.Evaluate), what is due at now given the ledger's
// history (missing entries are snapshots never seen before). It is pure and
// fills in the decisions in place: a separate slice of items beside the
// decisions was a tenth of a large fleet's peak heap.
func Build(ds []Decision, history map[facts.Key]History, set Settings, now time.Time) {
	var consolidations []int
	backups := backupSnapshots(ds)
	for i := range ds {
		d := &ds[i]
		d.Backup = backups[d.Snapshot.VM]
		d.History = history[d.Snapshot.Key()].owned(d.Item)
		decide(d, set, now)
		if d.Action == ActionConsolidate && d.Due {
			consolidations = append(consolidations, i)
		}
	}
	limitPerRun(ds, consolidations, set.MaxPerRun)
}

func decide(d *Decision, set Settings, now time.Time) {
	v, p := d.Verdict, d.Policy
	if p.Action == policy.ActionConsolidate && d.Reachable && len(d.Disputed) == 0 &&
		(v.State == policy.StateOK || v.State == policy.StateWarning || v.State == policy.StateOverdue) {
		d.CommitAt = d.earliestCommit(set, now)
	}
	switch {
	case len(d.Disputed) > 0 && v.State != policy.StateManaged && v.State != policy.StateExempt:
		d.dispute(now)
	case v.State == policy.StateManaged:
		if v.Reason != policy.ReasonManagedStale {
			d.set(ActionEscalate, false, v.Since.Add(p.ManagedStaleAfter), ReasonNotYetDue,
				"never removed by snapwarden; support is told if it is still here after managed_stale_after")
			break
		}
		d.escalation(now, ReasonManagedStale, "backup snapshot older than managed_stale_after: support should check the backup job")
	case v.State == policy.StateExempt:
		if v.ExemptUntil.IsZero() && v.Age >= p.MaxKeep {
			// The tag has no end: support hears of it, the customer does not.
			d.escalation(now, ReasonExemptLong, "exempt by tag for longer than max_keep: support should ask whether it is still needed")
			break
		}
		if v.ExemptUntil.IsZero() {
			d.set(ActionNone, false, time.Time{}, ReasonNothingToDo, "exempt: never notified or removed")
			break
		}
		d.set(ActionNone, false, v.ExemptUntil, ReasonNotYetDue, "exempt until the keep-until marker ends; judged by age again then")
	case v.State == policy.StateOK:
		d.set(ActionWarn, false, v.WarnAt, ReasonNotYetDue, "first notice when the snapshot reaches warn_after")
	case v.State == policy.StateWarning:
		d.customerNotice(now)
		if !d.Due {
			d.set(ActionRemind, false, d.At, ReasonNotYetDue, "next reminder after reminder_every")
		}
	case v.State == policy.StateOverdue:
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
	d.ownerChange()
	d.clockSkew(now)
}

// earliestCommit is max(deadline + grace, first notice delivered to the
// current owner + min_notice). Before any notice was delivered, the clock
// can start no earlier than the next notice (now, or warn_after for a young
// snapshot), so that is the projection reports and notices show.
func (d *Decision) earliestCommit(set Settings, now time.Time) time.Time {
	from := d.History.WarnedAt
	if from.IsZero() {
		from = now
		if d.Verdict.WarnAt.After(now) {
			from = d.Verdict.WarnAt
		}
	}
	at := from.Add(set.MinNotice)
	if d.Verdict.ActAt.After(at) {
		return d.Verdict.ActAt
	}
	return at
}

// dispute hands a VM with two owners to support: no customer notice (which
// one would it be?), no consolidation, and an escalation every escalate_every.
func (d *Decision) dispute(now time.Time) {
	why := fmt.Sprintf("owner disputed: the first ownership rule that matches gives %s; no customer is told and nothing is committed until support settles it",
		quoteAll(d.Disputed))
	if d.Verdict.State == policy.StateOK {
		d.set(ActionEscalate, false, d.Verdict.WarnAt, ReasonOwnerDisputed, why+"; support is told when it reaches warn_after")
		return
	}
	d.escalation(now, ReasonOwnerDisputed, why)
	if !d.Due {
		d.Reason, d.Why = ReasonOwnerDisputed, why+"; support was told, again after escalate_every"
	}
}

// ownerChange says so when the VM's owner is not the one of the last cycle:
// notices to the previous owner do not count, the new owner's clock starts
// at its own first notice.
func (d *Decision) ownerChange() {
	prev := d.History.Owner
	if prev == "" || prev == d.Customer {
		return
	}
	to := fmt.Sprintf("%q", d.Customer)
	if d.Customer == "" {
		to = "no single owner"
	}
	if d.Reason == ReasonFirstNotice {
		d.Reason = ReasonOwnerChanged
	}
	d.Why = fmt.Sprintf("owner changed from %q to %s: notices to %q do not count; %s", prev, to, prev, d.Why)
}

// clockSkew tells support, once, of a create time in the future, unless a
// consolidation decision (due or blocked) must keep its reason this cycle.
func (d *Decision) clockSkew(now time.Time) {
	if !d.Verdict.ClockSkew || d.History.SkewReported || d.Action == ActionConsolidate || d.Action == ActionBlocked {
		return
	}
	d.EscalateNow = true
	d.set(ActionEscalate, true, now, ReasonClockSkew, fmt.Sprintf(
		"create time %s is in the future (a host or vCenter clock is wrong): age counts from first sight at %s; support is told once",
		d.Snapshot.Created.UTC().Format(time.RFC3339), d.Verdict.Since.UTC().Format(time.RFC3339)))
}

func quoteAll(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, " and ")
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
	switch at := d.CommitAt; {
	case now.Before(at) && at.Equal(v.ActAt):
		d.set(ActionConsolidate, false, at, ReasonNotYetDue, "committed automatically after deadline + grace")
		return
	case h.WarnedAt.IsZero():
		// Never due before a notice reached the owner, whatever min_notice says.
		d.set(ActionConsolidate, false, at, ReasonMinNotice, fmt.Sprintf(
			"no notice has reached the owner yet: committed no earlier than min_notice (%s) after the first one is delivered",
			set.MinNotice))
		return
	case now.Before(at):
		d.set(ActionConsolidate, false, at, ReasonMinNotice, fmt.Sprintf(
			"committed min_notice (%s) after the first notice delivered to the owner at %s", set.MinNotice, h.WarnedAt.UTC().Format(time.RFC3339)))
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
	if d.Backup != "" {
		d.block(now, ReasonGuardBackup, BackupRefusal(d.Backup))
		return
	}
	if vm := d.Snapshot.VM; vm != nil && len(vm.SharesDisksWith) > 0 {
		d.block(now, ReasonGuardLinkedClone, LinkedCloneRefusal(vm.SharesDisksWith))
		return
	}
	if why, ok := diskModeHeld(h.DiskModeRefusal, h.DiskModeRefusedAt, now); ok {
		d.block(now, ReasonGuardDiskMode, why)
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
