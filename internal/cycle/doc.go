// Package cycle owns one snapwarden cycle as a sequence of plain stages:
// collect (vsphere), evaluate (owners and policy), plan (with the ledger's
// history), notify (queue customer digests and support escalations in the
// ledger's outbox, then deliver it to each recipient), act (enforce, each
// result recorded with the notices telling of it) and record. A failed
// ledger write stops the cycle with its error: nothing more is sent or
// started (fail closed). `report` runs
// the stages up to plan and renders the result, so the dry-run report is by
// construction what a cycle would do.
package cycle
