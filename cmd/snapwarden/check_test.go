package main

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// check asks vCenter for the account's privileges and names what is
// missing, per vCenter: a warning in dry-run, a failure in enforce mode.
func TestCheckPrivileges(t *testing.T) {
	e := newEnv(t, "small.yaml", "")
	out, _, code := runCLI(t, "check", "--config", e.cfg)
	if code != 0 || !strings.Contains(out, "vcenter vc-test: ok (") || strings.Contains(out, "lacks") {
		t.Fatalf("full privileges: exit %d\n%s", code, out)
	}

	if err := e.sim.Restrict("svc@vsphere.local", "VirtualMachine.State.CreateSnapshot"); err != nil {
		t.Fatal(err)
	}
	out, _, code = runCLI(t, "check", "--config", e.cfg)
	want := "vcenter vc-test: WARNING (needed once enforcement.mode is enforce): svc@vsphere.local lacks privilege VirtualMachine.State.RemoveSnapshot"
	if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, "lacks privilege Datastore.Browse") {
		t.Fatalf("dry-run without RemoveSnapshot: exit %d, want 0 and %q\n%s", code, want, out)
	}

	t.Setenv("SNAPWARDEN_ENFORCEMENT_MODE", "enforce")
	out, _, code = runCLI(t, "check", "--config", e.cfg)
	want = "vcenter vc-test: FAILED: svc@vsphere.local lacks privilege VirtualMachine.State.RemoveSnapshot"
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("enforce without RemoveSnapshot: exit %d, want 1 and %q\n%s", code, want, out)
	}
}

// insecure: true is allowed but never silent.
func TestCheckWarnsInsecure(t *testing.T) {
	e := newEnv(t, "small.yaml", "")
	e.write(t, vcenterYAML("vc-test", e.sim.URL, "insecure: true"))
	out, stderr, code := runCLI(t, "check", "--config", e.cfg)
	if code != 0 || !strings.Contains(out, "vcenter vc-test: WARNING: insecure: true, the certificate is not verified") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !strings.Contains(stderr, `"vcenter":"vc-test"`) || !strings.Contains(stderr, "not verified") {
		t.Errorf("no warning in the log: %s", stderr)
	}
}

// hang accepts connections on 127.0.0.1 and never answers.
func hang(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// A hung vCenter and a hung SMTP server are cut off at --timeout and named
// with the step that hung; the vCenter's name is said once.
func TestCheckHungServers(t *testing.T) {
	e := newEnv(t, "small.yaml", "")
	vc, smtp := hang(t), hang(t)
	e.write(t, vcenterYAML("vc-hung", "https://"+vc+"/sdk", "insecure: false"))
	host, port, _ := net.SplitHostPort(smtp)
	t.Setenv("SNAPWARDEN_SMTP_HOST", host)
	t.Setenv("SNAPWARDEN_SMTP_PORT", port)
	start := time.Now()
	out, _, code := runCLI(t, "check", "--config", e.cfg, "--timeout", "1s")
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("check took %s with --timeout 1s:\n%s", took, out)
	}
	for _, want := range []string{
		"vcenter vc-hung: FAILED at login: did not finish within 1s (--timeout): connect " + vc,
		fmt.Sprintf("smtp %s: FAILED at connect and login: did not finish within 1s (--timeout)", smtp),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in\n%s", want, out)
		}
	}
	if code != 1 || regexp.MustCompile(`vc-hung.*vc-hung`).MatchString(out) {
		t.Errorf("exit %d, want 1 and the vCenter named once a line:\n%s", code, out)
	}
}
