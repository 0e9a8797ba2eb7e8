package ledger

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/pgtest"
)

var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// onPostgres is set while TestMain runs the suite a second time, on
// PostgreSQL: every test runs on both backends.
var onPostgres bool

func TestMain(m *testing.M) {
	code := m.Run()
	if why := pgtest.Start(); why != "" {
		fmt.Println("ledger: the suite did NOT run on PostgreSQL:", why)
	} else {
		fmt.Println("ledger: the same suite on PostgreSQL")
		onPostgres = true
		if c := m.Run(); c != 0 {
			code = c
		}
		pgtest.Stop()
	}
	os.Exit(code)
}

// stateT returns a new, empty ledger location on the backend under test: a
// file name, or a DSN of a schema of its own.
func stateT(t testing.TB) string {
	t.Helper()
	if onPostgres {
		return pgtest.Schema(t)
	}
	return filepath.Join(t.TempDir(), "ledger.db")
}

// sqliteOnly skips a test of SQLite's file handling on PostgreSQL.
func sqliteOnly(t *testing.T) {
	if onPostgres {
		t.Skip("about the SQLite file")
	}
}

func openT(t testing.TB) (*Ledger, string) {
	t.Helper()
	path := stateT(t)
	l, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, path
}

// snap builds a facts.Snapshot the way the collector does.
func snap(vcenter, vmUUID, id string, created time.Time) facts.Snapshot {
	vm := &facts.VM{VCenter: vcenter, InstanceUUID: vmUUID, Name: "vm-" + vmUUID, MoRef: "vm-" + id}
	return facts.Snapshot{VM: vm, ID: id, Name: "name-" + id, Created: created}
}

func seen(s facts.Snapshot, customer, creator string, size int64) Seen {
	return Seen{Key: s.Key(), VCenter: s.VM.VCenter, VM: s.VM.Name, VMMoRef: s.VM.MoRef, Snapshot: s.Name,
		Customer: customer, Creator: creator, SizeBytes: size}
}

func notice(id, kind, customer string, items ...Item) Notice {
	to := []string{"ops@" + customer + ".example"}
	if kind == "support" {
		to = []string{"support@provider.example"}
	}
	return Notice{MessageID: "<" + id + "@snapwarden>", Channel: "email", Kind: kind, Customer: customer,
		Recipients: to, Subject: "snapshots " + id, Body: []byte("Subject: " + id + "\r\n\r\nbody\r\n"), Items: items}
}

func item(s facts.Snapshot, action, reason string) Item {
	return Item{Key: s.Key(), Action: action, Reason: reason}
}

