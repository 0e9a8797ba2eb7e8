package ledger

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/plan"
)

// Size samples stay bounded: a snapshot growing every hourly cycle for ten
// days keeps every sample of the last SampleHorizon and one a day before it;
// one resolved more than SampleHorizon ago keeps none; growth reads the same.
func TestSamplesThinned(t *testing.T) {
	l, _ := openT(t)
	ctx := context.Background()
	grows := snap("vc1", "uuid-1", "snapshot-1", t0)
	gone := snap("vc1", "uuid-2", "snapshot-2", t0)
	const hours = 10 * 24
	var now time.Time
	for h := 0; h <= hours; h++ {
		now = t0.Add(time.Duration(h) * time.Hour)
		r := Record{Started: now, Snapshots: []Seen{seen(grows, "acme", "alice", int64(1000+h))}, Answered: []string{"vc1"}}
		if h < 24 { // resolved at t0+24h, nine days before the end
			r.Snapshots = append(r.Snapshots, seen(gone, "acme", "bob", int64(1000+h)))
		}
		record(t, l, r)
	}
	perDay := map[string]int{}
	var growsSamples, goneSamples int
	err := query(ctx, l.db, `SELECT key, at FROM size_samples`, func(rows *sql.Rows) error {
		var key string
		var at int64
		if err := rows.Scan(&key, &at); err != nil {
			return err
		}
		switch key {
		case gone.Key().String():
			goneSamples++
		case grows.Key().String():
			growsSamples++
			if when := time.Unix(0, at).UTC(); when.Before(now.Add(-SampleHorizon)) {
				perDay[when.Format(time.DateOnly)]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if goneSamples != 0 {
		t.Errorf("a snapshot resolved 9 days ago keeps %d size samples, want none", goneSamples)
	}
	// The horizon falls at 09:00 of the fourth day: the three whole days
	// before it keep one sample each, that day's first hours all of theirs.
	horizonDay := now.Add(-SampleHorizon).UTC().Format(time.DateOnly)
	for d, n := range perDay {
		if d != horizonDay && n != 1 {
			t.Errorf("%s keeps %d samples of the growing snapshot, want 1", d, n)
		}
	}
	if len(perDay) != 4 || perDay[horizonDay] != 9 {
		t.Errorf("samples before the horizon by day: %v, want 4 days, 9 on %s", perDay, horizonDay)
	}
	if want := 3 + 9 + 7*24 + 1; growsSamples != want {
		t.Errorf("the growing snapshot keeps %d samples, want %d", growsSamples, want)
	}
	samples, err := l.Samples(ctx, now.Add(-plan.GrowthWindow))
	if err != nil {
		t.Fatal(err)
	}
	// The window's 25 and the last before it: the size at its start.
	if got := samples[grows.Key()]; len(got) != 26 || got[0].Bytes != 1000+hours-25 || got[25].Bytes != 1000+hours {
		t.Errorf("growth window reads %d samples (%v), want 26 from %d to %d", len(got), got, 1000+hours-25, 1000+hours)
	}
}
