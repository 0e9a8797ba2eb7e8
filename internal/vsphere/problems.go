package vsphere

import (
	"fmt"
	"slices"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// link is one link of a disk chain: its descriptor's name and the size of
// all its files.
type link struct {
	name string
	size int64
}

// chains finds phantom deltas and shared disk files over one retrieval. A
// linked clone runs on a delta too, but the links below its own belong to
// its source VM, whose layoutEx names them as well: only links no other VM
// names count, so users are gathered over the whole inventory before
// anything is judged.
type chains struct {
	users      map[string][]linkUser // descriptor of a chain link -> VMs naming it
	candidates []candidate
	// snapshotted are the VMs with snapshots: committing one merges files
	// that another VM's chain may read (a linked clone's base).
	snapshotted []candidate
}

// linkUser is a VM (or template) naming a chain link.
type linkUser struct{ moref, name string }

// candidate is a VM without snapshots with a disk chain longer than 1, or a
// VM with snapshots.
type candidate struct {
	vm    *facts.VM
	disks [][]link // base first
}

// add gathers the chain links of s; vm is the VM's facts, nil for a
// template, and snapshots tells whether it has snapshots (then it cannot
// hold a phantom, but its files can be another VM's base). It reports
// whether the VM without snapshots became a phantom candidate.
func (ch *chains) add(s *slimVM, vm *facts.VM, snapshots bool) bool {
	var disks [][]link
	for _, chain := range s.disks {
		for _, l := range chain {
			if ch.users == nil {
				ch.users = map[string][]linkUser{}
			}
			ch.users[l.name] = append(ch.users[l.name], linkUser{moref: s.self.Value, name: s.name})
		}
		if len(chain) > 1 || snapshots && len(chain) > 0 {
			disks = append(disks, chain)
		}
	}
	if vm == nil || len(disks) == 0 {
		return false
	}
	if snapshots {
		ch.snapshotted = append(ch.snapshotted, candidate{vm: vm, disks: disks})
		return false
	}
	ch.candidates = append(ch.candidates, candidate{vm: vm, disks: disks})
	return true
}

// phantoms returns a phantom_delta problem per disk of a VM without
// snapshots that runs on deltas of its own: its top link, and the size of
// its own links above the lowest one (its base, or a linked clone's child).
func (ch *chains) phantoms() []facts.Problem {
	var out []facts.Problem
	for _, c := range ch.candidates {
		for _, chain := range c.disks {
			own := chain[:0:0]
			for _, l := range chain {
				if len(ch.users[l.name]) <= 1 {
					own = append(own, l)
				}
			}
			if len(own) < 2 {
				continue
			}
			var size int64
			for _, l := range own[1:] {
				size += l.size
			}
			top := own[len(own)-1].name
			out = append(out, facts.Problem{
				Kind: facts.PhantomDelta, VM: c.vm, Datastore: facts.DatastoreOf(top), Path: top, SizeBytes: size,
				Detail: fmt.Sprintf("no snapshot, but the disk runs on %d delta %s over its base %s",
					len(own)-1, plural(len(own)-1, "file", "files"), own[0].name),
			})
		}
	}
	return out
}

// shared fills SharesDisksWith of every VM with snapshots whose chain
// links other VMs (or templates) name too: a linked clone of it, or the
// source it was cloned from. The layoutEx alone does not tell which of the
// two a VM is, and committing either could rewrite a file the other reads,
// so both are marked.
func (ch *chains) shared() {
	for _, c := range ch.snapshotted {
		var names []string
		for _, chain := range c.disks {
			for _, l := range chain {
				for _, u := range ch.users[l.name] {
					if u.moref != c.vm.MoRef {
						names = append(names, u.name)
					}
				}
			}
		}
		slices.Sort(names)
		c.vm.SharesDisksWith = slices.Compact(names)
	}
}

// deltaBytes is the size of the files of every link above the base of the
// VM's disk chains: what a consolidation merges, and about the room it may
// need.
func deltaBytes(disks [][]link) int64 {
	var n int64
	for _, chain := range disks {
		for i, l := range chain {
			if i > 0 {
				n += l.size
			}
		}
	}
	return n
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
