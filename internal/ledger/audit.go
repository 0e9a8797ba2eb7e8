package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Filter selects the events of Audit. Empty fields select everything.
type Filter struct {
	VM       string    // the VM's name, case-insensitive
	Customer string    // the customer id
	Since    time.Time // events at or after this time
	// VCenter and VMID (the VM's instance UUID) select one VM by identity,
	// for the console's timeline: it survives renames, unlike VM.
	VCenter, VMID string
}

// Event is one line of `snapwarden history`; its JSON (`history --format
// json` and the console's API) has snake_case keys and RFC3339 times, like
// the report.
type Event struct {
	At       time.Time `json:"-"`
	Kind     string    `json:"kind"` // "first-seen" | "notice" | "ack" | "action" | "resolved"
	VCenter  string    `json:"vcenter"`
	VM       string    `json:"vm"`
	VMID     string    `json:"vm_id"`    // the VM's instance UUID
	Snapshot string    `json:"snapshot"` // the snapshot's name
	Customer string    `json:"customer"`
	// What says what happened, e.g. "warn email to ops@acme.example (sent)"
	// or "remove task task-12: success".
	What string `json:"what"`
	// TaskID and Result are set for actions (Result "running" while it is);
	// MessageID and Result (the notice's state) for notices.
	TaskID    string `json:"task_id,omitempty"`
	Result    string `json:"result,omitempty"`
	MessageID string `json:"message_id,omitempty"`
	// By is who acknowledged (ack events).
	By string `json:"by,omitempty"`
}

// MarshalJSON adds the time as "at" in RFC3339 (UTC, whole seconds, as the
// report writes times).
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event // without this method
	return json.Marshal(struct {
		At string `json:"at"`
		plain
	}{e.At.UTC().Format(time.RFC3339), plain(e)})
}

// Event kinds, in the order they sort at equal times: a snapshot is first
// seen, then noticed, acted on, and finally resolved.
const (
	EventFirstSeen = "first-seen"
	EventNotice    = "notice"
	EventAck       = "ack"
	EventAction    = "action"
	EventResolved  = "resolved"
)

var eventRank = map[string]int{EventFirstSeen: 0, EventNotice: 1, EventAck: 2, EventAction: 3, EventResolved: 4}

