package service

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
)

// chromium finds Debian's chromium (or another Chrome); the browser tests
// are skipped, saying so, where there is none.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium not found (apt-get install chromium): the browser tests are skipped")
	return ""
}

// browser starts one headless Chromium, offline apart from loopback, with a
// fresh profile. login answers HTTP Basic challenges: false cancels the
// login, true gives the test user's password.
func browser(t *testing.T) (ctx context.Context, login *atomic.Bool) {
	t.Helper()
	path := chromium(t)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true))
	ctx, cancelTab := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", path, err)
	}
	login = &atomic.Bool{}
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	auths := chromedp.Events(ctx, fetch.AuthRequired)
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auths {
			if err != nil {
				return
			}
			resp := &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}
			if login.Load() {
				resp = &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials,
					Username: testUser, Password: testPassword}
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID, AuthChallengeResponse: resp})
		}
	}()
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{HandleAuthRequests: new(true)}); err != nil {
		t.Fatal(err)
	}
	return ctx, login
}

// screenshots keeps the browser tests' screenshots in a folder of one's
// choice: go test ./internal/service -run TestBrowser -args -screenshots=DIR
// (an environment variable would be read as config: SNAPWARDEN_* are keys).
var screenshots = flag.String("screenshots", "", "keep the browser tests' screenshots in this folder")

// shots is where screenshots go: -screenshots, else a temp dir.
func shots(t *testing.T) string {
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// widths loads url at width and returns the document's scrollWidth and the
// window's innerWidth: a page wider than its window scrolls sideways.
func widths(t *testing.T, ctx context.Context, url string, width int64) (scroll, inner int64) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 900), chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s at %d px: %v", url, width, err)
	}
	dims, err := chromedp.Run(ctx, chromedp.Evaluate[[]int64](`[document.documentElement.scrollWidth, window.innerWidth]`))
	if err != nil || len(dims) != 2 {
		t.Fatalf("%s at %d px: widths %v: %v", url, width, dims, err)
	}
	return dims[0], dims[1]
}

// fits loads url at each width and fails when the page scrolls sideways;
// it keeps a screenshot of each.
func fits(t *testing.T, ctx context.Context, dir, name, url string) {
	t.Helper()
	for _, width := range []int64{1280, 390} {
		if scroll, inner := widths(t, ctx, url, width); scroll > inner {
			t.Errorf("%s scrolls sideways at %d px: scrollWidth %d > innerWidth %d", name, width, scroll, inner)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width)), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// In a real browser: a login, every console page and the report without
// sideways scrolling at 1280 and 390 px, the emails too, and an
// acknowledgement by a click.
func TestBrowser(t *testing.T) {
	ctx, login := browser(t)
	e := startConsole(t, withUsers)
	dir := shots(t)
	t.Logf("screenshots in %s", dir)

	// The check sees a page that is too wide.
	if scroll, inner := widths(t, ctx, `data:text/html,<div style="width:600px">wide</div>`, 390); scroll <= inner {
		t.Fatalf("a 600 px page at 390 px: scrollWidth %d <= innerWidth %d: the width check is blind", scroll, inner)
	}

	// Without a login the console refuses; with one it shows who is in.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.base+"/")); err != nil {
		t.Fatal(err)
	}
	// The 401 page's text can land a moment after the load event (the
	// browser first offers the challenge to the login hook): read it again
	// for a while before judging.
	var body string
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if body, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); strings.Contains(body, "login required") {
			break
		}
	}
	if !strings.Contains(body, "login required") {
		t.Errorf("without a login the overview shows %q", body)
	}
	login.Store(true)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.base+"/")); err != nil {
		t.Fatal(err)
	}
	if user, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("header .user"))); err != nil || user != testUser {
		t.Fatalf("logged in as %q (%v), want %s", user, err, testUser)
	}

	vm := e.vmUUID(t, "snapshot_id", e.escalations(t)[0].SnapshotID)
	for name, path := range map[string]string{
		"overview": "/", "snapshots": "/snapshots", "overdue": "/snapshots?state=overdue", "customer": "/customers/acme",
		"vm": "/vms/vc-test/" + vm, "report": "/report",
	} {
		fits(t, ctx, dir, name, e.base+path)
	}

	// The emails: the golden ones and those the demo cycle sent (hostile
	// and very long names).
	mails := map[string]string{}
	for _, g := range []string{"customer", "support"} {
		mails["golden-"+g] = filepath.Join("..", "notify", "testdata", g+".html.golden")
	}
	for i, m := range e.sink.Messages() {
		p := filepath.Join(t.TempDir(), fmt.Sprintf("mail-%d.html", i))
		if err := os.WriteFile(p, []byte(htmlPart(t, m.Data)), 0o600); err != nil {
			t.Fatal(err)
		}
		mails[fmt.Sprintf("mail-%d-%s", i, strings.Split(m.To[0], "@")[0])] = p
	}
	for name, p := range mails {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		fits(t, ctx, dir, name, "file://"+abs)
	}

	// Acknowledge the first escalation by a click.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(e.base+"/"),
		chromedp.SendKeys(chromedp.CSS("form.ack input[name=note]"), "INC-7: customer is on it"),
		chromedp.Click(chromedp.CSS("form.ack button")),
		chromedp.WaitVisible(chromedp.CSS(".acked"))); err != nil {
		t.Fatalf("acknowledge by click: %v", err)
	}
	if acked, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".acked"))); !strings.Contains(acked, "by "+testUser) {
		t.Errorf("after the click the queue shows %q", acked)
	}
	n := 0
	for _, it := range e.escalations(t) {
		if it.Acknowledged != nil && it.Acknowledged.By == testUser && it.Acknowledged.Note == "INC-7: customer is on it" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d escalations acknowledged by the click, want 1", n)
	}
}

// htmlPart decodes the HTML part of a delivered message.
func htmlPart(t *testing.T, raw []byte) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no HTML part: %v", err)
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
			b, err := io.ReadAll(p)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}
