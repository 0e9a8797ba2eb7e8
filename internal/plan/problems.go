package plan

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// Problem is a problem of this cycle with its owner and first sight. It goes
// to support only: no customer notice is ever built from it.
type Problem struct {
	facts.Problem
	// Customer owns the VM; empty for an orphan file or an unowned VM.
	Customer string
	// FirstSeen is when the ledger first recorded it; now for a new one.
	FirstSeen time.Time
	// Fix is what snapwarden does about it (see Fixes).
	Fix Fix
}

// New reports whether the problem was first seen at now.
func (p *Problem) New(now time.Time) bool { return !p.FirstSeen.Before(now) }

// ProblemHistory is what the ledger remembers of problems.
type ProblemHistory struct {
	// FirstSeen holds the first sight of every open problem, by facts.Problem.Key.
	FirstSeen map[string]time.Time
	// Scans holds the time of each vCenter's last orphan scan.
	Scans map[string]time.Time
	// Orphans are the open orphan_file findings of those scans, carried
	// into the cycles between scans.
	Orphans []facts.Problem
	// Fixes are the disk consolidations run on consolidation_needed VMs,
	// by VMKey.
	Fixes map[facts.Key]FixHistory
	// VCenterNames is the config name of each vCenter, by instance UUID,
	// when it last answered: the problems above are kept by name.
	VCenterNames map[string]string
}

// Renamed is h with what it keeps under a vCenter's old config name moved
// to its name of now (ids: name -> instance UUID of the vCenters that
// answered), so a vCenter renamed in the config keeps the first sight of
// its problems and its last orphan scan, and its orphan files are not
// carried under the old name.
func (h ProblemHistory) Renamed(ids map[string]string) ProblemHistory {
	moved := map[string]string{} // old name -> new
	for name, id := range ids {
		if old := h.VCenterNames[id]; old != "" && old != name {
			moved[old] = name
		}
	}
	if len(moved) == 0 {
		return h
	}
	out := h
	// What the new name holds itself wins, as in the ledger's rename.
	out.FirstSeen = maps.Clone(h.FirstSeen)
	for k, t := range h.FirstSeen {
		kind, rest, _ := strings.Cut(k, "|")
		vc, tail, _ := strings.Cut(rest, "|")
		if name, ok := moved[vc]; ok {
			delete(out.FirstSeen, k)
			if nk := kind + "|" + name + "|" + tail; h.FirstSeen[nk].IsZero() {
				out.FirstSeen[nk] = t
			}
		}
	}
	out.Scans = maps.Clone(h.Scans)
	for vc, t := range h.Scans {
		if name, ok := moved[vc]; ok {
			delete(out.Scans, vc)
			if h.Scans[name].IsZero() {
				out.Scans[name] = t
			}
		}
	}
	out.Orphans = make([]facts.Problem, len(h.Orphans))
	for i, o := range h.Orphans {
		if name, ok := moved[o.VCenter]; ok {
			o.VCenter = name
		}
		out.Orphans[i] = o
	}
	return out
}

// ChainTooDeep returns one chain_too_deep problem per VM whose deepest
// snapshot is deeper than the max_depth of the VM's policy.
func ChainTooDeep(items []Item) []facts.Problem {
	deepest := map[*facts.VM]int{}
	var order []*facts.VM
	for i := range items {
		it := &items[i]
		vm := it.Snapshot.VM
		if vm == nil || it.Policy.MaxDepth <= 0 || it.Snapshot.Depth <= it.Policy.MaxDepth {
			continue
		}
		j, seen := deepest[vm]
		if !seen {
			order = append(order, vm)
		}
		if !seen || it.Snapshot.Depth > items[j].Snapshot.Depth {
			deepest[vm] = i
		}
	}
	out := make([]facts.Problem, 0, len(order))
	for _, vm := range order {
		it := &items[deepest[vm]]
		out = append(out, facts.Problem{
			Kind: facts.ChainTooDeep, VCenter: vm.VCenter, Datacenter: vm.Datacenter, VM: vm,
			SizeBytes: chainBytes(items, vm),
			Detail: fmt.Sprintf("snapshot %q is %d deep, more than max_depth %d: every read walks the chain",
				it.Snapshot.Name, it.Snapshot.Depth, it.Policy.MaxDepth),
		})
	}
	return out
}

// chainBytes is the size of every snapshot of the VM.
func chainBytes(items []Item, vm *facts.VM) int64 {
	var n int64
	for i := range items {
		if items[i].Snapshot.VM == vm {
			n += items[i].Snapshot.SizeBytes
		}
	}
	return n
}

// Problems gives each problem its owner (owner returns the VM's customer
// id) and its first sight (the ledger's, else now), sorted by vCenter, kind,
// VM and path.
func Problems(found []facts.Problem, owner func(*facts.VM) string, hist ProblemHistory, now time.Time) []Problem {
	out := make([]Problem, 0, len(found))
	for _, f := range found {
		p := Problem{Problem: f, FirstSeen: now}
		if t, ok := hist.FirstSeen[f.Key()]; ok && t.Before(now) {
			p.FirstSeen = t
		}
		if f.VM != nil {
			p.Customer = owner(f.VM)
		}
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.VCenter, b.VCenter), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(vmName(a.VM), vmName(b.VM)), cmp.Compare(a.Path, b.Path))
	})
	return out
}

func vmName(vm *facts.VM) string {
	if vm == nil {
		return ""
	}
	return vm.Name
}
