package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// HeadsUpSent reports which of keys already have a heads-up in the outbox
// (queued or delivered): a heads-up goes once per snapshot. Candidates are
// the few snapshots that just appeared, so each is one indexed look-up.
func (l *Ledger) HeadsUpSent(ctx context.Context, keys []facts.Key) (map[facts.Key]bool, error) {
	out := map[facts.Key]bool{}
	if l.db == nil || len(keys) == 0 {
		return out, nil
	}
	err := l.read(ctx, "heads-ups sent", func(tx *sql.Tx) error {
		for _, k := range keys {
			err := query(ctx, tx, `SELECT 1 FROM notice_items WHERE key = ? AND action = ? LIMIT 1`, func(*sql.Rows) error {
				out[k] = true
				return nil
			}, k.String(), ItemHeadsUp)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// QueueHeadsUps adds heads-up notices to the outbox in one transaction. No
// cycle planned them: the pass between cycles did.
func (l *Ledger) QueueHeadsUps(ctx context.Context, notices []Notice, at time.Time) error {
	if err := l.writable("queue heads-ups"); err != nil {
		return err
	}
	for i, n := range notices {
		if err := checkNotice(n); err != nil {
			return fmt.Errorf("ledger %s: queue heads-ups: notice %d: %w", l.path, i, err)
		}
	}
	if len(notices) == 0 {
		return nil
	}
	return l.write(ctx, "queue heads-ups", func(tx *sql.Tx) error {
		return l.insertNotices(ctx, tx, notices, at, nil)
	})
}
