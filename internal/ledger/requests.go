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

// CustomerRequest is one use of a self-service link.
type CustomerRequest struct {
	// Token identifies the link (a digest of it, never the token itself):
	// one link acts once.
	Token    string
	Key      facts.Key
	Customer string
	Action   plan.RequestAction
	At       time.Time
	// Remote is the client address, for support's questions later.
	Remote string
}

// Target is the snapshot a self-service link names, as the ledger knows it.
type Target struct {
	Key                    facts.Key
	VM, Snapshot, Customer string
	// Open is false once the snapshot is gone from vCenter.
	Open bool
	// Extends counts the extend requests recorded so far.
	Extends int
}

// EventRequest is the Event kind of a self-service request.
const EventRequest = "request"

// RequestTarget finds the snapshot with this vCenter (its key part, or the
// config name it had before), snapshot id and create time; found is false
// when the ledger never saw it.
func (l *Ledger) RequestTarget(ctx context.Context, vcenter, snapshotID string, created time.Time) (t Target, found bool, err error) {
	if l.db == nil {
		return Target{}, false, nil
	}
	var (
		vc, uuid string
		resolved sql.NullInt64
	)
	err = l.db.QueryRowContext(ctx, `
SELECT vcenter, vm_uuid, vm, name, customer, resolved_at,
	(SELECT COUNT(*) FROM requests r WHERE r.key = s.key AND r.action = 'extend')
FROM snapshots s
WHERE (vcenter = ?1 OR vcenter IN (SELECT id FROM vcenters WHERE name = ?1)) AND snapshot_id = ?2 AND created = ?3`,
		vcenter, snapshotID, created.UnixNano()).Scan(&vc, &uuid, &t.VM, &t.Snapshot, &t.Customer, &resolved, &t.Extends)
	if errors.Is(err, sql.ErrNoRows) {
		return Target{}, false, nil
	}
	if err != nil {
		return Target{}, false, fmt.Errorf("ledger %s: request target %s/%s: %w", l.path, vcenter, snapshotID, err)
	}
	// A link sent before its vCenter was keyed by instance UUID names it
	// by its config name; the key is the snapshot's current one.
	t.Key = facts.Key{VCenter: vc, VMUUID: uuid, Snapshot: snapshotID, Created: created.UTC()}
	t.Open = !resolved.Valid
	return t, true, nil
}

// RequestDone returns when the link with this token digest was used; zero
// when it has not been.
func (l *Ledger) RequestDone(ctx context.Context, token string) (time.Time, error) {
	if l.db == nil {
		return time.Time{}, nil
	}
	var at sql.NullInt64
	err := l.db.QueryRowContext(ctx, `SELECT at FROM requests WHERE token = ?`, token).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("ledger %s: request lookup: %w", l.path, err)
	}
	return fromNanos(at), nil
}

// RecordRequest records r once: it reports false, and changes nothing, when
// the same link was used before.
func (l *Ledger) RecordRequest(ctx context.Context, r CustomerRequest) (bool, error) {
	if err := l.writable("record request"); err != nil {
		return false, err
	}
	k := r.Key
	res, err := l.db.ExecContext(ctx, `
INSERT INTO requests(token, key, vcenter, vm_uuid, snapshot_id, created, customer, action, at, remote)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(token) DO NOTHING`,
		r.Token, k.String(), k.VCenter, k.VMUUID, k.Snapshot, nanos(k.Created), r.Customer, string(r.Action), r.At.UnixNano(), r.Remote)
	if err != nil {
		return false, fmt.Errorf("ledger %s: record %s request for %s: %w", l.path, r.Action, k, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("ledger %s: record %s request for %s: %w", l.path, r.Action, k, err)
	}
	return n == 1, nil
}

// Requests returns the requests of every open snapshot, oldest first, for
// the planner (plan.History.Requests).
func (l *Ledger) Requests(ctx context.Context) (map[facts.Key][]plan.Request, error) {
	out := map[facts.Key][]plan.Request{}
	if l.db == nil {
		return out, nil
	}
	err := query(ctx, l.db, `
SELECT r.vcenter, r.vm_uuid, r.snapshot_id, r.created, r.action, r.at, r.customer
FROM requests r JOIN snapshots s ON s.key = r.key
WHERE s.resolved_at IS NULL
ORDER BY r.at, r.id`, func(rows *sql.Rows) error {
		var (
			vc, uuid, snap, action, customer string
			created, at                      sql.NullInt64
		)
		if err := rows.Scan(&vc, &uuid, &snap, &created, &action, &at, &customer); err != nil {
			return err
		}
		k := keyOf(vc, uuid, snap, created)
		out[k] = append(out[k], plan.Request{Action: plan.RequestAction(action), At: fromNanos(at), Customer: customer})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger %s: requests: %w", l.path, err)
	}
	return out, nil
}

// requestEvents adds the requests at or after since to an Audit; vmID
// narrows them to one VM by instance UUID.
func requestEvents(ctx context.Context, tx querier, since int64, vm, cust, vmID string, keep func(Event)) error {
	return query(ctx, tx, `
SELECT r.at, COALESCE(v.name, r.vcenter), r.vm_uuid, COALESCE(s.vm, ''), COALESCE(s.name, r.snapshot_id), r.customer, r.action, r.remote
FROM requests r
LEFT JOIN snapshots s ON s.key = r.key
LEFT JOIN vcenters v ON v.id = r.vcenter
WHERE r.at >= ?1 AND (?2 = '' OR lower(s.vm) = lower(?2)) AND (?3 = '' OR r.customer = ?3) AND (?4 = '' OR r.vm_uuid = ?4)
ORDER BY r.id`, func(rows *sql.Rows) error {
		var (
			e              Event
			at             sql.NullInt64
			action, remote string
		)
		if err := rows.Scan(&at, &e.VCenter, &e.VMID, &e.VM, &e.Snapshot, &e.Customer, &action, &remote); err != nil {
			return err
		}
		e.At, e.Kind, e.Result = fromNanos(at), EventRequest, action
		e.What = "customer asked: " + action + " (self-service link"
		if remote != "" {
			e.What += " from " + remote
		}
		e.What += ")"
		keep(e)
		return nil
	}, since, vm, cust, vmID)
}
