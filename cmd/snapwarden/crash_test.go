package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash-point suite: `snapwarden run` in enforce mode, built with the
// failpoints tag, is killed (SIGKILL) at a ledger write or SMTP step over a
// fleet with consolidations, reminders and escalations; then it runs to
// completion. After that no notice is lost, each Message-ID reached each
// recipient at most twice (and only one message twice: there was one crash),
// nothing was removed that was not due and nothing was removed twice; the
// VM left on its deltas had its disks consolidated exactly once.

// crashPoints are the failpoints of a run, in the order a run meets them.
var crashPoints = []string{"ledger.record", "ledger.sending", "smtp.data", "smtp.accepted", "ledger.mark",
	"ledger.start-action", "ledger.set-task", "ledger.finish-action"}

// crashHits are the hits of each point to stop at: the first and a later
// one, which keeps the suite fast while covering a crash before anything
// of its kind was written and one between two (a disk consolidation, then
// 3 removals: the 1st action write is the disk consolidation's, the 3rd a
// removal's).
var crashHits = []int{1, 3}

// crashConfig: acme and globex consolidate, initech escalates; acme has
// two contacts, so delivery per recipient is exercised.
func crashConfig(t *testing.T, e *env) {
	t.Helper()
	body := `state: ledger.db
log: {level: warn, format: json}
vcenters:
` + vcenterYAML("vc-test", e.sim.URL, "ca_file: "+e.sim.CAFile) + `policy: {warn_after: 24h, deadline: 48h, reminder_every: 12h, escalate_every: 24h, grace: 12h}
ownership:
  - {tag_category: Customer}
  - {custom_attribute: Customer}
  - {folder_regex: '/Customers/(?P<customer>[^/]+)/'}
customers:
  - {id: acme, name: ACME Corp, contacts: [ops@acme.example, cto@acme.example], policy: {action: consolidate}}
  - {id: initech, name: Initech, contacts: [it@initech.example], policy: {deadline: 72h}}
  - {id: globex, name: Globex, contacts: [noc@globex.example], policy: {action: consolidate}}
support: {email: support@provider.example}
smtp: {host: 127.0.0.1, port: ` + fmt.Sprint(e.sink.Port) + `, from: "snapwarden <noreply@provider.example>", tls: none}
enforcement: {mode: enforce, max_concurrent: 2, fix_consolidation_needed: true}
`
	if err := os.WriteFile(e.cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// crashEnv is a test environment whose snapwarden is the failpoint binary:
// run as a process even where no failpoint is set, since a process is
// much faster than the race-instrumented test binary running it in-process.
type crashEnv struct {
	*env
	bin string
}

// cli runs the binary without a failpoint.
func (e *crashEnv) cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", e.bin, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// warmedUp is a fleet whose customers were warned two days ago: the next
// run consolidates, reminds and escalates.
// stuckVM is the crash fleet's VM left with consolidationNeeded.
const stuckVM = "globex-stuck01"

func warmedUp(t *testing.T, bin string) *crashEnv {
	t.Helper()
	e := &crashEnv{env: newEnv(t, "crash.yaml", ""), bin: bin}
	// vcsim lacks ConsolidateVMDisks_Task: the simulator's extension runs it.
	if err := e.sim.EnableConsolidate(stuckVM); err != nil {
		t.Fatal(err)
	}
	crashConfig(t, e.env)
	if _, stderr, code := e.cli(t, "run", "--config", e.cfg); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	// Two days pass: every time the ledger holds moves back by 48h.
	d := (48 * time.Hour).Nanoseconds()
	e.sql(t, fmt.Sprintf(`
UPDATE notices SET created_at = created_at - %[1]d, sent_at = sent_at - %[1]d, last_attempt_at = last_attempt_at - %[1]d;
UPDATE notice_recipients SET sent_at = sent_at - %[1]d, last_attempt_at = last_attempt_at - %[1]d;
UPDATE cycles SET started = started - %[1]d, finished = finished - %[1]d;
UPDATE actions SET started_at = started_at - %[1]d, finished_at = finished_at - %[1]d;
UPDATE snapshots SET first_seen = first_seen - %[1]d, last_seen = last_seen - %[1]d;
UPDATE size_samples SET at = at - %[1]d;`, d))
	// A removal left globex-stuck01 on its deltas meanwhile.
	if err := e.sim.SetConsolidationNeeded(stuckVM, true); err != nil {
		t.Fatal(err)
	}
	return e
}

// sql runs statements on the ledger (no snapwarden runs meanwhile).
func (e *env) sql(t *testing.T, stmts string) {
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

// rows returns the first column of q's rows.
func (e *env) rows(t *testing.T, q string) []string {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(e.dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// runFailpoint runs the failpoint binary once with SNAPWARDEN_FAILPOINT=fp
// and says whether it was killed, and its exit code otherwise.
func (e *crashEnv) runFailpoint(t *testing.T, fp string) (killed bool, code int, stderr string) {
	t.Helper()
	cmd := exec.Command(e.bin, "run", "--config", e.cfg)
	cmd.Env = append(os.Environ(), "SNAPWARDEN_FAILPOINT="+fp)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return false, 0, errb.String()
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, -1, errb.String()
		}
		return false, ee.ExitCode(), errb.String()
	}
	t.Fatalf("run %s: %v", fp, err)
	return false, 0, ""
}

// snapshotNames lists "vm/snapshot" of what vCenter holds now, and which of
// them are due for consolidation (the report's next_action).
func (e *crashEnv) snapshotNames(t *testing.T) (present, due map[string]bool) {
	t.Helper()
	out, stderr, _ := e.cli(t, "report", "--config", e.cfg, "--format", "json")
	var r jsonReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, stderr)
	}
	present, due = map[string]bool{}, map[string]bool{}
	for _, s := range r.Snapshots {
		present[s.VM+"/"+s.Snapshot] = true
		if s.NextAction == "consolidate" {
			due[s.VM+"/"+s.Snapshot] = true
		}
	}
	return present, due
}

// completes runs snapwarden (in-process, no failpoints) until a run exits 0
// with nothing owed: no notice pending, no action unfinished.
func (e *crashEnv) completes(t *testing.T) {
	t.Helper()
	for i := 0; i < 3; i++ {
		_, stderr, code := e.cli(t, "run", "--config", e.cfg)
		owed := e.rows(t, `SELECT 'notice ' || message_id FROM notices WHERE state = 'pending'
UNION ALL SELECT 'action ' || id FROM actions WHERE finished_at IS NULL`)
		if code == 0 && len(owed) == 0 {
			return
		}
		if i == 2 {
			t.Fatalf("no complete run after 3: exit %d, owed %v: %s", code, owed, stderr)
		}
	}
}

// checkGuarantees asserts the promises after a crash and a completed run.
// due is what was due before the crash; maxDup how many messages may have
// reached a recipient twice.
func (e *crashEnv) checkGuarantees(t *testing.T, before, due map[string]bool, maxDup int) {
	t.Helper()
	// Each Message-ID reached each recipient at most twice, and only
	// maxDup of them twice.
	type delivery struct{ id, to string }
	got := map[delivery]int{}
	for _, m := range e.sink.Messages() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range m.To {
			got[delivery{msg.Header.Get("Message-Id"), to}]++
		}
	}
	dups := 0
	for d, n := range got {
		if n > 2 {
			t.Errorf("%s reached %s %d times", d.id, d.to, n)
		}
		if n > 1 {
			dups++
		}
	}
	if dups > maxDup {
		t.Errorf("%d messages reached a recipient twice, want at most %d", dups, maxDup)
	}
	// No notice lost: every recipient the ledger says took a notice got
	// it, and nothing else was delivered.
	want := map[delivery]bool{}
	for _, row := range e.rows(t, `SELECT n.message_id || ' ' || r.address FROM notice_recipients r JOIN notices n ON n.id = r.notice_id
WHERE n.channel = 'email' AND r.state = 'sent'`) {
		id, to, _ := strings.Cut(row, " ")
		want[delivery{id, to}] = true
		if got[delivery{id, to}] == 0 {
			t.Errorf("the ledger says %s reached %s, the server never got it", id, to)
		}
	}
	for d := range got {
		if !want[d] {
			t.Errorf("%s reached %s, which the ledger does not record as sent", d.id, d.to)
		}
	}
	if owed := e.rows(t, `SELECT message_id FROM notices WHERE state <> 'sent'`); len(owed) > 0 {
		t.Errorf("notices not delivered: %v", owed)
	}
	// Every commit was told to the customer and to support.
	for _, key := range e.rows(t, `SELECT key FROM actions WHERE kind = 'remove' AND result = 'success'`) {
		kinds := e.rows(t, `SELECT DISTINCT n.kind FROM notice_items i JOIN notices n ON n.id = i.notice_id
WHERE i.action = 'consolidated' AND n.channel = 'email' AND i.key = '`+strings.ReplaceAll(key, "'", "''")+`' ORDER BY n.kind`)
		if strings.Join(kinds, ",") != "action,support" {
			t.Errorf("commit of %s told in %v, want the customer (action) and support", key, kinds)
		}
	}
	// Nothing removed twice: one task per snapshot at most.
	if twice := e.rows(t, `SELECT key FROM actions WHERE kind = 'remove' AND task_id <> '' GROUP BY key HAVING COUNT(*) > 1`); len(twice) > 0 {
		t.Errorf("removal tasks started twice for %v", twice)
	}
	// The VM left on its deltas: one ConsolidateVMDisks_Task, recorded, and
	// told to support.
	if n := e.sim.Consolidations(stuckVM); n != 1 {
		t.Errorf("%s: %d ConsolidateVMDisks_Task calls, want exactly 1", stuckVM, n)
	}
	if fixed := e.rows(t, `SELECT a.key FROM actions a JOIN notice_items i ON i.key = a.key JOIN notices n ON n.id = i.notice_id
WHERE a.kind = 'consolidate-disks' AND a.snapshot_id = '' AND a.result = 'success' AND i.action = 'consolidated' AND n.kind = 'support'`); len(fixed) != 1 {
		t.Errorf("disk consolidations recorded and told to support: %v, want one", fixed)
	}
	// Nothing removed that was not due, and everything due was removed.
	after, _ := e.snapshotNames(t)
	for s := range before {
		if !after[s] && !due[s] {
			t.Errorf("%s was removed, but it was not due", s)
		}
	}
	for s := range due {
		if after[s] {
			t.Errorf("%s was due and is still there after a complete run", s)
		}
	}
}

