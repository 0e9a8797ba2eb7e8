package plan

import (
	"fmt"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// backupSnapshots maps each VM that has a managed (backup) snapshot to that
// snapshot's name. Decisions of one VM share its *facts.VM.
func backupSnapshots(ds []Decision) map[*facts.VM]string {
	out := map[*facts.VM]string{}
	for i := range ds {
		it := &ds[i].Item
		if it.Verdict.State == policy.StateManaged && it.Snapshot.VM != nil {
			if _, seen := out[it.Snapshot.VM]; !seen {
				out[it.Snapshot.VM] = it.Snapshot.Name
			}
		}
	}
	return out
}

// BackupRefusal is the backup guard's sentence, shared with enforce's
// re-check: a removal beside a running backup could break the backup's
// snapshot chain, and the backup usually ends within hours.
func BackupRefusal(name string) string {
	return fmt.Sprintf("backup snapshot %q is on the VM: no consolidation while backup software holds a snapshot; next cycle", name)
}

// LinkedCloneRefusal is the linked-clone guard's sentence, shared with
// enforce: committing a snapshot merges disk files that the named VMs'
// chains read as well, which would corrupt them.
func LinkedCloneRefusal(vms []string) string {
	return fmt.Sprintf("disk files of the VM are in the disk chains of %q (a linked clone, or its source): no consolidation; support should check",
		vms)
}
