package cycle

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/ledger"
)

// An escalation support acknowledged stays out of the support digest, which
// counts it, until the acknowledgement lapses; then support hears again.
func TestAcknowledgedEscalationLeavesTheDigest(t *testing.T) {
	e := newEnv(t, "small.yaml")
	r := e.runner(t)
	res := cycle(t, r, t0)
	var acked ledger.Ack
	for _, d := range res.Plan.Decisions {
		if d.Snapshot.Name == "before-upgrade" {
			if !d.EscalateNow {
				t.Fatal("before-upgrade (50h, deadline 48h) is not escalated at t0")
			}
			acked = ledger.Ack{Key: d.Snapshot.Key(), State: d.Verdict.State.String(), By: "alice", Note: "customer called",
				At: t0.Add(time.Hour), Until: t0.Add(30 * time.Hour)}
		}
	}
	if err := r.ledger.Acknowledge(context.Background(), acked); err != nil {
		t.Fatal(err)
	}

	// +24h: before-upgrade is due again, after-config (54h) for the first time.
	n := len(e.sink.Messages())
	cycle(t, r, t0.Add(24*time.Hour))
	var support []delivered
	for _, m := range messages(t, e.sink, n) {
		if m.to[0] == "support@provider.example" {
			support = append(support, m)
		}
	}
	if len(support) != 1 {
		t.Fatalf("at +24h support got %d digests, want 1 (after-config)", len(support))
	}
	body := support[0].body
	if !strings.Contains(body, "after-config") || strings.Contains(body, "before-upgrade") ||
		!strings.Contains(body, "1 acknowledged escalation is left out") {
		t.Errorf("support digest at +24h should name after-config, leave before-upgrade out and count it:\n%s", body)
	}

	// +48h: the acknowledgement lapsed at +30h; before-upgrade is back.
	n = len(e.sink.Messages())
	cycle(t, r, t0.Add(48*time.Hour))
	back := false
	for _, m := range messages(t, e.sink, n) {
		back = back || (m.to[0] == "support@provider.example" && strings.Contains(m.body, "before-upgrade") &&
			!strings.Contains(m.body, "acknowledged"))
	}
	if !back {
		t.Error("at +48h, after the acknowledgement lapsed, support did not hear of before-upgrade again")
	}
}
