package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

func TestProblemsAcrossCycles(t *testing.T) {
	l, _ := openT(t)
	ctx := context.Background()
	vm := &facts.VM{VCenter: "vc1", Name: "web01", MoRef: "vm-1", InstanceUUID: "uuid-1"}
	stuck := facts.Problem{Kind: facts.ConsolidationNeeded, VCenter: "vc1", VM: vm}
	orphan := facts.Problem{Kind: facts.OrphanFile, VCenter: "vc1", Datacenter: "DC0", Datastore: "ds1",
		Path: "[ds1] gone/gone-000001.vmdk", SizeBytes: 512, Detail: "left behind"}
	west := facts.Problem{Kind: facts.ConsolidationNeeded, VCenter: "vc2", VM: &facts.VM{VCenter: "vc2", Name: "db", MoRef: "vm-9"}}
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	put := func(now time.Time, answered []string, scans map[string]time.Time, ps ...facts.Problem) plan.ProblemHistory {
		t.Helper()
		h, err := l.Problems(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Record(ctx, Record{Started: now, Problems: plan.Problems(ps, func(*facts.VM) string { return "acme" }, h, now),
			ProblemVCenters: answered, Scans: scans}); err != nil {
			t.Fatal(err)
		}
		if h, err = l.Problems(ctx); err != nil {
			t.Fatal(err)
		}
		return h
	}

	h := put(at(0), []string{"vc1", "vc2"}, map[string]time.Time{"vc1": at(0)}, stuck, orphan, west)
	if len(h.FirstSeen) != 3 || !h.FirstSeen[stuck.Key()].Equal(at(0)) || !h.Scans["vc1"].Equal(at(0)) {
		t.Fatalf("after one cycle: %+v", h)
	}
	if len(h.Orphans) != 1 || h.Orphans[0] != orphan {
		t.Errorf("orphans = %+v, want the one recorded, as recorded", h.Orphans)
	}

	// vc2 does not answer: its problem stays open; vc1's consolidation is
	// done: resolved; the orphan, carried between scans, stays with its
	// first sight.
	h = put(at(1), []string{"vc1"}, nil, orphan)
	if _, open := h.FirstSeen[stuck.Key()]; open {
		t.Error("a problem no longer seen in a vCenter that answered is still open")
	}
	if !h.FirstSeen[west.Key()].Equal(at(0)) || !h.FirstSeen[orphan.Key()].Equal(at(0)) || !h.Scans["vc1"].Equal(at(0)) {
		t.Errorf("after the second cycle: %+v", h)
	}

	// It comes back: first seen again now.
	h = put(at(2), []string{"vc1"}, map[string]time.Time{"vc1": at(2)}, stuck, orphan)
	if !h.FirstSeen[stuck.Key()].Equal(at(2)) || !h.Scans["vc1"].Equal(at(2)) {
		t.Errorf("a problem that came back: first seen %s, scan %s", h.FirstSeen[stuck.Key()], h.Scans["vc1"])
	}
}

// A vCenter renamed in the config keeps its problems' first sight and its
// last orphan scan: the ledger moves them to the new name in the cycle's
// write, and Renamed shows the planner the same before that.
func TestProblemsOfARenamedVCenter(t *testing.T) {
	l, _ := openT(t)
	ctx := context.Background()
	problem := func(vc string) facts.Problem {
		return facts.Problem{Kind: facts.OrphanFile, VCenter: vc, Datastore: "ds1", Path: "[ds1] gone/gone-000001.vmdk", SizeBytes: 512}
	}
	record := func(now time.Time, name string, scanned bool) plan.ProblemHistory {
		t.Helper()
		ids := map[string]string{name: "uuid-vc"}
		h, err := l.Problems(ctx)
		if err != nil {
			t.Fatal(err)
		}
		h = h.Renamed(ids)
		var scans map[string]time.Time
		if scanned {
			scans = map[string]time.Time{name: now}
		}
		ps := plan.Problems([]facts.Problem{problem(name)}, func(*facts.VM) string { return "" }, h, now)
		if _, err := l.Record(ctx, Record{Started: now, VCenterIDs: ids, Answered: []string{"uuid-vc"}, Problems: ps,
			ProblemVCenters: []string{name}, Scans: scans}); err != nil {
			t.Fatal(err)
		}
		return h
	}
	newKey := problem("vc-new")
	record(t0, "vc-old", true)
	if h := record(t0.Add(time.Hour), "vc-new", false); !h.FirstSeen[newKey.Key()].Equal(t0) || !h.Scans["vc-new"].Equal(t0) {
		t.Errorf("the planner's view after the rename: %+v", h)
	}
	h, err := l.Problems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.FirstSeen) != 1 || !h.FirstSeen[newKey.Key()].Equal(t0) || len(h.Scans) != 1 || !h.Scans["vc-new"].Equal(t0) ||
		len(h.Orphans) != 1 || h.Orphans[0].VCenter != "vc-new" || h.VCenterNames["uuid-vc"] != "vc-new" {
		t.Errorf("the ledger after the rename: %+v", h)
	}
}

func TestSamples(t *testing.T) {
	l, _ := openT(t)
	s := snap("vc1", "uuid-1", "snapshot-1", t0)
	for i, size := range []int64{1, 1, 2, 2, 5} { // sampled on change: at 0, 2 and 4h
		record(t, l, Record{Started: t0.Add(time.Duration(i) * time.Hour), Mode: "dry-run", Snapshots: []Seen{seen(s, "acme", "", size)}})
	}
	got, err := l.Samples(context.Background(), t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []plan.Sample{{At: t0.Add(2 * time.Hour), Bytes: 2}, {At: t0.Add(4 * time.Hour), Bytes: 5}}
	if g := got[s.Key()]; len(g) != 2 || g[0] != want[0] || g[1] != want[1] {
		t.Errorf("samples since 3h = %+v, want the size at 3h (sampled at 2h) and the change at 4h: %+v", g, want)
	}
}

// The support digest announcing a new problem and the problem's first sight
// are one write: a Record that fails after writing the problem (its notice
// refused here) leaves no first sight behind, so the next cycle announces it
// once, not a second time after a digest already queued.
func TestProblemsWrittenWithTheCycle(t *testing.T) {
	l, _ := openT(t)
	ctx := context.Background()
	record(t, l, Record{Started: t0, Notices: []Notice{notice("n1", "support", "")}})
	stuck := facts.Problem{Kind: facts.ConsolidationNeeded, VCenter: "vc1", VM: &facts.VM{VCenter: "vc1", Name: "web01", MoRef: "vm-1"}}
	ps := plan.Problems([]facts.Problem{stuck}, func(*facts.VM) string { return "acme" }, plan.ProblemHistory{}, t0)
	if _, err := l.Record(ctx, Record{Started: t0, Problems: ps, ProblemVCenters: []string{"vc1"},
		Notices: []Notice{notice("n1", "support", "")}}); err == nil {
		t.Fatal("a duplicate Message-ID was accepted")
	}
	h, err := l.Problems(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.FirstSeen) != 0 {
		t.Errorf("a failed Record left its problems behind: %+v", h.FirstSeen)
	}
}
