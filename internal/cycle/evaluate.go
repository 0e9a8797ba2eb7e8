package cycle

import (
	"fmt"
	"regexp"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// Rules converts the config's ownership rules for policy.Owner. The config
// was validated, so a regex that does not compile here is a programming error
// reported as such.
func Rules(cfg *config.Config) ([]policy.Rule, error) {
	rules := make([]policy.Rule, len(cfg.Ownership))
	for i, r := range cfg.Ownership {
		rules[i] = policy.Rule{TagCategory: r.TagCategory, CustomAttribute: r.CustomAttribute}
		if r.FolderRegex != "" {
			re, err := regexp.Compile(r.FolderRegex)
			if err != nil {
				return nil, fmt.Errorf("ownership[%d].folder_regex: %w", i, err)
			}
			rules[i].FolderRegex = re
		}
	}
	return rules, nil
}

// Settings converts the enforcement config for the planner.
func Settings(cfg *config.Config) (plan.Settings, error) {
	e := cfg.Enforcement
	s := plan.Settings{MaxPerRun: e.MaxPerRun, MaxAttempts: e.MaxAttempts, MinFreePercent: e.MinFreePercent, MinNotice: e.MinNotice,
		FixConsolidationNeeded: e.FixConsolidationNeeded}
	if e.Window != nil && e.Window.Start != "" {
		w, err := plan.ParseWindow(e.Window.Start, e.Window.Duration, time.Local)
		if err != nil {
			return s, fmt.Errorf("enforcement.window.start: %w", err)
		}
		s.Window = w
	}
	return s, nil
}

// Evaluate resolves the owner of every snapshot's VM, picks the customer's
// policy and judges the snapshot at now. firstSeen gives the ledger's first
// sight of a snapshot (zero for a new one): a create time in the future
// counts age from it. A VM the first matching rule gives two owners is
// disputed: no owner, the default policy, and support decides. It returns
// one decision per snapshot with only its Item filled in, for plan.Build to
// decide in place: planning then holds one slice of the fleet's size.
func Evaluate(inv *facts.Inventory, cfg *config.Config, rules []policy.Rule, now time.Time, firstSeen func(facts.Key) time.Time) []plan.Decision {
	ds := make([]plan.Decision, len(inv.Snapshots))
	owners := make(map[*facts.VM][]string)
	policies := make(map[string]*policy.Policy)
	for i := range inv.Snapshots {
		s := &inv.Snapshots[i]
		ids, seen := owners[s.VM]
		if !seen {
			ids, _ = policy.Owner(s.VM, rules)
			owners[s.VM] = ids
		}
		var id string
		var disputed []string
		switch len(ids) {
		case 0:
		case 1:
			id = ids[0]
		default:
			disputed = ids
		}
		c, known := cfg.Customer(id)
		p, seen := policies[id]
		if !seen {
			pol := cfg.PolicyFor(id)
			p = &pol
			policies[id] = p
		}
		ds[i].Item = plan.Item{
			Snapshot:  *s,
			Customer:  id,
			Reachable: known && len(c.Contacts) > 0,
			Policy:    p,
			Verdict:   policy.EvaluateSeen(s, *p, now, firstSeen(s.Key())),
			Disputed:  disputed,
		}
	}
	return ds
}
