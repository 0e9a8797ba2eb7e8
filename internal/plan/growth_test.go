package plan

import (
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// TestGrowth: a growing snapshot on a datastore that fills before its
// deadline is escalated now and its owner told; constant, shrinking and
// once-seen snapshots, and a datastore that fills after the deadline, raise
// no alarm.
func TestGrowth(t *testing.T) {
	const ds = "ds1"
	small := facts.Datastore{Name: ds, Capacity: 100 * gib, Free: 2 * gib}
	big := facts.Datastore{Name: ds, Capacity: 10000 * gib, Free: 5000 * gib}
	tests := []struct {
		name      string
		store     facts.Datastore
		size      int64
		samples   []Sample
		rate      *float64 // nil: no forecast
		projected int64
		fills     bool // escalated for datastore-fills-first
	}{
		{"grows 0.5 GiB/h, fills in 4h < deadline", small, 6 * gib, []Sample{{t0.Add(-10 * time.Hour), gib}},
			ptr(float64(gib) / 2), 6*gib + 20*gib/2, true},
		{"grows, datastore lasts past the deadline", big, 6 * gib, []Sample{{t0.Add(-10 * time.Hour), gib}},
			ptr(float64(gib) / 2), 6*gib + 20*gib/2, false},
		{"constant since before the window", small, 5 * gib, []Sample{{t0.Add(-30 * time.Hour), 5 * gib}},
			ptr(0.0), 5 * gib, false},
		{"shrinks", small, 3 * gib, []Sample{{t0.Add(-5 * time.Hour), 5 * gib}},
			ptr(-float64(2*gib) / 5), 3 * gib, false},
		{"seen once: no forecast", small, 6 * gib, nil, nil, 0, false},
		{"only a sample at now: no forecast", small, 6 * gib, []Sample{{t0, gib}}, nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			it := item("g", 28*time.Hour, policy.ActionEscalate, true) // deadline in 20h
			it.Snapshot.SizeBytes = tc.size
			it.Snapshot.VM.Datastores = []facts.Datastore{tc.store}
			it = evaluate(it, t0)
			p := &Plan{At: t0, Decisions: build([]Item{it}, nil, Settings{}, t0)}
			before := p.Decisions[0]
			Growth(p, map[facts.Key][]Sample{it.Snapshot.Key(): tc.samples})
			d := p.Decisions[0]
			switch {
			case tc.rate == nil && d.Growth.BytesPerHour != nil:
				t.Errorf("rate %v, want none", *d.Growth.BytesPerHour)
			case tc.rate != nil && (d.Growth.BytesPerHour == nil || *d.Growth.BytesPerHour != *tc.rate):
				t.Errorf("rate %v, want %v", d.Growth.BytesPerHour, *tc.rate)
			case tc.rate != nil && *d.Growth.ProjectedAtDeadline != tc.projected:
				t.Errorf("projected %d, want %d", *d.Growth.ProjectedAtDeadline, tc.projected)
			}
			if got := d.Reason == ReasonDatastoreFillsFirst; got != tc.fills {
				t.Fatalf("fills-first escalation = %v (reason %s, why %q), want %v", got, d.Reason, d.Why, tc.fills)
			}
			if tc.fills {
				if !d.EscalateNow || d.Action != ActionEscalate || !d.Due || d.FillsFirst == nil || d.CustomerNotice != ActionWarn {
					t.Errorf("decision = %+v", d)
				}
				if want := t0.Add(4 * time.Hour); !d.FillsFirst.FullAt.Equal(want) {
					t.Errorf("full at %s, want %s", d.FillsFirst.FullAt, want)
				}
			} else if d.EscalateNow != before.EscalateNow || d.Action != before.Action || d.CustomerNotice != before.CustomerNotice {
				t.Errorf("decision changed without an alarm: %+v", d)
			}
			if len(p.Datastores) != 1 || p.Datastores[0].Name != ds || p.Datastores[0].SnapshotBytes != tc.size {
				t.Errorf("datastores = %+v", p.Datastores)
			}
			if filling := !p.Datastores[0].FullAt.IsZero(); filling != (tc.rate != nil && *tc.rate > 0) {
				t.Errorf("full_at %s for rate %v", p.Datastores[0].FullAt, tc.rate)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
