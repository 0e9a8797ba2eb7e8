package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/failpoint"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// Seen is one snapshot observed in a cycle.
type Seen struct {
	Key facts.Key
	// Snapshot is the snapshot's name; VM the VM's name.
	VCenter, VM, VMMoRef, Snapshot, Customer, Creator string
	SizeBytes                                         int64
}

// Notice is one outbox entry: a customer digest email, a support email, or a
// webhook post.
type Notice struct {
	ID         int64     // set by the ledger
	MessageID  string    // RFC 5322 Message-ID (for webhooks: a unique id); unique
	Channel    string    // "email" | "webhook"
	Kind       string    // "customer" | "support" | "action" (customer told of a consolidation)
	Customer   string    // "" for support
	Recipients []string  // email addresses or the webhook's name ("support-webhook"), never the URL
	Subject    string    // the email subject, or a one-line title for a webhook
	Body       []byte    // the exact bytes to deliver (whole RFC 5322 message, or the JSON payload)
	Items      []Item    // the snapshots it is about
	State      string    // "pending" | "sent" | "failed"  (failed = permanent failure, not retried)
	Attempts   int       // delivery attempts so far, successful or not
	LastError  string    // the last failed attempt's error
	CreatedAt  time.Time // when it was queued; Record uses Finished when zero
	SentAt     time.Time // when the first recipient accepted it; zero until then
	// Deliveries is where delivery stands for each recipient, as Pending
	// reads it. Record ignores it: every recipient starts pending.
	Deliveries []Delivery
	// Reports are the rejections this support notice lists; queueing it
	// marks them reported, so each is listed once.
	Reports []Bounce
}

// Delivery is one recipient of a notice.
type Delivery struct {
	Address   string
	State     string // "pending" | "sending" | "sent" | "failed"
	Attempts  int
	LastError string // the server's reply to the last failed attempt
}

// Item is one snapshot of a notice and what the notice says about it.
type Item struct {
	Key    facts.Key
	Action string // "warn" | "remind" | "escalate" | "blocked" | "managed-stale" | "unowned" | "consolidated" | "failed" | "gone"
	Reason string // e.g. the plan reason "guard-window"
}

// Notice channels and kinds, and the actions a notice item records: the
// vocabulary History counts by (warn and remind as customer notices,
// escalate, managed-stale and unowned as escalations, blocked for the guard
// support was told of).
const (
	ChannelEmail   = "email"
	ChannelWebhook = "webhook"

	KindCustomer = "customer"
	KindSupport  = "support"
	KindAction   = "action"   // a customer told of a consolidation
	KindHeadsUp  = "heads-up" // an owner told a snapshot appeared

	ItemWarn         = "warn"
	ItemRemind       = "remind"
	ItemEscalate     = "escalate"
	ItemBlocked      = "blocked"
	ItemManagedStale = "managed-stale"
	ItemUnowned      = "unowned"
	ItemConsolidated = "consolidated"
	ItemFailed       = "failed"
	ItemGone         = "gone"     // the VM vanished under an unfinished action
	ItemHeadsUp      = "heads-up" // not a warning: History does not count it
)

// Notice states, and the recipients' (which add "sending": written before
// SMTP starts, so an interrupted attempt is retried, never forgotten).
const (
	StatePending = "pending"
	StateSending = "sending"
	StateSent    = "sent"
	StateFailed  = "failed"
)

// Record is everything one cycle writes, in ONE transaction.
type Record struct {
	// Started stamps the snapshots' first and last sight (the moment they
	// were collected); Finished stamps resolutions and, where a notice has
	// no CreatedAt, its queueing. Either defaults to the other.
	Started, Finished time.Time
	Mode              string   // dry-run | enforce
	Summary           string   // one line for logs and `history`
	Errors            []string // vCenter errors, one line each
	Snapshots         []Seen   // every snapshot collected this cycle
	// Answered lists the vCenters that answered: their open snapshots NOT in
	// Snapshots are marked resolved at Finished. A vCenter that failed is
	// left out, so its snapshots are not taken for gone.
	Answered []string
	Notices  []Notice // new outbox entries, inserted as pending
	// VCenterIDs maps the config name of each vCenter that answered to its
	// instance UUID: the names are kept for people, and rows still keyed by
	// the name (from before keys used the UUID) are re-keyed first.
	VCenterIDs map[string]string
	// Problems are the cycle's problems, ProblemVCenters the vCenters (by
	// config name) that answered, whose open problems not among them are
	// resolved, and Scans the orphan scans that ran. They are written with
	// the rest: the support digest that announces a new problem is queued
	// here, and a problem whose first sight were lost would be announced
	// again by the next cycle.
	Problems        []plan.Problem
	ProblemVCenters []string
	Scans           map[string]time.Time
}

var (
	validChannels = map[string]bool{ChannelEmail: true, ChannelWebhook: true}
	validKinds    = map[string]bool{KindCustomer: true, KindSupport: true, KindAction: true, KindHeadsUp: true}
)

