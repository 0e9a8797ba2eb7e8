// Package enforce executes the consolidations the planner decided, after
// re-checking every guard against vCenter, and records each attempt in the
// ledger before and after.
//
// The planner judged the collected facts; minutes or hours may have passed
// since. So, just before each task, the executor reads the snapshot, the
// VM's tasks and the datastore again, evaluates the policy on what it read
// (a customer may have added keep-until=YYYY-MM-DD meanwhile), and checks
// the maintenance window at that moment. A refusal is recorded with its
// guard, like an attempt, so `history` shows why nothing happened.
//
// A task is never started twice: its id is written to the ledger as soon as
// vCenter returns it, a process stopped while it runs leaves the action
// unfinished, and Resume watches it again after the restart.
//
// A result is never recorded untold: the notices of a commit, a failure or
// a vanished VM (rendered by the caller's Executor.Tell) are queued by the
// same ledger write that records it. When the ledger cannot be written the
// executor starts nothing more, and the outcome's Err fails the cycle.
package enforce