func record(t testing.TB, l *Ledger, r Record) int64 {
	t.Helper()
	id, err := l.Record(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func pendingByMessageID(t *testing.T, l *Ledger) map[string]Notice {
	t.Helper()
	ns, err := l.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Notice{}
	for _, n := range ns {
		m[n.MessageID] = n
	}
	return m
}

// deliverT delivers notice n to each of its recipients at at, the way the
// cycle does: marked sending, then sent.
func deliverT(t testing.TB, l *Ledger, n Notice, at time.Time) {
	t.Helper()
	ctx := context.Background()
	for _, d := range n.Deliveries {
		if err := l.Sending(ctx, n.ID, d.Address, at); err != nil {
			t.Fatal(err)
		}
		if err := l.MarkRecipientSent(ctx, n.ID, d.Address, at); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	ctx := context.Background()
	l, _ := openT(t)
	parsed, err := time.Parse(time.RFC3339Nano, "2026-10-02T10:11:12.987654321+02:00")
	if err != nil {
		t.Fatal(err)
	}
	snaps := []facts.Snapshot{
		snap("vc1", "uuid-a", "snapshot-1", time.Date(2026, 10, 1, 8, 30, 15, 123456789, time.UTC)),
		snap("vc1", "uuid-b", "snapshot-2", time.Date(2026, 10, 1, 8, 30, 15, 0, time.FixedZone("CEST", 7200))),
		snap("vc1", "uuid-c", "snapshot-3", parsed),
		snap("vc1", "uuid-d", "snapshot-4", parsed.Truncate(time.Second)),
	}
	r := Record{Started: t0, Finished: t0, Answered: []string{"vc1"}}
	for _, s := range snaps {
		r.Snapshots = append(r.Snapshots, seen(s, "acme", "", 1))
	}
	r.Notices = []Notice{notice("n1", "customer", "acme", item(snaps[2], "warn", ""))}
	record(t, l, r)

	hist, err := l.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != len(snaps) {
		t.Fatalf("history has %d entries, want %d", len(hist), len(snaps))
	}
	for _, s := range snaps {
		if _, ok := hist[s.Key()]; !ok {
			t.Errorf("history lookup of %s failed", s.Key())
		}
	}
	for k := range hist {
		found := false
		for _, s := range snaps {
			found = found || k == s.Key()
		}
		if !found {
			t.Errorf("returned key %#v equals no snapshot's Key()", k)
		}
	}
	ps, err := l.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || len(ps[0].Items) != 1 || ps[0].Items[0].Key != snaps[2].Key() {
		t.Fatalf("pending item key does not round-trip: %+v", ps)
	}
	if _, err := l.StartAction(ctx, Action{Key: snaps[1].Key(), Kind: "remove", StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	run, err := l.Running(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(run) != 1 || run[0].Key != snaps[1].Key() {
		t.Fatalf("running action key does not round-trip: %+v", run)
	}
	known, err := l.Known(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if !known(s.Key()) {
			t.Errorf("Known(%s) = false", s.Key())
		}
	}
}

func TestHistoryAcrossCycles(t *testing.T) {
	ctx := context.Background()
	l, _ := openT(t)
	c := t0.Add(-48 * time.Hour)
	a := snap("vc1", "uuid-a", "snapshot-1", c)
	b := snap("vc1", "uuid-b", "snapshot-2", c)
	x := snap("vc2", "uuid-x", "snapshot-3", c) // on the vCenter that fails in cycle 2
	d := snap("vc1", "uuid-d", "snapshot-4", c) // creator learnt only in cycle 2

	// Cycle 1: all four seen; a warned, b escalated as unowned, x blocked.
	record(t, l, Record{
		Started: t0, Finished: t0.Add(time.Minute), Mode: "enforce", Summary: "4 snapshots",
		Snapshots: []Seen{seen(a, "acme", "alice", 100), seen(b, "", "bob", 200), seen(x, "initech", "", 300), seen(d, "acme", "", 1)},
		Answered:  []string{"vc1", "vc2"},
		Notices: []Notice{
			notice("c1-acme", "customer", "acme", item(a, "warn", "first-notice")),
			notice("c1-support", "support", "", item(b, "unowned", "no-owner"), item(x, "blocked", "guard-window")),
		},
	})
	hist, err := l.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ha := hist[a.Key()]
	if !ha.FirstSeen.Equal(t0) || ha.Creator != "alice" || ha.CustomerNotices != 1 || !ha.LastCustomerNotice.Equal(t0.Add(time.Minute)) {
		t.Errorf("a after cycle 1 = %+v", ha)
	}
	if !ha.WarnedAt.IsZero() {
		t.Errorf("a WarnedAt = %v before the notice was sent", ha.WarnedAt)
	}
	if hb := hist[b.Key()]; hb.Escalations != 1 || !hb.LastEscalation.Equal(t0.Add(time.Minute)) || hb.CustomerNotices != 0 {
		t.Errorf("b after cycle 1 = %+v", hb)
	}
	if hx := hist[x.Key()]; hx.BlockedReason != "guard-window" || hx.Escalations != 0 {
		t.Errorf("x after cycle 1 = %+v", hx)
	}

	sent := t0.Add(5 * time.Minute)
	deliverT(t, l, pendingByMessageID(t, l)["<c1-acme@snapwarden>"], sent)
	if hist, err = l.History(ctx); err != nil {
		t.Fatal(err)
	}
	if got := hist[a.Key()].WarnedAt; !got.Equal(sent) {
		t.Errorf("a WarnedAt after delivery = %v, want %v", got, sent)
	}

	// Cycle 2: vc2 fails, so x must stay open although unseen; b vanished
	// from vc1, which answered, so b is resolved. a has no creator and a
	// new size; d's creator is learnt now.
	t1 := t0.Add(time.Hour)
	record(t, l, Record{
		Started: t1, Finished: t1.Add(time.Minute), Mode: "enforce",
		Errors:    []string{"vc2: connection refused"},
		Snapshots: []Seen{seen(a, "acme", "", 150), seen(d, "acme", "carol", 1)},
		Answered:  []string{"vc1"},
		Notices: []Notice{
			notice("c2-acme", "customer", "acme", item(a, "remind", "reminder-due")),
			notice("c2-support", "support", "", item(x, "blocked", "guard-datastore"), item(x, "escalate", "overdue")),
		},
	})
	if hist, err = l.History(ctx); err != nil {
		t.Fatal(err)
	}
	ha = hist[a.Key()]
	if !ha.FirstSeen.Equal(t0) || ha.Creator != "alice" {
		t.Errorf("a lost first sight or creator: %+v", ha)
	}
	if ha.CustomerNotices != 2 || !ha.LastCustomerNotice.Equal(t1.Add(time.Minute)) || !ha.WarnedAt.Equal(sent) {
		t.Errorf("a notices after cycle 2 = %+v (pending remind must count)", ha)
	}
	if _, ok := hist[b.Key()]; ok {
		t.Errorf("b vanished from an answering vCenter but is still open")
	}
	hx := hist[x.Key()]
	if hx.FirstSeen.IsZero() {
		t.Errorf("x of the failed vCenter was resolved")
	}
	if hx.BlockedReason != "guard-datastore" || hx.Escalations != 1 || !hx.LastEscalation.Equal(t1.Add(time.Minute)) {
		t.Errorf("x after cycle 2 = %+v", hx)
	}
	if hd := hist[d.Key()]; hd.Creator != "carol" {
		t.Errorf("d creator = %q, want carol (first non-empty)", hd.Creator)
	}

	// Cycle 3: a later, different creator never replaces the recorded one;
	// b reappears with the same key and is open again; the size is unchanged.
	t2 := t1.Add(time.Hour)
	record(t, l, Record{
		Started: t2, Finished: t2, Mode: "enforce",
		Snapshots: []Seen{seen(a, "acme", "mallory", 150), seen(b, "", "", 200), seen(d, "acme", "", 1)},
		Answered:  []string{"vc1"},
	})
	if hist, err = l.History(ctx); err != nil {
		t.Fatal(err)
	}
	if got := hist[a.Key()].Creator; got != "alice" {
		t.Errorf("a creator = %q after a different one was reported, want alice", got)
	}
	hb, ok := hist[b.Key()]
	if !ok || !hb.FirstSeen.Equal(t0) || hb.Creator != "bob" || hb.Escalations != 1 {
		t.Errorf("b after reappearing = %+v, open %v", hb, ok)
	}

	// Size samples: only changes are kept (100 then 150, not a second 150).
	var samples int
	if err := l.db.QueryRow(`SELECT COUNT(*) FROM size_samples WHERE key = ?`, a.Key().String()).Scan(&samples); err != nil {
		t.Fatal(err)
	}
	if samples != 2 {
		t.Errorf("a has %d size samples, want 2", samples)
	}

	known, err := l.Known(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := snap("vc1", "uuid-a", "snapshot-1", c.Add(time.Second)) // same moref, re-created
	if !known(a.Key()) || !known(x.Key()) || known(other.Key()) {
		t.Errorf("Known: a %v x %v re-created %v", known(a.Key()), known(x.Key()), known(other.Key()))
	}
}

func TestOutbox(t *testing.T) {
	ctx := context.Background()
	l, _ := openT(t)
	s := snap("vc1", "uuid-a", "snapshot-1", t0.Add(-time.Hour))
	n1 := notice("late", "customer", "acme", item(s, "warn", ""))
	n1.CreatedAt = t0.Add(2 * time.Second)
	n2 := notice("early", "support", "", item(s, "escalate", "overdue"))
	n2.CreatedAt = t0.Add(time.Second)
	n3 := Notice{MessageID: "hook-1", Channel: "webhook", Kind: "support", Recipients: []string{"support-webhook"},
		Subject: "escalation", Body: []byte(`{"a":1}`)} // CreatedAt from Finished
	record(t, l, Record{Started: t0, Finished: t0, Snapshots: []Seen{seen(s, "acme", "", 1)}, Notices: []Notice{n1, n2, n3}})

	ps, err := l.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, p := range ps {
		order = append(order, p.MessageID)
	}
	if got := strings.Join(order, " "); got != "hook-1 <early@snapwarden> <late@snapwarden>" {
		t.Fatalf("pending order = %s", got)
	}
	if p := ps[2]; p.State != StatePending || p.Kind != "customer" || p.Customer != "acme" || p.Recipients[0] != "ops@acme.example" ||
		len(p.Items) != 1 || p.Items[0].Action != "warn" || !p.CreatedAt.Equal(n1.CreatedAt) || !p.SentAt.IsZero() {
		t.Errorf("pending notice = %+v", p)
	}
	hook, early, late := ps[0].ID, ps[1].ID, ps[2].ID
	const hookTo, earlyTo = "support-webhook", "support@provider.example"

	// A temporary failure keeps it pending, counting the attempt.
	if err := l.Sending(ctx, hook, hookTo, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkRecipientFailed(ctx, hook, hookTo, t0.Add(time.Minute), "503 try later", false); err != nil {
		t.Fatal(err)
	}
	p := pendingByMessageID(t, l)["hook-1"]
	if p.State != StatePending || p.Attempts != 1 || p.LastError != "503 try later" {
		t.Errorf("after a temporary failure: %+v", p)
	}
	// A permanent failure ends it.
	if err := l.Sending(ctx, hook, hookTo, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkRecipientFailed(ctx, hook, hookTo, t0.Add(2*time.Minute), "410 gone", true); err != nil {
		t.Fatal(err)
	}
	deliverT(t, l, ps[1], t0.Add(3*time.Minute))
	left := pendingByMessageID(t, l)
	if len(left) != 1 || left["<late@snapwarden>"].ID != late {
		t.Errorf("pending after failure and send = %v", left)
	}
	// Repeating MarkRecipientSent is harmless; other transitions out of a final state are refused.
	if err := l.MarkRecipientSent(ctx, early, earlyTo, t0.Add(4*time.Minute)); err != nil {
		t.Errorf("second MarkRecipientSent: %v", err)
	}
	if err := l.MarkRecipientSent(ctx, hook, hookTo, t0.Add(4*time.Minute)); err == nil || !strings.Contains(err.Error(), "failed, not pending") {
		t.Errorf("MarkRecipientSent of a failed recipient: %v", err)
	}
	if err := l.MarkRecipientFailed(ctx, early, earlyTo, t0, "x", false); err == nil {
		t.Errorf("MarkRecipientFailed of a sent recipient succeeded")
	}
	if err := l.MarkRecipientSent(ctx, 9999, earlyTo, t0); err == nil || !strings.Contains(err.Error(), "no such recipient") {
		t.Errorf("MarkRecipientSent of an unknown notice: %v", err)
	}
	var state string
	var attempts int
	if err := l.db.QueryRow(`SELECT state, attempts FROM notices WHERE id = ?`, hook).Scan(&state, &attempts); err != nil {
		t.Fatal(err)
	}
	if state != StateFailed || attempts != 2 {
		t.Errorf("webhook notice: state %s attempts %d, want failed 2", state, attempts)
	}

	// Bad notices are refused before anything is written.
	bad := notice("bad", "digest", "acme")
	if _, err := l.Record(ctx, Record{Started: t0, Notices: []Notice{bad}}); err == nil {
		t.Errorf("a notice of kind digest was accepted")
	}
	dup := notice("late", "customer", "acme")
	if _, err := l.Record(ctx, Record{Started: t0, Snapshots: []Seen{seen(snap("vc1", "u", "s", t0), "", "", 1)}, Notices: []Notice{dup}}); err == nil {
		t.Errorf("a duplicate Message-ID was accepted")
	}
	known, _ := l.Known(ctx)
	if u := snap("vc1", "u", "s", t0); known(u.Key()) {
		t.Errorf("a failed Record left its snapshots behind: not one transaction")
	}
}

func TestCrashBeforeDelivery(t *testing.T) {
	ctx := context.Background()
	path := stateT(t)
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s := snap("vc1", "uuid-a", "snapshot-1", t0.Add(-time.Hour))
	n := notice("digest-1", "customer", "acme", item(s, "warn", ""))
	n.Body = append([]byte("Message-ID: <digest-1@snapwarden>\r\nContent-Type: text/plain; charset=ISO-8859-1\r\n\r\nCaf\xe9\r\n"), 0, 0xff)
	record(t, l, Record{Started: t0, Finished: t0, Snapshots: []Seen{seen(s, "acme", "", 1)}, Notices: []Notice{n}})
	// The process dies here: delivery never reported back.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ps, err := l.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].MessageID != n.MessageID || !bytes.Equal(ps[0].Body, n.Body) || ps[0].Subject != n.Subject {
		t.Fatalf("after restart pending = %+v, want the same notice byte for byte", ps)
	}
	hist, err := l.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hist[s.Key()].CustomerNotices != 1 {
		t.Errorf("the queued notice is not counted after restart: %+v", hist[s.Key()])
	}
}

func TestLock(t *testing.T) {
	sqliteOnly(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state", "snapwarden")
	path := filepath.Join(dir, "ledger.db")
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("parent directory: %v %v, want mode 0700", fi.Mode().Perm(), err)
	}
	_, err = Open(ctx, path)
	want := fmt.Sprintf("ledger %s is in use by another snapwarden process (pid %d): stop it first, or point state: at another file", path, os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("second Open: %v\nwant: %s", err, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenReader(t *testing.T) {
	ctx := context.Background()
	w, path := openT(t)
	s := snap("vc1", "uuid-a", "snapshot-1", t0.Add(-time.Hour))
	record(t, w, Record{Started: t0, Finished: t0, Snapshots: []Seen{seen(s, "acme", "alice", 1)},
		Notices: []Notice{notice("n1", "customer", "acme", item(s, "warn", ""))}})

	r, err := OpenReader(ctx, path) // while the writer holds the lock
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hist, err := r.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := hist[s.Key()]; h.Creator != "alice" || h.CustomerNotices != 1 {
		t.Errorf("reader history = %+v", h)
	}
	ps, err := r.Pending(ctx)
	if err != nil || len(ps) != 1 {
		t.Errorf("reader pending = %v, %v", ps, err)
	}
	if _, err := r.Record(ctx, Record{Started: t0}); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Record through a reader: %v", err)
	}
	if err := r.Sending(ctx, ps[0].ID, ps[0].Deliveries[0].Address, t0); err == nil {
		t.Errorf("Sending through a reader succeeded")
	}
	if err := r.MarkRecipientSent(ctx, ps[0].ID, ps[0].Deliveries[0].Address, t0); err == nil {
		t.Errorf("MarkRecipientSent through a reader succeeded")
	}
	// The writer still writes while the reader is open.
	t1 := t0.Add(time.Hour)
	record(t, w, Record{Started: t1, Finished: t1, Snapshots: []Seen{seen(s, "acme", "", 1)}, Answered: []string{"vc1"}})
	if hist, err = r.History(ctx); err != nil || len(hist) != 1 {
		t.Errorf("reader after a second write: %v %v", hist, err)
	}

	// With the writer gone (and its WAL checkpointed away) a reader still reads.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r2, err := OpenReader(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if hist, err := r2.History(ctx); err != nil || len(hist) != 1 {
		t.Errorf("reader after the writer closed: %v %v", hist, err)
	}
	r2.Close()
	if onPostgres {
		return
	}

	// A file a writer created but has not migrated yet reads as empty.
	blank := filepath.Join(t.TempDir(), "blank.db")
	if err := os.WriteFile(blank, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := OpenReader(ctx, blank)
	if err != nil {
		t.Fatalf("OpenReader of an empty file: %v", err)
	}
	if h, err := b.History(ctx); err != nil || len(h) != 0 {
		t.Errorf("History of an empty file = %v, %v", h, err)
	}
	b.Close()

	missing := filepath.Join(t.TempDir(), "none", "ledger.db")
	m, err := OpenReader(ctx, missing)
	if err != nil {
		t.Fatalf("OpenReader of a missing file: %v", err)
	}
	if h, err := m.History(ctx); err != nil || len(h) != 0 {
		t.Errorf("History of a missing ledger = %v, %v", h, err)
	}
	if known, err := m.Known(ctx); err != nil || known(s.Key()) {
		t.Errorf("Known of a missing ledger: %v", err)
	}
	if ps, err := m.Pending(ctx); err != nil || len(ps) != 0 {
		t.Errorf("Pending of a missing ledger = %v, %v", ps, err)
	}
	if ev, err := m.Audit(ctx, Filter{}); err != nil || len(ev) != 0 {
		t.Errorf("Audit of a missing ledger = %v, %v", ev, err)
	}
	if run, err := m.Running(ctx); err != nil || len(run) != 0 {
		t.Errorf("Running of a missing ledger = %v, %v", run, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Errorf("a reader created %s", filepath.Dir(missing))
	}
}

func TestActions(t *testing.T) {
	ctx := context.Background()
	l, _ := openT(t)
	s := snap("vc1", "uuid-a", "snapshot-1", t0.Add(-30*24*time.Hour))
	record(t, l, Record{Started: t0, Finished: t0, Snapshots: []Seen{seen(s, "acme", "", 1)}, Answered: []string{"vc1"}})

	a := Action{Key: s.Key(), VM: "web01", Snapshot: "before-upgrade", Customer: "acme", Kind: "remove", StartedAt: t0.Add(time.Minute)}
	id, err := l.StartAction(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetTask(ctx, id, "task-12"); err != nil {
		t.Fatal(err)
	}
	run, err := l.Running(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(run) != 1 || run[0].ID != id || run[0].TaskID != "task-12" || run[0].VCenter != "vc1" || run[0].Result != "" ||
		!run[0].StartedAt.Equal(a.StartedAt) || !run[0].FinishedAt.IsZero() {
		t.Fatalf("running = %+v", run)
	}
	hist, err := l.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := hist[s.Key()]; !h.InFlight || h.TaskID != "task-12" || h.Attempts != 0 {
		t.Errorf("history while running = %+v", h)
	}

	if err := l.FinishAction(ctx, id, t0.Add(2*time.Minute), ResultError, "FileLocked", nil); err != nil {
		t.Fatal(err)
	}
	if err := l.FinishAction(ctx, id, t0.Add(3*time.Minute), ResultSuccess, "", nil); err == nil {
		t.Errorf("finishing an action twice succeeded")
	}
	if err := l.FinishAction(ctx, id, t0, "ok", "", nil); err == nil {
		t.Errorf("result ok accepted")
	}
	// A refusal is not a failed attempt, but it is the latest one.
	a.StartedAt = t0.Add(time.Hour)
	id2, err := l.StartAction(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FinishAction(ctx, id2, t0.Add(time.Hour+time.Second), ResultRefused, "consolidation already running", nil); err != nil {
		t.Fatal(err)
	}
	a.StartedAt = t0.Add(2 * time.Hour)
	id3, err := l.StartAction(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FinishAction(ctx, id3, t0.Add(2*time.Hour+time.Minute), ResultError, "InsufficientDisk", nil); err != nil {
		t.Fatal(err)
	}
	if hist, err = l.History(ctx); err != nil {
		t.Fatal(err)
	}
	h := hist[s.Key()]
	if h.InFlight || h.TaskID != "" || h.Attempts != 2 || h.LastFault != "InsufficientDisk" || !h.LastAttemptAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("history after attempts = %+v", h)
	}
	if h.DiskModeRefusal != "" {
		t.Errorf("disk-mode refusal %q, want none: the latest attempt failed", h.DiskModeRefusal)
	}
	// The latest attempt refused for a non-persistent disk: the planner
	// holds the snapshot back on it.
	a.StartedAt = t0.Add(3 * time.Hour)
	id4, err := l.StartAction(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FinishAction(ctx, id4, t0.Add(3*time.Hour+time.Second), ResultRefused, "disk-mode: Hard disk 2 (append)", nil); err != nil {
		t.Fatal(err)
	}
	if hist, err = l.History(ctx); err != nil {
		t.Fatal(err)
	}
	if h := hist[s.Key()]; h.DiskModeRefusal != "Hard disk 2 (append)" || !h.DiskModeRefusedAt.Equal(t0.Add(3*time.Hour+time.Second)) || h.Attempts != 2 {
		t.Errorf("history after a disk-mode refusal = %+v", h)
	}
	if run, err = l.Running(ctx); err != nil || len(run) != 0 {
		t.Errorf("running after finish = %v, %v", run, err)
	}
	if err := l.SetTask(ctx, id, "task-13"); err == nil {
		t.Errorf("SetTask on a finished action succeeded")
	}
	if _, err := l.StartAction(ctx, Action{Key: s.Key(), Kind: "delete", StartedAt: t0}); err == nil {
		t.Errorf("kind delete accepted")
	}
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	l, _ := openT(t)
	web := snap("vc1", "uuid-web", "snapshot-1", t0.Add(-time.Hour))
	web.VM.Name = "web01"
	db := snap("vc1", "uuid-db", "snapshot-2", t0.Add(-time.Hour))
	db.VM.Name = "db01"
	record(t, l, Record{Started: t0, Finished: t0, Answered: []string{"vc1"},
		Snapshots: []Seen{seen(web, "acme", "alice", 1), seen(db, "initech", "", 1)},
		Notices: []Notice{
			notice("n1", "customer", "acme", item(web, "warn", "first-notice")),
			notice("n2", "support", "", item(db, "unowned", "")),
		}})
	ps := pendingByMessageID(t, l)
	deliverT(t, l, ps["<n1@snapwarden>"], t0.Add(time.Minute))
	id, err := l.StartAction(ctx, Action{Key: web.Key(), VM: "web01", Snapshot: web.Name, Customer: "acme", Kind: "remove", StartedAt: t0.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetTask(ctx, id, "task-12"); err != nil {
		t.Fatal(err)
	}
	if err := l.FinishAction(ctx, id, t0.Add(2*time.Hour+time.Minute), ResultSuccess, "", nil); err != nil {
		t.Fatal(err)
	}
	t3 := t0.Add(3 * time.Hour)
	record(t, l, Record{Started: t3, Finished: t3, Answered: []string{"vc1"}, Snapshots: []Seen{seen(db, "initech", "", 1)}})

	all, err := l.Audit(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i, e := range all {
		if i > 0 && e.At.Before(all[i-1].At) {
			t.Errorf("events not sorted by time at %d", i)
		}
		lines = append(lines, e.At.Format("15:04")+" "+e.Kind+" "+e.VM+" "+e.Customer+" "+e.What)
	}
	want := []string{
		"09:00 first-seen web01 acme first seen, created by alice",
		"09:00 first-seen db01 initech first seen",
		"09:00 notice web01 acme warn email to ops@acme.example (sent): first-notice",
		"09:00 notice db01 initech unowned email to support@provider.example (pending)",
		"11:00 action web01 acme remove task task-12: success",
		"12:00 resolved web01 acme gone from vCenter",
	}
	if got := strings.Join(lines, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if e := all[2]; e.MessageID != "<n1@snapwarden>" || e.Result != StateSent {
		t.Errorf("notice event = %+v", e)
	}
	if e := all[4]; e.TaskID != "task-12" || e.Result != ResultSuccess {
		t.Errorf("action event = %+v", e)
	}

	count := func(f Filter) int {
		ev, err := l.Audit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(ev)
	}
	if n := count(Filter{VM: "WEB01"}); n != 4 {
		t.Errorf("VM filter: %d events, want 4", n)
	}
	if n := count(Filter{Customer: "initech"}); n != 2 {
		t.Errorf("customer filter: %d events, want 2 (the support notice counts for its snapshot's customer)", n)
	}
	if n := count(Filter{Since: t0.Add(time.Hour)}); n != 2 {
		t.Errorf("since filter: %d events, want 2", n)
	}
	if n := count(Filter{VM: "web01", Customer: "initech"}); n != 0 {
		t.Errorf("VM and customer filter: %d events, want 0", n)
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	l, path := openT(t)
	s := snap("vc1", "uuid-a", "snapshot-1", t0)
	record(t, l, Record{Started: t0, Finished: t0, Snapshots: []Seen{seen(s, "acme", "alice", 1)}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// raw runs one statement on the ledger outside the package's code.
	raw := func(q string, scan ...any) {
		t.Helper()
		driverName := "sqlite"
		if onPostgres {
			driverName = "pgx"
		}
		db, err := sql.Open(driverName, path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if len(scan) > 0 {
			err = db.QueryRow(q).Scan(scan...)
		} else {
			_, err = db.Exec(q)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	getVersion, setVersion := "PRAGMA user_version", "PRAGMA user_version = "
	if onPostgres {
		getVersion, setVersion = "SELECT version FROM schema_version", "UPDATE schema_version SET version = "
	}
	version := func() (v int) {
		raw(getVersion, &v)
		return v
	}
	if v := version(); v != len(migrations) {
		t.Fatalf("schema version = %d, want %d", v, len(migrations))
	}
	// Opening again applies nothing and keeps the data.
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := l.History(ctx)
	if err != nil || hist[s.Key()].Creator != "alice" {
		t.Fatalf("after re-open: %v %v", hist, err)
	}
	if !onPostgres {
		var mode string
		if err := l.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("journal_mode = %q %v", mode, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != len(migrations) {
		t.Fatalf("schema version after re-open = %d", v)
	}

	// A ledger written by a newer snapwarden is refused, not mangled.
	raw(setVersion + strconv.Itoa(len(migrations)+1))
	if _, err := Open(ctx, path); err == nil || !strings.Contains(err.Error(), "newer than this snapwarden knows") {
		t.Errorf("Open of a newer ledger: %v", err)
	}
	if _, err := OpenReader(ctx, path); err == nil || !strings.Contains(err.Error(), "newer than this snapwarden knows") {
		t.Errorf("OpenReader of a newer ledger: %v", err)
	}
	if onPostgres {
		return
	}
	// The failed Open released its lock.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(path + "-wal")
	os.Remove(path + "-shm")
	l, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after a refused Open: %v", err)
	}
	l.Close()
}

// Instances starting together on one database migrate it once: the others
// wait for the migration lock and find the schema current.
func TestConcurrentOpen(t *testing.T) {
	if !onPostgres {
		t.Skip("one SQLite file has one writer (TestLock)")
	}
	ctx := context.Background()
	path := stateT(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			l, err := Open(ctx, path)
			if err == nil {
				err = l.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	l, err := OpenReader(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var versions int
	if err := l.db.QueryRow("SELECT count(*) FROM schema_version").Scan(&versions); err != nil || versions != 1 {
		t.Errorf("schema_version rows = %d, %v; want 1", versions, err)
	}
}

// BenchmarkRecord20000 records cycles of 20,000 snapshots already known (the
// steady state of a large fleet), a tenth of them with a new size.
func BenchmarkRecord20000(b *testing.B) {
	l, _ := openT(b)
	const n = 20000
	created := t0.Add(-24 * time.Hour)
	seenList := make([]Seen, n)
	for i := range seenList {
		s := snap(fmt.Sprintf("vc%d", i%4), fmt.Sprintf("uuid-%05d", i/3), fmt.Sprintf("snapshot-%d", i), created)
		seenList[i] = seen(s, fmt.Sprintf("cust%d", i%50), "", int64(i))
	}
	answered := []string{"vc0", "vc1", "vc2", "vc3"}
	record(b, l, Record{Started: t0, Finished: t0, Snapshots: seenList, Answered: answered})
	at := t0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		at = at.Add(time.Hour)
		for j := i % 10; j < n; j += 10 {
			seenList[j].SizeBytes++
		}
		record(b, l, Record{Started: at, Finished: at, Snapshots: seenList, Answered: answered})
	}
}

// BenchmarkHistory20000 reads the history of 20,000 open snapshots, each
// named in one queued warning, as the planner does every cycle.
func BenchmarkHistory20000(b *testing.B) {
	l, _ := openT(b)
	const n = 20000
	seenList := make([]Seen, n)
	for i := range seenList {
		s := snap(fmt.Sprintf("vc%d", i%4), fmt.Sprintf("uuid-%05d", i/3), fmt.Sprintf("snapshot-%d", i), t0.Add(-time.Hour))
		seenList[i] = seen(s, "c", "alice", int64(i))
	}
	var notices []Notice
	for i := 0; i < n/10; i++ {
		no := Notice{MessageID: fmt.Sprintf("<%d@bench>", i), Channel: "email", Kind: "customer", Recipients: []string{"ops@c.example"}}
		for j := 0; j < 10; j++ {
			no.Items = append(no.Items, Item{Key: seenList[i*10+j].Key, Action: "warn"})
		}
		notices = append(notices, no)
	}
	record(b, l, Record{Started: t0, Finished: t0, Snapshots: seenList, Notices: notices})
	for b.Loop() {
		h, err := l.History(context.Background())
		if err != nil || len(h) != n {
			b.Fatal(len(h), err)
		}
	}
}

// Delivery is per recipient: a rejected contact does not settle the notice
// while another is owed; sent_at is the first acceptance; a rejection is
// reported once; a notice that reached nobody is reported with its items.
func TestDeliveryPerRecipient(t *testing.T) {
	ctx := context.Background()
	l, path := openT(t)
	s := snap("vc1", "uuid-a", "snapshot-1", t0.Add(-time.Hour))
	two := notice("two", "customer", "acme", item(s, "warn", ""))
	two.Recipients = []string{"bad@acme.example", "ops@acme.example"}
	one := notice("one", "customer", "initech", item(s, "warn", ""))
	record(t, l, Record{Started: t0, Finished: t0, Snapshots: []Seen{seen(s, "acme", "", 1)}, Notices: []Notice{two, one}})
	ps := pendingByMessageID(t, l)
	n2, n1 := ps[two.MessageID], ps[one.MessageID]
	if len(n2.Deliveries) != 2 || n2.Deliveries[0] != (Delivery{Address: "bad@acme.example", State: StatePending}) {
		t.Fatalf("deliveries = %+v", n2.Deliveries)
	}

	if err := l.Sending(ctx, n2.ID, "bad@acme.example", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkRecipientFailed(ctx, n2.ID, "bad@acme.example", t0.Add(time.Minute), "550 5.1.1 no such user", true); err != nil {
		t.Fatal(err)
	}
	if p := pendingByMessageID(t, l)[two.MessageID]; p.State != StatePending || !p.SentAt.IsZero() ||
		p.Deliveries[0].State != StateFailed || p.Deliveries[0].Attempts != 1 || p.Deliveries[1].State != StatePending {
		t.Fatalf("after one rejection: %+v", p)
	}
	// A crash after Sending: the recipient is still owed, marked sending.
	if err := l.Sending(ctx, n2.ID, "ops@acme.example", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if p := pendingByMessageID(t, l)[two.MessageID]; p.Deliveries[1].State != StateSending || p.Deliveries[1].Attempts != 1 {
		t.Fatalf("after a crash while sending: %+v", p.Deliveries)
	}
	if err := l.Sending(ctx, n2.ID, "ops@acme.example", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	sentAt := t0.Add(2 * time.Minute)
	if err := l.MarkRecipientSent(ctx, n2.ID, "ops@acme.example", sentAt); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkRecipientSent(ctx, n2.ID, "ops@acme.example", sentAt.Add(time.Hour)); err != nil {
		t.Errorf("repeated MarkRecipientSent: %v", err)
	}
	if err := l.MarkRecipientSent(ctx, n2.ID, "bad@acme.example", sentAt); err == nil {
		t.Errorf("MarkRecipientSent of a rejected recipient succeeded")
	}
	if err := l.Sending(ctx, n2.ID, "ops@acme.example", sentAt); err == nil {
		t.Errorf("Sending to a recipient already sent succeeded")
	}
	var state string
	var sent sql.NullInt64
	var attempts int
	if err := l.db.QueryRow(`SELECT state, sent_at, attempts FROM notices WHERE id = ?`, n2.ID).Scan(&state, &sent, &attempts); err != nil {
		t.Fatal(err)
	}
	if state != StateSent || !fromNanos(sent).Equal(sentAt) || attempts != 2 {
		t.Errorf("notice after one acceptance: state %s sent_at %v attempts %d; want sent at %v, 2 attempts", state, fromNanos(sent), attempts, sentAt)
	}

	// The only contact of initech rejects: the notice failed, reaching nobody.
	if err := l.MarkRecipientFailed(ctx, n1.ID, "ops@initech.example", t0.Add(3*time.Minute), "550 mailbox unavailable", true); err != nil {
		t.Fatal(err)
	}
	if err := l.db.QueryRow(`SELECT state, sent_at FROM notices WHERE id = ?`, n1.ID).Scan(&state, &sent); err != nil || state != StateFailed || sent.Valid {
		t.Errorf("notice rejected by all: state %s sent_at %v (%v); want failed, NULL", state, sent, err)
	}
	bs, err := l.Unreported(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].Address != "bad@acme.example" || bs[0].Customer != "acme" || bs[0].Reply != "550 5.1.1 no such user" ||
		bs[0].Unreachable || bs[1].Address != "ops@initech.example" || !bs[1].Unreachable || len(bs[1].Items) != 1 || bs[1].Items[0].Key != s.Key() {
		t.Fatalf("unreported = %+v", bs)
	}
	sup := notice("sup", "support", "")
	sup.Reports = bs
	record(t, l, Record{Started: t0.Add(time.Hour), Notices: []Notice{sup}})
	if bs, err := l.Unreported(ctx); err != nil || len(bs) != 0 {
		t.Errorf("after a support notice listed them, unreported = %+v %v", bs, err)
	}
}

// The result of an action and the notices telling of it are one write.
func TestFinishActionQueuesNotices(t *testing.T) {
	ctx := context.Background()
	l, _ := openT(t)
	s := snap("vc1", "uuid-a", "snapshot-1", t0.Add(-time.Hour))
	id, err := l.StartAction(ctx, Action{Key: s.Key(), Kind: "remove", StartedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
	bad := notice("bad", "action", "acme")
	bad.Recipients = nil
	if err := l.FinishAction(ctx, id, t0.Add(time.Minute), ResultSuccess, "", []Notice{bad}); err == nil {
		t.Fatal("a notice without recipients was accepted")
	}
	dup := notice("dup", "support", "")
	if err := l.FinishAction(ctx, id, t0.Add(time.Minute), ResultSuccess, "", []Notice{dup, dup}); err == nil {
		t.Fatal("a duplicate Message-ID was accepted")
	}
	if running, err := l.Running(ctx); err != nil || len(running) != 1 {
		t.Fatalf("a failed FinishAction finished the action anyway: running %v %v", running, err)
	}
	told := []Notice{notice("told-c", "action", "acme", item(s, ItemConsolidated, "task-1")), notice("told-s", "support", "", item(s, ItemConsolidated, "task-1"))}
	if err := l.FinishAction(ctx, id, t0.Add(time.Minute), ResultSuccess, "", told); err != nil {
		t.Fatal(err)
	}
	ps := pendingByMessageID(t, l)
	if len(ps) != 2 || ps["<told-c@snapwarden>"].Kind != KindAction || !ps["<told-s@snapwarden>"].CreatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("pending after FinishAction = %+v", ps)
	}
	if err := l.FinishAction(ctx, id, t0.Add(2*time.Minute), ResultGone, "", nil); err == nil {
		t.Errorf("finishing an action twice succeeded")
	}
}

// The recipients' migration gives the notices of an older ledger one recipient row per
// address in the notice's state; old failures count as reported.
func TestMigrationRecipients(t *testing.T) {
	ctx := context.Background()
	path := stateT(t)
	// The ledger as it was just before the recipients' migration.
	before := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "CREATE TABLE notice_recipients") })
	schema, version, empty := strings.Join(migrations[:before], ""), `PRAGMA user_version = `+strconv.Itoa(before)+`;`, `x''`
	driverName := "sqlite"
	if onPostgres {
		schema, version, empty = pgMigration(schema), `CREATE TABLE schema_version (version BIGINT NOT NULL);
INSERT INTO schema_version VALUES (`+strconv.Itoa(before)+`);`, `''::bytea`
		driverName = "pgx"
	}
	db, err := sql.Open(driverName, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schema + version + strings.ReplaceAll(`
INSERT INTO notices(id, message_id, channel, kind, customer, recipients, subject, body, state, attempts, created_at, sent_at)
VALUES (1, '<a@x>', 'email', 'customer', 'acme', '["a@acme.example","b@acme.example"]', 's', x'', 'sent', 1, 5, 6),
       (2, '<b@x>', 'email', 'customer', 'acme', '["a@acme.example"]', 's', x'', 'failed', 1, 5, NULL),
       (3, '<c@x>', 'email', 'support', '', '["support@p.example"]', 's', x'', 'pending', 0, 5, NULL);`, `x''`, empty)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	l, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var got []string
	if err := query(ctx, l.db, `SELECT notice_id || ' ' || address || ' ' || state || ' ' || CASE WHEN reported_at IS NULL THEN 0 ELSE 1 END
FROM notice_recipients ORDER BY notice_id, address`,
		func(r *sql.Rows) error {
			var s string
			err := r.Scan(&s)
			got = append(got, s)
			return err
		}); err != nil {
		t.Fatal(err)
	}
	want := "1 a@acme.example sent 0|1 b@acme.example sent 0|2 a@acme.example failed 1|3 support@p.example pending 0"
	if strings.Join(got, "|") != want {
		t.Errorf("recipients after migration:\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	if ps := pendingByMessageID(t, l); len(ps["<c@x>"].Deliveries) != 1 {
		t.Errorf("the pending notice has no recipient to deliver to: %+v", ps)
	}
}

// TestRemovalRate learns the speed of successful removals only: failures,
// refusals and empty snapshots teach nothing.
func TestRemovalRate(t *testing.T) {
	ctx := context.Background()
	l, _ := openT(t)
	if r, err := l.RemovalRate(ctx); err != nil || r != 0 {
		t.Fatalf("empty ledger: rate %v, %v; want 0 (the planner's default)", r, err)
	}
	const gib = int64(1) << 30
	act := func(id string, size int64, took time.Duration, result string) {
		t.Helper()
		s := snap("vc1", "uuid-"+id, id, t0.Add(-72*time.Hour))
		record(t, l, Record{Started: t0, Snapshots: []Seen{seen(s, "acme", "", size)}, Answered: []string{"vc1"}})
		aid, err := l.StartAction(ctx, Action{Key: s.Key(), Kind: "remove", StartedAt: t0})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.FinishAction(ctx, aid, t0.Add(took), result, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	act("snapshot-1", 10*gib, 100*time.Second, ResultSuccess)
	act("snapshot-2", 30*gib, 200*time.Second, ResultSuccess)
	act("snapshot-3", 100*gib, time.Second, ResultError)
	act("snapshot-4", 100*gib, time.Second, ResultRefused)
	act("snapshot-5", 0, time.Hour, ResultSuccess)
	r, err := l.RemovalRate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(40*gib) / 300; r != want {
		t.Fatalf("rate %.0f B/s, want %.0f (40 GiB in 300 s)", r, want)
	}
}

// TestVCenterIdentity: rows keyed by a vCenter's config name (a ledger from
// before keys used the instance UUID) move to the UUID the first time that
// vCenter answers, history and all; a later rename of the vCenter in the
// config keeps it, and `history` shows the current name.
func TestVCenterIdentity(t *testing.T) {
	ctx := context.Background()
	l, _ := openT(t)
	const uuid = "5e3b1c2a-0000-4000-8000-00000000c0de"
	old := snap("vc-east", "uuid-a", "snapshot-1", t0.Add(-72*time.Hour))
	record(t, l, Record{Started: t0, Snapshots: []Seen{seen(old, "acme", "alice", 5)}, Answered: []string{"vc-east"},
		Notices: []Notice{notice("n1", "customer", "acme", item(old, "warn", "first-notice"))}})
	id, err := l.StartAction(ctx, Action{Key: old.Key(), Kind: "remove", StartedAt: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.FinishAction(ctx, id, t0.Add(2*time.Minute), ResultError, "FileLocked", nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Acknowledge(ctx, Ack{Key: old.Key(), State: "overdue", By: "bob", Note: "customer called", At: t0,
		Until: t0.Add(48 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	now := old
	now.VM = &facts.VM{VCenter: "vc-east", VCenterID: uuid, InstanceUUID: "uuid-a", Name: old.VM.Name, MoRef: old.VM.MoRef}
	check := func(when string, ids map[string]string, at time.Time) {
		t.Helper()
		record(t, l, Record{Started: at, Snapshots: []Seen{seen(now, "acme", "", 6)}, Answered: []string{uuid}, VCenterIDs: ids})
		hist, err := l.History(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 1 {
			t.Fatalf("%s: %d open snapshots, want 1: %v", when, len(hist), hist)
		}
		h, ok := hist[now.Key()]
		if !ok || h.CustomerNotices != 1 || h.Attempts != 1 || h.Creator != "alice" || !h.FirstSeen.Equal(t0) {
			t.Errorf("%s: history under the UUID = %+v (found %v)", when, h, ok)
		}
		if r, err := l.RemovalRate(ctx); err != nil || r != 0 {
			t.Errorf("%s: rate %v %v", when, r, err)
		}
		if acks, err := l.Acks(ctx, at); err != nil || acks[now.Key()].By != "bob" {
			t.Errorf("%s: acknowledgement under the UUID: %v %v", when, acks, err)
		}
	}
	check("first answer", map[string]string{"vc-east": uuid}, t0.Add(time.Hour))
	check("renamed in the config", map[string]string{"vc-e": uuid}, t0.Add(2*time.Hour))

	var samples int
	if err := l.db.QueryRow(`SELECT COUNT(*) FROM size_samples WHERE key = ?`, now.Key().String()).Scan(&samples); err != nil || samples != 2 {
		t.Errorf("size samples under the UUID: %d %v, want 2 (5 then 6 bytes)", samples, err)
	}
	evs, err := l.Audit(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.VCenter != "vc-e" {
			t.Errorf("history shows vCenter %q for %s, want its current name vc-e", e.VCenter, e.Kind)
		}
	}
}

// A notice counts for the customer it was addressed to, and for no one else:
// not for the next owner of a VM that changed hands, and a notice relayed to
// support (owner unknown) warns no customer even once delivered.
func TestHistoryNoticesPerCustomer(t *testing.T) {
	ctx := context.Background()
	l, _ := openT(t)
	c := t0.Add(-100 * time.Hour)
	moved := snap("vc1", "uuid-m", "snapshot-1", c)
	relayed := snap("vc1", "uuid-r", "snapshot-2", c)
	skewed := snap("vc1", "uuid-s", "snapshot-3", c)
	record(t, l, Record{Started: t0, Finished: t0,
		Snapshots: []Seen{seen(moved, "acme", "", 1), seen(relayed, "", "", 1), seen(skewed, "acme", "", 1)},
		Notices: []Notice{
			notice("acme-1", "customer", "acme", item(moved, "warn", "first-notice")),
			notice("sup-1", "support", "", item(relayed, "warn", "unowned"), item(skewed, "escalate", "clock-skew")),
			// "action" notices (what was committed) are no warning either.
			notice("acme-act", "action", "acme", item(moved, "consolidated", "task-1")),
		}})
	for _, n := range pendingByMessageID(t, l) {
		deliverT(t, l, n, t0.Add(time.Minute))
	}
	// Next cycle: the VM moved to globex; the unknown owner became acme.
	t1 := t0.Add(time.Hour)
	record(t, l, Record{Started: t1, Finished: t1, Snapshots: []Seen{seen(moved, "globex", "", 1), seen(relayed, "acme", "", 1), seen(skewed, "acme", "", 1)}})
	hist, err := l.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hm := hist[moved.Key()]
	if a := hm.ByCustomer["acme"]; a.Count != 1 || !a.FirstDelivered.Equal(t0.Add(time.Minute)) || !a.Last.Equal(t0) {
		t.Errorf("acme's notices about the moved snapshot = %+v, want 1 delivered at t0+1m", a)
	}
	if g, ok := hm.ByCustomer["globex"]; ok || hm.Owner != "globex" || hm.CustomerNotices != 0 || !hm.WarnedAt.IsZero() {
		t.Errorf("moved snapshot: owner %q, globex entry %+v (%v), owner's view %d notices warned %v; want globex with none",
			hm.Owner, g, ok, hm.CustomerNotices, hm.WarnedAt)
	}
	hr := hist[relayed.Key()]
	if len(hr.ByCustomer) != 0 || hr.CustomerNotices != 0 || !hr.WarnedAt.IsZero() {
		t.Errorf("a support relay counted as a customer notice: %+v", hr)
	}
	if hr.Relayed.Count != 1 || !hr.Relayed.FirstDelivered.IsZero() {
		t.Errorf("relays = %+v, want one, never a delivery to a customer", hr.Relayed)
	}
	if hs := hist[skewed.Key()]; !hs.SkewReported || hs.Escalations != 1 {
		t.Errorf("skewed: %+v, want SkewReported after its clock-skew escalation", hs)
	}
	if hist[moved.Key()].SkewReported {
		t.Error("SkewReported set for a snapshot support was never told of")
	}
}
