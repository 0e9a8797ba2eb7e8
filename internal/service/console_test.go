package service

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/cycle"
	"github.com/snapwarden/snapwarden/internal/mailsink"
	"github.com/snapwarden/snapwarden/internal/report"
	"github.com/snapwarden/snapwarden/internal/simfleet"
)

// The console's test login.
const testUser, testPassword = "alice", "correct horse"

// consoleEnv is `serve` on the demo fleet in vcsim, with the loopback SMTP
// sink and a real ledger, after its first cycle.
type consoleEnv struct {
	base string
	sink *mailsink.Sink
	log  *syncBuffer
	// runner is serve's runner, for a test to run the next cycle itself.
	runner *cycle.Runner
}

// cycleSignal tells the test when a cycle has finished.
type cycleSignal struct {
	*cycle.Runner
	done chan struct{}
}

func (c cycleSignal) Cycle(ctx context.Context, now time.Time) (*cycle.Result, error) {
	defer func() { c.done <- struct{}{} }()
	return c.Runner.Cycle(ctx, now)
}

// startConsole serves the demo fleet; console is the config's console:
// block ("" for none), and any other top-level block such as self_service:
// (whose public listener it serves too). The clock is real (the fleet's ages
// count back from now), so the next scheduled cycle is an hour away.
func startConsole(t testing.TB, console string) *consoleEnv {
	t.Helper()
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	sim := simfleet.ForTest(t, "../../testdata/fleets/demo.yaml", simfleet.Options{Username: "svc@vsphere.local", Password: "pw", Now: now, Dir: dir})
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "console.htpasswd"), []byte("# console users\n"+testUser+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "snapwarden.yaml")
	body := fmt.Sprintf(`state: ledger.db
listen: 127.0.0.1:0
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
%s`, sim.URL, sim.CAFile, sink.Port, console)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cycle.New(context.Background(), cfg, cycle.Options{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	sig := cycleSignal{Runner: r, done: make(chan struct{}, 10)}
	e := &consoleEnv{sink: sink, log: &syncBuffer{}, runner: r}
	addr := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, cfg, sig, Options{Load: func() (*config.Config, error) { return config.Load(path) },
			Log: zerolog.New(e.log), Ledger: r.Ledger(), Ready: func(a string) { addr <- a }, Public: r.Public()})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case a := <-addr:
		e.base = "http://" + a
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	<-sig.done
	// The runner's cycle has returned; the service records its result a
	// moment later. Wait for that, so /healthz judges the cycle, not the start.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		res, err := http.Get(e.base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(b), "no cycle finished yet") {
			break
		}
	}
	return e
}

const withUsers = "console: {users_file: console.htpasswd}\n"

// do sends a request as the test user (or anonymously when user is "").
func (e *consoleEnv) do(t testing.TB, method, path, user, contentType, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, testPassword)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// Everything but /healthz and /metrics needs a login; a wrong password is
// refused like no password.
func TestConsoleLogin(t *testing.T) {
	e := startConsole(t, withUsers)
	for _, p := range []string{"/healthz", "/metrics"} {
		if code, _, _ := e.do(t, "GET", p, "", "", ""); code != http.StatusOK {
			t.Errorf("GET %s without login: %d, want 200", p, code)
		}
	}
	for _, p := range []string{"/", "/snapshots", "/customers/acme", "/report", "/static/console.js", "/static/console.css",
		"/api/v1/report", "/api/v1/escalations", "/api/v1/history"} {
		code, hdr, _ := e.do(t, "GET", p, "", "", "")
		if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("GET %s without login: %d %q, want 401 with a Basic challenge", p, code, hdr.Get("WWW-Authenticate"))
		}
		if code, _, _ := e.do(t, "GET", p, "mallory", "", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s as an unknown user: %d, want 401", p, code)
		}
		code, hdr, _ = e.do(t, "GET", p, testUser, "", "")
		if code != http.StatusOK {
			t.Errorf("GET %s logged in: %d, want 200", p, code)
		}
		if hdr.Get("X-Frame-Options") != "DENY" || hdr.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s lacks the security headers: %v", p, hdr)
		}
	}
	if code, _, _ := e.do(t, "POST", "/api/v1/escalations/ack", "", "application/json", "{}"); code != http.StatusUnauthorized {
		t.Errorf("POST ack without login: %d, want 401", code)
	}
}

