package selfservice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"

	_ "modernc.org/sqlite"
)

type env struct {
	t      *testing.T
	led    *ledger.Ledger
	path   string
	srv    *httptest.Server
	keys   *Keys
	now    time.Time
	logs   *bytes.Buffer
	snap   facts.Key
	other  facts.Key
	linker *Linker
}

// newEnv serves the handler on 127.0.0.1 over a real ledger holding two
// open snapshots of acme's ("web01" and "db01").
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	led, err := ledger.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = led.Close() })
	e := &env{t: t, led: led, path: path, keys: keys(t, keyA), now: t0, logs: &bytes.Buffer{}}
	e.snap = facts.Key{VCenter: "vc-east", VMUUID: "uuid-web01", Snapshot: "snapshot-42", Created: t0.Add(-50 * time.Hour)}
	e.other = facts.Key{VCenter: "vc-east", VMUUID: "uuid-db01", Snapshot: "snapshot-43", Created: t0.Add(-30 * time.Hour)}
	rec := ledger.Record{Started: t0.Add(-time.Hour), Mode: "dry-run", Answered: []string{"vc-east"}, Snapshots: []ledger.Seen{
		{Key: e.snap, VCenter: "vc-east", VM: "web01", VMMoRef: "vm-1", Snapshot: "before <b>upgrade</b>", Customer: "acme"},
		{Key: e.other, VCenter: "vc-east", VM: "db01", VMMoRef: "vm-2", Snapshot: "db", Customer: "acme"},
	}}
	if _, err := led.Record(ctx, rec); err != nil {
		t.Fatal(err)
	}
	h := NewHandler(Options{Keys: e.keys, Store: led, Provider: "Example Hosting", ExtendBy: 24 * time.Hour, MaxExtends: 2,
		Commit: true, Log: zerolog.New(e.logs), Now: func() time.Time { return e.now }, Limiter: NewLimiter(1000, 1000)})
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	e.linker = &Linker{Keys: e.keys, PublicURL: e.srv.URL, TTL: 168 * time.Hour, ExtendBy: 24 * time.Hour, Commit: true}
	return e
}

func (e *env) link(customer string, k facts.Key, a plan.RequestAction) string {
	e.t.Helper()
	links, err := e.linker.Links(customer, k, e.now)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range links {
		if l.Action == a {
			return l.URL
		}
	}
	e.t.Fatalf("no %s link", a)
	return ""
}

