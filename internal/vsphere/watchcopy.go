package vsphere

import (
	"time"

	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// slimVM is one VM as the inventory reads it: the plain properties, and
// what the snapshot tree and layoutEx come to (snapshots with their sizes,
// disk chain links) instead of those properties. A decoded mo.VirtualMachine
// costs about 4 KB before its properties, and its snapshot tree and layoutEx
// (every file of the VM by name) were most of what a Watcher kept between
// cycles: at 10,000 VMs the largest part of serve's memory. A full read
// turns each page's VMs into slimVMs too, so both reads build the inventory
// the same way.
type slimVM struct {
	self               types.ManagedObjectReference
	name               string
	parent, parentVApp *types.ManagedObjectReference
	hasConfig          bool
	uuid               string
	template           bool
	power              types.VirtualMachinePowerState
	consolidation      bool
	customValue        []types.BaseCustomFieldValue
	datastore          []types.ManagedObjectReference

	// snapshots are the snapshot tree, depth first, each sized from
	// layoutEx; current is the current snapshot's moref ("" for none).
	snapshots []slimSnapshot
	current   string
	// disks are the chain links of each disk in layoutEx, base first.
	disks [][]link
}

// slimSnapshot is one node of a VM's snapshot tree.
type slimSnapshot struct {
	id, name, description string
	created               time.Time
	quiesced, memory      bool
	depth, children       int
	size                  int64
}

// slim keeps what the inventory reads of m.
func slim(m *mo.VirtualMachine) *slimVM {
	s := &slimVM{}
	s.plain(m)
	s.derive(m)
	return s
}

// plain sets the properties kept as they are.
func (s *slimVM) plain(m *mo.VirtualMachine) {
	s.self, s.name, s.parent, s.parentVApp = m.Self, m.Name, m.Parent, m.ParentVApp
	s.power, s.consolidation = m.Runtime.PowerState, m.Runtime.ConsolidationNeeded
	s.customValue, s.datastore = m.CustomValue, m.Datastore
	s.hasConfig, s.uuid, s.template = m.Config != nil, "", false
	if m.Config != nil {
		s.uuid, s.template = m.Config.InstanceUuid, m.Config.Template
	}
}

// derive sets the snapshots, their sizes and the disk chains from m's
// snapshot tree and layoutEx.
func (s *slimVM) derive(m *mo.VirtualMachine) {
	s.snapshots, s.current = nil, ""
	if m.Snapshot != nil && len(m.Snapshot.RootSnapshotList) > 0 {
		if m.Snapshot.CurrentSnapshot != nil {
			s.current = m.Snapshot.CurrentSnapshot.Value
		}
		var walk func(list []types.VirtualMachineSnapshotTree, depth int)
		walk = func(list []types.VirtualMachineSnapshotTree, depth int) {
			for i := range list {
				t := &list[i]
				s.snapshots = append(s.snapshots, slimSnapshot{id: t.Snapshot.Value, name: t.Name, description: t.Description,
					created: t.CreateTime.UTC(), quiesced: t.Quiesced, memory: t.State == types.VirtualMachinePowerStatePoweredOn,
					depth: depth, children: len(t.ChildSnapshotList)})
				walk(t.ChildSnapshotList, depth+1)
			}
		}
		walk(m.Snapshot.RootSnapshotList, 1)
	}
	s.layout(m.LayoutEx)
}

// layout sets the disk chains and the snapshots' sizes from le, for the
// snapshots s holds: a new layoutEx alone (a running delta grew) is
// applied without the snapshot tree, whose parents the depth-first order
// and depths tell.
func (s *slimVM) layout(le *types.VirtualMachineFileLayoutEx) {
	s.disks = chainLinks(le)
	if len(s.snapshots) == 0 {
		return
	}
	parents := make(map[string]string, len(s.snapshots))
	var path []string // path[d-1] is the last snapshot seen at depth d
	for _, t := range s.snapshots {
		path = append(path[:t.depth-1], t.id)
		parents[t.id] = ""
		if t.depth > 1 {
			parents[t.id] = path[t.depth-2]
		}
	}
	sz := sizes(le, parents, s.current)
	for i := range s.snapshots {
		s.snapshots[i].size = sz[s.snapshots[i].id]
	}
}

// chainLinks lists the links of every disk's chain in le, base first: the
// descriptor's name and the size of all the link's files.
func chainLinks(le *types.VirtualMachineFileLayoutEx) [][]link {
	if le == nil || len(le.Disk) == 0 {
		return nil
	}
	files := make(map[int32]types.VirtualMachineFileLayoutExFileInfo, len(le.File))
	for _, f := range le.File {
		files[f.Key] = f
	}
	disks := make([][]link, 0, len(le.Disk))
	for _, d := range le.Disk {
		chain := make([]link, 0, len(d.Chain))
		for _, unit := range d.Chain {
			if len(unit.FileKey) == 0 {
				continue
			}
			l := link{name: files[unit.FileKey[0]].Name}
			for _, k := range unit.FileKey {
				l.size += files[k].Size
			}
			chain = append(chain, l)
		}
		disks = append(disks, chain)
	}
	return disks
}

// fat fills m (and cfg, its config) with the plain properties of s,
// replacing all they held; the snapshot tree and layoutEx stay unset.
func (s *slimVM) fat(m *mo.VirtualMachine, cfg *types.VirtualMachineConfigInfo) {
	*m = mo.VirtualMachine{}
	m.Self, m.Name, m.Parent, m.ParentVApp = s.self, s.name, s.parent, s.parentVApp
	m.Runtime.PowerState, m.Runtime.ConsolidationNeeded = s.power, s.consolidation
	m.CustomValue, m.Datastore = s.customValue, s.datastore
	if s.hasConfig {
		*cfg = types.VirtualMachineConfigInfo{InstanceUuid: s.uuid, Template: s.template}
		m.Config = cfg
	}
}
