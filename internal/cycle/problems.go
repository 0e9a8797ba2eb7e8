package cycle

import (
	"slices"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// carryOrphans adds the last scan's orphan files of every vCenter that
// answered but was not scanned in this collection: between scans the
// findings stand as the ledger keeps them.
func carryOrphans(inv *facts.Inventory, hist plan.ProblemHistory) {
	failed := map[string]bool{}
	for _, e := range inv.Errors {
		failed[e.VCenter] = true
	}
	for _, o := range hist.Orphans {
		if _, scanned := inv.Scanned[o.VCenter]; !failed[o.VCenter] && !scanned {
			inv.Problems = append(inv.Problems, o)
		}
	}
}

// problems assembles the plan's problems: those collection found, the
// chains too deep for their policy, each with its VM's owner and first sight.
func problems(inv *facts.Inventory, rules []policy.Rule, hist plan.ProblemHistory, p *plan.Plan) {
	found := append(slices.Clip(inv.Problems), plan.ChainTooDeep(p.Decisions)...)
	owners := map[*facts.VM]string{}
	for i := range p.Decisions {
		owners[p.Decisions[i].Snapshot.VM] = p.Decisions[i].Customer
	}
	owner := func(vm *facts.VM) string {
		id, ok := owners[vm]
		if !ok {
			// A disputed VM has no single owner, as in the plan.
			if ids, _ := policy.Owner(vm, rules); len(ids) == 1 {
				id = ids[0]
			}
			owners[vm] = id
		}
		return id
	}
	p.Problems = plan.Problems(found, owner, hist, p.At)
}
