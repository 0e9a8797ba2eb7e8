package simfleet

import (
	"fmt"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// layout builds a vSphere-shaped layoutEx for a VM whose snapshots should
// measure the given sizes with object.SnapshotSize. Each non-root snapshot
// adds one delta disk to its parent's chain (the writes between the parent
// and it); the VM's live chain is the current snapshot's plus a running
// delta, which belongs to the current snapshot. A snapshot's size is split
// into its .vmsn and the delta it adds (for a root: the running delta when it
// is current, else the .vmsn alone, since a root adds no chain files).
func layout(vm *simulator.VirtualMachine, sizes map[string]int64) *types.VirtualMachineFileLayoutEx {
	const diskKey = 2000
	ds := "[LocalDS_0] " + vm.Name + "/" + vm.Name
	le := &types.VirtualMachineFileLayoutEx{}
	key := int32(0)
	file := func(name, kind string, size int64) int32 {
		key++
		le.File = append(le.File, types.VirtualMachineFileLayoutExFileInfo{Key: key, Name: name, Type: kind, Size: size, UniqueSize: size})
		return key
	}
	file(ds+".vmx", string(types.VirtualMachineFileLayoutExFileTypeConfig), 4096)
	n := 0
	delta := func(size int64) types.VirtualMachineFileLayoutExDiskUnit {
		n++
		desc := min(size, 512)
		return types.VirtualMachineFileLayoutExDiskUnit{FileKey: []int32{
			file(fmt.Sprintf("%s-%06d.vmdk", ds, n), string(types.VirtualMachineFileLayoutExFileTypeDiskDescriptor), desc),
			file(fmt.Sprintf("%s-%06d-sesparse.vmdk", ds, n), string(types.VirtualMachineFileLayoutExFileTypeDiskExtent), size-desc),
		}}
	}
	base := []types.VirtualMachineFileLayoutExDiskUnit{{FileKey: []int32{
		file(ds+".vmdk", string(types.VirtualMachineFileLayoutExFileTypeDiskDescriptor), 512),
		file(ds+"-flat.vmdk", string(types.VirtualMachineFileLayoutExFileTypeDiskExtent), 16<<30),
	}}}
	live := base
	var current types.ManagedObjectReference
	if vm.Snapshot != nil && vm.Snapshot.CurrentSnapshot != nil {
		current = *vm.Snapshot.CurrentSnapshot
	}
	var walk func(list []types.VirtualMachineSnapshotTree, parentChain []types.VirtualMachineFileLayoutExDiskUnit, root bool)
	walk = func(list []types.VirtualMachineSnapshotTree, parentChain []types.VirtualMachineFileLayoutExDiskUnit, root bool) {
		for _, t := range list {
			total := sizes[t.Snapshot.Value]
			isCurrent := t.Snapshot == current
			own := total // the .vmsn
			if !root || isCurrent {
				own = min(total, 32<<10)
			}
			chain := append([]types.VirtualMachineFileLayoutExDiskUnit(nil), parentChain...)
			if !root {
				chain = append(chain, delta(total-own))
			}
			data := file(fmt.Sprintf("%s-Snapshot%s.vmsn", ds, t.Snapshot.Value), string(types.VirtualMachineFileLayoutExFileTypeSnapshotData), own)
			le.Snapshot = append(le.Snapshot, types.VirtualMachineFileLayoutExSnapshotLayout{
				Key: t.Snapshot, DataKey: data, MemoryKey: -1,
				Disk: []types.VirtualMachineFileLayoutExDiskLayout{{Key: diskKey, Chain: chain}},
			})
			if isCurrent {
				running := int64(0)
				if root {
					running = total - own
				}
				live = append(append([]types.VirtualMachineFileLayoutExDiskUnit(nil), chain...), delta(running))
			}
			walk(t.ChildSnapshotList, chain, false)
		}
	}
	if vm.Snapshot != nil {
		walk(vm.Snapshot.RootSnapshotList, base, true)
	}
	le.Disk = []types.VirtualMachineFileLayoutExDiskLayout{{Key: diskKey, Chain: live}}
	return le
}
