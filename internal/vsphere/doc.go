// Package vsphere owns snapwarden's conversations with vCenter: one verified,
// kept-alive session per vCenter, the inventory read in one paged
// PropertyCollector retrieval, tags in one bulk vAPI call, snapshot creators
// from task events, and the snapshot tasks of enforcement. govmomi types stop
// here: the rest of snapwarden sees the plain structs of package facts.
package vsphere
