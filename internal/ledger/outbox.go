package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Pending returns the notices to deliver: state pending, oldest first, with
// their items. The body is the exact bytes queued by Record, so a notice
// re-delivered after a crash is byte-for-byte the one planned.
func (l *Ledger) Pending(ctx context.Context) ([]Notice, error) {
	if l.db == nil {
		return nil, nil
	}
	wrap := func(err error) error { return fmt.Errorf("ledger %s: pending notices: %w", l.path, err) }
	// One read transaction: the items must belong to the notices just read,
	// even if the writer marks some sent meanwhile.
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, wrap(err)
	}
	defer func() { _ = tx.Rollback() }()

	out, err := scanNotices(ctx, tx, `WHERE state = 'pending' ORDER BY created_at, id`)
	if err != nil {
		return nil, wrap(err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	byID := make(map[int64]*Notice, len(out))
	for i := range out {
		byID[out[i].ID] = &out[i]
	}
	rows, err := tx.QueryContext(ctx, `
SELECT i.notice_id, i.vcenter, i.vm_uuid, i.snapshot_id, i.created, i.action, i.reason
FROM notice_items i JOIN notices n ON n.id = i.notice_id
WHERE n.state = 'pending'
ORDER BY i.notice_id, i.rowid`)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id             int64
			vc, uuid, snap string
			created        sql.NullInt64
			action, reason string
		)
		if err := rows.Scan(&id, &vc, &uuid, &snap, &created, &action, &reason); err != nil {
			return nil, wrap(err)
		}
		if n := byID[id]; n != nil {
			n.Items = append(n.Items, Item{Key: keyOf(vc, uuid, snap, created), Action: action, Reason: reason})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err)
	}
	return out, nil
}

// scanNotices reads notices (without items) selected by the SQL tail where.
func scanNotices(ctx context.Context, q querier, where string, args ...any) ([]Notice, error) {
	rows, err := q.QueryContext(ctx, `
SELECT id, message_id, channel, kind, customer, recipients, subject, body, state, attempts, last_error, created_at, sent_at
FROM notices `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Notice
	for rows.Next() {
		var (
			n               Notice
			rcpt            string
			created, sentAt sql.NullInt64
		)
		if err := rows.Scan(&n.ID, &n.MessageID, &n.Channel, &n.Kind, &n.Customer, &rcpt, &n.Subject, &n.Body,
			&n.State, &n.Attempts, &n.LastError, &created, &sentAt); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(rcpt), &n.Recipients); err != nil {
			return nil, fmt.Errorf("notice %d: recipients: %w", n.ID, err)
		}
		n.CreatedAt, n.SentAt = fromNanos(created), fromNanos(sentAt)
		out = append(out, n)
	}
	return out, rows.Err()
}

// MarkSent records the delivery of notice id at at. Marking a notice already
// sent again is a no-op, so a retried call after a lost reply is harmless.
func (l *Ledger) MarkSent(ctx context.Context, id int64, at time.Time) error {
	if err := l.writable("mark notice sent"); err != nil {
		return err
	}
	res, err := l.db.ExecContext(ctx, `
UPDATE notices SET state = 'sent', sent_at = ?, last_attempt_at = ?, attempts = attempts + 1
WHERE id = ? AND state = 'pending'`, at.UnixNano(), at.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("ledger %s: mark notice %d sent: %w", l.path, id, err)
	}
	return l.checkTransition(ctx, res, id, "mark sent", StateSent)
}

// MarkFailed records a failed delivery attempt; permanent moves it to state
// failed (never retried, for a rejected recipient say), else it stays pending
// to be retried next time.
func (l *Ledger) MarkFailed(ctx context.Context, id int64, at time.Time, errText string, permanent bool) error {
	if err := l.writable("mark notice failed"); err != nil {
		return err
	}
	state := StatePending
	if permanent {
		state = StateFailed
	}
	res, err := l.db.ExecContext(ctx, `
UPDATE notices SET state = ?, last_error = ?, last_attempt_at = ?, attempts = attempts + 1
WHERE id = ? AND state = 'pending'`, state, errText, at.UnixNano(), id)
	if err != nil {
		return fmt.Errorf("ledger %s: mark notice %d failed: %w", l.path, id, err)
	}
	return l.checkTransition(ctx, res, id, "mark failed", "")
}

// checkTransition explains an update that touched no row: the notice does not
// exist, or it is no longer pending. okState names the state in which that
// is fine (idempotent repeat).
func (l *Ledger) checkTransition(ctx context.Context, res sql.Result, id int64, op, okState string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("ledger %s: %s notice %d: %w", l.path, op, id, err)
	}
	if n == 1 {
		return nil
	}
	var state string
	err = l.db.QueryRowContext(ctx, `SELECT state FROM notices WHERE id = ?`, id).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("ledger %s: %s notice %d: no such notice", l.path, op, id)
	case err != nil:
		return fmt.Errorf("ledger %s: %s notice %d: %w", l.path, op, id, err)
	case state == okState:
		return nil
	}
	return fmt.Errorf("ledger %s: %s notice %d: it is %s, not pending", l.path, op, id, state)
}
