package simfleet

import (
	"fmt"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// diskFile is one file of a disk chain link, for a linked clone's parent.
type diskFile struct {
	name, kind string
	size       int64
}

// extra is what a fleet VM declares beyond its snapshots: problems no
// Snapshot Manager shows.
type extra struct {
	// phantom is the size of a delta the VM runs on without a snapshot.
	phantom int64
	// parent, for a linked clone, is the chain of its source's snapshot,
	// the clone's disk's parent (files the source owns).
	parent [][]diskFile
}

// vmDir is the datastore folder of a VM's files, "[LocalDS_3] name/": the
// datastore of its .vmx (vcsim names the folder after the VM).
func vmDir(vm *simulator.VirtualMachine) string {
	store, _, _ := strings.Cut(strings.TrimPrefix(vm.Config.Files.VmPathName, "["), "]")
	return "[" + store + "] " + vm.Name + "/"
}

// layout builds a vSphere-shaped layoutEx for a VM whose snapshots should
// measure the given sizes with object.SnapshotSize. Each non-root snapshot
// adds one delta disk to its parent's chain (the writes between the parent
// and it); the VM's live chain is the current snapshot's plus a running
// delta, which belongs to the current snapshot. A snapshot's size is split
// into its .vmsn and the delta it adds (for a root: the running delta when it
// is current, else the .vmsn alone, since a root adds no chain files). The
// .vmsn keeps the name vcsim gave the file on disk (vmsn, by snapshot), so
// an orphan scan finds it referenced. A phantom delta tops the base disk of
// a VM without snapshots; a linked clone's chain is its parent's plus a
// delta of its own.
func layout(vm *simulator.VirtualMachine, sizes map[string]int64, vmsn map[string]string, ex extra) *types.VirtualMachineFileLayoutEx {
	const diskKey = 2000
	ds := vmDir(vm) + vm.Name
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
	if ex.parent != nil {
		base = nil
		for _, link := range ex.parent {
			var unit types.VirtualMachineFileLayoutExDiskUnit
			for _, f := range link {
				unit.FileKey = append(unit.FileKey, file(f.name, f.kind, f.size))
			}
			base = append(base, unit)
		}
		base = append(base, delta(64<<20))
	}
	if ex.phantom > 0 {
		base = append(base, delta(ex.phantom))
	}
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
			name := vmsn[t.Snapshot.Value]
			if name == "" {
				name = fmt.Sprintf("%s-Snapshot%s.vmsn", ds, t.Snapshot.Value)
			}
			data := file(name, string(types.VirtualMachineFileLayoutExFileTypeSnapshotData), own)
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
