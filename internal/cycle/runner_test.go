package cycle

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/mailsink"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/simfleet"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

type env struct {
	dir  string
	sim  *simfleet.Sim
	sink *mailsink.Sink
	cfg  *config.Config
}

func newEnv(t testing.TB, fleet string) *env {
	t.Helper()
	dir := t.TempDir()
	sim := simfleet.ForTest(t, "../../testdata/fleets/"+fleet, simfleet.Options{Username: "svc@vsphere.local", Password: "pw", Now: t0, Dir: dir})
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	path := filepath.Join(dir, "snapwarden.yaml")
	body := fmt.Sprintf(`state: ledger.db
vcenters:
  - {name: vc-test, url: %q, username: svc@vsphere.local, password: pw, ca_file: %s}
policy: {warn_after: 24h, deadline: 48h, reminder_every: 12h, escalate_every: 24h, grace: 12h}
ownership:
  - {tag_category: Customer}
  - {custom_attribute: Customer}
  - {folder_regex: '/Customers/(?P<customer>[^/]+)/'}
customers:
  - {id: acme, name: ACME Corp, contacts: [ops@acme.example]}
  - {id: initech, name: Initech, contacts: [it@initech.example], policy: {deadline: 72h}}
  - {id: globex, name: Globex, contacts: [noc@globex.example], policy: {action: consolidate}}
support: {email: support@provider.example}
smtp: {host: 127.0.0.1, port: %d, from: "snapwarden <noreply@provider.example>", tls: none}
`, sim.URL, sim.CAFile, sink.Port)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return &env{dir: dir, sim: sim, sink: sink, cfg: cfg}
}

