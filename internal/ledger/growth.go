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

// SampleHorizon is how long every size sample is kept. Older samples are
// thinned to the last of each snapshot's day, and the samples of a snapshot
// resolved longer ago are dropped: growth reads only plan.GrowthWindow back,
// and without this a large fleet adds a row per snapshot per cycle forever.
const SampleHorizon = 7 * 24 * time.Hour

// thinDaysPerCycle bounds thinSamples' work in one cycle: a ledger from
// before thinning catches up over that many days a cycle.
const thinDaysPerCycle = 2

const day = int64(24 * time.Hour)

// thinSamples thins the size samples of whole UTC days older than
// SampleHorizon before now, oldest first and at most thinDaysPerCycle of
// them, within the cycle's transaction. A day keeps each snapshot's last
// sample (its size at the end of the day, which is also the size at the start
// of the next: samples are written on change); the samples of snapshots
// resolved that day go. Each day is thinned once, so the work of a cycle is
// about one day of samples however long the ledger has run.
func thinSamples(ctx context.Context, tx *sql.Tx, now time.Time) error {
	horizon := now.Add(-SampleHorizon).UnixNano()
	var from sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT next_day FROM sample_thinning`).Scan(&from)
	if errors.Is(err, sql.ErrNoRows) {
		// The first thinning starts at the oldest sample's day.
		if err = tx.QueryRowContext(ctx, `SELECT MIN(at) FROM size_samples`).Scan(&from); err != nil || !from.Valid {
			return err
		}
		from.Int64 -= from.Int64 % day
		_, err = tx.ExecContext(ctx, `INSERT INTO sample_thinning(next_day) VALUES (?)`, from.Int64)
	}
	if err != nil {
		return fmt.Errorf("sample thinning: %w", err)
	}
	start := from.Int64
	for n := 0; n < thinDaysPerCycle && start+day <= horizon; n++ {
		end := start + day
		if _, err := tx.ExecContext(ctx, `
DELETE FROM size_samples WHERE at >= ? AND at < ?
	AND EXISTS (SELECT 1 FROM size_samples y WHERE y.key = size_samples.key AND y.at > size_samples.at AND y.at < ?)`,
			start, end, end); err != nil {
			return fmt.Errorf("thin size samples of %s: %w", time.Unix(0, start).UTC().Format(time.DateOnly), err)
		}
		if _, err := tx.ExecContext(ctx, `
DELETE FROM size_samples WHERE key IN (SELECT s.key FROM snapshots s WHERE s.resolved_at >= ? AND s.resolved_at < ?)`,
			start, end); err != nil {
			return fmt.Errorf("drop size samples of snapshots resolved %s: %w", time.Unix(0, start).UTC().Format(time.DateOnly), err)
		}
		start = end
	}
	if start == from.Int64 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sample_thinning SET next_day = ?`, start); err != nil {
		return fmt.Errorf("sample thinning: %w", err)
	}
	return nil
}
