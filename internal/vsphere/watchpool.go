package vsphere

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// watched is one vCenter's Watcher in the pool. Its mutex keeps a cycle's
// read and a wait between cycles from using the collector at once
// (vCenter allows one WaitForUpdatesEx per collector).
type watched struct {
	mu     sync.Mutex
	w      *Watcher
	cycles int // watched cycles since the last full read
	// fresh holds the snapshots a cycle's read saw appear, for the next
	// Wait to report: a snapshot taken just before a cycle gets its
	// heads-up too.
	fresh []string

	// A cycle does not wait for a wait between cycles to time out: it
	// raises want (so no new wait starts) and cancels the one in flight
	// (waiter) on vCenter's side, whose answer, changes or a
	// RequestCanceled fault, then arrives intact.
	want   atomic.Int32
	wmu    sync.Mutex
	waiter *Watcher
}

// lock takes the entry for a cycle, cutting short a wait between cycles.
func (ws *watched) lock(ctx context.Context) {
	ws.want.Add(1)
	defer ws.want.Add(-1)
	// Again every half second: a wait whose request had not reached
	// vCenter yet was not cancelled by the first.
	for i := 0; !ws.mu.TryLock(); i++ {
		ws.wmu.Lock()
		w := ws.waiter
		ws.wmu.Unlock()
		if w != nil && i%10 == 0 {
			w.interrupt(ctx)
		}
		select {
		case <-ctx.Done():
			ws.mu.Lock() // the wait ends with ctx too
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// watchedFor returns the vCenter's entry, creating an empty one.
func (p *Pool) watchedFor(name string) *watched {
	p.mu.Lock()
	defer p.mu.Unlock()
	ws, ok := p.watched[name]
	if !ok {
		ws = &watched{}
		p.watched[name] = ws
	}
	return ws
}

// collect reads one vCenter for a cycle: in full without opt.Watch;
// otherwise from the Watcher's copy patched with the updates since the
// last read, with a full read after a new session, a resync fault, or
// every FullEvery cycles.
func (p *Pool) collect(ctx context.Context, c *Client, known Known) (*facts.Inventory, error) {
	if !p.opt.Watch {
		return c.Collect(ctx, known)
	}
	ws := p.watchedFor(c.Name)
	ws.lock(ctx)
	defer ws.mu.Unlock()
	if ws.w != nil && (ws.w.c != c || ws.cycles >= p.opt.FullEvery) {
		ws.w.Close(ctx)
		ws.w = nil
	}
	if ws.w != nil {
		ch, err := ws.w.Poll(ctx, 0)
		if err == nil {
			ws.fresh = append(ws.fresh, ch.NewSnapshots...)
			p.opt.Log.Debug().Str("vcenter", c.Name).Int("entered", ch.Entered).Int("modified", ch.Modified).
				Int("left", ch.Left).Int("new_snapshots", len(ch.NewSnapshots)).Msg("inventory patched from vCenter's updates")
		}
		if errors.Is(err, ErrResync) {
			p.opt.Log.Warn().Err(err).Str("vcenter", c.Name).Msg("update version lost: reading the whole inventory again")
			ws.w.Close(ctx)
			ws.w = nil
		} else if err != nil {
			ws.w.Close(ctx)
			ws.w = nil
			return nil, err
		}
	}
	if ws.w == nil {
		w, err := c.Watch(ctx)
		if err != nil {
			return nil, err
		}
		ws.w, ws.cycles = w, 0
	}
	ws.cycles++
	inv, err := ws.w.Inventory(ctx, known)
	if err != nil {
		ws.w.Close(ctx)
		ws.w = nil
	}
	return inv, err
}

// Wait waits up to wait for changes on every watched vCenter and patches
// their copies; it returns the snapshots that appeared, by vCenter. A
// vCenter without a Watcher yet (before its first cycle) is skipped; an
// error drops its Watcher, so the next cycle reads it in full.
func (p *Pool) Wait(ctx context.Context, wait time.Duration) map[string][]string {
	p.mu.Lock()
	names := make([]string, 0, len(p.watched))
	for name := range p.watched {
		names = append(names, name)
	}
	p.mu.Unlock()
	var mu sync.Mutex
	out := map[string][]string{}
	var wg sync.WaitGroup
	for _, name := range names {
		ws := p.watchedFor(name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws.mu.Lock()
			defer ws.mu.Unlock()
			carried := ws.fresh
			ws.fresh = nil
			defer func() {
				if len(carried) > 0 {
					mu.Lock()
					out[name] = append(carried, out[name]...)
					mu.Unlock()
				}
			}()
			if ws.w == nil || ws.want.Load() > 0 {
				return
			}
			d := wait
			if len(carried) > 0 {
				d = 0 // report these now; later changes come next time
			}
			ws.wmu.Lock()
			ws.waiter = ws.w
			ws.wmu.Unlock()
			ch, err := ws.w.Poll(ctx, d)
			ws.wmu.Lock()
			ws.waiter = nil
			ws.wmu.Unlock()
			if err != nil {
				if ctx.Err() == nil {
					p.opt.Log.Warn().Err(err).Str("vcenter", name).Msg("waiting for snapshot changes failed: the next cycle reads the whole inventory")
				}
				ws.w.Close(context.WithoutCancel(ctx))
				ws.w = nil
				return
			}
			if len(ch.NewSnapshots) > 0 {
				mu.Lock()
				out[name] = ch.NewSnapshots
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// unwatch closes and forgets a vCenter's Watcher.
func (p *Pool) unwatch(ctx context.Context, name string) {
	p.mu.Lock()
	ws, ok := p.watched[name]
	delete(p.watched, name)
	p.mu.Unlock()
	if !ok {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.w != nil {
		ws.w.Close(ctx)
		ws.w = nil
	}
}
