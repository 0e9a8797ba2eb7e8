package ledger

import (
	"context"
	"database/sql"
	"fmt"
)

// rateSample is how many recent successful removals RemovalRate learns
// from: enough to smooth one odd task, recent enough to follow the storage.
const rateSample = 20

// RemovalRate is the speed, in bytes per second, of the last successful
// removals: their summed sizes over their summed durations. Removals of
// empty snapshots and ones without a duration teach nothing and are left
// out. It returns 0 when there is no such removal; the planner then
// assumes plan.DefaultRemovalRate.
func (l *Ledger) RemovalRate(ctx context.Context) (float64, error) {
	if l.db == nil {
		return 0, nil
	}
	var bytes, nanos sql.NullFloat64
	err := l.db.QueryRowContext(ctx, `
SELECT SUM(size), SUM(took) FROM (
	SELECT s.size_bytes AS size, a.finished_at - a.started_at AS took
	FROM actions a JOIN snapshots s ON s.key = a.key
	WHERE a.kind = 'remove' AND a.result = 'success' AND s.size_bytes > 0 AND a.finished_at > a.started_at
	ORDER BY a.finished_at DESC LIMIT ?) AS recent`, rateSample).Scan(&bytes, &nanos)
	if err != nil {
		return 0, fmt.Errorf("ledger %s: removal rate: %w", l.path, err)
	}
	if !bytes.Valid || !nanos.Valid || nanos.Float64 <= 0 {
		return 0, nil
	}
	return bytes.Float64 / (nanos.Float64 / 1e9), nil
}
