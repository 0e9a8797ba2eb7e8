package vsphere

import "github.com/vmware/govmomi/vim25/types"

// sizes computes every snapshot's size from the VM's layoutEx, the way
// object.SnapshotSize does (govc snapshot.tree -s, PowerCLI agree), but with
// the file table indexed once per VM instead of once per snapshot: a
// snapshot's own data and memory files, plus the disk files its chain adds over
// its parent's chain (a root adds none: the base disk never counts), plus, for
// the current snapshot, the running delta files beyond every snapshot's chain.
func sizes(le *types.VirtualMachineFileLayoutEx, parents map[string]string, current string) map[string]int64 {
	if le == nil {
		return map[string]int64{}
	}
	out := make(map[string]int64, len(le.Snapshot))
	fileSize := make(map[int32]int64, len(le.File))
	for _, f := range le.File {
		fileSize[f.Key] = f.Size
	}
	chains := make(map[string]map[int32]bool, len(le.Snapshot))
	inSnapshots := map[int32]bool{}
	for _, sl := range le.Snapshot {
		keys := diskKeys(sl.Disk)
		chains[sl.Key.Value] = keys
		for k := range keys {
			inSnapshots[k] = true
		}
	}
	for _, sl := range le.Snapshot {
		id := sl.Key.Value
		size := fileSize[sl.DataKey]
		if sl.MemoryKey >= 0 && sl.MemoryKey != sl.DataKey {
			size += fileSize[sl.MemoryKey]
		}
		if parent, ok := parents[id]; ok && parent != "" {
			for k := range chains[id] {
				if !chains[parent][k] {
					size += fileSize[k]
				}
			}
		}
		if id == current {
			for k := range diskKeys(le.Disk) {
				if !inSnapshots[k] {
					size += fileSize[k]
				}
			}
		}
		out[id] = size
	}
	return out
}

func diskKeys(disks []types.VirtualMachineFileLayoutExDiskLayout) map[int32]bool {
	keys := map[int32]bool{}
	for _, d := range disks {
		for _, unit := range d.Chain {
			for _, k := range unit.FileKey {
				keys[k] = true
			}
		}
	}
	return keys
}
