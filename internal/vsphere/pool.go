package vsphere

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
)

// Pool holds one session per configured vCenter across cycles. A session
// that fails is dropped and dialled again in the next cycle.
type Pool struct {
	opt Options

	mu      sync.Mutex
	targets []config.VCenter
	clients map[string]*Client
	// watched holds each vCenter's Watcher when opt.Watch is set.
	watched map[string]*watched
}

// NewPool prepares sessions for the vCenters; it dials lazily.
func NewPool(vcs []config.VCenter, opt Options) *Pool {
	return &Pool{opt: opt.withDefaults(), targets: vcs, clients: map[string]*Client{}, watched: map[string]*watched{}}
}

// SetTargets replaces the vCenters after a config reload; sessions of
// vCenters whose settings changed are logged out.
func (p *Pool) SetTargets(ctx context.Context, vcs []config.VCenter) {
	p.mu.Lock()
	old := map[string]config.VCenter{}
	for _, t := range p.targets {
		old[t.Name] = t
	}
	keep := map[string]bool{}
	for _, t := range vcs {
		keep[t.Name] = old[t.Name] == t
	}
	var drop []*Client
	for name, c := range p.clients {
		if !keep[name] {
			drop = append(drop, c)
			delete(p.clients, name)
		}
	}
	p.targets = vcs
	p.mu.Unlock()
	for _, c := range drop {
		p.unwatch(ctx, c.Name)
		_ = c.Logout(ctx)
	}
}

// Client returns the session of one vCenter, dialling it if needed.
func (p *Pool) Client(ctx context.Context, name string) (*Client, error) {
	p.mu.Lock()
	c, ok := p.clients[name]
	var target *config.VCenter
	for i := range p.targets {
		if p.targets[i].Name == name {
			target = &p.targets[i]
		}
	}
	p.mu.Unlock()
	if ok {
		return c, nil
	}
	if target == nil {
		return p.byInstanceUUID(ctx, name)
	}
	c, err := Dial(ctx, *target, p.opt)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if prev, ok := p.clients[name]; ok { // another goroutine won the race
		_ = c.Logout(ctx)
		return prev, nil
	}
	p.clients[name] = c
	return c, nil
}

// byInstanceUUID is Client for a vCenter named by its instance UUID, as the
// ledger keys name it (its config name may have changed since): the
// configured vCenter that answers with that UUID.
func (p *Pool) byInstanceUUID(ctx context.Context, id string) (*Client, error) {
	p.mu.Lock()
	targets := append([]config.VCenter(nil), p.targets...)
	p.mu.Unlock()
	var errs []error
	for _, t := range targets {
		c, err := p.Client(ctx, t.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c.InstanceUUID == id {
			return c, nil
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("vcenter %q is not configured, or is one that cannot be reached now: %w", id, errors.Join(errs...))
	}
	return nil, fmt.Errorf("vcenter %q is not configured", id)
}

// drop forgets a session after an error so the next cycle dials afresh.
func (p *Pool) drop(ctx context.Context, name string) {
	p.mu.Lock()
	c, ok := p.clients[name]
	delete(p.clients, name)
	p.mu.Unlock()
	if ok {
		p.unwatch(ctx, name)
		_ = c.Logout(ctx)
	}
}

// Collect reads every vCenter, a bounded number at once. A vCenter that
// fails is listed in the inventory's Errors; the others still report.
func (p *Pool) Collect(ctx context.Context, known Known) *facts.Inventory {
	return p.CollectScan(ctx, known, nil)
}

// CollectScan is Collect that also searches the datastores of each vCenter
// whose last orphan scan (in lastScan, by vCenter name) is ScanEvery old,
// within the same collect.timeout. A scan that fails is logged and left out
// of Scanned, so it is tried again next cycle; the snapshots still count.
func (p *Pool) CollectScan(ctx context.Context, known Known, lastScan map[string]time.Time) *facts.Inventory {
	p.mu.Lock()
	targets := append([]config.VCenter(nil), p.targets...)
	p.mu.Unlock()

	results := make([]*facts.Inventory, len(targets))
	errs := make([]error, len(targets))
	sem := make(chan struct{}, p.opt.Parallel)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, p.opt.CollectTimeout)
			defer cancel()
			c, err := p.Client(cctx, t.Name)
			if err == nil {
				results[i], err = p.collect(cctx, c, known)
				if err != nil {
					p.drop(ctx, t.Name)
				} else if lastScan != nil && time.Since(lastScan[t.Name]) >= p.opt.ScanEvery {
					p.scan(cctx, c, results[i])
				}
			}
			if err != nil && ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
				err = fmt.Errorf("collection took longer than %s, skipped this cycle so the other vCenters' notices go out: %s",
					p.opt.CollectTimeout, Unnamed(t.Name, err))
			}
			errs[i] = err
		}()
	}
	wg.Wait()

	inv := &facts.Inventory{}
	for i, t := range targets {
		if errs[i] != nil {
			inv.Errors = append(inv.Errors, facts.VCenterError{VCenter: t.Name, Error: Unnamed(t.Name, errs[i])})
			continue
		}
		inv.VMs += results[i].VMs
		inv.Snapshots = append(inv.Snapshots, results[i].Snapshots...)
		if inv.VCenterIDs == nil {
			inv.VCenterIDs = map[string]string{}
		}
		maps.Copy(inv.VCenterIDs, results[i].VCenterIDs)
		inv.Problems = append(inv.Problems, results[i].Problems...)
		for vc, at := range results[i].Scanned {
			if inv.Scanned == nil {
				inv.Scanned = map[string]time.Time{}
			}
			inv.Scanned[vc] = at
		}
	}
	sort.Slice(inv.Errors, func(i, j int) bool { return inv.Errors[i].VCenter < inv.Errors[j].VCenter })
	return inv
}

// Unnamed is err's message without the leading `vcenter "name": ` its
// wrapping added, for places that name the vCenter in a field of their own
// (the report's errors, log fields), so it is not said twice.
func Unnamed(name string, err error) string {
	msg := err.Error()
	for p := fmt.Sprintf("vcenter %q: ", name); strings.HasPrefix(msg, p); {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}

// scan searches one vCenter's datastores for orphan files into inv.
func (p *Pool) scan(ctx context.Context, c *Client, inv *facts.Inventory) {
	began := time.Now()
	orphans, err := c.Orphans(ctx)
	if err != nil {
		p.opt.Log.Warn().Err(err).Str("vcenter", c.Name).Msg("orphan file scan failed: the last findings stand, retried next cycle")
		return
	}
	p.opt.Log.Info().Str("vcenter", c.Name).Int("orphans", len(orphans)).Dur("took", time.Since(began)).Msg("datastores searched for orphan files")
	inv.Problems = append(inv.Problems, orphans...)
	inv.Scanned = map[string]time.Time{c.Name: began}
}

// Close logs out of every vCenter.
func (p *Pool) Close(ctx context.Context) error {
	p.mu.Lock()
	clients := p.clients
	p.clients = map[string]*Client{}
	p.mu.Unlock()
	var errs []error
	for name, c := range clients {
		p.unwatch(ctx, name)
		errs = append(errs, c.Logout(ctx))
	}
	return errors.Join(errs...)
}
