package cycle

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/report"
)

// linkRE finds a self-service link and its label in a digest's HTML part.
var linkRE = regexp.MustCompile(`<a href="([^"]+/s/[A-Za-z0-9_-]+)"[^>]*>([^<]+)</a>`)

// rowLinks returns the links of the digest's table row naming snapshot, by label.
func rowLinks(t *testing.T, html, snapshot string) map[string]string {
	t.Helper()
	for _, row := range strings.Split(html, "<tr") {
		if !strings.Contains(unbroken(row), ">"+snapshot) {
			continue
		}
		out := map[string]string{}
		for _, m := range linkRE.FindAllStringSubmatch(row, -1) {
			out[m[2]] = m[1]
		}
		return out
	}
	t.Fatalf("no row for %s in:\n%s", snapshot, html)
	return nil
}

// unbroken drops the <wbr> break hints names carry at their separators.
func unbroken(html string) string { return strings.ReplaceAll(html, "<wbr>", "") }

func fetch(t *testing.T, method, u string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// selfService gives e's config self-service links served on 127.0.0.1 and
// returns a runner whose pages read *clock.
func (e *env) selfService(t *testing.T, clock *time.Time) *Runner {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	key := filepath.Join(e.dir, "link.key")
	if err := os.WriteFile(key, []byte("e2e-test-key-0123456789abcdefghijklmnopqrstuvwxyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.cfg.File, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("self_service: {public_url: \"http://" + srv.Listener.Addr().String() + "\", listen: \"127.0.0.1:0\", key_file: link.key}\n")
	f.Close()
	mode := e.cfg.Enforcement.Mode
	if e.cfg, err = config.Load(e.cfg.File); err != nil {
		t.Fatal(err)
	}
	e.cfg.Enforcement.Mode = mode
	r, err := New(context.Background(), e.cfg, Options{Log: zerolog.Nop(), Now: func() time.Time { return *clock }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	srv.Config.Handler = r.Public()
	srv.Start()
	return r
}

// digestLinks returns the links of snapshot in the last digest to ops@acme.example.
func digestLinks(t *testing.T, e *env, from int, snapshot string) map[string]string {
	t.Helper()
	var html string
	for _, m := range messages(t, e.sink, from) {
		if m.to[0] == "ops@acme.example" {
			html = htmlOf(t, m)
		}
	}
	return rowLinks(t, html, snapshot)
}

// A delivered digest's links, followed over HTTP (GET, then the form's
// POST), land in the ledger and change the next report and emails: extend
// moves after-config's deadline (extended_until) and the next digest
// confirms it; not-mine takes before-upgrade out of acme's digests and
// tells support "owner disputed".
func TestSelfServiceEndToEnd(t *testing.T) {
	e := newEnv(t, "small.yaml")
	clock := t0
	r := e.selfService(t, &clock)

	cycle(t, r, t0)
	afterConfig, beforeUpgrade := digestLinks(t, e, 0, "after-config"), digestLinks(t, e, 0, "before-upgrade")
	extend, notMine := afterConfig["Keep it 24 h longer"], beforeUpgrade["Not ours"]
	if extend == "" || notMine == "" || len(afterConfig) != 3 {
		t.Fatalf("digest links: after-config %v, before-upgrade %v", afterConfig, beforeUpgrade)
	}

	clock = t0.Add(time.Hour)
	ctx := context.Background()
	for _, u := range []string{extend, notMine} {
		// What a mail scanner does: fetch the link. Nothing changes.
		if code, body := fetch(t, http.MethodGet, u); code != http.StatusOK || !strings.Contains(body, "<form") {
			t.Fatalf("GET %s: %d\n%s", u, code, body)
		}
		if reqs, err := r.ledger.Requests(ctx); err != nil || len(reqs) != 0 {
			t.Fatalf("GET changed the ledger: %v %v", reqs, err)
		}
	}
	for _, u := range []string{extend, notMine, extend} {
		if code, body := fetch(t, http.MethodPost, u); code != http.StatusOK {
			t.Fatalf("POST %s: %d\n%s", u, code, body)
		}
	}
	reqs, err := r.ledger.Requests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, rs := range reqs {
		n += len(rs)
	}
	if n != 2 {
		t.Fatalf("ledger holds %d requests, want 2 (the second POST of a link acts no more): %v", n, reqs)
	}

	// The next report: after-config's deadline moved by a day; before-upgrade is disputed.
	p := r.mustPlan(t, t0.Add(13*time.Hour))
	rows := report.Rows(p, report.Options{})
	for _, row := range rows {
		switch row.Snapshot {
		case "after-config":
			created, _ := time.Parse(time.RFC3339, row.Created)
			if want := created.Add(72 * time.Hour).UTC().Format(time.RFC3339); row.ExtendedUntil != want || row.Deadline != want {
				t.Errorf("after-config extended_until %q deadline %q, want %s", row.ExtendedUntil, row.Deadline, want)
			}
			b, _ := json.Marshal(row)
			if !strings.Contains(string(b), `"extended_until":"`) {
				t.Errorf("JSON row lacks extended_until: %s", b)
			}
		case "before-upgrade":
			if row.ActionReason != plan.ReasonOwnerDisputed.String() {
				t.Errorf("before-upgrade action_reason %q, want owner-disputed", row.ActionReason)
			}
		}
	}

	// The next emails: acme's reminder confirms the extension and no longer
	// names before-upgrade; support hears of the dispute.
	sent := len(e.sink.Messages())
	cycle(t, r, t0.Add(13*time.Hour))
	var acme, support string
	for _, m := range messages(t, e.sink, sent) {
		switch m.to[0] {
		case "ops@acme.example":
			acme = unbroken(htmlOf(t, m))
		case "support@provider.example":
			support = unbroken(htmlOf(t, m))
		}
	}
	if !strings.Contains(acme, "you asked us to keep it longer") || strings.Contains(acme, "before-upgrade") {
		t.Errorf("acme's next digest:\n%s", acme)
	}
	if !strings.Contains(support, "before-upgrade") || !strings.Contains(support, "owner disputed") {
		t.Errorf("support's next digest lacks the dispute:\n%s", support)
	}
	events, err := r.ledger.Audit(ctx, ledger.Filter{Customer: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	var used int
	for _, ev := range events {
		if ev.Kind == ledger.EventRequest {
			used++
		}
	}
	if used != 2 {
		t.Errorf("history shows %d requests, want 2", used)
	}
}

// "Commit it now" on a snapshot short of its deadline: the next enforce
// cycle removes it (every guard but the deadline applies); in dry-run,
// support is told the customer asked and nothing is removed.
func TestSelfServiceCommit(t *testing.T) {
	for _, mode := range []string{"enforce", "dry-run"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, "small.yaml")
			e.cfg.Enforcement.Mode = mode
			clock := t0
			r := e.selfService(t, &clock)
			cycle(t, r, t0)
			commit := digestLinks(t, e, 0, "after-config")["Commit it now"]
			clock = t0.Add(time.Hour)
			if code, body := fetch(t, http.MethodPost, commit); code != http.StatusOK {
				t.Fatalf("POST: %d\n%s", code, body)
			}
			sent := len(e.sink.Messages())
			res := cycle(t, r, t0.Add(2*time.Hour))
			var removed []string
			for _, o := range res.Outcomes {
				if o.Kind == "remove" && o.Result == "success" {
					removed = append(removed, o.Decision.Snapshot.Name)
				}
			}
			var support string
			for _, m := range messages(t, e.sink, sent) {
				if m.to[0] == "support@provider.example" {
					support = unbroken(htmlOf(t, m))
				}
			}
			switch mode {
			case "enforce":
				if len(removed) != 1 || removed[0] != "after-config" {
					t.Fatalf("enforce cycle removed %v, want after-config only", removed)
				}
			default:
				if len(removed) != 0 || len(res.Outcomes) != 0 {
					t.Fatalf("dry-run acted: %+v", res.Outcomes)
				}
				if !strings.Contains(support, "after-config") || !strings.Contains(support, "the customer asked to commit it") {
					t.Fatalf("support not told of the customer's commit request:\n%s", support)
				}
			}
		})
	}
}

// A reload cannot turn links on when serve started without its public
// listener: customers would get links to nowhere.
func TestSelfServiceReloadNeedsRestart(t *testing.T) {
	e := newEnv(t, "small.yaml")
	r := e.runner(t)
	if r.Public() != nil {
		t.Fatal("a public handler without self_service")
	}
	clock := t0
	on := newEnv(t, "small.yaml")
	on.selfService(t, &clock) // writes the key and appends self_service to its config
	if err := r.Reload(on.cfg); err != nil {
		t.Fatal(err)
	}
	if _, _, rd, _ := r.settings(); rd.Links != nil || r.Public() != nil {
		t.Fatal("links turned on by a reload without a listener")
	}
}
