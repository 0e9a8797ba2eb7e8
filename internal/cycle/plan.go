package cycle

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/enforce"
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
	// Requests is every open snapshot's self-service requests, keyed by identity.
	Requests(ctx context.Context) (map[facts.Key][]plan.Request, error)
	// RemovalRate is the speed of earlier removals in bytes per second, 0
	// when there were none.
	RemovalRate(ctx context.Context) (float64, error)
	// Problems is what the ledger remembers of problems: first sights and
	// the last orphan scans.
	Problems(ctx context.Context) (plan.ProblemHistory, error)
	// Samples are the snapshots' size samples since a time, for growth.
	Samples(ctx context.Context, since time.Time) (map[facts.Key][]plan.Sample, error)
}

// Planner runs the stages report and run share: collect, evaluate, plan.
type Planner struct {
	Config   *config.Config
	Rules    []policy.Rule
	Settings plan.Settings
	// Log receives what planning finds wrong in vCenter's data (clock
	// skew); the zero Logger discards it.
	Log zerolog.Logger
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
// the ledger has not seen, and datastores are searched for orphan files
// where the last scan is older than the pool's ScanEvery (the findings of
// the last scan stand in between).
func Collect(ctx context.Context, pool *vsphere.Pool, hs HistorySource) (*facts.Inventory, error) {
	known, err := hs.Known(ctx)
	if err != nil {
		return nil, err
	}
	ph, err := hs.Problems(ctx)
	if err != nil {
		return nil, err
	}
	// A vCenter renamed in the config since the last scan is scanned again
	// (which ones were renamed is known only once they answered).
	inv := pool.CollectScan(ctx, vsphere.Known(known), ph.Scans)
	carryOrphans(inv, ph.Renamed(inv.VCenterIDs))
	return inv, nil
}

// Plan evaluates the inventory at now and decides against the ledger's
// history. It does no I/O beyond reading the history.
func (p *Planner) Plan(ctx context.Context, inv *facts.Inventory, hs HistorySource, now time.Time) (*plan.Plan, error) {
	hist, err := hs.History(ctx)
	if err != nil {
		return nil, err
	}
	reqs, err := hs.Requests(ctx)
	if err != nil {
		return nil, err
	}
	for k, rs := range reqs {
		h := hist[k]
		h.Requests = rs
		hist[k] = h
	}
	hist = byInstanceUUID(hist, inv.VCenterIDs)
	rate, err := hs.RemovalRate(ctx)
	if err != nil {
		return nil, err
	}
	ph, err := hs.Problems(ctx)
	if err != nil {
		return nil, err
	}
	ph = ph.Renamed(inv.VCenterIDs)
	samples, err := hs.Samples(ctx, now.Add(-plan.GrowthWindow))
	if err != nil {
		return nil, err
	}
	// A copy: the rate is this cycle's, the planner outlives it.
	cp := *p
	cp.Settings.Window = p.Settings.Window.WithRate(rate)
	pl := cp.Decide(inv, hist, ph, byInstanceUUID(samples, inv.VCenterIDs), now)
	for _, d := range pl.Decisions {
		// Logged when support is told, so once per snapshot, not every cycle.
		if d.Reason == plan.ReasonClockSkew && d.EscalateNow {
			p.Log.Warn().Str("vcenter", d.Snapshot.VM.VCenter).Str("vm", d.Snapshot.VM.Name).Str("snapshot_id", d.Snapshot.ID).
				Time("created", d.Snapshot.Created).Time("first_seen", d.Verdict.Since).
				Msg("snapshot create time is in the future (clock skew): age counted from first sight")
		}
	}
	return pl, nil
}

// Decide is Plan's pure part: evaluate every snapshot, build the plan, its
// growth forecast, its problems and what is done about them.
func (p *Planner) Decide(inv *facts.Inventory, hist map[facts.Key]plan.History, ph plan.ProblemHistory,
	samples map[facts.Key][]plan.Sample, now time.Time) *plan.Plan {
	// Creators are looked up only for new snapshots: the policy judges the
	// others (managed_creators) by the creator the ledger recorded.
	for i := range inv.Snapshots {
		if s := &inv.Snapshots[i]; s.Creator == "" {
			s.Creator = hist[s.Key()].Creator
		}
	}
	ss := p.Config.SelfService
	reqs := plan.RequestSettings{ExtendBy: ss.ExtendBy, MaxExtends: ss.MaxExtends, DryRun: p.Config.Enforcement.Mode != enforce.ModeEnforce}
	items := plan.Extend(Evaluate(inv, p.Config, p.Rules, now, func(k facts.Key) time.Time { return hist[k].FirstSeen }), hist, reqs, now)
	decisions := plan.Build(items, hist, p.Settings, now)
	plan.ApplyRequests(decisions, reqs, p.Settings, now)
	pl := &plan.Plan{At: now, Mode: p.Config.Enforcement.Mode, VMs: inv.VMs, VCenters: len(p.Config.VCenters),
		Decisions: decisions, Errors: inv.Errors, Window: p.Settings.Window, VCenterIDs: inv.VCenterIDs}
	plan.Growth(pl, samples)
	problems(inv, items, p.Rules, ph, pl)
	plan.Fixes(pl, ph.Fixes, p.Config.PolicyFor, p.Settings, now)
	return pl
}

// keyVCenters turns vCenter config names into the vCenter part of their
// snapshots' keys: the instance UUID where it is known.
func keyVCenters(names []string, ids map[string]string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n
		if id := ids[n]; id != "" {
			out[i] = id
		}
	}
	return out
}

// byInstanceUUID re-keys what the ledger keeps under a vCenter's config name
// (a ledger from before keys used the instance UUID) to the UUID, so the
// plan sees it before the cycle's record re-keys the ledger itself, and so
// does `report`, which never writes. It re-keys byKey in place (the ledger
// answers with a map of the caller's own): a copy of the history of a large
// fleet was a tenth of a cycle's peak heap.
func byInstanceUUID[V any](byKey map[facts.Key]V, ids map[string]string) map[facts.Key]V {
	var old []facts.Key
	for k := range byKey {
		if id := ids[k.VCenter]; id != "" && id != k.VCenter {
			old = append(old, k)
		}
	}
	for _, k := range old {
		v := byKey[k]
		delete(byKey, k)
		k.VCenter = ids[k.VCenter]
		if _, both := byKey[k]; !both { // what the UUID has itself wins
			byKey[k] = v
		}
	}
	return byKey
}
