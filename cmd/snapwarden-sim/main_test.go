package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/cli"
	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/selfservice"
	"github.com/snapwarden/snapwarden/internal/simfleet"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

const (
	smallFleet = "../../testdata/fleets/small.yaml"
	demoFleet  = "../../testdata/fleets/demo.yaml"
	demoTmpl   = "../../testdata/demo/snapwarden.yaml.tmpl"
)

// lockedBuffer collects run's stderr, written from run's goroutine while the
// test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunSmallFleet(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "snapwarden.yaml")
	mailDir := filepath.Join(dir, "mail")
	o, err := parseArgs([]string{"--fleet", smallFleet, "--dir", dir, "--mail-dir", mailDir,
		"--config-template", demoTmpl, "--config-out", out, "--now", "2026-12-01T09:00:00Z", "--workers", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// A stale ready file from an earlier run must not count.
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, &stderr) }()
	waitReady(t, dir, done)

	var state simJSON
	b, err := os.ReadFile(filepath.Join(dir, "sim.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &state); err != nil {
		t.Fatalf("sim.json: %v\n%s", err, b)
	}
	for _, key := range []string{`"vcenters"`, `"name"`, `"url"`, `"ca_file"`, `"thumbprint"`, `"username"`, `"password_file"`, `"smtp"`, `"host"`, `"port"`} {
		if !bytes.Contains(b, []byte(key)) {
			t.Errorf("sim.json lacks %s:\n%s", key, b)
		}
	}
	if len(state.VCenters) != 1 || state.SMTP == nil {
		t.Fatalf("sim.json: want 1 vCenter and smtp, got %+v", state)
	}
	vc := state.VCenters[0]
	if vc.Name != "vc-small" || !strings.HasPrefix(vc.URL, "https://127.0.0.1:") || !strings.HasSuffix(vc.URL, "/sdk") {
		t.Errorf("vCenter: got name %q url %q", vc.Name, vc.URL)
	}
	if vc.Username != "snapwarden@vsphere.local" {
		t.Errorf("username: got %q", vc.Username)
	}
	if !regexp.MustCompile(`^([0-9A-F]{2}:){19}[0-9A-F]{2}$`).MatchString(vc.Thumbprint) {
		t.Errorf("thumbprint: got %q", vc.Thumbprint)
	}
	if filepath.Dir(vc.CAFile) != dir {
		t.Errorf("CA file %q is not in --dir %q", vc.CAFile, dir)
	}
	if vc.PasswordFile != filepath.Join(dir, "vc-small.password") {
		t.Errorf("password_file: got %q", vc.PasswordFile)
	}
	checkFile(t, vc.PasswordFile, 0o600, "snapwarden-demo")
	// The link key is private and long enough for snapwarden to accept it.
	checkFile(t, filepath.Join(dir, "link.key"), 0o600, "")
	if _, err := selfservice.LoadKeys(filepath.Join(dir, "link.key")); err != nil {
		t.Error(err)
	}
	if state.SMTP.Host != "127.0.0.1" || state.SMTP.Port == 0 {
		t.Errorf("smtp: got %+v", *state.SMTP)
	}

	cfg := checkFile(t, out, 0o600, "")
	for _, want := range []string{
		"state: " + dir + "/ledger.db",
		"  - name: vc-small\n    url: " + vc.URL + "\n",
		"username: snapwarden@vsphere.local",
		"password_file: " + vc.PasswordFile,
		"ca_file: " + vc.CAFile,
		fmt.Sprintf("smtp: {host: 127.0.0.1, port: %d,", state.SMTP.Port),
		"key_file: " + filepath.Join(dir, "link.key"),
		"public_url: http://127.0.0.1:",
		"listen: 127.0.0.1:",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("rendered config lacks %q:\n%s", want, cfg)
		}
	}

	logs := stderr.String()
	for _, want := range []string{
		"snapwarden-sim: vc-small " + vc.URL + " (5 VMs)\n",
		fmt.Sprintf("snapwarden-sim: smtp 127.0.0.1:%d\n", state.SMTP.Port),
		"snapwarden-sim: ready\n",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, logs)
		}
	}

	// What the files promise works: the vCenter verifies with the CA file and
	// accepts the password, and the sink keeps mail in --mail-dir.
	if inv := collect(t, vc.URL, vc.CAFile, vc.Username, "snapwarden-demo"); inv.VMs != 5 {
		t.Errorf("vCenter serves %d VMs, want 5", inv.VMs)
	}
	addr := fmt.Sprintf("%s:%d", state.SMTP.Host, state.SMTP.Port)
	msg := "From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nhello\r\n"
	if err := smtp.SendMail(addr, nil, "a@example.test", []string{"b@example.test"}, []byte(msg)); err != nil {
		t.Fatalf("send mail to the sink: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mailDir, "0001.eml")); err != nil {
		t.Errorf("mail dir: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, err := os.Stat(filepath.Join(dir, "ready")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ready file left after shutdown: %v", err)
	}
}

