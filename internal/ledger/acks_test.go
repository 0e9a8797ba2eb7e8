package ledger

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// An acknowledgement is kept with its user, the latest one wins, it lapses
// at its until or with a change of state, and it shows in the trail.
func TestAcks(t *testing.T) {
	ctx := context.Background()
	l, path := openT(t)
	web := snap("vc1", "uuid-web", "snapshot-1", t0.Add(-72*time.Hour))
	web.VM.Name = "web01"
	db := snap("vc1", "uuid-db", "snapshot-2", t0.Add(-72*time.Hour))
	record(t, l, Record{Started: t0, Finished: t0, Answered: []string{"vc1"},
		Snapshots: []Seen{seen(web, "acme", "", 1), seen(db, "acme", "", 1)},
		Notices:   []Notice{notice("s1", "support", "", item(web, "escalate", "deadline-passed"))}})
	t1 := t0.Add(time.Hour)
	record(t, l, Record{Started: t1, Finished: t1, Answered: []string{"vc1"},
		Snapshots: []Seen{seen(web, "acme", "", 1), seen(db, "acme", "", 1)},
		Notices:   []Notice{notice("s2", "support", "", item(web, "escalate", "deadline-passed"), item(db, "blocked", "guard-window"))}})

	since, err := l.EscalatedSince(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !since[web.Key()].Equal(t0) || !since[db.Key()].Equal(t1) || len(since) != 2 {
		t.Errorf("escalated since = %v, want web at %s and db at %s", since, t0, t1)
	}

	if err := l.Acknowledge(ctx, Ack{Key: web.Key(), State: "overdue", By: "alice", At: t1, Until: t1}); err == nil {
		t.Error("an acknowledgement that ends when it starts was accepted")
	}
	if err := l.Acknowledge(ctx, Ack{Key: web.Key(), State: "overdue", At: t1, Until: t1.Add(time.Hour)}); err == nil {
		t.Error("an acknowledgement without a user was accepted")
	}
	first := Ack{Key: web.Key(), State: "overdue", By: "alice", Note: "customer called", At: t1, Until: t1.Add(48 * time.Hour)}
	if err := l.Acknowledge(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := Ack{Key: web.Key(), State: "overdue", By: "bob", Note: "<b>ticket</b> 42", At: t1.Add(time.Minute), Until: t1.Add(2 * time.Hour)}
	if err := l.Acknowledge(ctx, second); err != nil {
		t.Fatal(err)
	}
	acks, err := l.Acks(ctx, t1.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := acks[web.Key()]; len(acks) != 1 || got != second {
		t.Errorf("acks = %+v, want only bob's", acks)
	}
	if a := acks[web.Key()]; !a.Holds("overdue", t1.Add(time.Hour)) || a.Holds("exempt", t1.Add(time.Hour)) || a.Holds("overdue", a.Until) {
		t.Error("Holds ignores the state or the until")
	}
	// The latest acknowledgement lapsed: alice's longer one does not come back.
	if acks, _ := l.Acks(ctx, t1.Add(3*time.Hour)); len(acks) != 0 {
		t.Errorf("acks after bob's lapsed = %+v, want none", acks)
	}

	events, err := l.Audit(ctx, Filter{VCenter: "vc1", VMID: "uuid-web"})
	if err != nil {
		t.Fatal(err)
	}
	var acked []Event
	for _, e := range events {
		if e.VMID != "uuid-web" {
			t.Errorf("VM id filter let through %+v", e)
		}
		if e.Kind == EventAck {
			acked = append(acked, e)
		}
	}
	if len(acked) != 2 || acked[1].By != "bob" || !strings.Contains(acked[1].What, "until 2026-11-02T12:00:00Z") ||
		!strings.Contains(acked[1].What, "<b>ticket</b> 42") || acked[0].VM != "web01" || acked[0].Customer != "acme" {
		t.Errorf("ack events = %+v", acked)
	}
	b, err := json.Marshal(acked[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m["at"] != "2026-11-02T10:01:00Z" || m["kind"] != "ack" || m["by"] != "bob" || m["vm_id"] != "uuid-web" || m["At"] != nil {
		t.Errorf("event JSON = %s", b)
	}

	r, err := OpenReader(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Acknowledge(ctx, first); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a reader acknowledged: %v", err)
	}
}