// escalations reads the API's queue.
func (e *consoleEnv) escalations(t testing.TB) []escalationJSON {
	t.Helper()
	code, _, body := e.do(t, "GET", "/api/v1/escalations", testUser, "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/escalations: %d %s", code, body)
	}
	var q []escalationJSON
	if err := json.Unmarshal([]byte(body), &q); err != nil {
		t.Fatalf("escalations JSON: %v\n%s", err, body)
	}
	return q
}

// escalationJSON is the API's contract, field by field.
type escalationJSON struct {
	VCenter      string `json:"vcenter"`
	SnapshotID   string `json:"snapshot_id"`
	VM           string `json:"vm"`
	Snapshot     string `json:"snapshot"`
	Customer     string `json:"customer"`
	Reason       string `json:"reason"`
	Since        string `json:"since"`
	Acknowledged *struct {
		By, Note, At, Until string
	} `json:"acknowledged"`
}

// The escalation queue, an acknowledgement through the API, and the trail
// that records who acknowledged.
func TestAPIAcknowledge(t *testing.T) {
	e := startConsole(t, withUsers)
	q := e.escalations(t)
	var target *escalationJSON
	for i := range q {
		if q[i].Snapshot == "before-postgres-16-upgrade" {
			target = &q[i]
		}
		if _, err := time.Parse(time.RFC3339, q[i].Since); err != nil || q[i].Reason == "" || q[i].VCenter != "vc-test" {
			t.Errorf("escalation %+v: since, reason or vcenter missing", q[i])
		}
	}
	if target == nil || target.Acknowledged != nil || target.Customer != "acme" || target.Reason != "deadline-passed" {
		t.Fatalf("queue lacks the overdue before-postgres-16-upgrade, unacknowledged: %+v", q)
	}
	until := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	good := fmt.Sprintf(`{"vcenter":"vc-test","snapshot_id":%q,"note":"<b>INC-42</b> customer called","until":%q}`, target.SnapshotID, until)
	for _, tc := range []struct {
		contentType, body string
		want              int
	}{
		{"application/x-www-form-urlencoded", "vcenter=vc-test&snapshot_id=" + target.SnapshotID, http.StatusUnsupportedMediaType},
		{"text/plain", good, http.StatusUnsupportedMediaType},
		{"", good, http.StatusUnsupportedMediaType},
		{"application/json", `{"vcenter":"vc-test","snapshot_id":"snapshot-999999","note":"x","until":"` + until + `"}`, http.StatusNotFound},
		{"application/json", strings.Replace(good, until, "tomorrow", 1), http.StatusBadRequest},
		{"application/json", strings.Replace(good, until, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), 1), http.StatusBadRequest},
		{"application/json", strings.Replace(good, until, time.Now().Add(90*24*time.Hour).UTC().Format(time.RFC3339), 1), http.StatusBadRequest},
		{"application/json", strings.Replace(good, "<b>INC-42</b> customer called", " ", 1), http.StatusBadRequest},
		{"application/json", strings.Replace(good, `"note"`, `"by":"mallory","note"`, 1), http.StatusBadRequest},
		{"application/json", good, http.StatusOK},
	} {
		code, _, body := e.do(t, "POST", "/api/v1/escalations/ack", testUser, tc.contentType, tc.body)
		if code != tc.want {
			t.Errorf("POST %s %s: %d %s, want %d", tc.contentType, tc.body, code, body, tc.want)
		}
	}
	for _, it := range e.escalations(t) {
		if it.SnapshotID != target.SnapshotID {
			if it.Acknowledged != nil {
				t.Errorf("%s is acknowledged too", it.Snapshot)
			}
			continue
		}
		if a := it.Acknowledged; a == nil || a.By != testUser || a.Note != "<b>INC-42</b> customer called" || a.Until != until {
			t.Errorf("acknowledged = %+v, want alice's until %s", a, until)
		}
	}

	code, _, body := e.do(t, "GET", "/api/v1/history?vm=acme-db01&since=1d", testUser, "", "")
	var events []map[string]any
	if err := json.Unmarshal([]byte(body), &events); code != http.StatusOK || err != nil {
		t.Fatalf("history: %d %v %s", code, err, body)
	}
	acked := false
	for _, ev := range events {
		if ev["vm"] != "acme-db01" {
			t.Errorf("history?vm=acme-db01 returned %v", ev)
		}
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(ev["at"])); err != nil {
			t.Errorf("event time %v is not RFC3339", ev["at"])
		}
		acked = acked || (ev["kind"] == "ack" && ev["by"] == testUser)
	}
	if !acked {
		t.Errorf("history lacks alice's acknowledgement: %s", body)
	}
	if code, _, _ := e.do(t, "GET", "/api/v1/history?since=soon", testUser, "", ""); code != http.StatusBadRequest {
		t.Errorf("history?since=soon: %d, want 400", code)
	}
	if !strings.Contains(e.log.String(), `"user":"alice"`) {
		t.Error("the acknowledgement is not logged with its user")
	}
}