func (e *env) do(method, u string) (int, string, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// requests counts the ledger's request rows straight from the file.
func (e *env) requests() int {
	e.t.Helper()
	db, err := sql.Open("sqlite", "file:"+e.path+"?mode=ro")
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM requests`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestGetShowsAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	u := e.link("acme", e.snap, plan.RequestCommit)
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodGet} {
		code, body, hd := e.do(m, u)
		if code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", m, code, body)
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
			if hd.Get(k) != want {
				t.Errorf("%s = %q, want %q", k, hd.Get(k), want)
			}
		}
		if csp := hd.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("CSP = %q", csp)
		}
		if m == http.MethodGet {
			for _, want := range []string{"Example Hosting", `<form method="post">`, "Commit it now", "web01", "before &lt;b&gt;upgrade&lt;/b&gt;"} {
				if !strings.Contains(body, want) {
					t.Errorf("GET page lacks %q:\n%s", want, body)
				}
			}
			// The CSP allows the page's one style block by its hash: it must match.
			style := body[strings.Index(body, "<style>")+len("<style>") : strings.Index(body, "</style>")]
			sum := sha256.Sum256([]byte(style))
			if !strings.Contains(hd.Get("Content-Security-Policy"), "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") {
				t.Errorf("the style block does not match the CSP's hash")
			}
			if strings.Contains(body, "<script") || strings.Contains(body, "<b>upgrade") {
				t.Errorf("page has script or unescaped names:\n%s", body)
			}
		}
	}
	if n := e.requests(); n != 0 {
		t.Fatalf("GET changed the ledger: %d requests", n)
	}
}

func TestPostActsOnce(t *testing.T) {
	e := newEnv(t)
	u := e.link("acme", e.snap, plan.RequestExtend)
	code, body, _ := e.do(http.MethodPost, u)
	if code != http.StatusOK || !strings.Contains(body, "Thank you") {
		t.Fatalf("first POST: %d %s", code, body)
	}
	code, body, _ = e.do(http.MethodPost, u)
	if code != http.StatusOK || !strings.Contains(body, "Already done") {
		t.Fatalf("second POST: %d %s", code, body)
	}
	code, body, _ = e.do(http.MethodGet, u)
	if code != http.StatusOK || !strings.Contains(body, "Already done") || strings.Contains(body, "<form") {
		t.Fatalf("GET after POST: %d %s", code, body)
	}
	if n := e.requests(); n != 1 {
		t.Fatalf("requests = %d, want 1", n)
	}
	reqs, err := e.led.Requests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := reqs[e.snap]; len(got) != 1 || got[0].Action != plan.RequestExtend || !got[0].At.Equal(t0) {
		t.Fatalf("Requests = %+v", reqs)
	}
	if len(reqs[e.other]) != 0 {
		t.Fatalf("the other snapshot got a request: %+v", reqs[e.other])
	}
	events, err := e.led.Audit(context.Background(), ledger.Filter{VM: "web01"})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range events {
		found = found || (ev.Kind == ledger.EventRequest && strings.Contains(ev.What, "extend"))
	}
	if !found {
		t.Fatalf("history lacks the request: %+v", events)
	}
}

// At most max_extends extend links act, each a different link.
func TestExtendLimit(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 3; i++ {
		e.now = t0.Add(time.Duration(i) * time.Hour) // a later digest's link
		code, body, _ := e.do(http.MethodPost, e.link("acme", e.snap, plan.RequestExtend))
		want := http.StatusOK
		if i == 2 {
			want = http.StatusConflict
		}
		if code != want {
			t.Fatalf("extend %d: status %d, want %d: %s", i+1, code, want, body)
		}
	}
	if n := e.requests(); n != 2 {
		t.Fatalf("requests = %d, want 2", n)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t)
	good := e.link("acme", e.snap, plan.RequestExtend)
	tok := strings.TrimPrefix(good, e.srv.URL+Prefix)
	// Another customer's link for the same snapshot is valid but not theirs.
	foreign := e.link("initech", e.snap, plan.RequestCommit)
	flip := byte('A')
	if tok[10] == 'A' {
		flip = 'B'
	}
	tampered := e.srv.URL + Prefix + tok[:10] + string(flip) + tok[11:]
	gone := e.link("acme", facts.Key{VCenter: "vc-east", Snapshot: "snapshot-99", Created: t0}, plan.RequestCommit)
	e.now = t0
	expired := func() string {
		e.now = t0.Add(-200 * time.Hour)
		defer func() { e.now = t0 }()
		return e.link("acme", e.snap, plan.RequestCommit)
	}()
	for _, tc := range []struct {
		name, method, url string
		code              int
		want              string
	}{
		{"tampered", http.MethodPost, tampered, http.StatusForbidden, "not valid"},
		{"another customer", http.MethodPost, foreign, http.StatusForbidden, "another customer"},
		{"expired", http.MethodPost, expired, http.StatusGone, "expired"},
		{"gone", http.MethodGet, gone, http.StatusNotFound, "snapshot is gone"},
		{"root", http.MethodGet, e.srv.URL + "/", http.StatusNotFound, "not found"},
		{"console path", http.MethodGet, e.srv.URL + "/api/v1/report", http.StatusNotFound, "not found"},
		{"sub path", http.MethodGet, good + "/x", http.StatusNotFound, "not found"},
		{"method", http.MethodDelete, good, http.StatusMethodNotAllowed, "not allowed"},
	} {
		code, body, _ := e.do(tc.method, tc.url)
		if code != tc.code || !strings.Contains(strings.ToLower(body), strings.ToLower(tc.want)) {
			t.Errorf("%s: status %d, want %d with %q: %s", tc.name, code, tc.code, tc.want, body)
		}
	}
	if n := e.requests(); n != 0 {
		t.Fatalf("a refused link changed the ledger: %d requests", n)
	}
	// A big body is refused before anything acts.
	resp, err := http.Post(good, "application/x-www-form-urlencoded", strings.NewReader(strings.Repeat("a=b&", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || e.requests() != 0 {
		t.Fatalf("big body: status %d, requests %d", resp.StatusCode, e.requests())
	}
}

// The key appears in no page, log line or ledger row.
func TestKeyNeverLeaks(t *testing.T) {
	e := newEnv(t)
	var pages strings.Builder
	for _, a := range []plan.RequestAction{plan.RequestExtend, plan.RequestCommit, plan.RequestNotMine} {
		u := e.link("acme", e.snap, a)
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPost} {
			_, body, _ := e.do(m, u)
			pages.WriteString(body)
		}
	}
	_ = e.led.Close()
	db, err := readFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]string{"pages": pages.String(), "logs": e.logs.String(), "ledger": db} {
		for _, enc := range []string{string(keyA), url.QueryEscape(string(keyA))} {
			if strings.Contains(s, enc) {
				t.Errorf("the key appears in the %s", name)
			}
		}
	}
	if !strings.Contains(e.logs.String(), "self-service request recorded") {
		t.Errorf("no log of the requests: %s", e.logs)
	}
}

func TestRateLimit(t *testing.T) {
	l := NewLimiter(1, 3)
	for i := 0; i < 3; i++ {
		if !l.Allow("192.0.2.1", t0) {
			t.Fatalf("request %d refused within the burst", i+1)
		}
	}
	if l.Allow("192.0.2.1", t0) {
		t.Fatal("the 4th request in the same instant passed")
	}
	if !l.Allow("192.0.2.2", t0) {
		t.Fatal("another client was limited too")
	}
	if !l.Allow("192.0.2.1", t0.Add(time.Second)) {
		t.Fatal("a token did not come back after a second")
	}
	// A flood from many addresses that stay active cannot grow the map past
	// maxClients; once they go idle, new clients get in again.
	flood := NewLimiter(0.001, 2)
	for i := 0; i < maxClients+500; i++ {
		flood.Allow(fmt.Sprintf("2001:db8::%x", i), t0)
	}
	if n := len(flood.buckets); n > maxClients {
		t.Errorf("%d clients tracked after a flood, want at most %d", n, maxClients)
	}
	if flood.Allow("192.0.2.9", t0) {
		t.Error("a new client got in while every tracked one was active")
	}
	if !flood.Allow("192.0.2.9", t0.Add(time.Hour)) {
		t.Error("a new client was refused after the flood's clients went idle")
	}
	// Over HTTP: the 429 page with Retry-After.
	e := newEnv(t)
	h := e.srv.Config.Handler.(*Handler)
	h.opt.Limiter = NewLimiter(0, 1)
	u := e.link("acme", e.snap, plan.RequestExtend)
	e.do(http.MethodGet, u)
	code, _, hd := e.do(http.MethodGet, u)
	if code != http.StatusTooManyRequests || hd.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q", code, hd.Get("Retry-After"))
	}
}

// readFile returns the ledger file and its WAL as one string.
func readFile(path string) (string, error) {
	var out []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			return "", err
		}
		out = append(out, b...)
	}
	return string(out), nil
}