// TestDemoFleetLoads builds the demo fleet and checks that the simulator
// keeps the hostile names and descriptions byte for byte.
// One worker: parallel seeding races inside vcsim itself (see --workers).
func TestDemoFleetLoads(t *testing.T) {
	f, err := simfleet.Load(demoFleet)
	if err != nil {
		t.Fatal(err)
	}
	sim := simfleet.ForTest(t, demoFleet, simfleet.Options{Dir: t.TempDir(), Workers: 1})
	inv := collect(t, sim.URL, sim.CAFile, "snapwarden@vsphere.local", "snapwarden-demo")
	if inv.VMs != 25 || len(f.VMs) != 25 {
		t.Fatalf("demo fleet: %d VMs in the file, %d in the simulator, want 25", len(f.VMs), inv.VMs)
	}
	snaps := map[string]facts.Snapshot{} // by "vm/snapshot"
	for _, s := range inv.Snapshots {
		snaps[s.VM.Name+"/"+s.Name] = s
	}
	hostile := "<img src=x onerror=alert(1)>"
	formula := hostile + `/=HYPERLINK("http://evil.example","click")`
	if s, ok := snaps[formula]; !ok {
		t.Errorf("no snapshot %q; have %v", formula, keys(snaps))
	} else if s.Description != "line1\r\nBcc: victim@evil.example" {
		t.Errorf("CR/LF description came back as %q", s.Description)
	}
	if _, ok := snaps[hostile+"/Prüfung-ñ-日本"]; !ok {
		t.Errorf("no non-ASCII snapshot; have %v", keys(snaps))
	}
	if s, ok := snaps["acme-db01/before-postgres-16-upgrade"]; !ok || s.Quiesced {
		t.Errorf("memory snapshot: %+v", s)
	}
	if _, ok := snaps["acme-app01/hotfix-4.2.1"]; !ok {
		t.Error("nested chain: no third snapshot")
	}
	// The problems it declares: the linked clone globex-ci01 is none.
	var problems []string
	for _, p := range inv.Problems {
		problems = append(problems, string(p.Kind)+" "+p.VM.Name)
	}
	if strings.Join(problems, ", ") != "consolidation_needed initech-app02, phantom_delta acme-phantom01" {
		t.Errorf("demo problems = %v", problems)
	}
}

func TestParseArgs(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("vms:\n  - name: x\n    colour: red\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string // in the error
	}{
		{[]string{"--dir", dir}, "--fleet is required"},
		{[]string{"--fleet", smallFleet}, "--dir is required"},
		{[]string{"--fleet", smallFleet, "--dir", dir, "--now", "yesterday"}, "--now"},
		{[]string{"--fleet", filepath.Join(dir, "missing.yaml"), "--dir", dir}, "missing.yaml"},
		{[]string{"--fleet", bad, "--dir", dir}, "bad.yaml"},
		{[]string{"--fleet", smallFleet, "--fleet", smallFleet, "--dir", dir}, `"vc-small" is already used`},
		{[]string{"--fleet", smallFleet, "--dir", dir, "--config-template", demoTmpl}, "--config-out"},
		{[]string{"--fleet", smallFleet, "--dir", dir, "--smtp=false", "--mail-dir", dir}, "--mail-dir"},
		{[]string{"--fleet", smallFleet, "--dir", dir, "--bogus"}, "bogus"},
		{[]string{"--fleet", smallFleet, "--dir", dir, "--config-template", demoTmpl, "--config-out", filepath.Join(dir, "no", "x.yaml")}, "--config-out"},
		{[]string{"--fleet", smallFleet, "--dir", dir, "--workers", "-1"}, "--workers"},
		{[]string{"--fleet", smallFleet, "--dir", dir, "--config-template", bad + ".tmpl", "--config-out", "x"}, "--config-template"},
	} {
		_, err := parseArgs(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != cli.ExitUsage {
			t.Errorf("%q: got %v (exit %d), want a usage error mentioning %q", tc.args, err, exitCode(err), tc.want)
		}
	}

	o, err := parseArgs([]string{"--fleet", smallFleet, "--fleet", "east=" + smallFleet, "--dir", "rel"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.fleets[0].name != "vc-small" || o.fleets[1].name != "east" || !filepath.IsAbs(o.dir) {
		t.Errorf("got names %q, %q and dir %q", o.fleets[0].name, o.fleets[1].name, o.dir)
	}
	if o.username != "snapwarden@vsphere.local" || o.password != "snapwarden-demo" || !o.smtp || !o.now.IsZero() {
		t.Errorf("defaults: %+v", o)
	}
}

// waitReady polls for DIR/ready, failing early if run has already returned.
func waitReady(t *testing.T, dir string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			// The stale file written by the test is removed first thing; make
			// sure this one is the new one by checking a file written before it.
			if _, err := os.Stat(filepath.Join(dir, "sim.json")); err == nil {
				return
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before ready: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("no ready file after 2 minutes")
}

// checkFile checks a file's mode and, when want is set, its content.
func checkFile(t *testing.T, name string, mode os.FileMode, want string) string {
	t.Helper()
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != mode {
		t.Errorf("%s: mode %o, want %o", name, st.Mode().Perm(), mode)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if want != "" && string(b) != want {
		t.Errorf("%s: got %q, want %q", name, b, want)
	}
	return string(b)
}

// collect reads the simulated vCenter the way snapwarden does: a session
// verified against the CA file, then one collection.
func collect(t *testing.T, rawURL, caFile, user, password string) *facts.Inventory {
	t.Helper()
	ctx := context.Background()
	c, err := vsphere.Dial(ctx, config.VCenter{Name: "sim", URL: rawURL, Username: user, Password: config.Secret(password), CAFile: caFile}, vsphere.Options{})
	if err != nil {
		t.Fatalf("log in to %s with CA %s: %v", rawURL, caFile, err)
	}
	t.Cleanup(func() { _ = c.Logout(context.Background()) })
	inv, err := c.Collect(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func keys(m map[string]facts.Snapshot) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
