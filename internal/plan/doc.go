// Package plan owns the decisions of one cycle: from the verdicts of every
// snapshot, what the ledger remembers of it and the time now, it decides which
// customer notices, support escalations and consolidations are due, each with
// a reason. Like policy it is pure; notify and enforce carry the plan out and
// report renders it, so the dry-run report is what a cycle would do.
package plan
