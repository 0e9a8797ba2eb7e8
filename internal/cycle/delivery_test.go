package cycle

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sqlOn runs statements on the runner's ledger file through a second
// connection: a trigger that raises "database or disk is full" is a real
// failed write of the real database, at the moment the test chooses.
func (e *env) sqlOn(t *testing.T, stmts string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(e.dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmts); err != nil {
		t.Fatal(err)
	}
}

// One contact's server rejects it for good: the customer's other contact
// still gets the notice, the rejection is listed in the next support digest
// once, and a customer none of whose contacts accepted it is reported to
// support with the notice's snapshots.
func TestBouncedContactDoesNotSilenceOthers(t *testing.T) {
	e := newEnv(t, "small.yaml")
	for i, c := range e.cfg.Customers {
		if c.ID == "acme" {
			e.cfg.Customers[i].Contacts = []string{"gone@acme.example", "ops@acme.example"}
		}
	}
	e.sink.Reject("gone@acme.example")
	e.sink.Reject("it@initech.example")
	r := e.runner(t)

	res := cycle(t, r, t0)
	got := recipients(messages(t, e.sink, 0))
	if got["ops@acme.example"] != 1 || got["support@provider.example"] != 1 || len(got) != 2 {
		t.Fatalf("first cycle delivered to %v, want acme's valid contact and support", got)
	}
	if res.Sent["customer"] != 1 || res.Failed["customer"] != 2 {
		t.Errorf("sent %v failed %v, want 1 customer delivery and 2 rejections", res.Sent, res.Failed)
	}
	state := map[string]string{}
	var sentAt sql.NullInt64
	if err := query(t, r, `SELECT customer, state, sent_at FROM notices WHERE kind = 'customer'`, func(rows *sql.Rows) error {
		var c, s string
		err := rows.Scan(&c, &s, &sentAt)
		state[c] = s
		if c == "acme" && !sentAt.Valid {
			t.Errorf("acme's notice reached ops@ but has no sent_at")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if state["acme"] != "sent" || state["initech"] != "failed" {
		t.Errorf("notice states %v, want acme sent (one contact took it), initech failed (none did)", state)
	}

	n := len(e.sink.Messages())
	cycle(t, r, t0.Add(10*time.Minute))
	var digest string
	for _, m := range messages(t, e.sink, n) {
		if m.to[0] == "support@provider.example" {
			digest = htmlOf(t, m)
		}
	}
	for _, want := range []string{"Undeliverable contacts (2)", "gone@acme.example", "550", "no such user", "it@initech.example",
		"Unreachable", "schema-v2"} {
		if !strings.Contains(digest, want) {
			t.Errorf("the next support digest lacks %q:\n%s", want, digest)
		}
	}
	n = len(e.sink.Messages())
	cycle(t, r, t0.Add(20*time.Minute))
	for _, m := range messages(t, e.sink, n) {
		if strings.Contains(m.body, "gone@acme.example") {
			t.Errorf("a rejection was reported twice: %s", m.subject)
		}
	}
}

func query(t *testing.T, r *Runner, q string, each func(*sql.Rows) error) error {
	t.Helper()
	db, err := sql.Open("sqlite", r.ledger.Path())
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.Query(q)
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

// A full disk: the first delivery's "sent" mark fails. Nothing more is sent
// in that cycle and the cycle fails; the next delivers the rest and the
// first again, with the same Message-ID, and nothing a third time.
func TestLedgerWriteFailsClosed(t *testing.T) {
	e := newEnv(t, "small.yaml")
	r := e.runner(t)
	e.sqlOn(t, `CREATE TRIGGER disk_full BEFORE UPDATE OF state ON notice_recipients WHEN new.state = 'sent'
BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;`)
	if _, err := r.Cycle(context.Background(), t0); err == nil || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("cycle with a failing ledger: %v, want the write's error", err)
	}
	first := messages(t, e.sink, 0)
	if len(first) != 1 {
		t.Fatalf("%d messages sent after the ledger failed, want only the one in flight", len(first))
	}
	e.sqlOn(t, `DROP TRIGGER disk_full`)

	res := cycle(t, r, t0.Add(10*time.Minute))
	if res.Queued["customer"]+res.Queued["support"] != 0 {
		t.Errorf("the next cycle queued %v anew", res.Queued)
	}
	cycle(t, r, t0.Add(20*time.Minute))
	ids := map[string]int{}
	for _, m := range messages(t, e.sink, 0) {
		ids[m.messageID]++
	}
	if len(ids) != 3 || ids[first[0].messageID] != 2 {
		t.Errorf("Message-IDs delivered %v; want 3 notices, the one whose mark failed twice, the others once", ids)
	}
}

// The notice of a commit is queued in the write that records the result:
// when that write fails, the result is not recorded either, the cycle
// fails, and the next cycle finds the task, records it and tells.
func TestCommitToldWithItsResult(t *testing.T) {
	e := newEnv(t, "demo.yaml")
	e.cfg.Enforcement.Mode = "enforce"
	r := e.runner(t)
	cycle(t, r, t0) // the customer is warned first
	e.sqlOn(t, `CREATE TRIGGER disk_full BEFORE INSERT ON notices WHEN new.kind = 'action'
BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;`)
	n := len(e.sink.Messages())
	due := t0.Add(e.cfg.Enforcement.MinNotice + time.Minute)
	if _, err := r.Cycle(context.Background(), due); err == nil {
		t.Fatal("a cycle whose commit notice could not be queued succeeded")
	}
	running, err := r.ledger.Running(context.Background())
	if err != nil || len(running) == 0 {
		t.Fatalf("running actions %v (%v): the result was recorded without its notice", running, err)
	}
	e.sqlOn(t, `DROP TRIGGER disk_full`)

	cycle(t, r, due.Add(10*time.Minute))
	told := false
	for _, m := range messages(t, e.sink, n) {
		if m.to[0] == "noc@globex.example" && strings.Contains(m.subject, "committed") && strings.Contains(m.body, "before-cms-migration") {
			told = true
		}
	}
	if !told {
		t.Error("the commit found after the failed write was never told to the customer")
	}
}
