package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/plan"
)

// Size samples stay bounded: a snapshot growing every hourly cycle for ten
// days keeps every sample growth reads, one a day before that, one a 7-day
// period before SampleHorizon, and the last before growth's window (the
// size at its start); one resolved more than SampleHorizon ago keeps none; growth reads
// the same as without thinning.
func TestSamplesThinned(t *testing.T) {
	l, _ := openT(t)
	ctx := context.Background()
	grows := snap("vc1", "uuid-1", "snapshot-1", t0)
	gone := snap("vc1", "uuid-2", "snapshot-2", t0)
	const hours = 10 * 24
	var now time.Time
	for h := 0; h <= hours; h++ {
		now = t0.Add(time.Duration(h) * time.Hour)
		r := Record{Started: now, Snapshots: []Seen{seen(grows, "acme", "alice", int64(h))}, Answered: []string{"vc1"}}
		if h < 24 { // resolved at t0+24h, nine days before the end
			r.Snapshots = append(r.Snapshots, seen(gone, "acme", "bob", int64(h)))
		}
		record(t, l, r)
	}
	kept := map[int64]bool{} // the growing snapshot's samples, by hour (= size)
	var goneSamples int
	err := query(ctx, l.db, `SELECT key, bytes FROM size_samples`, func(rows *sql.Rows) error {
		var key string
		var bytes int64
		if err := rows.Scan(&key, &bytes); err != nil {
			return err
		}
		switch key {
		case gone.Key().String():
			goneSamples++
		case grows.Key().String():
			kept[bytes] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if goneSamples != 0 {
		t.Errorf("a snapshot resolved 9 days ago keeps %d size samples, want none", goneSamples)
	}
	dayHorizon, weekHorizon := hours-int64(plan.GrowthWindow/time.Hour), hours-int64(SampleHorizon/time.Hour)
	for h := dayHorizon; h <= hours; h++ {
		if !kept[h] {
			t.Errorf("the sample of hour %d, which growth reads, is gone", h)
		}
	}
	if !kept[dayHorizon-1] {
		t.Errorf("the last sample before growth's window (hour %d), its size at the start, is gone", dayHorizon-1)
	}
	var days, weeks int
	for h := range kept {
		switch {
		case h < weekHorizon:
			weeks++
		case h < dayHorizon:
			days++
		}
	}
	// 72 hours before the week horizon span at most two 7-day periods;
	// the 6 days between the horizons touch 7 days.
	if weeks > 2 || days > 7+1 {
		t.Errorf("%d samples before the 7-day horizon (want at most 2), %d between it and growth's (want at most 8)", weeks, days)
	}
	samples, err := l.Samples(ctx, now.Add(-plan.GrowthWindow))
	if err != nil {
		t.Fatal(err)
	}
	// The window's 25 and the last before it: the size at its start.
	if got := samples[grows.Key()]; len(got) != 26 || got[0].Bytes != hours-25 || got[25].Bytes != hours {
		t.Errorf("growth window reads %d samples (%v), want 26 from %d to %d", len(got), got, hours-25, hours)
	}
}

// BenchmarkSamples30Days writes the size samples of 20,000 snapshots that all
// grow every hourly cycle for 30 days, thinning as Record does, and reports
// the ledger file's size (what thinning bounds: SQLite reuses the pages
// freed, the file does not shrink) and the slowest cycle's write and
// thinning (the work a cycle does, which must not grow with the days).
func BenchmarkSamples30Days(b *testing.B) {
	if onPostgres {
		b.Skip("measures the SQLite file")
	}
	const n, cycles = 20000, 30 * 24
	ctx := context.Background()
	for b.Loop() {
		l, path := openT(b)
		list := make([]Seen, n)
		for i := range list {
			s := snap(fmt.Sprintf("vc%d", i%4), fmt.Sprintf("uuid-%05d", i/3), fmt.Sprintf("snapshot-%d", i), t0)
			list[i] = seen(s, fmt.Sprintf("cust%d", i%50), "", 1<<30)
		}
		record(b, l, Record{Started: t0, Snapshots: list})
		var slowest time.Duration
		for c := 1; c <= cycles; c++ {
			began := time.Now()
			at := t0.Add(time.Duration(c) * time.Hour)
			// One statement grows them all; the trigger writes the samples,
			// as Record's upsert does.
			err := func() error {
				tx, err := l.db.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				if _, err := tx.ExecContext(ctx, `UPDATE snapshots SET size_bytes = size_bytes + 1048576, last_seen = ?`, at.UnixNano()); err != nil {
					return err
				}
				if err := thinSamples(ctx, tx, at); err != nil {
					return err
				}
				return tx.Commit()
			}()
			if err != nil {
				b.Fatalf("cycle %d: %v", c, err)
			}
			slowest = max(slowest, time.Since(began))
		}
		var samples int64
		if err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM size_samples`).Scan(&samples); err != nil {
			b.Fatal(err)
		}
		if _, err := l.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
		b.ReportMetric(float64(samples), "samples")
		b.ReportMetric(slowest.Seconds(), "s/slowest-cycle")
	}
}
