// Package selfservice lets customers act on their snapshots from the digest
// email: signed links (extend, commit, not-mine) and the public listener
// that serves them under /s/.
//
// A token binds the action, customer, vCenter, snapshot id, create time and
// expiry under an HMAC-SHA256 of the provider's key; it holds nothing
// secret. A GET only shows what the link will do (mail scanners fetch every
// link); the page's form POSTs and records the request once in the ledger,
// through the narrow Store interface. The planner carries requests out at
// the next cycle (plan.Extend, plan.ApplyRequests).
package selfservice