func (e *env) runner(t testing.TB) *Runner {
	t.Helper()
	r, err := New(context.Background(), e.cfg, Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func cycle(t *testing.T, r *Runner, at time.Time) *Result {
	t.Helper()
	res, err := r.Cycle(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// delivered is one message as the recipient sees it.
type delivered struct {
	to        []string
	subject   string
	messageID string
	body      string
	header    mail.Header
}

func messages(t *testing.T, s *mailsink.Sink, from int) []delivered {
	t.Helper()
	var out []delivered
	for _, m := range s.Messages()[from:] {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatalf("a delivered message does not parse: %v\n%s", err, m.Data)
		}
		out = append(out, delivered{to: m.To, subject: msg.Header.Get("Subject"), messageID: msg.Header.Get("Message-Id"),
			body: string(m.Data), header: msg.Header})
	}
	return out
}

func recipients(ms []delivered) map[string]int {
	got := map[string]int{}
	for _, m := range ms {
		got[strings.Join(m.to, ",")]++
	}
	return got
}

func TestConsecutiveCycles(t *testing.T) {
	e := newEnv(t, "small.yaml")
	r := e.runner(t)

	// First cycle: acme (overdue + warning), initech (warning) and support
	// (the overdue snapshot) hear once each.
	res := cycle(t, r, t0)
	first := messages(t, e.sink, 0)
	if got := recipients(first); len(first) != 3 || got["ops@acme.example"] != 1 || got["it@initech.example"] != 1 || got["support@provider.example"] != 1 {
		t.Fatalf("first cycle sent to %v, want one digest each to acme, initech and support", got)
	}
	if res.Sent["customer"] != 2 || res.Sent["support"] != 1 || !res.OK() {
		t.Errorf("result sent %v failed %v", res.Sent, res.Failed)
	}

	// Customer isolation: a digest names only its customer's VMs.
	for _, m := range first {
		switch m.to[0] {
		case "ops@acme.example":
			if !strings.Contains(m.body, "before-upgrade") || !strings.Contains(m.body, "after-config") {
				t.Errorf("acme digest lacks its snapshots")
			}
			for _, other := range []string{"db01", "schema-v2", "lab01", "app01"} {
				if strings.Contains(m.body, other) {
					t.Errorf("acme digest names %s, another customer's", other)
				}
			}
		case "it@initech.example":
			if !strings.Contains(m.body, "schema-v2") || strings.Contains(m.body, "web01") {
				t.Errorf("initech digest wrong:\n%s", m.body)
			}
		}
	}

	// Run again an hour later: nothing new.
	cycle(t, r, t0.Add(time.Hour))
	if n := len(e.sink.Messages()); n != 3 {
		t.Fatalf("second cycle sent %d new messages, want none", n-3)
	}

	// 12h later: reminders to acme and initech; globex's hotfix-a (20h at t0)
	// crossed warn_after and gets its first notice; support waits for escalate_every.
	cycle(t, r, t0.Add(12*time.Hour))
	later := messages(t, e.sink, 3)
	if got := recipients(later); len(later) != 3 || got["ops@acme.example"] != 1 || got["it@initech.example"] != 1 || got["noc@globex.example"] != 1 {
		t.Fatalf("at +12h sent to %v, want reminders to acme and initech and a first notice to globex", got)
	}

	// 24h after the first escalation, support hears again.
	n := len(e.sink.Messages())
	cycle(t, r, t0.Add(24*time.Hour))
	if got := recipients(messages(t, e.sink, n)); got["support@provider.example"] != 1 {
		t.Errorf("at +24h sent to %v, want the repeated escalation to support", got)
	}
}

func TestResolvedSnapshotStopsReminders(t *testing.T) {
	e := newEnv(t, "small.yaml")
	r := e.runner(t)
	res := cycle(t, r, t0)
	var removed facts.Key
	for _, d := range res.Plan.Decisions {
		if d.Snapshot.Name == "schema-v2" {
			removed = d.Snapshot.Key()
		}
	}
	if err := e.sim.RemoveSnapshot("db01", "schema-v2"); err != nil {
		t.Fatal(err)
	}
	n := len(e.sink.Messages())
	cycle(t, r, t0.Add(13*time.Hour))
	for _, m := range messages(t, e.sink, n) {
		if m.to[0] == "it@initech.example" || strings.Contains(m.body, "schema-v2") {
			t.Errorf("a reminder about the committed snapshot schema-v2 went out to %v", m.to)
		}
	}
	hist, err := r.ledger.History(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, open := hist[removed]; open || removed.Snapshot == "" {
		t.Errorf("schema-v2 (%v) is still open in the ledger after it vanished", removed)
	}
	events, err := r.ledger.Audit(context.Background(), ledger.Filter{VM: "db01"})
	if err != nil {
		t.Fatal(err)
	}
	resolved := false
	for _, ev := range events {
		resolved = resolved || (ev.Kind == "resolved" && ev.Snapshot == "schema-v2")
	}
	if !resolved {
		t.Errorf("history of db01 lacks the resolution of schema-v2: %+v", events)
	}
}

// Names customers control never reach a header, and are escaped in HTML.
func TestHostileNames(t *testing.T) {
	e := newEnv(t, "demo.yaml")
	r := e.runner(t)
	cycle(t, r, t0)
	ms := messages(t, e.sink, 0)
	if len(ms) == 0 {
		t.Fatal("no messages")
	}
	hostile := []string{"<img", "onerror", "HYPERLINK", "victim", "Prüfung", "Bcc"}
	sawVM := false
	for _, m := range ms {
		for name, values := range m.header {
			for _, v := range values {
				for _, h := range hostile {
					if strings.Contains(v, h) {
						t.Errorf("header %s carries customer-controlled text %q: %q", name, h, v)
					}
				}
			}
		}
		html := htmlOf(t, m)
		if strings.Contains(html, "<img src=x") {
			t.Errorf("HTML part to %v has the VM name unescaped", m.to)
		}
		if strings.Contains(html, "&lt;img src=x onerror=alert(1)&gt;") {
			sawVM = true
		}
	}
	if !sawVM {
		t.Error("no HTML part shows the hostile VM name escaped")
	}
}

// htmlOf returns the decoded HTML part of a delivered message.
func htmlOf(t *testing.T, m delivered) string {
	t.Helper()
	return partOf(t, m, "text/html")
}

// partOf returns the decoded part of a delivered message whose Content-Type
// starts with mediaType.
func partOf(t *testing.T, m delivered, mediaType string) string {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(m.body))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart() // decodes quoted-printable
		if err != nil {
			t.Fatalf("no %s part: %v", mediaType, err)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), mediaType) {
			b, err := io.ReadAll(p)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

func (r *Runner) mustPlan(t *testing.T, at time.Time) *plan.Plan {
	t.Helper()
	_, planner, _, _ := r.settings()
	inv, err := Collect(context.Background(), r.pool, r.ledger)
	if err != nil {
		t.Fatal(err)
	}
	p, err := planner.Plan(context.Background(), inv, r.ledger, at)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// An SMTP server that is down loses nothing: the notices wait in the outbox
// and go out, once, with the Message-ID they were queued with.
func TestSMTPDownThenUp(t *testing.T) {
	e := newEnv(t, "small.yaml")
	r := e.runner(t)
	e.sink.Refuse(true)
	res := cycle(t, r, t0)
	if len(e.sink.Messages()) != 0 || res.Failed["customer"] != 2 || res.OK() {
		t.Fatalf("with SMTP refusing: %d delivered, failed %v", len(e.sink.Messages()), res.Failed)
	}
	// Still refusing an hour later: no new notices are queued, the old ones fail again.
	res = cycle(t, r, t0.Add(time.Hour))
	if res.Queued["customer"] != 0 {
		t.Errorf("a second cycle queued %v again while the first were pending", res.Queued)
	}
	if res.Pending != 3 {
		t.Errorf("outbox backlog %d while SMTP refuses, want the 3 notices held back", res.Pending)
	}
	e.sink.Refuse(false)
	if res = cycle(t, r, t0.Add(2*time.Hour)); res.Pending != 0 {
		t.Errorf("outbox backlog %d after recovery, want 0", res.Pending)
	}
	ms := messages(t, e.sink, 0)
	if len(ms) != 3 {
		t.Fatalf("after recovery %d messages, want the 3 held back", len(ms))
	}
	seen := map[string]bool{}
	for _, m := range ms {
		if m.messageID == "" || seen[m.messageID] {
			t.Errorf("Message-ID %q missing or repeated", m.messageID)
		}
		seen[m.messageID] = true
	}
	cycle(t, r, t0.Add(3*time.Hour))
	if len(e.sink.Messages()) != 3 {
		t.Errorf("delivered notices were sent again")
	}
}

// A process that stops after queueing notices and before delivering them
// (a crash, or SMTP down at the moment) leaves them for the next process,
// which delivers them with the same Message-ID and queues nothing twice.
func TestRestartDeliversQueuedNotices(t *testing.T) {
	e := newEnv(t, "small.yaml")
	r, err := New(context.Background(), e.cfg, Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	e.sink.Refuse(true)
	if _, err := r.Cycle(context.Background(), t0); err != nil {
		t.Fatal(err)
	}
	pending, err := r.ledger.Pending(context.Background())
	if err != nil || len(pending) != 3 {
		t.Fatalf("pending %d (%v), want 3", len(pending), err)
	}
	ids := map[string]bool{}
	for _, n := range pending {
		ids[n.MessageID] = true
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	e.sink.Refuse(false)
	r2 := e.runner(t)
	cycle(t, r2, t0.Add(10*time.Minute))
	ms := messages(t, e.sink, 0)
	if len(ms) != 3 {
		t.Fatalf("after restart %d messages, want 3", len(ms))
	}
	for _, m := range ms {
		if !ids[strings.Trim(m.messageID, "<>")] && !ids[m.messageID] {
			t.Errorf("delivered Message-ID %s was not the queued one (%v)", m.messageID, ids)
		}
	}
}

// A crash after the SMTP server took a message and before the ledger marked
// it sent: the next process sends it again with the same Message-ID (so the
// recipient's mail system can drop the repeat) and issues no new notice.
func TestCrashBetweenSendAndRecord(t *testing.T) {
	e := newEnv(t, "small.yaml")
	r := e.runner(t)
	cycle(t, r, t0)
	first := messages(t, e.sink, 0)
	// What the crash leaves behind: delivered, but still pending in the ledger.
	db, err := sql.Open("sqlite", filepath.Join(e.dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE notices SET state = 'pending', sent_at = NULL; UPDATE notice_recipients SET state = 'sending', sent_at = NULL`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	res := cycle(t, r, t0.Add(10*time.Minute))
	if res.Queued["customer"]+res.Queued["support"] != 0 {
		t.Errorf("the restarted cycle issued new notices %v for snapshots already notified", res.Queued)
	}
	again := messages(t, e.sink, len(first))
	if len(again) != len(first) {
		t.Fatalf("%d messages re-sent, want the %d unconfirmed ones", len(again), len(first))
	}
	ids := map[string]bool{}
	for _, m := range first {
		ids[m.messageID] = true
	}
	for _, m := range again {
		if !ids[m.messageID] {
			t.Errorf("re-sent message has a new Message-ID %s", m.messageID)
		}
	}
	cycle(t, r, t0.Add(20*time.Minute))
	if n := len(e.sink.Messages()); n != 2*len(first) {
		t.Errorf("%d messages after the next cycle, want no more", n)
	}
}

func TestSecondProcessOnTheLedgerIsRefused(t *testing.T) {
	e := newEnv(t, "small.yaml")
	e.runner(t)
	_, err := New(context.Background(), e.cfg, Options{Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "ledger.db") || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second runner on one ledger: %v, want an in-use error naming the file", err)
	}
}

// renameVCenter renames the env's vCenter in the runner's config, as an
// operator's edit and reload would.
func renameVCenter(t *testing.T, e *env, r *Runner, name string) {
	t.Helper()
	renamed := *e.cfg
	renamed.VCenters = append([]config.VCenter(nil), e.cfg.VCenters...)
	renamed.VCenters[0].Name = name
	if err := r.Reload(&renamed); err != nil {
		t.Fatal(err)
	}
}

// TestRenamedVCenterKeepsItsHistory: the ledger knows a vCenter by its
// instance UUID, so renaming it in the config neither repeats first notices
// nor takes its snapshots for gone; reports show the new name.
func TestRenamedVCenterKeepsItsHistory(t *testing.T) {
	e := newEnv(t, "small.yaml")
	r := e.runner(t)
	cycle(t, r, t0)
	sent := len(e.sink.Messages())

	renameVCenter(t, e, r, "vc-renamed")
	res := cycle(t, r, t0.Add(time.Hour))
	if got := recipients(messages(t, e.sink, sent)); len(got) != 0 {
		t.Errorf("after the rename sent to %v, want nothing new", got)
	}
	for _, d := range res.Plan.Decisions {
		if d.Snapshot.VM.VCenter != "vc-renamed" || d.History.FirstSeen.IsZero() || !d.History.FirstSeen.Equal(t0) {
			t.Errorf("%s: vCenter %q, first seen %s; want the new name and the history from t0", d.Snapshot.Name, d.Snapshot.VM.VCenter, d.History.FirstSeen)
		}
	}
}
