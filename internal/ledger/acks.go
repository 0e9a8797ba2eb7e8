package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// Ack is a support member's acknowledgement of an escalation: support has it
// in hand, so the support digest leaves it out (counting it as acknowledged)
// until Until, or until the snapshot's state is no longer State.
type Ack struct {
	Key facts.Key
	// State is the snapshot's state (policy.State's name) when acknowledged.
	State string
	// By is who acknowledged it: the console's authenticated user.
	By   string
	Note string
	At   time.Time
	// Until is when the acknowledgement lapses.
	Until time.Time
}

// Holds reports whether the acknowledgement still applies to a snapshot in
// state at now.
func (a Ack) Holds(state string, now time.Time) bool {
	return a.State == state && now.Before(a.Until)
}

// Acknowledge records an acknowledgement. A later one for the same snapshot
// replaces it (Acks returns the latest); every one stays in the trail.
func (l *Ledger) Acknowledge(ctx context.Context, a Ack) error {
	if err := l.writable("acknowledge"); err != nil {
		return err
	}
	switch {
	case a.By == "":
		return errors.New("acknowledgement without a user")
	case a.At.IsZero() || !a.Until.After(a.At):
		return fmt.Errorf("acknowledgement of %s: until %s is not after %s", a.Key, a.Until.UTC().Format(time.RFC3339), a.At.UTC().Format(time.RFC3339))
	}
	_, err := l.db.ExecContext(ctx, `
INSERT INTO acks(key, vcenter, vm_uuid, snapshot_id, created, state, by_user, note, at, until_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.Key.String(), a.Key.VCenter, a.Key.VMUUID, a.Key.Snapshot, nanos(a.Key.Created), a.State, a.By, a.Note,
		nanos(a.At), nanos(a.Until))
	if err != nil {
		return fmt.Errorf("ledger %s: acknowledge %s: %w", l.path, a.Key, err)
	}
	return nil
}

// Acks returns the latest acknowledgement of each snapshot whose latest one
// has not lapsed at now. Whether it still holds also depends on the state
// (Ack.Holds), which only the plan knows.
func (l *Ledger) Acks(ctx context.Context, now time.Time) (map[facts.Key]Ack, error) {
	out := map[facts.Key]Ack{}
	if l.db == nil {
		return out, nil
	}
	err := query(ctx, l.db, `
SELECT vcenter, vm_uuid, snapshot_id, created, state, by_user, note, at, until_at FROM (
	SELECT *, ROW_NUMBER() OVER (PARTITION BY key ORDER BY at DESC, id DESC) AS rn FROM acks
) AS latest WHERE rn = 1 AND until_at > ?`, func(rows *sql.Rows) error {
		var (
			a                 Ack
			vc, uuid, snap    string
			created, at, till sql.NullInt64
		)
		if err := rows.Scan(&vc, &uuid, &snap, &created, &a.State, &a.By, &a.Note, &at, &till); err != nil {
			return err
		}
		a.Key, a.At, a.Until = keyOf(vc, uuid, snap, created), fromNanos(at), fromNanos(till)
		out[a.Key] = a
		return nil
	}, now.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("ledger %s: acknowledgements: %w", l.path, err)
	}
	return out, nil
}

// EscalatedSince returns, for each snapshot not resolved that support was
// ever told of (escalated, blocked or a stale backup snapshot), when it was
// first told: the age of an item in the console's escalation queue.
func (l *Ledger) EscalatedSince(ctx context.Context) (map[facts.Key]time.Time, error) {
	out := map[facts.Key]time.Time{}
	if l.db == nil {
		return out, nil
	}
	err := query(ctx, l.db, `
SELECT s.vcenter, s.vm_uuid, s.snapshot_id, s.created, MIN(n.created_at)
FROM notice_items i
JOIN notices n ON n.id = i.notice_id
JOIN snapshots s ON s.key = i.key
WHERE s.resolved_at IS NULL AND i.action IN ('escalate', 'blocked', 'managed-stale')
GROUP BY s.key`, func(rows *sql.Rows) error {
		var (
			vc, uuid, snap string
			created, first sql.NullInt64
		)
		if err := rows.Scan(&vc, &uuid, &snap, &created, &first); err != nil {
			return err
		}
		out[keyOf(vc, uuid, snap, created)] = fromNanos(first)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger %s: escalations: %w", l.path, err)
	}
	return out, nil
}
