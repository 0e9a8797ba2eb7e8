package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// Samples returns the size samples of every open snapshot since since,
// oldest first, with the last one before since (samples are written only on
// change, so it is the size at since). For plan.Growth.
func (l *Ledger) Samples(ctx context.Context, since time.Time) (map[facts.Key][]plan.Sample, error) {
	out := map[facts.Key][]plan.Sample{}
	if l.db == nil {
		return out, nil
	}
	ns := since.UnixNano()
	err := query(ctx, l.db, `SELECT s.vcenter, s.vm_uuid, s.snapshot_id, s.created, z.at, z.bytes
FROM size_samples z JOIN snapshots s ON s.key = z.key
WHERE s.resolved_at IS NULL
	AND (z.at >= ? OR z.at = (SELECT MAX(y.at) FROM size_samples y WHERE y.key = z.key AND y.at < ?))
ORDER BY z.key, z.at`, func(rows *sql.Rows) error {
		var (
			vc, uuid, snap string
			created        sql.NullInt64
			at, bytes      int64
		)
		if err := rows.Scan(&vc, &uuid, &snap, &created, &at, &bytes); err != nil {
			return err
		}
		k := keyOf(vc, uuid, snap, created)
		out[k] = append(out[k], plan.Sample{At: time.Unix(0, at).UTC(), Bytes: bytes})
		return nil
	}, ns, ns)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: size samples: %w", l.path, err)
	}
	return out, nil
}

// SampleHorizon is how long a resolved snapshot's size samples are kept.
const SampleHorizon = 7 * 24 * time.Hour

// thinning bounds the size samples, which a large fleet adds a row per
// snapshot per cycle of: growth reads plan.GrowthWindow back (and the last
// sample before it), so older samples keep the last of each snapshot's day,
// and those older than SampleHorizon the last of each 7-day period. The
// last sample before growth's window stays: it is the size at the window's
// start (samples are written on change).
var thinning = []struct {
	horizon, period time.Duration
}{
	{plan.GrowthWindow, 24 * time.Hour},
	{SampleHorizon, SampleHorizon},
}

// thinPeriodsPerCycle bounds a tier's work in one cycle: a ledger from
// before thinning catches up over that many periods a cycle.
const thinPeriodsPerCycle = 2

// thinSamples thins the size samples within the cycle's transaction, tier
// by tier, and drops the samples of snapshots resolved more than
// SampleHorizon before now. Each tier goes on from where the previous cycle
// left it (sample_thinning): it deletes, between the start of that period
// and its new horizon, every sample followed by a later one of the same
// snapshot in the same period before the horizon. What lies before the
// last horizon is thinned already (one sample per snapshot per period), so
// a cycle's work is about one cycle of samples, however long the ledger
// has run.
func thinSamples(ctx context.Context, tx *sql.Tx, now time.Time) error {
	for _, tier := range thinning {
		period := int64(tier.period)
		horizon := now.Add(-tier.horizon).UnixNano()
		var from sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT next_at FROM sample_thinning WHERE period_ns = ?`, period).Scan(&from)
		if errors.Is(err, sql.ErrNoRows) {
			// The first thinning starts at the oldest sample.
			if err = tx.QueryRowContext(ctx, `SELECT MIN(at) FROM size_samples`).Scan(&from); err != nil {
				return fmt.Errorf("sample thinning: oldest sample: %w", err)
			}
			if !from.Valid {
				return nil // no samples yet
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO sample_thinning(period_ns, next_at) VALUES (?, ?)`, period, from.Int64)
		}
		if err != nil {
			return fmt.Errorf("sample thinning: %w", err)
		}
		start := from.Int64 - from.Int64%period
		end := min(horizon, start+thinPeriodsPerCycle*period)
		if end <= from.Int64 {
			continue
		}
		if _, err := tx.ExecContext(ctx, `
DELETE FROM size_samples WHERE at >= ? AND at < ?
	AND EXISTS (SELECT 1 FROM size_samples y WHERE y.key = size_samples.key AND y.at > size_samples.at AND y.at < ?
		AND y.at < size_samples.at - size_samples.at % ? + ?)`,
			start, end, end, period, period); err != nil {
			return fmt.Errorf("thin size samples from %s: %w", time.Unix(0, start).UTC().Format(time.RFC3339), err)
		}
		if tier.horizon == SampleHorizon {
			if _, err := tx.ExecContext(ctx, `
DELETE FROM size_samples WHERE key IN (SELECT s.key FROM snapshots s WHERE s.resolved_at >= ? AND s.resolved_at < ?)`,
				from.Int64, end); err != nil {
				return fmt.Errorf("drop size samples of snapshots resolved from %s: %w", time.Unix(0, from.Int64).UTC().Format(time.RFC3339), err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE sample_thinning SET next_at = ? WHERE period_ns = ?`, end, period); err != nil {
			return fmt.Errorf("sample thinning: %w", err)
		}
	}
	return nil
}
