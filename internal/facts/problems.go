package facts

import "strings"

// ProblemKind names a snapshot problem no Snapshot Manager shows: the `kind`
// of the report's `problems`.
type ProblemKind string

// The problem kinds of the report contract.
const (
	// ConsolidationNeeded: runtime.consolidationNeeded is set (a removal left
	// the VM running on delta files), with or without snapshots.
	ConsolidationNeeded ProblemKind = "consolidation_needed"
	// PhantomDelta: no snapshot, but a disk runs on a delta of its own.
	PhantomDelta ProblemKind = "phantom_delta"
	// OrphanFile: a delta or snapshot file no registered VM references.
	OrphanFile ProblemKind = "orphan_file"
	// ChainTooDeep: a snapshot deeper than policy.max_depth.
	ChainTooDeep ProblemKind = "chain_too_deep"
)

// Problem is one problem found in a vCenter. VM is nil for an orphan file,
// which no registered VM owns.
type Problem struct {
	Kind       ProblemKind
	VCenter    string
	Datacenter string
	VM         *VM
	// Datastore and Path locate the file concerned ("[ds1] web01/web01-000001.vmdk"),
	// empty for a problem of the whole VM.
	Datastore string
	Path      string
	SizeBytes int64
	// Detail says what was found, in one sentence.
	Detail string
}

// Key identifies a problem across cycles: kind, vCenter, VM instance UUID
// (or moref) and path, so the ledger can keep when it was first seen.
func (p *Problem) Key() string {
	vm := ""
	if p.VM != nil {
		vm = p.VM.InstanceUUID
		if vm == "" {
			vm = p.VM.MoRef
		}
	}
	return strings.Join([]string{string(p.Kind), p.VCenter, vm, p.Path}, "|")
}

// DatastoreOf returns the datastore name of a datastore path
// ("[ds1] web01/web01.vmdk" -> "ds1"), "" when it has none.
func DatastoreOf(path string) string {
	if !strings.HasPrefix(path, "[") {
		return ""
	}
	if i := strings.IndexByte(path, ']'); i > 0 {
		return path[1:i]
	}
	return ""
}
