package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/mailsink"
	"github.com/snapwarden/snapwarden/internal/simfleet"
)

// t0 is the simulated fleet's "now": ages in the fleet files count back from
// it and every report is pinned to it with --at.
var t0 = time.Now().UTC().Truncate(time.Second)

type env struct {
	dir  string
	sim  *simfleet.Sim
	sink *mailsink.Sink
	cfg  string
}

// newEnv starts a simulated vCenter with a fleet file and a loopback SMTP
// sink, and writes a config for them (extra is appended to it).
func newEnv(t *testing.T, fleet, extra string) *env {
	t.Helper()
	dir := t.TempDir()
	sim := simfleet.ForTest(t, "../../testdata/fleets/"+fleet, simfleet.Options{Username: "svc@vsphere.local", Password: "pw-123", Now: t0, Dir: dir})
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	if err := os.WriteFile(filepath.Join(dir, "vc.password"), []byte("pw-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, sim: sim, sink: sink, cfg: filepath.Join(dir, "snapwarden.yaml")}
	e.write(t, vcenterYAML("vc-test", sim.URL, "ca_file: "+sim.CAFile)+extra)
	return e
}

func vcenterYAML(name, url, tls string) string {
	return fmt.Sprintf("  - {name: %s, url: %q, username: svc@vsphere.local, password_file: vc.password, %s}\n", name, url, tls)
}

// write writes the config: the demo's policy and customers with the given
// vcenters entries.
func (e *env) write(t *testing.T, vcenters string) {
	t.Helper()
	body := `state: ledger.db
log: {level: warn, format: json}
vcenters:
` + vcenters + `policy: {warn_after: 24h, deadline: 48h, reminder_every: 12h, escalate_every: 24h, grace: 12h}
ownership:
  - {tag_category: Customer}
  - {custom_attribute: Customer}
  - {folder_regex: '/Customers/(?P<customer>[^/]+)/'}
customers:
  - {id: acme, name: ACME Corp, contacts: [ops@acme.example]}
  - {id: initech, name: Initech, contacts: [it@initech.example], policy: {deadline: 72h}}
  - {id: globex, name: Globex, contacts: [noc@globex.example], policy: {action: consolidate}}
support: {email: support@provider.example}
smtp: {host: 127.0.0.1, port: ` + fmt.Sprint(e.sink.Port) + `, from: "snapwarden <noreply@provider.example>", tls: none}
`
	if err := os.WriteFile(e.cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cli runs snapwarden in-process and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(&errb, "snapwarden:", err)
	}
	return out.String(), errb.String(), exitCode(err)
}

type jsonReport struct {
	GeneratedAt string `json:"generated_at"`
	At          string `json:"at"`
	Mode        string `json:"mode"`
	Snapshots   []struct {
		VCenter, Datacenter, VM, Folder, Snapshot, Description, Created, Customer, Creator, State, Reason, Deadline string
		VMUUID                                                                                                      string  `json:"vm_uuid"`
		SnapshotID                                                                                                  string  `json:"snapshot_id"`
		AgeHours                                                                                                    float64 `json:"age_hours"`
		SizeBytes                                                                                                   int64   `json:"size_bytes"`
		Depth                                                                                                       int     `json:"depth"`
		NextAction                                                                                                  string  `json:"next_action"`
		NextActionAt                                                                                                string  `json:"next_action_at"`
	} `json:"snapshots"`
	Summary struct {
		Total        int              `json:"total"`
		ByState      map[string]int   `json:"by_state"`
		BytesByState map[string]int64 `json:"bytes_by_state"`
	} `json:"summary"`
	Errors []struct{ VCenter, Error string } `json:"errors"`
}

func runReport(t *testing.T, cfg string, extra ...string) (jsonReport, string, int) {
	t.Helper()
	args := append([]string{"report", "--config", cfg, "--format", "json", "--at", t0.Format(time.RFC3339)}, extra...)
	out, stderr, code := runCLI(t, args...)
	var r jsonReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("report is not JSON (%v): %s\nstderr: %s", err, out, stderr)
	}
	return r, stderr, code
}

func TestReportSmallFleet(t *testing.T) {
	e := newEnv(t, "small.yaml", "")
	r, stderr, code := runReport(t, e.cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	type want struct{ vm, customer, state, next, creator string }
	wants := map[string]want{
		"before-upgrade": {"web01", "acme", "overdue", "escalate", "alice@vsphere.local"},
		"after-config":   {"web01", "acme", "warning", "warn", "bob@vsphere.local"},
		"try-2":          {"web01", "acme", "ok", "warn", ""},
		"schema-v2":      {"db01", "initech", "warning", "warn", "carol@vsphere.local"},
		"patch-tuesday":  {"app01", "globex", "exempt", "none", ""},
		"hotfix-a":       {"app01", "globex", "ok", "warn", ""},
		"hotfix-b":       {"app01", "globex", "ok", "warn", ""},
		"scratch":        {"lab01", "", "ok", "warn", ""},
	}
	if r.Summary.Total != len(wants) || len(r.Snapshots) != len(wants) {
		t.Fatalf("total %d, %d rows; want %d", r.Summary.Total, len(r.Snapshots), len(wants))
	}
	if r.Mode != "dry-run" || r.At != t0.Format(time.RFC3339) || len(r.Errors) != 0 {
		t.Errorf("mode %q at %q errors %v", r.Mode, r.At, r.Errors)
	}
	for _, s := range r.Snapshots {
		w := wants[s.Snapshot]
		if s.VM != w.vm || s.Customer != w.customer || s.State != w.state || s.NextAction != w.next || s.Creator != w.creator {
			t.Errorf("%s: vm %s customer %q state %s next %s creator %q; want %+v", s.Snapshot, s.VM, s.Customer, s.State, s.NextAction, s.Creator, w)
		}
		if s.VCenter != "vc-test" || s.Datacenter != "DC0" || s.VMUUID == "" || s.SnapshotID == "" || s.Deadline == "" || s.Created == "" {
			t.Errorf("%s: identity fields missing: %+v", s.Snapshot, s)
		}
	}
	if r.Snapshots[0].Snapshot != "before-upgrade" {
		t.Errorf("most urgent first: first row is %s, want the overdue before-upgrade", r.Snapshots[0].Snapshot)
	}
	if r.Summary.ByState["overdue"] != 1 || r.Summary.BytesByState["overdue"] != 1<<30 {
		t.Errorf("summary %+v", r.Summary)
	}

	// --at forecasts: two days on, the 30h snapshot is overdue too.
	later, _, _ := runReport(t, e.cfg, "--at", t0.Add(48*time.Hour).Format(time.RFC3339), "--state", "overdue", "--customer", "acme")
	got := map[string]bool{}
	for _, s := range later.Snapshots {
		got[s.Snapshot] = true
	}
	if len(got) != 3 || !got["after-config"] || !got["try-2"] {
		t.Errorf("forecast at +48h for acme overdue = %v, want all 3 of web01's snapshots", got)
	}
}

func TestReportTableAndFiles(t *testing.T) {
	e := newEnv(t, "small.yaml", "")
	out, stderr, code := runCLI(t, "report", "--config", e.cfg, "--at", t0.Format(time.RFC3339))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, line := range strings.Split(out, "\n") {
		if n := len([]rune(line)); n > 120 {
			t.Errorf("table line of %d columns: %q", n, line)
		}
	}
	if !strings.Contains(out, "8 snapshots") || !strings.Contains(out, "before-upgrade") {
		t.Errorf("table lacks rows or summary:\n%s", out)
	}
	for _, f := range []string{"csv", "markdown", "html"} {
		path := filepath.Join(e.dir, "r."+f)
		if _, stderr, code := runCLI(t, "report", "--config", e.cfg, "--format", f, "--output", path); code != 0 {
			t.Fatalf("%s: exit %d: %s", f, code, stderr)
		}
		want := "before-upgrade"
		if f == "html" {
			want = "before-<wbr>upgrade" // names wrap after their separators
		}
		if b, err := os.ReadFile(path); err != nil || !bytes.Contains(b, []byte(want)) {
			t.Errorf("%s report %s: %v", f, path, err)
		}
	}
}

func TestReportFailingVCenters(t *testing.T) {
	e := newEnv(t, "small.yaml", "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "https://" + ln.Addr().String() + "/sdk"
	ln.Close()
	e.write(t, vcenterYAML("vc-test", e.sim.URL, "ca_file: "+e.sim.CAFile)+vcenterYAML("vc-down", down, "insecure: true"))
	r, _, code := runReport(t, e.cfg)
	if code != 1 || len(r.Errors) != 1 || r.Errors[0].VCenter != "vc-down" || r.Summary.Total != 8 {
		t.Errorf("one vCenter down: exit %d, errors %+v, total %d; want exit 1, vc-down listed, 8 snapshots from vc-test", code, r.Errors, r.Summary.Total)
	}

	// Untrusted certificate: no ca_file, no thumbprint.
	e.write(t, vcenterYAML("vc-test", e.sim.URL, "insecure: false"))
	r, _, code = runReport(t, e.cfg)
	if code != 1 || len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Error, "ca_file") {
		t.Errorf("bad TLS: exit %d errors %+v; want exit 1 and advice about ca_file", code, r.Errors)
	}

	// Wrong password.
	if err := os.WriteFile(filepath.Join(e.dir, "vc.password"), []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.write(t, vcenterYAML("vc-test", e.sim.URL, "ca_file: "+e.sim.CAFile))
	r, _, code = runReport(t, e.cfg)
	if code != 1 || len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Error, "Login failure") {
		t.Errorf("wrong password: exit %d errors %+v; want exit 1 and the login failure", code, r.Errors)
	}
	out, _, code := runCLI(t, "check", "--config", e.cfg)
	if code != 1 {
		t.Errorf("check with a wrong password: exit %d, want 1\n%s", code, out)
	}
}

func TestBadConfigAndUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	cases := []struct {
		name, body string
		args       []string
		want       string
	}{
		{"missing file", "", []string{"report", "--config", filepath.Join(dir, "nope.yaml")}, "nope.yaml"},
		{"unknown key", "vcenters: []\npolicy: {deadlin: 48h}\n", []string{"report", "--config", bad}, "deadlin"},
		{"deadline before warn", "policy: {warn_after: 48h, deadline: 24h}\n", []string{"check", "--config", bad}, "policy.deadline must be longer than policy.warn_after"},
		{"not yaml", "vcenters: [\n", []string{"run", "--config", bad}, "bad.yaml"},
		{"bad format", "", []string{"report", "--config", bad, "--format", "pdf"}, "--format"},
		{"bad at", "", []string{"report", "--config", bad, "--at", "tomorrow"}, "--at"},
		{"bad state", "", []string{"report", "--config", bad, "--state", "late"}, "--state"},
		{"unknown flag", "", []string{"report", "--colour"}, "colour"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.body != "" {
				if err := os.WriteFile(bad, []byte(c.body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, stderr, code := runCLI(t, c.args...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, c.want)
			}
		})
	}
}

// report and check need only vCenters; run refuses a config without a
// support address, since escalations would have nowhere to go.
func TestMinimalConfig(t *testing.T) {
	e := newEnv(t, "small.yaml", "")
	min := "state: ledger.db\nvcenters:\n" + vcenterYAML("vc-test", e.sim.URL, "ca_file: "+e.sim.CAFile)
	if err := os.WriteFile(e.cfg, []byte(min), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, stderr, code := runReport(t, e.cfg); code != 0 || r.Summary.Total != 8 {
		t.Errorf("report on a minimal config: exit %d, %d snapshots; %s", code, r.Summary.Total, stderr)
	}
	if _, stderr, code := runCLI(t, "run", "--config", e.cfg); code != 2 || !strings.Contains(stderr, "support.email") {
		t.Errorf("run without support: exit %d, %s; want 2 naming support.email", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "snapwarden ") {
		t.Errorf("version: %q exit %d", out, code)
	}
	if flag, _, code := runCLI(t, "--version"); code != 0 || flag != out {
		t.Errorf("--version: %q exit %d, want what version prints: %q", flag, code, out)
	}
}

// A customer id that is neither in the directory nor on any snapshot is a
// typo: say so (exit 2) instead of an empty report.
func TestReportUnknownCustomer(t *testing.T) {
	e := newEnv(t, "small.yaml", "")
	if _, stderr, code := runCLI(t, "report", "--config", e.cfg, "--customer", "nobody"); code != 2 || !strings.Contains(stderr, "unknown customer nobody") {
		t.Errorf("--customer nobody: exit %d, %s", code, stderr)
	}
	if r, stderr, code := runReport(t, e.cfg, "--customer", "acme"); code != 0 || r.Summary.Total == 0 {
		t.Errorf("--customer acme: exit %d, %d snapshots; %s", code, r.Summary.Total, stderr)
	}
}

// log.format: console writes no colour codes into a pipe or a file.
func TestConsoleLogWithoutTerminal(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, config.Log{Level: "info", Format: "console"})
	if err != nil {
		t.Fatal(err)
	}
	log.Warn().Str("vcenter", "vc-1").Msg("hello")
	if !strings.Contains(buf.String(), "hello") || strings.Contains(buf.String(), "\x1b[") {
		t.Errorf("console log to a buffer: %q", buf.String())
	}
}

// run sends and records; history shows it, filtered; a second run sends nothing.
func TestRunAndHistory(t *testing.T) {
	e := newEnv(t, "small.yaml", "")
	if _, stderr, code := runCLI(t, "run", "--config", e.cfg); code != 0 {
		t.Fatalf("run: exit %d: %s", code, stderr)
	}
	sent := len(e.sink.Messages())
	if sent == 0 {
		t.Fatal("run sent nothing")
	}
	if _, stderr, code := runCLI(t, "run", "--config", e.cfg); code != 0 || len(e.sink.Messages()) != sent {
		t.Errorf("second run: exit %d, %d new messages; %s", code, len(e.sink.Messages())-sent, stderr)
	}
	out, stderr, code := runCLI(t, "history", "--config", e.cfg, "--vm", "web01", "--since", "1d", "--format", "json")
	if code != 0 {
		t.Fatalf("history: exit %d: %s", code, stderr)
	}
	var events []struct{ Kind, VM, Snapshot, What string }
	if err := json.Unmarshal([]byte(out), &events); err != nil {
		t.Fatalf("history JSON: %v\n%s", err, out)
	}
	notices := 0
	for _, ev := range events {
		if ev.VM != "web01" {
			t.Errorf("history --vm web01 shows %s", ev.VM)
		}
		if ev.Kind == "notice" && strings.Contains(ev.What, "ops@acme.example") {
			notices++
		}
	}
	if notices == 0 {
		t.Errorf("history of web01 lacks the notice to acme: %s", out)
	}
	out, _, _ = runCLI(t, "history", "--config", e.cfg, "--customer", "initech")
	if !strings.Contains(out, "schema-v2") || strings.Contains(out, "web01") {
		t.Errorf("history --customer initech:\n%s", out)
	}
}
