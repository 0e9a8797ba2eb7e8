// Package policy owns the retention rules: it turns the facts of one snapshot,
// the owning customer's policy and a time `now` into a verdict (ok, warning,
// overdue, exempt, managed) with a reason, and resolves which customer owns a
// VM from the ownership rules. Everything here is pure: no I/O, no clock.
package policy
