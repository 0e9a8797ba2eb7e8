package service

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

	"github.com/chromedp/chromedp"

	"github.com/snapwarden/snapwarden/internal/report"
	"github.com/snapwarden/snapwarden/internal/selfservice"
)

// In a real browser, ACME acts from its digest as delivered: for each of
// extend, commit and not-mine it clicks the link in the email, sees a page
// that changes nothing, presses the button, and the ledger has the request
// once; the next report follows the requests.
func TestBrowserSelfService(t *testing.T) {
	ctx, _ := browser(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "link.key")
	if err := os.WriteFile(key, []byte("browser-test-key-0123456789abcdef0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The links name the public listener, so its port is chosen before
	// serve starts: one free a moment ago.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pub := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	e := startConsole(t, withUsers+fmt.Sprintf("self_service: {public_url: 'http://%s', listen: '%s', key_file: %s}\n", pub, pub, key))

	var digest string
	for _, m := range e.sink.Messages() {
		if m.To[0] == "ops@acme.example" {
			digest = htmlPart(t, m.Data)
		}
	}
	if !strings.Contains(digest, "http://"+pub+selfservice.Prefix) {
		t.Fatalf("acme's digest has no self-service link to %s:\n%s", pub, digest)
	}
	mail := filepath.Join(dir, "acme.html")
	if err := os.WriteFile(mail, []byte(digest), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		snapshot, link, done string
	}{
		{"before-postgres-16-upgrade", "Keep it 24 h longer", "The deadline moves by 24 h."},
		{"pre-patch-2026-11", "Commit it now", "We commit the snapshot in our next maintenance run"},
		{"release-4.1", "Not ours", "Our support team will check who owns this VM."},
	} {
		// The link in the email, as the customer clicks it.
		link := fmt.Sprintf(`//tr[td[@data-label="Snapshot" and contains(., %q)]]//a[. = %q]`, tc.snapshot, tc.link)
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 900), chromedp.Navigate("file://"+mail),
			chromedp.Click(link), chromedp.WaitVisible(`//main/form/button`)); err != nil {
			t.Fatalf("%s: click %q in the email: %v", tc.snapshot, tc.link, err)
		}
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		token, ok := strings.CutPrefix(loc, "http://"+pub+selfservice.Prefix)
		if !ok {
			t.Fatalf("%s: the link led to %s", tc.snapshot, loc)
		}
		page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(page, tc.link+"?") || !strings.Contains(page, tc.snapshot) || !strings.Contains(page, "Nothing changes until you press the button.") {
			t.Errorf("%s: the link's page says %q", tc.snapshot, page)
		}
		// Looking changed nothing.
		if at := e.requestDone(t, token); !at.IsZero() {
			t.Fatalf("%s: the GET recorded a request at %s", tc.snapshot, at)
		}

		if err := chromedp.Do(ctx, chromedp.Click(`//main/form/button`),
			chromedp.WaitVisible(`//h1[. = "Thank you"]`)); err != nil {
			t.Fatalf("%s: press %q: %v", tc.snapshot, tc.link, err)
		}
		if page, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main"))); !strings.Contains(page, tc.done) {
			t.Errorf("%s: after the button the page says %q", tc.snapshot, page)
		}
		if at := e.requestDone(t, token); at.IsZero() {
			t.Errorf("%s: the button recorded no request", tc.snapshot)
		}
		// A second visit (the back button, a scanner) only says it is done.
		if err := chromedp.Do(ctx, chromedp.Navigate(loc), chromedp.WaitVisible(`//h1[. = "Already done"]`)); err != nil {
			t.Errorf("%s: the link again: %v", tc.snapshot, err)
		}
	}

	// The next cycle's report follows the requests (serve's next cycle is an
	// hour away: the test runs it).
	res, err := e.runner.Cycle(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := report.Render(&buf, report.JSON, res.Plan, report.Options{GeneratedAt: res.Started}); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Snapshots []struct {
			Snapshot      string `json:"snapshot"`
			State         string `json:"state"`
			NextAction    string `json:"next_action"`
			ActionReason  string `json:"action_reason"`
			ExtendedUntil string `json:"extended_until"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, buf.String())
	}
	got := map[string]string{}
	for _, s := range rep.Snapshots {
		got[s.Snapshot] = fmt.Sprintf("state=%s next=%s reason=%s extended=%t", s.State, s.NextAction, s.ActionReason, s.ExtendedUntil != "")
	}
	for snapshot, want := range map[string]string{
		// Kept 24 h longer: no longer overdue, and only reminded.
		"before-postgres-16-upgrade": "state=warning next=remind reason=not-yet-due extended=true",
		// Committed at the customer's request before its deadline
		// (dry-run: support is told instead).
		"pre-patch-2026-11": "state=warning next=consolidate reason=customer-commit extended=false",
		// Not theirs: support checks the owner.
		"release-4.1": "state=overdue next=escalate reason=owner-disputed extended=false",
	} {
		if got[snapshot] != want {
			t.Errorf("the next report shows %s as %q, want %q", snapshot, got[snapshot], want)
		}
	}
}

// requestDone is when the ledger recorded the request of token; zero if never.
func (e *consoleEnv) requestDone(t *testing.T, token string) time.Time {
	t.Helper()
	at, err := e.runner.Ledger().RequestDone(context.Background(), selfservice.Digest(token))
	if err != nil {
		t.Fatal(err)
	}
	return at
}
