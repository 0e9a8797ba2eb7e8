package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// A request is recorded once per link; it moves with its snapshot when the
// vCenter is re-keyed to its instance UUID, and a link naming the vCenter by
// its old config name still finds the snapshot.
func TestRequestsOnceAndRekeyed(t *testing.T) {
	ctx := context.Background()
	l, _ := openT(t)
	const uuid = "5e3b1c2a-0000-4000-8000-00000000c0de"
	old := snap("vc-east", "uuid-a", "snapshot-1", t0.Add(-30*time.Hour))
	record(t, l, Record{Started: t0, Snapshots: []Seen{seen(old, "acme", "", 5)}, Answered: []string{"vc-east"}})
	req := CustomerRequest{Token: "digest-1", Key: old.Key(), Customer: "acme", Action: plan.RequestExtend, At: t0.Add(time.Minute), Remote: "192.0.2.7"}
	for i, want := range []bool{true, false} {
		if first, err := l.RecordRequest(ctx, req); err != nil || first != want {
			t.Fatalf("RecordRequest #%d = %v, %v; want %v", i+1, first, err, want)
		}
	}
	if at, err := l.RequestDone(ctx, "digest-1"); err != nil || !at.Equal(req.At) {
		t.Fatalf("RequestDone = %v, %v", at, err)
	}

	now := old
	now.VM = &facts.VM{VCenter: "vc-east", VCenterID: uuid, InstanceUUID: "uuid-a", Name: old.VM.Name, MoRef: old.VM.MoRef}
	record(t, l, Record{Started: t0.Add(time.Hour), Snapshots: []Seen{seen(now, "acme", "", 6)}, Answered: []string{uuid},
		VCenterIDs: map[string]string{"vc-east": uuid}})
	reqs, err := l.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rs := reqs[now.Key()]; len(rs) != 1 || rs[0].Action != plan.RequestExtend || rs[0].Customer != "acme" || len(reqs) != 1 {
		t.Fatalf("Requests after the re-key = %v, want the extend under %s", reqs, now.Key())
	}
	for _, vc := range []string{"vc-east", uuid} {
		tg, found, err := l.RequestTarget(ctx, vc, "snapshot-1", old.Created)
		if err != nil || !found || !tg.Open || tg.Key != now.Key() || tg.Extends != 1 || tg.Customer != "acme" {
			t.Errorf("RequestTarget(%s) = %+v, %v, %v", vc, tg, found, err)
		}
	}
	if _, found, err := l.RequestTarget(ctx, uuid, "snapshot-2", old.Created); found || err != nil {
		t.Errorf("another snapshot id found: %v %v", found, err)
	}
	events, err := l.Audit(ctx, Filter{Customer: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Kind == EventRequest {
			n++
		}
	}
	if n != 1 {
		t.Errorf("history has %d requests, want 1", n)
	}
}
