package plan

import (
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// TestNoConsolidationBesideABackup: an overdue snapshot is not committed while
// backup software holds a snapshot on the same VM; a VM without one is.
func TestNoConsolidationBesideABackup(t *testing.T) {
	warned := ownedBy(History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-30 * time.Hour)}, "acme")
	old := evaluate(item("old", 61*time.Hour, policy.ActionConsolidate, true), t0)
	backup := item("bk", time.Hour, policy.ActionConsolidate, true)
	backup.Snapshot.VM = old.Snapshot.VM
	backup.Snapshot.Name = "VEEAM BACKUP TEMPORARY SNAPSHOT"
	backup = evaluate(backup, t0)
	other := evaluate(item("other", 61*time.Hour, policy.ActionConsolidate, true), t0)
	hist := map[facts.Key]History{old.Snapshot.Key(): warned, other.Snapshot.Key(): warned}
	ds := build([]Item{old, backup, other}, hist, Settings{MaxPerRun: 10, MaxAttempts: 3}, t0)
	if d := ds[0]; d.Action != ActionBlocked || d.Reason != ReasonGuardBackup || !d.EscalateNow {
		t.Errorf("beside a backup: %s %s escalate=%v (%s), want blocked guard-backup, support told", d.Action, d.Reason, d.EscalateNow, d.Why)
	}
	if d := ds[2]; d.Action != ActionConsolidate || !d.Due {
		t.Errorf("another VM: %s %s (%s), want consolidate", d.Action, d.Reason, d.Why)
	}
}

// TestNoConsolidationUnderALinkedClone: an overdue snapshot of a VM whose
// disk files another VM's chain uses is blocked, naming that VM.
func TestNoConsolidationUnderALinkedClone(t *testing.T) {
	warned := ownedBy(History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-30 * time.Hour)}, "acme")
	src := evaluate(item("golden", 61*time.Hour, policy.ActionConsolidate, true), t0)
	src.Snapshot.VM.SharesDisksWith = []string{"clone01"}
	d := decideOne(t, src, warned, Settings{MaxPerRun: 10, MaxAttempts: 3}, t0)
	if d.Action != ActionBlocked || d.Reason != ReasonGuardLinkedClone || !d.EscalateNow || !strings.Contains(d.Why, "clone01") {
		t.Errorf("under a linked clone: %s %s escalate=%v (%s), want blocked guard-linked-clone naming clone01", d.Action, d.Reason, d.EscalateNow, d.Why)
	}
}

// TestExemptTagPastMaxKeepIsEscalated: a tag-exempt snapshot older than
// max_keep is shown to support, once per escalate_every; the customer is
// not notified and nothing is removed.
func TestExemptTagPastMaxKeepIsEscalated(t *testing.T) {
	exempt := func(age time.Duration) Item {
		it := item("kept", age, policy.ActionConsolidate, true)
		it.Snapshot.VM.Tags = []facts.Tag{{Category: "x", Name: "snapwarden-exempt"}}
		return it
	}
	set := Settings{MaxPerRun: 10, MaxAttempts: 3}
	for _, tt := range []struct {
		name   string
		age    time.Duration
		h      History
		action Action
		due    bool
		reason Reason
	}{
		{"young exempt", 100 * time.Hour, History{}, ActionNone, false, ReasonNothingToDo},
		{"past max_keep", 337 * time.Hour, History{}, ActionEscalate, true, ReasonExemptLong},
		{"told recently", 337 * time.Hour, History{Escalations: 1, LastEscalation: t0.Add(-time.Hour)}, ActionEscalate, false, ReasonNotYetDue},
		{"told a day ago", 400 * time.Hour, History{Escalations: 1, LastEscalation: t0.Add(-24 * time.Hour)}, ActionEscalate, true, ReasonExemptLong},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := decideOne(t, exempt(tt.age), tt.h, set, t0)
			if d.Action != tt.action || d.Due != tt.due || d.Reason != tt.reason || d.EscalateNow != tt.due || d.CustomerNotice != ActionNone {
				t.Fatalf("got %s due=%v %s escalate=%v notice=%s (%s)", d.Action, d.Due, d.Reason, d.EscalateNow, d.CustomerNotice, d.Why)
			}
		})
	}
}

// TestNonPersistentDiskHoldsForADay: after enforce refused a removal for a
// non-persistent disk (which the collection cannot see), the snapshot is
// blocked with guard-disk-mode and support told once; a day after the
// refusal it is due again, so enforce reads the disks again.
func TestNonPersistentDiskHoldsForADay(t *testing.T) {
	h := History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-30 * time.Hour),
		DiskModeRefusal: "the VM has Hard disk 2 (independent_nonpersistent) in a non-persistent mode", DiskModeRefusedAt: t0.Add(-time.Hour)}
	set := Settings{MaxPerRun: 10, MaxAttempts: 3}
	it := item("np", 61*time.Hour, policy.ActionConsolidate, true)
	d := decideOne(t, it, h, set, t0)
	if d.Action != ActionBlocked || d.Reason != ReasonGuardDiskMode || !d.EscalateNow || !strings.Contains(d.Why, "independent_nonpersistent") {
		t.Errorf("after the refusal: %s %s escalate=%v (%s), want blocked guard-disk-mode, support told", d.Action, d.Reason, d.EscalateNow, d.Why)
	}
	h.BlockedReason = ReasonGuardDiskMode.String()
	if d := decideOne(t, it, h, set, t0.Add(time.Hour)); d.Reason != ReasonGuardDiskMode || d.EscalateNow {
		t.Errorf("an hour later: %s escalate=%v, want still blocked, support not told again", d.Reason, d.EscalateNow)
	}
	if d := decideOne(t, it, h, set, t0.Add(DiskModeRecheck)); d.Action != ActionConsolidate || !d.Due {
		t.Errorf("a day after the refusal: %s %s (%s), want consolidate due: the disks are read again", d.Action, d.Reason, d.Why)
	}
}