// Record writes one cycle: the snapshots seen (first sight, last sight,
// creator, size), the resolution of snapshots gone from the vCenters that
// answered, the cycle row and the new notices, all in one transaction so the
// outbox never holds a notice whose cause was not recorded, or the reverse.
// It returns the new cycle's id.
func (l *Ledger) Record(ctx context.Context, r Record) (int64, error) {
	if err := l.writable("record cycle"); err != nil {
		return 0, err
	}
	wrap := func(err error) error { return fmt.Errorf("ledger %s: record cycle: %w", l.path, err) }
	seenAt, finished := r.Started, r.Finished
	if seenAt.IsZero() {
		seenAt = finished
	}
	if finished.IsZero() {
		finished = seenAt
	}
	if seenAt.IsZero() {
		return 0, wrap(fmt.Errorf("neither Started nor Finished is set"))
	}
	for i, n := range r.Notices {
		if err := checkNotice(n); err != nil {
			return 0, wrap(fmt.Errorf("notice %d: %w", i, err))
		}
	}
	errs, err := json.Marshal(nonNil(r.Errors))
	if err != nil {
		return 0, wrap(err)
	}

	var cycleID int64
	err = l.write(ctx, "record cycle", func(tx *sql.Tx) error {
		var err error
		// The cycle row comes first: snapshots point at it (last_cycle),
		// which is how resolution below tells "seen now" from "seen before".
		cycleID, err = l.insertID(ctx, tx,
			`INSERT INTO cycles(started, finished, mode, summary, errors, snapshots, notices) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			seenAt.UnixNano(), finished.UnixNano(), r.Mode, r.Summary, string(errs), len(r.Snapshots), len(r.Notices))
		if err != nil {
			return fmt.Errorf("insert cycle: %w", err)
		}

		if err = rekeyVCenters(ctx, tx, r.VCenterIDs); err != nil {
			return err
		}
		if err = l.upsertSnapshots(ctx, tx, r.Snapshots, seenAt, cycleID); err != nil {
			return err
		}

		if len(r.Answered) > 0 {
			stmt, err := tx.PrepareContext(ctx,
				`UPDATE snapshots SET resolved_at = ? WHERE vcenter = ? AND resolved_at IS NULL AND last_cycle <> ?`)
			if err != nil {
				return fmt.Errorf("resolve: %w", err)
			}
			defer stmt.Close()
			for _, vc := range r.Answered {
				if _, err = stmt.ExecContext(ctx, finished.UnixNano(), vc, cycleID); err != nil {
					return fmt.Errorf("resolve snapshots of %s: %w", vc, err)
				}
			}
		}

		if err = recordProblems(ctx, tx, seenAt, r.Problems, r.ProblemVCenters, r.Scans); err != nil {
			return err
		}
		if err = l.insertNotices(ctx, tx, r.Notices, finished, cycleID); err != nil {
			return err
		}
		if err = thinSamples(ctx, tx, finished); err != nil {
			return err
		}
		return failpoint.Hit("ledger.record")
	})
	if err != nil {
		return 0, err
	}
	return cycleID, nil
}

// upsertSnapshots records first and last sight. The creator is written only
// while none is recorded: vCenter purges the events it comes from, so a later
// empty (or different) answer must not erase what was learnt at first sight.
// A snapshot seen again after being resolved is open again (resolved_at NULL).
//
// On PostgreSQL rows go pgUpsertChunk to a statement: one round trip per row
// made a cycle of 20,000 snapshots take over a second. SQLite, in process,
// is fastest with one row per statement.
func (l *Ledger) upsertSnapshots(ctx context.Context, tx *sql.Tx, seen []Seen, at time.Time, cycleID int64) error {
	per := 1
	if l.pg {
		per = pgUpsertChunk
		seen = lastSeenOnce(seen)
	}
	ns := at.UnixNano()
	var stmt *sql.Stmt
	for start := 0; start < len(seen); start += per {
		chunk := seen[start:min(start+per, len(seen))]
		if stmt == nil || len(chunk) < per {
			if stmt != nil {
				stmt.Close()
			}
			var err error
			if stmt, err = tx.PrepareContext(ctx, snapshotUpsert(len(chunk))); err != nil {
				return fmt.Errorf("prepare snapshot upsert: %w", err)
			}
			defer stmt.Close()
		}
		args := make([]any, 0, len(chunk)*14)
		for _, s := range chunk {
			k := s.Key
			args = append(args, k.String(), k.VCenter, k.VMUUID, k.Snapshot, nanos(k.Created),
				s.VM, s.VMMoRef, s.Snapshot, s.Customer, s.Creator, s.SizeBytes, ns, ns, cycleID)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			if len(chunk) == 1 {
				return fmt.Errorf("snapshot %s: %w", chunk[0].Key, err)
			}
			return fmt.Errorf("snapshots %s to %s: %w", chunk[0].Key, chunk[len(chunk)-1].Key, err)
		}
	}
	return nil
}

// pgUpsertChunk rows of 14 values stay well under PostgreSQL's 65,535
// parameters.
const pgUpsertChunk = 500

// snapshotUpsert is the upsert of rows snapshots.
func snapshotUpsert(rows int) string {
	var b strings.Builder
	b.WriteString(`
INSERT INTO snapshots(key, vcenter, vm_uuid, snapshot_id, created, vm, vm_moref, name, customer, creator,
	size_bytes, first_seen, last_seen, last_cycle, resolved_at)
VALUES `)
	for i := range rows {
		if i > 0 {
			b.WriteString(",\n\t")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)")
	}
	b.WriteString(`
ON CONFLICT(key) DO UPDATE SET
	vm = excluded.vm,
	vm_moref = excluded.vm_moref,
	name = excluded.name,
	customer = excluded.customer,
	creator = CASE WHEN snapshots.creator = '' THEN excluded.creator ELSE snapshots.creator END,
	size_bytes = excluded.size_bytes,
	last_seen = excluded.last_seen,
	last_cycle = excluded.last_cycle,
	resolved_at = NULL`)
	return b.String()
}

// lastSeenOnce keeps one entry per snapshot, the last, with the first
// non-empty creator: what upserting them one by one records. One statement
// may not touch a row twice on PostgreSQL.
func lastSeenOnce(seen []Seen) []Seen {
	at := make(map[facts.Key]int, len(seen))
	var out []Seen
	for _, s := range seen {
		i, dup := at[s.Key]
		if !dup {
			at[s.Key] = len(out)
			out = append(out, s)
			continue
		}
		creator := out[i].Creator
		out[i] = s
		if creator != "" {
			out[i].Creator = creator
		}
	}
	return out
}

// insertNotices queues notices with their items and recipients. cycleID is
// the cycle that planned them, or nil for the notices of an action's result.
func (l *Ledger) insertNotices(ctx context.Context, tx *sql.Tx, notices []Notice, at time.Time, cycleID any) error {
	if len(notices) == 0 {
		return nil
	}
	istmt, err := tx.PrepareContext(ctx, `
INSERT INTO notice_items(notice_id, key, vcenter, vm_uuid, snapshot_id, created, action, reason)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("prepare notice item insert: %w", err)
	}
	defer istmt.Close()
	// DO NOTHING: a contact listed twice is one recipient.
	rstmt, err := tx.PrepareContext(ctx, `
INSERT INTO notice_recipients(notice_id, address, state) VALUES (?, ?, 'pending') ON CONFLICT DO NOTHING`)
	if err != nil {
		return fmt.Errorf("prepare notice recipient insert: %w", err)
	}
	defer rstmt.Close()
	for _, n := range notices {
		rcpt, err := json.Marshal(nonNil(n.Recipients))
		if err != nil {
			return err
		}
		created := n.CreatedAt
		if created.IsZero() {
			created = at
		}
		body := n.Body
		if body == nil {
			body = []byte{} // NOT NULL: an empty body is still a body
		}
		id, err := l.insertID(ctx, tx, `
INSERT INTO notices(cycle_id, message_id, channel, kind, customer, recipients, subject, body, state, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)`,
			cycleID, n.MessageID, n.Channel, n.Kind, n.Customer, string(rcpt), n.Subject, body, created.UnixNano())
		if err != nil {
			return fmt.Errorf("notice %s: %w", n.MessageID, err)
		}
		for _, a := range n.Recipients {
			if _, err := rstmt.ExecContext(ctx, id, a); err != nil {
				return fmt.Errorf("notice %s recipient %s: %w", n.MessageID, a, err)
			}
		}
		for _, b := range n.Reports {
			if _, err := tx.ExecContext(ctx, `
UPDATE notice_recipients SET reported_at = ? WHERE notice_id = ? AND address = ? AND reported_at IS NULL`,
				created.UnixNano(), b.NoticeID, b.Address); err != nil {
				return fmt.Errorf("notice %s: mark rejection of %s reported: %w", n.MessageID, b.Address, err)
			}
		}
		for _, it := range n.Items {
			k := it.Key
			if _, err := istmt.ExecContext(ctx, id, k.String(), k.VCenter, k.VMUUID, k.Snapshot, nanos(k.Created),
				it.Action, it.Reason); err != nil {
				return fmt.Errorf("notice %s item %s: %w", n.MessageID, k, err)
			}
		}
	}
	return nil
}

// checkNotice catches programming errors before they reach the outbox, where
// a bad row would be retried forever.
func checkNotice(n Notice) error {
	switch {
	case n.MessageID == "":
		return fmt.Errorf("no MessageID")
	case !validChannels[n.Channel]:
		return fmt.Errorf("%s: channel %q is not email or webhook", n.MessageID, n.Channel)
	case !validKinds[n.Kind]:
		return fmt.Errorf("%s: kind %q is not customer, support or action", n.MessageID, n.Kind)
	case len(n.Recipients) == 0:
		return fmt.Errorf("%s: no recipients", n.MessageID)
	}
	return nil
}

// nonNil makes JSON say [] rather than null for an empty list.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
