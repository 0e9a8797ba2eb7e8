package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/snapwarden/snapwarden/internal/failpoint"
)

// OutboxPending counts the notices something is still owed for (a
// recipient not yet settled): the outbox backlog /metrics exports.
func (l *Ledger) OutboxPending(ctx context.Context) (int, error) {
	if l.db == nil {
		return 0, nil
	}
	var n int
	if err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM notices WHERE state = 'pending'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("ledger %s: count pending notices: %w", l.path, err)
	}
	return n, nil
}

// Pending returns the notices to deliver: state pending, oldest first, with
// their items and recipients. The body is the exact bytes queued by Record,
// so a notice re-delivered after a crash is byte-for-byte the one planned.
func (l *Ledger) Pending(ctx context.Context) ([]Notice, error) {
	if l.db == nil {
		return nil, nil
	}
	// One read transaction: the items must belong to the notices just read,
	// even if the writer marks some sent meanwhile.
	var out []Notice
	err := l.read(ctx, "pending notices", func(tx *sql.Tx) error {
		var err error
		if out, err = scanNotices(ctx, tx, `WHERE state = 'pending' ORDER BY created_at, id`); err != nil || len(out) == 0 {
			return err
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
			return err
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
				return err
			}
			if n := byID[id]; n != nil {
				n.Items = append(n.Items, Item{Key: keyOf(vc, uuid, snap, created), Action: action, Reason: reason})
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rrows, err := tx.QueryContext(ctx, `
SELECT r.notice_id, r.address, r.state, r.attempts, r.last_error
FROM notice_recipients r JOIN notices n ON n.id = r.notice_id
WHERE n.state = 'pending'
ORDER BY r.notice_id, r.rowid`)
		if err != nil {
			return err
		}
		defer rrows.Close()
		for rrows.Next() {
			var (
				id int64
				d  Delivery
			)
			if err := rrows.Scan(&id, &d.Address, &d.State, &d.Attempts, &d.LastError); err != nil {
				return err
			}
			if n := byID[id]; n != nil {
				n.Deliveries = append(n.Deliveries, d)
			}
		}
		return rrows.Err()
	})
	if err != nil {
		return nil, err
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

// Sending records that delivery of notice id to address is about to start.
// It is written before SMTP (or the webhook's POST) starts: a process that
// dies, or a ledger that fails, after this point leaves the recipient
// "sending", and the next delivery retries it with the same bytes and
// Message-ID; a message is thus never lost, and delivered twice at most
// when the interruption came after the server took it. A failed Sending
// must stop delivery: nothing may be sent that the ledger does not know of.
func (l *Ledger) Sending(ctx context.Context, id int64, address string, at time.Time) error {
	if err := l.writable("mark notice sending"); err != nil {
		return err
	}
	if err := failpoint.Hit("ledger.sending"); err != nil {
		return fmt.Errorf("ledger %s: mark notice %d to %s sending: %w", l.path, id, address, err)
	}
	res, err := l.db.ExecContext(ctx, `
UPDATE notice_recipients SET state = 'sending', attempts = attempts + 1, last_attempt_at = ?
WHERE notice_id = ? AND address = ? AND state IN ('pending', 'sending')`, at.UnixNano(), id, address)
	if err != nil {
		return fmt.Errorf("ledger %s: mark notice %d to %s sending: %w", l.path, id, address, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("ledger %s: mark notice %d to %s sending: no such recipient still owed (%v)", l.path, id, address, err)
	}
	return nil
}

// MarkRecipientSent records that address accepted notice id at at.
// Marking a recipient already sent again is a no-op, so a retried call
// after a lost reply is harmless.
func (l *Ledger) MarkRecipientSent(ctx context.Context, id int64, address string, at time.Time) error {
	return l.settle(ctx, id, address, at, StateSent, "")
}

// MarkRecipientFailed records a failed attempt to deliver notice id to
// address; errText is the server's reply. permanent marks the recipient
// failed (never retried: a rejected contact, say), else it stays pending to
// be retried next time.
func (l *Ledger) MarkRecipientFailed(ctx context.Context, id int64, address string, at time.Time, errText string, permanent bool) error {
	return l.settle(ctx, id, address, at, failState(permanent), errText)
}

func failState(permanent bool) string {
	if permanent {
		return StateFailed
	}
	return StatePending
}

// settle moves recipient address of notice id, if still owed, to state,
// then settles the notice in the same transaction: sent_at is the first
// acceptance; the notice stays pending while a recipient is owed, else it
// is sent (delivered to at least one) or failed (to none).
func (l *Ledger) settle(ctx context.Context, id int64, address string, at time.Time, state, errText string) error {
	op := "mark sent"
	if state != StateSent {
		op = "mark failed"
	}
	if err := l.writable(op); err != nil {
		return err
	}
	var sentAt any
	if state == StateSent {
		sentAt = at.UnixNano()
	}
	return l.write(ctx, fmt.Sprintf("%s notice %d to %s", op, id, address), func(tx *sql.Tx) error {
		// An attempt settled without Sending before it still counts as one.
		res, err := tx.ExecContext(ctx, `
UPDATE notice_recipients SET state = ?, sent_at = ?, last_attempt_at = ?,
	attempts = CASE WHEN state = 'sending' THEN attempts ELSE attempts + 1 END,
	last_error = CASE WHEN ? = '' THEN last_error ELSE ? END
WHERE notice_id = ? AND address = ? AND state IN ('pending', 'sending')`,
			state, sentAt, at.UnixNano(), errText, errText, id, address)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return noTransition(ctx, tx, id, address, state)
		}
		if _, err := tx.ExecContext(ctx, `
UPDATE notices SET
	sent_at = COALESCE(sent_at, (SELECT MIN(sent_at) FROM notice_recipients WHERE notice_id = notices.id)),
	attempts = (SELECT MAX(attempts) FROM notice_recipients WHERE notice_id = notices.id),
	last_attempt_at = ?,
	last_error = CASE WHEN ? = '' THEN last_error ELSE ? END,
	state = CASE
		WHEN EXISTS (SELECT 1 FROM notice_recipients WHERE notice_id = notices.id AND state IN ('pending', 'sending')) THEN 'pending'
		WHEN EXISTS (SELECT 1 FROM notice_recipients WHERE notice_id = notices.id AND state = 'sent') THEN 'sent'
		ELSE 'failed' END
WHERE id = ?`, at.UnixNano(), errText, errText, id); err != nil {
			return err
		}
		return failpoint.Hit("ledger.mark")
	})
}

// noTransition explains an update that touched no recipient: the recipient
// does not exist, or it is settled already. Marking sent what is sent is
// fine (an idempotent repeat); anything else is an error.
func noTransition(ctx context.Context, tx *sql.Tx, id int64, address, state string) error {
	var got string
	err := tx.QueryRowContext(ctx, `SELECT state FROM notice_recipients WHERE notice_id = ? AND address = ?`, id, address).Scan(&got)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return errors.New("no such recipient")
	case err != nil:
		return err
	case got == StateSent && state == StateSent:
		return nil
	}
	return fmt.Errorf("it is %s, not pending", got)
}

// Bounce is a recipient that rejected a notice for good, for the support
// digest's "Undeliverable contacts".
type Bounce struct {
	NoticeID  int64
	MessageID string
	Customer  string // "" for a support notice
	Address   string
	Reply     string // the server's reply
	At        time.Time
	// Unreachable is set when the notice reached none of its recipients:
	// Items are then what it was about, for support to pass on.
	Unreachable bool
	Items       []Item
}

// Unreported returns the rejections no support notice has listed yet,
// oldest first. Queueing a notice with them in Reports marks them listed.
func (l *Ledger) Unreported(ctx context.Context) ([]Bounce, error) {
	if l.db == nil {
		return nil, nil
	}
	var out []Bounce
	err := l.read(ctx, "unreported rejections", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
SELECT r.notice_id, n.message_id, n.customer, r.address, r.last_error, r.last_attempt_at, n.state = 'failed'
FROM notice_recipients r JOIN notices n ON n.id = r.notice_id
WHERE r.state = 'failed' AND r.reported_at IS NULL
ORDER BY r.last_attempt_at, r.notice_id, r.rowid`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				b  Bounce
				at sql.NullInt64
			)
			if err := rows.Scan(&b.NoticeID, &b.MessageID, &b.Customer, &b.Address, &b.Reply, &at, &b.Unreachable); err != nil {
				return err
			}
			b.At = fromNanos(at)
			out = append(out, b)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			if !out[i].Unreachable {
				continue
			}
			if out[i].Items, err = noticeItems(ctx, tx, out[i].NoticeID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func noticeItems(ctx context.Context, q querier, id int64) ([]Item, error) {
	rows, err := q.QueryContext(ctx, `
SELECT vcenter, vm_uuid, snapshot_id, created, action, reason FROM notice_items WHERE notice_id = ? ORDER BY rowid`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		var (
			vc, uuid, snap, action, reason string
			created                        sql.NullInt64
		)
		if err := rows.Scan(&vc, &uuid, &snap, &created, &action, &reason); err != nil {
			return nil, err
		}
		out = append(out, Item{Key: keyOf(vc, uuid, snap, created), Action: action, Reason: reason})
	}
	return out, rows.Err()
}
