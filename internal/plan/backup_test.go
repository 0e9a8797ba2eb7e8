package plan

import (
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// TestNoConsolidationBesideABackup: an overdue snapshot is not committed while
// backup software holds a snapshot on the same VM; a VM without one is.
func TestNoConsolidationBesideABackup(t *testing.T) {
	warned := History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-time.Hour)}
	old := evaluate(item("old", 61*time.Hour, policy.ActionConsolidate, true), t0)
	backup := item("bk", time.Hour, policy.ActionConsolidate, true)
	backup.Snapshot.VM = old.Snapshot.VM
	backup.Snapshot.Name = "VEEAM BACKUP TEMPORARY SNAPSHOT"
	backup = evaluate(backup, t0)
	other := evaluate(item("other", 61*time.Hour, policy.ActionConsolidate, true), t0)
	hist := map[facts.Key]History{old.Snapshot.Key(): warned, other.Snapshot.Key(): warned}
	ds := Build([]Item{old, backup, other}, hist, Settings{MaxPerRun: 10, MaxAttempts: 3}, t0)
	if d := ds[0]; d.Action != ActionBlocked || d.Reason != ReasonGuardBackup || !d.EscalateNow {
		t.Errorf("beside a backup: %s %s escalate=%v (%s), want blocked guard-backup, support told", d.Action, d.Reason, d.EscalateNow, d.Why)
	}
	if d := ds[2]; d.Action != ActionConsolidate || !d.Due {
		t.Errorf("another VM: %s %s (%s), want consolidate", d.Action, d.Reason, d.Why)
	}
}
