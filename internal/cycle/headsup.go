package cycle

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/notify"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

// watchWait is how long one wait between cycles lasts before it is asked
// again: short enough that a cycle waiting for the collector is not held
// back long, and a new snapshot is noticed within it.
const watchWait = 20 * time.Second

// HeadsUpCandidates picks the decisions of p that may get a heads-up: the
// snapshots the watcher saw appear (appeared: by vCenter, "vm-42/snapshot-7"),
// owned by a reachable customer whose policy has heads_up, still young
// (before their warning time) and with no customer notice due now: a due
// warning says all a heads-up would. Whether one was sent already is the
// ledger's to say (HeadsUpSent).
func HeadsUpCandidates(p *plan.Plan, appeared map[string][]string) []plan.Decision {
	fresh := map[string]bool{}
	for vc, ids := range appeared {
		for _, id := range ids {
			fresh[vc+"/"+id] = true
		}
	}
	return headsUpCandidates(p, func(d plan.Decision) bool {
		s := d.Snapshot
		return fresh[s.VM.VCenter+"/"+s.VM.MoRef+"/"+s.ID]
	})
}

// MissedHeadsUps picks the decisions of p that may get a heads-up although
// no watcher reported them: snapshots new to the ledger, created since the
// last cycle began (since). A process that stopped between seeing a
// snapshot appear and queueing its heads-up, or that was down when it
// appeared, still owes it: this derives the debt from the ledger, not from
// the watcher's memory. With no earlier cycle (since is zero) there is
// none: a first deployment's young snapshots did not just appear.
func MissedHeadsUps(p *plan.Plan, since time.Time) []plan.Decision {
	if since.IsZero() {
		return nil
	}
	return headsUpCandidates(p, func(d plan.Decision) bool {
		return d.History.FirstSeen.IsZero() && d.Snapshot.Created.After(since)
	})
}

// headsUpCandidates are the decisions new says appeared whose owner wants a
// heads-up and was told nothing yet.
func headsUpCandidates(p *plan.Plan, appeared func(plan.Decision) bool) []plan.Decision {
	var out []plan.Decision
	for _, d := range p.Decisions {
		if !appeared(d) || !d.Policy.HeadsUp || !d.Reachable ||
			d.Verdict.State != policy.StateOK || d.CustomerNotice != plan.ActionNone || d.History.CustomerNotices > 0 {
			continue
		}
		out = append(out, d)
	}
	return out
}

// HeadsUpNotices renders one heads-up per customer for the decisions,
// each item with action heads-up, which History does not count as a
// warning (the min_notice clock starts at the first warning, so a
// heads-up never brings a commit forward).
func HeadsUpNotices(cfg *config.Config, rd *notify.Renderer, due []plan.Decision, now time.Time) ([]ledger.Notice, error) {
	byCustomer := map[string][]plan.Decision{}
	for _, d := range due {
		byCustomer[d.Customer] = append(byCustomer[d.Customer], d)
	}
	var out []ledger.Notice
	for _, id := range slices.Sorted(maps.Keys(byCustomer)) {
		c, _ := cfg.Customer(id)
		ds := byCustomer[id]
		// The renderer adds self-service links when they are configured.
		msg, err := rd.HeadsUp(notify.HeadsUp{Customer: notify.Customer{ID: c.ID, Name: c.Name, Contacts: c.Contacts},
			At: now, SupportEmail: cfg.Support.Desk(), Snapshots: ds})
		if err != nil {
			return nil, fmt.Errorf("customer %q: render heads-up: %w", id, err)
		}
		items := make([]ledger.Item, len(ds))
		for i, d := range ds {
			items[i] = ledger.Item{Key: d.Snapshot.Key(), Action: ledger.ItemHeadsUp, Reason: "appeared"}
		}
		n, err := emailNotice(msg, cfg.SMTP.From, now, ledger.KindHeadsUp, id, items)
		if err != nil {
			return nil, fmt.Errorf("customer %q: %w", id, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// Watch waits between cycles for vCenter's updates until ctx ends (serve),
// keeping each vCenter's copy current and running a heads-up pass when
// snapshots appear. Before the first cycle there is nothing to wait on.
func (r *Runner) Watch(ctx context.Context) {
	for ctx.Err() == nil {
		began := time.Now()
		appeared := r.pool.Wait(ctx, watchWait)
		if len(appeared) > 0 {
			sent, err := r.HeadsUp(ctx, appeared, time.Now().UTC())
			if err != nil && ctx.Err() == nil {
				r.log.Error().Err(err).Msg("heads-up pass failed: these snapshots get no heads-up; their warnings follow as usual")
			} else if sent > 0 {
				r.log.Info().Int("heads_ups", sent).Msg("heads-up queued for new snapshots")
			}
			continue
		}
		if time.Since(began) < time.Second { // no watcher yet, or it failed
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
}

// HeadsUp is the small pass between cycles: the inventory from the
// watchers' copies, the plan, a heads-up for each new snapshot that has
// none in the ledger, queued in the outbox and delivered (one delivery at a
// time, with the cycles'). It returns the number of heads-up notices queued.
func (r *Runner) HeadsUp(ctx context.Context, appeared map[string][]string, now time.Time) (int, error) {
	cfg, planner, renderer, mailer := r.settings()
	if !headsUpAnywhere(cfg) {
		return 0, nil
	}
	known, err := r.ledger.Known(ctx)
	if err != nil {
		return 0, err
	}
	inv := r.pool.Collect(ctx, vsphere.Known(known))
	p, err := planner.Plan(ctx, inv, r.ledger, now)
	if err != nil {
		return 0, err
	}
	r.headsUpMu.Lock()
	notices, err := r.headsUps(ctx, cfg, renderer, HeadsUpCandidates(p, appeared), now)
	if err == nil && len(notices) > 0 {
		err = r.ledger.QueueHeadsUps(ctx, notices, now)
	}
	r.headsUpMu.Unlock()
	if err != nil || len(notices) == 0 {
		return 0, err
	}
	// Queued is what counts: a delivery that fails now is retried with
	// the outbox's other notices.
	if err := r.deliver(ctx, cfg, mailer, newResult(now), now); err != nil {
		r.log.Warn().Err(err).Msg("heads-up delivery: left in the outbox for the next delivery")
	}
	return len(notices), nil
}

// headsUps renders the heads-ups of the candidates that have none in the
// ledger yet.
func (r *Runner) headsUps(ctx context.Context, cfg *config.Config, rd *notify.Renderer, cands []plan.Decision, now time.Time) ([]ledger.Notice, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	keys := make([]facts.Key, len(cands))
	for i, d := range cands {
		keys[i] = d.Snapshot.Key()
	}
	sent, err := r.ledger.HeadsUpSent(ctx, keys)
	if err != nil {
		return nil, err
	}
	cands = slices.DeleteFunc(cands, func(d plan.Decision) bool { return sent[d.Snapshot.Key()] })
	return HeadsUpNotices(cfg, rd, cands, now)
}

// headsUpAnywhere reports whether the default policy or any customer's
// asks for heads-ups, so a fleet without them does no pass at all.
func headsUpAnywhere(cfg *config.Config) bool {
	if cfg.Policy.HeadsUp {
		return true
	}
	for _, c := range cfg.Customers {
		if c.Policy.HeadsUp {
			return true
		}
	}
	return false
}
