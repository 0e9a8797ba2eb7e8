package cycle

import (
	"context"
	"fmt"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

// HistorySource is the ledger's read side that planning needs.
type HistorySource interface {
	// History is every open snapshot's history, keyed by identity.
	History(ctx context.Context) (map[facts.Key]plan.History, error)
	// Known reports which snapshots the ledger has seen, so creators are
	// looked up only for new ones.
	Known(ctx context.Context) (func(facts.Key) bool, error)
	// RemovalRate is the speed of earlier removals in bytes per second, 0
	// when there were none.
	RemovalRate(ctx context.Context) (float64, error)
}

// Planner runs the stages report and run share: collect, evaluate, plan.
type Planner struct {
	Config   *config.Config
	Rules    []policy.Rule
	Settings plan.Settings
}

// NewPlanner prepares the config's ownership rules and enforcement limits.
func NewPlanner(cfg *config.Config) (*Planner, error) {
	rules, err := Rules(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.File, err)
	}
	set, err := Settings(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.File, err)
	}
	return &Planner{Config: cfg, Rules: rules, Settings: set}, nil
}

// Collect reads every vCenter; creators are looked up only for snapshots
// the ledger has not seen.
func Collect(ctx context.Context, pool *vsphere.Pool, hs HistorySource) (*facts.Inventory, error) {
	known, err := hs.Known(ctx)
	if err != nil {
		return nil, err
	}
	return pool.Collect(ctx, vsphere.Known(known)), nil
}

// Plan evaluates the inventory at now and decides against the ledger's
// history. It does no I/O beyond reading the history.
func (p *Planner) Plan(ctx context.Context, inv *facts.Inventory, hs HistorySource, now time.Time) (*plan.Plan, error) {
	hist, err := hs.History(ctx)
	if err != nil {
		return nil, err
	}
	hist = byInstanceUUID(hist, inv.VCenterIDs)
	rate, err := hs.RemovalRate(ctx)
	if err != nil {
		return nil, err
	}
	// A copy: the rate is this cycle's, the planner outlives it.
	cp := *p
	cp.Settings.Window = p.Settings.Window.WithRate(rate)
	return cp.Decide(inv, hist, now), nil
}

// Decide is Plan's pure part: evaluate every snapshot and build the plan.
func (p *Planner) Decide(inv *facts.Inventory, hist map[facts.Key]plan.History, now time.Time) *plan.Plan {
	// Creators are looked up only for new snapshots: the policy judges the
	// others (managed_creators) by the creator the ledger recorded.
	for i := range inv.Snapshots {
		if s := &inv.Snapshots[i]; s.Creator == "" {
			s.Creator = hist[s.Key()].Creator
		}
	}
	items := Evaluate(inv, p.Config, p.Rules, now)
	decisions := plan.Build(items, hist, p.Settings, now)
	return &plan.Plan{At: now, Mode: p.Config.Enforcement.Mode, VMs: inv.VMs, VCenters: len(p.Config.VCenters),
		Decisions: decisions, Errors: inv.Errors, Window: p.Settings.Window, VCenterIDs: inv.VCenterIDs}
}

// byInstanceUUID re-keys history kept under a vCenter's config name (a
// ledger from before keys used the instance UUID) to the UUID, so the plan
// sees it before the cycle's record re-keys the ledger itself, and so does
// `report`, which never writes.
func byInstanceUUID(hist map[facts.Key]plan.History, ids map[string]string) map[facts.Key]plan.History {
	out := make(map[facts.Key]plan.History, len(hist))
	var old []facts.Key
	for k, h := range hist {
		if id := ids[k.VCenter]; id != "" && id != k.VCenter {
			old = append(old, k)
			continue
		}
		out[k] = h
	}
	for _, k := range old {
		h := hist[k]
		k.VCenter = ids[k.VCenter]
		if _, both := out[k]; !both { // the UUID's own history wins
			out[k] = h
		}
	}
	return out
}
