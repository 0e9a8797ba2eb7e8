package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// The item actions History counts as escalations.
const escalation = `i.action IN ('escalate', 'managed-stale', 'unowned')`

// History returns the plan.History of every snapshot not resolved, keyed by
// facts.Key. It runs a handful of aggregate queries grouped by key in one
// read transaction, so its cost does not grow with a query per snapshot and
// all figures come from the same moment.
func (l *Ledger) History(ctx context.Context) (map[facts.Key]plan.History, error) {
	out := map[facts.Key]plan.History{}
	if l.db == nil {
		return out, nil
	}
	err := l.read(ctx, "history", func(tx *sql.Tx) error {
		// Aggregates below are keyed by the text key; this maps it to the
		// facts.Key and the History being built.
		type entry struct {
			key facts.Key
			h   plan.History
		}
		byText := map[string]*entry{}

		// The customer column is the owner at the last cycle that saw it.
		err := query(ctx, tx, `SELECT key, vcenter, vm_uuid, snapshot_id, created, first_seen, creator, customer
FROM snapshots WHERE resolved_at IS NULL`, func(rows *sql.Rows) error {
			var (
				text, vc, uuid, snap, creator, owner string
				created, first                       sql.NullInt64
			)
			if err := rows.Scan(&text, &vc, &uuid, &snap, &created, &first, &creator, &owner); err != nil {
				return err
			}
			byText[text] = &entry{key: keyOf(vc, uuid, snap, created),
				h: plan.History{FirstSeen: fromNanos(first), Creator: creator, Owner: owner}}
			return nil
		})
		if err != nil {
			return fmt.Errorf("snapshots: %w", err)
		}
		if len(byText) == 0 {
			return nil
		}

		// Warn and remind items per snapshot and addressee: a customer notice
		// counts for the customer it was addressed to, and only for them (a VM
		// that changes hands starts again with the new owner); a support notice
		// (the owner unknown or unreachable) is a relay that paces further
		// relays and never counts as warning anyone. Issued counts notices
		// queued or delivered, so a notice awaiting delivery is not issued
		// twice; the first delivery is the first non-NULL sent_at, which is set
		// once any recipient accepted the notice. Items are counted, not
		// notices: a notice names a snapshot once per action, and
		// COUNT(DISTINCT) costs a sort. The join on snapshots keeps the items of
		// resolved snapshots (most of the table, in time) inside SQLite.
		err = query(ctx, tx, `
SELECT i.key, n.kind, n.customer, COUNT(*), MAX(n.created_at), MIN(n.sent_at)
FROM notice_items i
JOIN notices n ON n.id = i.notice_id
JOIN snapshots s ON s.key = i.key
WHERE s.resolved_at IS NULL AND i.action IN ('warn', 'remind') AND n.kind IN ('customer', 'support')
GROUP BY i.key, n.kind, n.customer`, func(rows *sql.Rows) error {
			var (
				text, kind, customer string
				count                int
				last, delivered      sql.NullInt64
			)
			if err := rows.Scan(&text, &kind, &customer, &count, &last, &delivered); err != nil {
				return err
			}
			e := byText[text]
			if e == nil {
				return nil
			}
			n := plan.Notices{Count: count, Last: fromNanos(last), FirstDelivered: fromNanos(delivered)}
			if kind == KindSupport {
				// Support notices carry no customer: one series per snapshot.
				n.FirstDelivered = time.Time{}
				e.h.Relayed = n
				return nil
			}
			if e.h.ByCustomer == nil {
				e.h.ByCustomer = map[string]plan.Notices{}
			}
			e.h.ByCustomer[customer] = n
			return nil
		})
		if err != nil {
			return fmt.Errorf("notices: %w", err)
		}

		// Escalations, and whether support was told of clock skew (once).
		err = query(ctx, tx, `
SELECT i.key, COUNT(*), MAX(n.created_at), MAX(CASE WHEN i.reason = 'clock-skew' THEN 1 ELSE 0 END)
FROM notice_items i
JOIN notices n ON n.id = i.notice_id
JOIN snapshots s ON s.key = i.key
WHERE s.resolved_at IS NULL AND `+escalation+`
GROUP BY i.key`, func(rows *sql.Rows) error {
			var (
				text        string
				count, skew int
				last        sql.NullInt64
			)
			if err := rows.Scan(&text, &count, &last, &skew); err != nil {
				return err
			}
			if e := byText[text]; e != nil {
				e.h.Escalations, e.h.LastEscalation, e.h.SkewReported = count, fromNanos(last), skew == 1
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("escalations: %w", err)
		}

		// The guard support was last told of; the planner escalates a blocked
		// consolidation again only when the reason changes.
		err = query(ctx, tx, `
SELECT key, reason FROM (
	SELECT i.key, i.reason, ROW_NUMBER() OVER (PARTITION BY i.key ORDER BY n.created_at DESC, n.id DESC) AS rn
	FROM notice_items i
	JOIN notices n ON n.id = i.notice_id
	JOIN snapshots s ON s.key = i.key
	WHERE i.action = 'blocked' AND s.resolved_at IS NULL
) AS latest WHERE rn = 1`, func(rows *sql.Rows) error {
			var text, reason string
			if err := rows.Scan(&text, &reason); err != nil {
				return err
			}
			if e := byText[text]; e != nil {
				e.h.BlockedReason = reason
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("blocked: %w", err)
		}

		// Actions: failures counted, the latest finished one for its time and
		// fault, and the latest unfinished one as in flight.
		err = query(ctx, tx, `
SELECT a.key,
	SUM(CASE WHEN a.finished_at IS NOT NULL AND a.result = 'error' THEN 1 ELSE 0 END)
FROM actions a JOIN snapshots s ON s.key = a.key
WHERE s.resolved_at IS NULL
GROUP BY a.key`, func(rows *sql.Rows) error {
			var (
				text     string
				attempts int
			)
			if err := rows.Scan(&text, &attempts); err != nil {
				return err
			}
			if e := byText[text]; e != nil {
				e.h.Attempts = attempts
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("attempts: %w", err)
		}
		err = query(ctx, tx, `
SELECT key, started_at, fault FROM (
	SELECT a.key, a.started_at, a.fault,
		ROW_NUMBER() OVER (PARTITION BY a.key ORDER BY a.finished_at DESC, a.id DESC) AS rn
	FROM actions a JOIN snapshots s ON s.key = a.key
	WHERE a.finished_at IS NOT NULL AND a.result = 'error' AND s.resolved_at IS NULL
) AS latest WHERE rn = 1`, func(rows *sql.Rows) error {
			// Only failed attempts: a refusal (busy VM, closed window) is not
			// the fault support should read about.
			var (
				text, fault string
				started     sql.NullInt64
			)
			if err := rows.Scan(&text, &started, &fault); err != nil {
				return err
			}
			if e := byText[text]; e != nil {
				e.h.LastAttemptAt, e.h.LastFault = fromNanos(started), fault
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("last attempt: %w", err)
		}
		err = query(ctx, tx, `
SELECT key, finished_at, result, fault FROM (
	SELECT a.key, a.finished_at, a.result, a.fault,
		ROW_NUMBER() OVER (PARTITION BY a.key ORDER BY a.finished_at DESC, a.id DESC) AS rn
	FROM actions a JOIN snapshots s ON s.key = a.key
	WHERE a.finished_at IS NOT NULL AND s.resolved_at IS NULL
) AS latest WHERE rn = 1 AND result = 'refused'`, func(rows *sql.Rows) error {
			var (
				text, result, fault string
				finished            sql.NullInt64
			)
			if err := rows.Scan(&text, &finished, &result, &fault); err != nil {
				return err
			}
			if e := byText[text]; e != nil {
				e.h.DiskModeRefusal, e.h.DiskModeRefusedAt = diskModeRefusal(result, fault, finished)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("last refusal: %w", err)
		}
		err = query(ctx, tx, `
SELECT key, task_id FROM (
	SELECT a.key, a.task_id, ROW_NUMBER() OVER (PARTITION BY a.key ORDER BY a.started_at DESC, a.id DESC) AS rn
	FROM actions a JOIN snapshots s ON s.key = a.key
	WHERE a.finished_at IS NULL AND s.resolved_at IS NULL
) AS latest WHERE rn = 1`, func(rows *sql.Rows) error {
			var text, task string
			if err := rows.Scan(&text, &task); err != nil {
				return err
			}
			if e := byText[text]; e != nil {
				e.h.InFlight, e.h.TaskID = true, task
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("in flight: %w", err)
		}

		for _, e := range byText {
			// The owner's view, for readers that do not plan: the planner
			// takes the entry of the owner it resolves this cycle.
			n := e.h.ByCustomer[e.h.Owner]
			e.h.CustomerNotices, e.h.LastCustomerNotice, e.h.WarnedAt = n.Count, n.Last, n.FirstDelivered
			out[e.key] = e.h
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Known reports whether the ledger has seen a snapshot (resolved or not); the
// collector skips creator look-ups for these, since the creator was either
// recorded at first sight or is lost for good.
func (l *Ledger) Known(ctx context.Context) (func(facts.Key) bool, error) {
	set := map[string]struct{}{}
	if l.db != nil {
		err := query(ctx, l.db, `SELECT key FROM snapshots`, func(rows *sql.Rows) error {
			var text string
			if err := rows.Scan(&text); err != nil {
				return err
			}
			set[text] = struct{}{}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("ledger %s: known snapshots: %w", l.path, err)
		}
	}
	return func(k facts.Key) bool {
		_, ok := set[k.String()]
		return ok
	}, nil
}

// querier is a *sql.DB or *sql.Tx.
type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// query runs q and calls each for every row, closing the rows before it
// returns: the writer has a single connection, so rows left open would
// block the next statement.
func query(ctx context.Context, db querier, q string, each func(*sql.Rows) error, args ...any) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// LastCycle is when the last recorded cycle began, zero when none was.
func (l *Ledger) LastCycle(ctx context.Context) (time.Time, error) {
	var at time.Time
	if l.db == nil {
		return at, nil
	}
	err := l.read(ctx, "last cycle", func(tx *sql.Tx) error {
		var started sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(started) FROM cycles`).Scan(&started); err != nil {
			return err
		}
		at = fromNanos(started)
		return nil
	})
	return at, err
}