func TestCrashPoints(t *testing.T) {
	bin, err := buildFailpointBinary()
	if err != nil {
		t.Fatalf("go build -tags failpoints: %v", err)
	}
	for _, point := range crashPoints {
		for _, n := range crashHits {
			fp := fmt.Sprintf("%s:%d", point, n)
			var reached bool
			t.Run(fp, func(t *testing.T) {
				e := warmedUp(t, bin)
				before, due := e.snapshotNames(t)
				if len(due) != 3 {
					t.Fatalf("only %v due: the fleet no longer exercises consolidations", due)
				}
				killed, code, stderr := e.runFailpoint(t, fp)
				if !killed {
					// Fewer than n hits: the run must simply have worked.
					if code != 0 {
						t.Fatalf("run with %s not reached: exit %d: %s", fp, code, stderr)
					}
					e.checkGuarantees(t, before, due, 0)
					return
				}
				reached = true
				t.Logf("killed at %s with %d messages delivered; %d due", fp, len(e.sink.Messages()), len(due))
				e.completes(t)
				e.checkGuarantees(t, before, due, 1)
			})
			if !reached {
				break // a later hit of this point is not reached either
			}
		}
	}
}

// A full disk: the first "sent" mark fails. The run sends nothing more and
// exits 1; the next delivers the rest, and the first again with the same
// Message-ID.
func TestFullDiskFailsClosed(t *testing.T) {
	bin, err := buildFailpointBinary()
	if err != nil {
		t.Fatalf("go build -tags failpoints: %v", err)
	}
	e := warmedUp(t, bin)
	before, due := e.snapshotNames(t)
	n := len(e.sink.Messages())
	killed, code, stderr := e.runFailpoint(t, "ledger.mark:1:fail")
	if killed || code != 1 || !strings.Contains(stderr, "disk is full") {
		t.Fatalf("run with a full disk: killed %v exit %d, want exit 1 naming the error: %s", killed, code, stderr)
	}
	if sent := len(e.sink.Messages()) - n; sent != 1 {
		t.Errorf("%d messages sent after the first failed write, want only that one", sent)
	}
	if removed, _ := e.snapshotNames(t); len(removed) != len(before) {
		t.Errorf("a run whose ledger failed went on to remove snapshots")
	}
	e.completes(t)
	e.checkGuarantees(t, before, due, 1)
}
