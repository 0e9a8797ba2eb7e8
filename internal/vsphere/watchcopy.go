package vsphere

import (
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// slimVM is a Watcher's copy of one VM: only the properties the inventory
// reads (vmProps). A decoded mo.VirtualMachine costs about 4 KB before its
// properties (config and runtime are big structs), which at 10,000 VMs
// would be most of serve's memory; a slim copy is turned back into a
// mo.VirtualMachine (one scratch value reused) when it is read or patched.
type slimVM struct {
	self               types.ManagedObjectReference
	name               string
	parent, parentVApp *types.ManagedObjectReference
	hasConfig          bool
	uuid               string
	template           bool
	power              types.VirtualMachinePowerState
	consolidation      bool
	snapshot           *types.VirtualMachineSnapshotInfo
	layoutEx           *types.VirtualMachineFileLayoutEx
	customValue        []types.BaseCustomFieldValue
	datastore          []types.ManagedObjectReference
}

// slim keeps what the inventory reads of m, and of its layoutEx only what
// sizes and chains need (file keys, names and sizes).
func slim(m *mo.VirtualMachine) *slimVM {
	s := &slimVM{self: m.Self, name: m.Name, parent: m.Parent, parentVApp: m.ParentVApp,
		power: m.Runtime.PowerState, consolidation: m.Runtime.ConsolidationNeeded, snapshot: m.Snapshot,
		customValue: m.CustomValue, datastore: m.Datastore}
	if m.Config != nil {
		s.hasConfig, s.uuid, s.template = true, m.Config.InstanceUuid, m.Config.Template
	}
	if le := m.LayoutEx; le != nil {
		files := make([]types.VirtualMachineFileLayoutExFileInfo, len(le.File))
		for i, f := range le.File {
			files[i] = types.VirtualMachineFileLayoutExFileInfo{Key: f.Key, Name: f.Name, Size: f.Size}
		}
		s.layoutEx = &types.VirtualMachineFileLayoutEx{File: files, Disk: le.Disk, Snapshot: le.Snapshot}
	}
	return s
}

// fat fills m (and cfg, its config) from s, replacing all they held.
func (s *slimVM) fat(m *mo.VirtualMachine, cfg *types.VirtualMachineConfigInfo) {
	*m = mo.VirtualMachine{}
	m.Self, m.Name, m.Parent, m.ParentVApp = s.self, s.name, s.parent, s.parentVApp
	m.Runtime.PowerState, m.Runtime.ConsolidationNeeded = s.power, s.consolidation
	m.Snapshot, m.LayoutEx, m.CustomValue, m.Datastore = s.snapshot, s.layoutEx, s.customValue, s.datastore
	if s.hasConfig {
		*cfg = types.VirtualMachineConfigInfo{InstanceUuid: s.uuid, Template: s.template}
		m.Config = cfg
	}
}
