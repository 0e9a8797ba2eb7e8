package cycle

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

// TestHeadsUpBetweenCycles is serve's heads-up: a snapshot taken between
// cycles is seen through the watcher and its owner told once, through the
// outbox; a customer without heads_up hears nothing, and the heads-up does
// not count as a warning at the next cycle.
func TestHeadsUpBetweenCycles(t *testing.T) {
	e := newEnv(t, "small.yaml")
	for i := range e.cfg.Customers {
		if e.cfg.Customers[i].ID == "acme" {
			e.cfg.Customers[i].Policy.HeadsUp = true
		}
	}
	r, err := New(context.Background(), e.cfg, Options{Log: zerolog.Nop(), VSphere: vsphere.Options{Watch: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	ctx := context.Background()
	cycle(t, r, t0)
	before := len(e.sink.Messages())

	if err := e.sim.CreateSnapshot("web01", "fresh", t0.Add(time.Minute), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.CreateSnapshot("db01", "quiet", t0.Add(time.Minute), 1<<20); err != nil { // initech: no heads_up
		t.Fatal(err)
	}
	appeared := r.pool.Wait(ctx, 5*time.Second)
	if n := len(appeared["vc-test"]); n != 2 {
		t.Fatalf("the watcher saw %d new snapshots (%v), want 2", n, appeared)
	}
	now := t0.Add(2 * time.Minute)
	sent, err := r.HeadsUp(ctx, appeared, now)
	if err != nil {
		t.Fatal(err)
	}
	ms := messages(t, e.sink, before)
	if sent != 1 || len(ms) != 1 {
		t.Fatalf("heads-up pass queued %d and delivered %d messages, want 1 to acme", sent, len(ms))
	}
	if got := strings.Join(ms[0].to, ","); got != "ops@acme.example" || !strings.Contains(ms[0].subject, "1 new VM snapshot") {
		t.Errorf("heads-up to %s, subject %q", got, ms[0].subject)
	}
	if !strings.Contains(ms[0].body, "fresh") || strings.Contains(ms[0].body, "quiet") {
		t.Errorf("heads-up body should name web01's new snapshot only:\n%s", ms[0].body)
	}
	// Once per snapshot: the ledger says it went.
	if sent, err := r.HeadsUp(ctx, appeared, now.Add(time.Minute)); err != nil || sent != 0 {
		t.Errorf("second pass queued %d heads-ups (err %v), want none", sent, err)
	}
	res := cycle(t, r, now.Add(time.Hour))
	for _, d := range res.Plan.Decisions {
		if d.Snapshot.Name == "fresh" && (d.History.CustomerNotices != 0 || !d.History.WarnedAt.IsZero() || d.CustomerNotice != plan.ActionNone) {
			t.Errorf("the heads-up counted as a warning: %+v", d.History)
		}
	}
}

// TestMissedHeadsUpIsOwed: a heads-up is derived from the ledger, not from
// the watcher's memory. A snapshot that appeared while no pass queued its
// heads-up (the process stopped first, or was down) gets it at the next
// cycle, once; a first cycle on an empty ledger sends none for the young
// snapshots it finds (they did not just appear: snapwarden did).
func TestMissedHeadsUpIsOwed(t *testing.T) {
	e := newEnv(t, "small.yaml")
	for i := range e.cfg.Customers {
		if e.cfg.Customers[i].ID == "acme" {
			e.cfg.Customers[i].Policy.HeadsUp = true
		}
	}
	if err := e.sim.CreateSnapshot("web01", "before-deploy", t0.Add(-time.Hour), 1<<20); err != nil {
		t.Fatal(err)
	}
	r := e.runner(t)
	headsUps := func(from int) []delivered {
		var out []delivered
		for _, m := range messages(t, e.sink, from) {
			if strings.Contains(m.subject, "new VM snapshot") {
				out = append(out, m)
			}
		}
		return out
	}
	cycle(t, r, t0)
	if hu := headsUps(0); len(hu) != 0 {
		t.Fatalf("the first cycle sent %d heads-ups, want none: %s", len(hu), hu[0].body)
	}

	// Taken between cycles; no watcher pass ran (a crash, or serve down).
	if err := e.sim.CreateSnapshot("web01", "fresh", t0.Add(time.Minute), 1<<20); err != nil {
		t.Fatal(err)
	}
	n := len(e.sink.Messages())
	cycle(t, r, t0.Add(time.Hour))
	hu := headsUps(n)
	if len(hu) != 1 || hu[0].to[0] != "ops@acme.example" || !strings.Contains(hu[0].body, "fresh") || strings.Contains(hu[0].body, "before-deploy") {
		t.Fatalf("heads-ups at the next cycle: %d, want one to acme naming fresh only", len(hu))
	}
	n = len(e.sink.Messages())
	cycle(t, r, t0.Add(2*time.Hour))
	if hu := headsUps(n); len(hu) != 0 {
		t.Errorf("%d heads-ups a cycle later, want none: once per snapshot", len(hu))
	}
}
