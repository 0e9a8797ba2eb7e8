package plan

import "fmt"

// Reason says why a decision has its action.
type Reason int

// Reasons for a decision. The guard reasons name the guard that refused a
// due consolidation; support is told once per guard reason.
const (
	ReasonNothingToDo         Reason = iota // exempt without end, or managed and fresh
	ReasonNotYetDue                         // the next action lies in the future
	ReasonFirstNotice                       // warning or overdue and never notified
	ReasonReminderDue                       // reminder_every passed since the last notice
	ReasonDeadlinePassed                    // overdue: support takes over
	ReasonManagedStale                      // a backup snapshot older than managed_stale_after
	ReasonConsolidateDue                    // past deadline + grace, every planner guard passes
	ReasonInFlight                          // a consolidation task is running
	ReasonMinNotice                         // consolidation waits for min_notice after the owner's first delivered notice
	ReasonGuardWindow                       // outside the maintenance window
	ReasonGuardDatastore                    // the datastore lacks room for the merge
	ReasonGuardMaxPerRun                    // max_per_run consolidations already planned
	ReasonGuardAttempts                     // max_attempts failed attempts
	ReasonOwnerChanged                      // first notice to a new owner: the VM's owner changed
	ReasonOwnerDisputed                     // two owners by the first matching rule, or the customer says it is not theirs (self-service link)
	ReasonClockSkew                         // the create time lies in the future; support is told once
	ReasonDatastoreFillsFirst               // the datastore is forecast to fill before the deadline
	ReasonGuardBackup                       // a backup (managed) snapshot is on the VM
	ReasonExemptLong                        // exempt by tag for longer than max_keep
	ReasonCustomerCommit                    // the customer asked to commit it now (self-service link)
	ReasonGuardLinkedClone                  // another VM's disk chain uses files of the VM's (a linked clone)
	ReasonGuardDiskMode                     // enforce found a disk of the VM in a non-persistent mode
)

var reasonNames = [...]string{
	"nothing-to-do", "not-yet-due", "first-notice", "reminder-due", "deadline-passed", "managed-stale",
	"consolidate-due", "in-flight", "min-notice", "guard-window", "guard-datastore", "guard-max-per-run",
	"guard-attempts", "owner-changed", "owner-disputed", "clock-skew", "datastore-fills-first", "guard-backup",
	"exempt-long", "customer-commit", "guard-linked-clone", "guard-disk-mode",
}

// String returns a short stable name of the reason.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// MarshalText makes a Reason render as its name in JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