// The JSON report of the last cycle keeps the report contract.
func TestAPIReport(t *testing.T) {
	e := startConsole(t, withUsers)
	code, hdr, body := e.do(t, "GET", "/api/v1/report", testUser, "", "")
	var rep struct {
		At        string           `json:"at"`
		Snapshots []map[string]any `json:"snapshots"`
		Summary   struct {
			Total int `json:"total"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(body), &rep); code != http.StatusOK || err != nil || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("report: %d %v %s", code, err, body)
	}
	if rep.Summary.Total == 0 || len(rep.Snapshots) != rep.Summary.Total || rep.Snapshots[0]["next_action"] == nil {
		t.Errorf("report = %+v", rep)
	}
}

// Every page renders, escapes hostile names, and filters.
func TestConsolePages(t *testing.T) {
	e := startConsole(t, withUsers)
	q := e.escalations(t)
	if len(q) == 0 {
		t.Fatal("no escalations in the demo fleet")
	}
	for _, tc := range []struct {
		path      string
		want, not []string
	}{
		{"/", []string{"Escalation queue", "overdue", "before-<wbr>postgres-<wbr>16-<wbr>upgrade", `/vms/vc-test/`, "Acknowledge"}, nil},
		{"/snapshots", []string{"&lt;img src=x onerror=alert(1)&gt;", "quarterly-<wbr>compliance"}, []string{"<img src=x"}},
		{"/snapshots?state=exempt", []string{"audit-<wbr>freeze"}, []string{"before-<wbr>postgres"}},
		{"/snapshots?customer=initech", []string{"initech-<wbr>erp01"}, []string{"acme-<wbr>db01"}},
		{"/snapshots?q=POSTGRES", []string{"before-<wbr>postgres"}, []string{"audit-<wbr>freeze"}},
		{"/snapshots?vcenter=vc-other", []string{"0 snapshots"}, []string{"before-<wbr>postgres"}},
		{"/customers/acme", []string{"ACME Corp", "ops@<wbr>acme.<wbr>example", "before-<wbr>postgres"}, []string{"initech-<wbr>erp01"}},
		{"/vms/vc-test/" + e.vmUUID(t, "snapshot_id", q[0].SnapshotID), []string{"Timeline", "first-seen", string(report.Breakable(q[0].Snapshot))}, nil},
	} {
		code, _, body := e.do(t, "GET", tc.path, testUser, "", "")
		if code != http.StatusOK {
			t.Errorf("GET %s: %d", tc.path, code)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q", tc.path, w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(body, n) {
				t.Errorf("GET %s has %q", tc.path, n)
			}
		}
	}
	// Problems link a VM by moref: one with snapshots leads to its timeline
	// by UUID, one without shows its problems.
	_, _, overview := e.do(t, "GET", "/", testUser, "", "")
	for vm, want := range map[string]string{"initech-build01": "/vms/vc-test/" + e.vmUUID(t, "vm", "initech-build01"), "initech-app02": ""} {
		m := regexp.MustCompile(`href="(/vms/vc-test/vm-[0-9]+)">` + regexp.QuoteMeta(string(report.Breakable(vm))) + `</a>`).FindStringSubmatch(overview)
		if m == nil {
			t.Fatalf("the overview's problems do not link %s by moref", vm)
		}
		res, err := http.Get(strings.Replace(e.base, "http://", "http://"+testUser+":"+url.PathEscape(testPassword)+"@", 1) + m[1])
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		page := string(b)
		if want == "" {
			want = m[1] // no snapshots: the moref's own page, with its problems
			if !strings.Contains(page, "consolidation_<wbr>needed") {
				t.Errorf("%s's page lacks its problem", vm)
			}
		}
		if res.StatusCode != http.StatusOK || res.Request.URL.Path != want || !strings.Contains(page, "VM "+vm) {
			t.Errorf("GET %s (%s): %d at %s, want %s", m[1], vm, res.StatusCode, res.Request.URL.Path, want)
		}
	}
	for _, p := range []string{"/customers/nobody", "/vms/vc-test/no-such-uuid", "/vms/vc-test/vm-999999"} {
		if code, _, _ := e.do(t, "GET", p, testUser, "", ""); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
}

// vmUUID finds the instance UUID of the VM of the first snapshot in the
// report whose key has value.
func (e *consoleEnv) vmUUID(t testing.TB, key, value string) string {
	t.Helper()
	_, _, body := e.do(t, "GET", "/api/v1/report", testUser, "", "")
	var rep struct{ Snapshots []map[string]any }
	_ = json.Unmarshal([]byte(body), &rep)
	for _, s := range rep.Snapshots {
		if s[key] == value {
			return fmt.Sprint(s["vm_uuid"])
		}
	}
	t.Fatalf("no snapshot with %s %q in the report", key, value)
	return ""
}

// A trusted header counts only from a listed proxy; without logins, only a
// loopback listen is open.
func TestAuthSources(t *testing.T) {
	cfg := &config.Config{File: "snapwarden.yaml", Console: config.Console{TrustedHeader: "X-Forwarded-User", TrustedProxies: []string{"10.0.0.5/32"}}}
	a, err := newAuth(cfg, "0.0.0.0:9469")
	if err != nil {
		t.Fatal(err)
	}
	req := func(remote, user string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-User", user)
		return r
	}
	if u, ok := a.user(req("10.0.0.5:40000", "bob\r\nX-Evil: 1")); !ok || u != "bob X-Evil: 1" {
		t.Errorf("from the proxy: %q %v, want bob (one line)", u, ok)
	}
	if u, ok := a.user(req("10.0.0.6:40000", "bob")); ok {
		t.Errorf("from elsewhere the header was trusted: %q", u)
	}
	if u, ok := a.user(req("10.0.0.5:40000", "")); ok {
		t.Errorf("the proxy sent no user, yet %q got in", u)
	}
	open := &config.Config{File: "snapwarden.yaml"}
	if a, err := newAuth(open, "127.0.0.1:9469"); err != nil || !a.open {
		t.Errorf("loopback without logins: %v", err)
	}
	if _, err := newAuth(open, "0.0.0.0:9469"); err == nil || !strings.Contains(err.Error(), "needs a login") {
		t.Errorf("0.0.0.0 without logins: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "md5.htpasswd")
	_ = os.WriteFile(bad, []byte("bob:$apr1$abc$def\n"), 0o600)
	if _, err := newAuth(&config.Config{File: "snapwarden.yaml", Console: config.Console{UsersFile: bad}}, "0.0.0.0:1"); err == nil ||
		!strings.Contains(err.Error(), "htpasswd -B") {
		t.Errorf("an MD5 entry was accepted: %v", err)
	}
}

// On loopback without logins the console is open, and without a ledger it
// still shows the last plan; only acknowledging needs the ledger.
func TestConsoleOpenWithoutLedger(t *testing.T) {
	h := serve(t, nil)
	base := "http://" + <-h.addr
	<-h.r.startedCh
	h.r.release <- struct{}{}
	h.waitLog(t, "0 snapshots")
	for path, want := range map[string]int{"/": 200, "/snapshots": 200, "/api/v1/escalations": 200, "/api/v1/history": 200,
		"/api/v1/report": 200, "/vms/vc/none": 404} {
		if code, body := get(t, base+path); code != want {
			t.Errorf("GET %s: %d %s, want %d", path, code, body, want)
		}
	}
	if _, body := get(t, base+"/"); !strings.Contains(body, `<span class="user">local</span>`) {
		t.Error("the open console does not say who acts: local")
	}
	res, err := http.Post(base+"/api/v1/escalations/ack", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ack without a ledger: %d, want 503", res.StatusCode)
	}
}
