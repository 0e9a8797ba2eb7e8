package cycle

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/plan"
)

// In serve (Detach) a removal that takes long does not hold the cycle: the
// cycle returns while the task runs, the next cycle collects and plans with
// the removal in flight, the commit is told as soon as the task ends, and
// the cycle after that counts it.
func TestDetachedActingDoesNotStallCycles(t *testing.T) {
	e := newEnv(t, "demo.yaml")
	e.cfg.Enforcement.Mode = "enforce"
	if err := e.sim.SlowRemove("globex-web01", 4*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := New(ctx, e.cfg, Options{Log: zerolog.Nop(), Detach: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(ctx) })

	cycle(t, r, t0) // the first notice starts min_notice
	at := t0.Add(e.cfg.Enforcement.MinNotice + time.Hour)
	if d := decisionOf(t, &Result{Plan: r.mustPlan(t, at)}, "globex-web01", "before-cms-migration"); d.Action != plan.ActionConsolidate || !d.Due {
		t.Fatalf("globex-web01 at %s: %s due=%v, want a due consolidation", at, d.Action, d.Due)
	}
	res := cycle(t, r, at)
	if len(res.Outcomes) != 0 {
		t.Fatalf("the cycle waited for its removals: %+v", res.Outcomes)
	}
	running := func() bool {
		a, err := r.ledger.Running(ctx)
		return err == nil && len(a) == 1 && a[0].TaskID != ""
	}
	waitUntil(t, 10*time.Second, running)

	// A cycle while the task runs: it is not held, and sees the removal in flight.
	res = cycle(t, r, at.Add(time.Minute))
	if !running() {
		t.Fatal("the second cycle returned only after the removal ended")
	}
	if d := decisionOf(t, res, "globex-web01", "before-cms-migration"); d.Due || d.Reason != plan.ReasonInFlight {
		t.Errorf("globex-web01 while its task runs: %s due=%v %s, want in flight", d.Action, d.Due, d.Reason)
	}

	// The commit is told when the task ends, without waiting for a cycle.
	n := len(e.sink.Messages())
	waitUntil(t, 20*time.Second, func() bool {
		for _, m := range messages(t, e.sink, n) {
			if m.to[0] == "noc@globex.example" && strings.Contains(m.subject, "committed") {
				return true
			}
		}
		return false
	})
	res = cycle(t, r, at.Add(2*time.Minute))
	if res.Actions["success"] != 1 {
		t.Errorf("the next cycle counts %v, want the one commit done since the last", res.Actions)
	}
}

func waitUntil(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("condition not met in %s", limit)
		}
	}
}
