// Package facts holds the plain domain structs that describe what vCenter says
// about VMs and their snapshots. It is the boundary type set: internal/vsphere
// fills it from govmomi, and every other package (policy, plan, report, ledger,
// notify, enforce) reads it without ever seeing a govmomi type.
package facts
