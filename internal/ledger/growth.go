package ledger

import (
	"context"
	"database/sql"
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