// Audit returns the trail of what snapwarden saw, said and did, sorted by
// time. Each notice yields one event per snapshot it is about, so filtering
// by VM shows exactly what that VM's owners were told.
func (l *Ledger) Audit(ctx context.Context, f Filter) ([]Event, error) {
	if l.db == nil {
		return nil, nil
	}
	since := int64(-1 << 63)
	if !f.Since.IsZero() {
		since = f.Since.UnixNano()
	}
	// VM and customer narrow in SQL where they are plain columns; the notice
	// query matches the customer in Go because it can come from the notice
	// or from its snapshot.
	vm, cust := f.VM, f.Customer
	var out []Event
	keep := func(e Event) {
		if vm != "" && !strings.EqualFold(e.VM, vm) {
			return
		}
		if cust != "" && e.Customer != cust {
			return
		}
		if (f.VCenter != "" && e.VCenter != f.VCenter) || (f.VMID != "" && e.VMID != f.VMID) {
			return
		}
		out = append(out, e)
	}

	err := l.read(ctx, "audit", func(tx *sql.Tx) error {
		err := query(ctx, tx, `
SELECT COALESCE(v.name, s.vcenter), s.vm, s.vm_uuid, s.name, s.customer, s.creator, s.size_bytes, s.first_seen, s.resolved_at
FROM snapshots s LEFT JOIN vcenters v ON v.id = s.vcenter
WHERE (s.first_seen >= ?1 OR s.resolved_at >= ?1)
	AND (?2 = '' OR lower(s.vm) = lower(?2)) AND (?3 = '' OR s.customer = ?3) AND (?4 = '' OR s.vm_uuid = ?4)
ORDER BY s.rowid`, func(rows *sql.Rows) error {
			var (
				e               Event
				creator         string
				size            int64
				first, resolved sql.NullInt64
			)
			if err := rows.Scan(&e.VCenter, &e.VM, &e.VMID, &e.Snapshot, &e.Customer, &creator, &size, &first, &resolved); err != nil {
				return err
			}
			if first.Valid && first.Int64 >= since {
				s := e
				s.At, s.Kind, s.What = fromNanos(first), EventFirstSeen, "first seen"
				if creator != "" {
					s.What += ", created by " + creator
				}
				keep(s)
			}
			if resolved.Valid && resolved.Int64 >= since {
				r := e
				r.At, r.Kind, r.What = fromNanos(resolved), EventResolved, "gone from vCenter"
				keep(r)
			}
			return nil
		}, since, vm, cust, f.VMID)
		if err != nil {
			return fmt.Errorf("snapshots: %w", err)
		}

		err = query(ctx, tx, `
SELECT n.created_at, n.message_id, n.channel, n.kind, n.customer, n.recipients, n.state, n.last_error,
	COALESCE(i.action, ''), COALESCE(i.reason, ''), COALESCE(v.name, i.vcenter, ''), COALESCE(i.vm_uuid, ''),
	COALESCE(s.vm, ''), COALESCE(s.name, ''), COALESCE(s.customer, '')
FROM notices n
LEFT JOIN notice_items i ON i.notice_id = n.id
LEFT JOIN snapshots s ON s.key = i.key
LEFT JOIN vcenters v ON v.id = i.vcenter
WHERE n.created_at >= ?1 AND (?2 = '' OR lower(s.vm) = lower(?2)) AND (?3 = '' OR i.vm_uuid = ?3)
ORDER BY n.created_at, n.id, i.rowid`, func(rows *sql.Rows) error {
			var (
				e                               Event
				created                         sql.NullInt64
				channel, kind, noticeCust, rcpt string
				state, lastErr, action, reason  string
				snapCust                        string
			)
			if err := rows.Scan(&created, &e.MessageID, &channel, &kind, &noticeCust, &rcpt, &state, &lastErr,
				&action, &reason, &e.VCenter, &e.VMID, &e.VM, &e.Snapshot, &snapCust); err != nil {
				return err
			}
			var to []string
			_ = json.Unmarshal([]byte(rcpt), &to) // a bad list only loses the names in the text
			e.At, e.Kind, e.Result = fromNanos(created), EventNotice, state
			e.Customer = snapCust
			if e.Customer == "" {
				e.Customer = noticeCust
			}
			if action == "" {
				action = kind
			}
			e.What = fmt.Sprintf("%s %s to %s (%s", action, channel, strings.Join(to, ", "), state)
			if lastErr != "" && state != StateSent {
				e.What += ": " + lastErr
			}
			e.What += ")"
			if reason != "" {
				e.What += ": " + reason
			}
			keep(e)
			return nil
		}, since, vm, f.VMID)
		if err != nil {
			return fmt.Errorf("notices: %w", err)
		}

		err = query(ctx, tx, `
SELECT a.at, COALESCE(v.name, a.vcenter), a.vm_uuid, a.state, a.by_user, a.note, a.until_at,
	COALESCE(s.vm, ''), COALESCE(s.name, a.snapshot_id), COALESCE(s.customer, '')
FROM acks a
LEFT JOIN snapshots s ON s.key = a.key
LEFT JOIN vcenters v ON v.id = a.vcenter
WHERE a.at >= ?1 AND (?2 = '' OR lower(s.vm) = lower(?2)) AND (?3 = '' OR a.vm_uuid = ?3)
ORDER BY a.id`, func(rows *sql.Rows) error {
			var (
				e           Event
				at, until   sql.NullInt64
				state, note string
			)
			if err := rows.Scan(&at, &e.VCenter, &e.VMID, &state, &e.By, &note, &until, &e.VM, &e.Snapshot, &e.Customer); err != nil {
				return err
			}
			e.At, e.Kind = fromNanos(at), EventAck
			e.What = fmt.Sprintf("acknowledged by %s until %s (while %s)", e.By, fromNanos(until).Format(time.RFC3339), state)
			if note != "" {
				e.What += ": " + note
			}
			keep(e)
			return nil
		}, since, vm, f.VMID)
		if err != nil {
			return fmt.Errorf("acknowledgements: %w", err)
		}

		err = query(ctx, tx, `
SELECT a.started_at, COALESCE(v.name, a.vcenter), a.vm_uuid, a.vm, a.snapshot, a.customer, a.kind, a.task_id, a.finished_at, a.result, a.fault
FROM actions a LEFT JOIN vcenters v ON v.id = a.key_vcenter
WHERE a.started_at >= ?1 AND (?2 = '' OR lower(a.vm) = lower(?2)) AND (?3 = '' OR a.customer = ?3) AND (?4 = '' OR a.vm_uuid = ?4)
ORDER BY a.id`, func(rows *sql.Rows) error {
			var (
				e                 Event
				started, finished sql.NullInt64
				kind, fault       string
			)
			if err := rows.Scan(&started, &e.VCenter, &e.VMID, &e.VM, &e.Snapshot, &e.Customer, &kind, &e.TaskID, &finished,
				&e.Result, &fault); err != nil {
				return err
			}
			e.At, e.Kind = fromNanos(started), EventAction
			if !finished.Valid {
				e.Result = "running"
			}
			task := "task " + e.TaskID
			if e.TaskID == "" {
				task = "(no task)"
			}
			e.What = fmt.Sprintf("%s %s: %s", kind, task, e.Result)
			if fault != "" {
				e.What += ": " + fault
			}
			keep(e)
			return nil
		}, since, vm, cust, f.VMID)
		if err != nil {
			return fmt.Errorf("actions: %w", err)
		}
		if err := requestEvents(ctx, tx, since, vm, cust, f.VMID, keep); err != nil {
			return fmt.Errorf("requests: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].At.Equal(out[j].At) {
			return out[i].At.Before(out[j].At)
		}
		return eventRank[out[i].Kind] < eventRank[out[j].Kind]
	})
	return out, nil
}
