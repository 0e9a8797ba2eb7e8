package facts

import "time"

// Tag is a vSphere tag attached to a VM: its category and its name.
type Tag struct {
	Category string `json:"category"`
	Name     string `json:"name"`
}

// VM is what snapwarden knows about one virtual machine. Many snapshots share
// one VM value through a pointer, so a VM is read once per cycle.
type VM struct {
	// VCenter is the vCenter's name in the config, for people; VCenterID its
	// instance UUID (about.instanceUuid), the identity the ledger keys by,
	// which survives renaming the vCenter in the config.
	VCenter      string `json:"vcenter"`
	VCenterID    string `json:"vcenter_id,omitempty"`
	Datacenter   string `json:"datacenter"`
	Name         string `json:"name"`
	MoRef        string `json:"moref"` // "vm-42", unique within a vCenter
	InstanceUUID string `json:"instance_uuid"`
	// Folder is the VM's folder path, e.g. "/DC0/vm/Customers/initech".
	Folder string `json:"folder"`
	// Path is the VM's full inventory path, Folder + "/" + Name.
	Path             string            `json:"path"`
	PowerState       string            `json:"power_state"` // poweredOn, poweredOff, suspended
	Tags             []Tag             `json:"tags,omitempty"`
	CustomAttributes map[string]string `json:"custom_attributes,omitempty"`
	// ConsolidationNeeded mirrors runtime.consolidationNeeded; it may be stale
	// until the VM is reloaded.
	ConsolidationNeeded bool `json:"consolidation_needed"`
	// Datastores hold the VM's files, with their space at collection time.
	Datastores []Datastore `json:"datastores,omitempty"`
	// SharesDisksWith names the other VMs and templates whose disk chains
	// name a file of this VM's chains (linked clones of it, or the source
	// it was cloned from), sorted; filled for VMs with snapshots only.
	SharesDisksWith []string `json:"shares_disks_with,omitempty"`
}

// Datastore is a datastore's identity and space as read during collection.
type Datastore struct {
	MoRef    string `json:"moref"`
	Name     string `json:"name"`
	Capacity int64  `json:"capacity"`
	Free     int64  `json:"free"`
}

// HasTag reports whether the VM carries a tag with this name in any category.
func (v *VM) HasTag(name string) bool {
	for _, t := range v.Tags {
		if t.Name == name {
			return true
		}
	}
	return false
}

// Snapshot is the facts of one snapshot in a VM's snapshot tree.
type Snapshot struct {
	VM          *VM       `json:"-"`
	ID          string    `json:"id"` // snapshot moref value, "snapshot-42"
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
	Quiesced    bool      `json:"quiesced"`
	Memory      bool      `json:"memory"`
	// Depth is 1 for a root snapshot, 2 for its child, and so on.
	Depth    int  `json:"depth"`
	Children int  `json:"children"`
	Current  bool `json:"current"`
	// SizeBytes is the snapshot's own data and memory files plus the delta
	// files its disk chain adds over its parent's (object.SnapshotSize).
	SizeBytes int64 `json:"size_bytes"`
	// Creator is the user that created the snapshot, empty where unknown.
	Creator string `json:"creator,omitempty"`
}

// Key identifies a snapshot across cycles: vCenter (its instance UUID, or
// its config name where no UUID is known), VM instance UUID, snapshot moref
// and create time. A snapshot re-created under the same moref (vcsim and
// vCenter reuse ids after a restart) is a new snapshot because its create
// time differs.
type Key struct {
	VCenter  string
	VMUUID   string
	Snapshot string
	Created  time.Time
}

// Key returns the snapshot's identity.
func (s *Snapshot) Key() Key {
	vc := s.VM.VCenterID
	if vc == "" {
		vc = s.VM.VCenter
	}
	return Key{VCenter: vc, VMUUID: s.VM.InstanceUUID, Snapshot: s.ID, Created: s.Created.UTC()}
}

// String renders the key as a stable text id, used by the ledger and in logs.
func (k Key) String() string {
	return k.VCenter + "/" + k.VMUUID + "/" + k.Snapshot + "@" + k.Created.UTC().Format(time.RFC3339)
}

// VCenterError is one vCenter that could not be collected.
type VCenterError struct {
	VCenter string `json:"vcenter"`
	Error   string `json:"error"`
}

// Inventory is the result of one collection across all vCenters.
type Inventory struct {
	// Snapshots of every VM of every vCenter that answered.
	Snapshots []Snapshot
	// VMs counts the VMs seen (with or without snapshots).
	VMs    int
	Errors []VCenterError
	// Problems found from what collection reads (consolidation needed,
	// phantom deltas) and, when a scan was due, orphan files.
	Problems []Problem
	// Scanned holds when each vCenter's datastores were searched for orphan
	// files in this collection: their earlier findings are replaced.
	Scanned map[string]time.Time
	// VCenterIDs maps the config name of every vCenter that answered to its
	// instance UUID.
	VCenterIDs map[string]string
}
