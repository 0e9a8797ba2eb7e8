package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/selfservice"
)

// links finds each signed link of a digest under its VM, names the action
// the token carries, prints one URL for scripts, and refuses a link the key
// did not sign.
func TestLinks(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "link.key")
	key := "0123456789abcdef0123456789abcdef-demo"
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := selfservice.NewKeys([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	l := &selfservice.Linker{Keys: keys, PublicURL: "http://127.0.0.1:9", TTL: time.Hour, ExtendBy: 24 * time.Hour, Commit: true}
	now := time.Now()
	var text strings.Builder
	want := map[string]string{}
	for i, vm := range []string{"acme-db01", "acme-web02"} {
		fmt.Fprintf(&text, "%d. VM:        %s\r\n   Snapshot:  snap-%d (reminder: we wrote to you about it before)\r\n", i+1, vm, i)
		ls, err := l.Links("acme", facts.Key{VCenter: "vc-demo", VMUUID: "u", Snapshot: fmt.Sprintf("snapshot-%d", i), Created: now.Add(-time.Hour)}, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ls {
			fmt.Fprintf(&text, "   %s: %s\r\n", k.Label, k.URL)
			want[vm+" "+string(k.Action)] = k.URL
		}
	}
	eml := filepath.Join(dir, "0001.eml")
	msg := "From: a@example.test\r\nTo: ops@acme.example\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		text.String() + "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hi</p>\r\n--b--\r\n"
	if err := os.WriteFile(eml, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := runLinks([]string{"--key-file", keyFile, eml}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 6 {
		t.Errorf("links lists %d links, want 6:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), eml+"\tacme-web02\tsnap-1\tcommit\t"+want["acme-web02 commit"]+"\n") {
		t.Errorf("links lacks acme-web02's commit link:\n%s", out.String())
	}
	for _, vm := range []string{"acme-db01", "acme-web02"} {
		for _, a := range []string{"extend", "commit", "not-mine"} {
			out.Reset()
			if err := runLinks([]string{"--key-file", keyFile, "--vm", vm, "--action", a, eml}, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out.String()); got != want[vm+" "+a] {
				t.Errorf("%s %s: got %q, want %q", vm, a, got, want[vm+" "+a])
			}
		}
	}
	if err := runLinks([]string{"--key-file", keyFile, "--vm", "nope", "--action", "extend", eml}, io.Discard, io.Discard); err == nil {
		t.Error("no link for an unknown VM, and no error")
	}

	// A link the key did not sign (another key) is refused.
	other := filepath.Join(dir, "other.key")
	if err := os.WriteFile(other, []byte("another-key-another-key-another-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runLinks([]string{"--key-file", other, eml}, io.Discard, io.Discard); err == nil {
		t.Error("links verified with another key, and no error")
	}
}

// open prints the gist of a page (title, text, button), POSTs with --post,
// fails on an error page, and follows no link off loopback.
func TestOpen(t *testing.T) {
	var methods []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods = append(methods, r.Method)
		if r.URL.Path == "/s/gone" {
			w.WriteHeader(http.StatusNotFound)
		}
		_, _ = io.WriteString(w, `<main><p class="provider">P</p><h1>Keep it 24 h longer?</h1><p>Nothing changes until you press the button.</p>`+
			`<form method="post"><button type="submit">Keep &amp; go</button></form></main>`)
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := runOpen([]string{srv.URL + "/s/tok"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := runOpen([]string{"--post", srv.URL + "/s/tok"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GET " + srv.URL + "/s/tok -> 200 OK\n", "  page: Keep it 24 h longer?\n",
		"        Nothing changes until you press the button.\n", "  button: [Keep & go]\n", "POST " + srv.URL + "/s/tok -> 200 OK\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("open printed no %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "P\n") {
		t.Errorf("open printed the provider line as text:\n%s", out.String())
	}
	if strings.Join(methods, " ") != "GET POST" {
		t.Errorf("requests %v, want GET POST", methods)
	}
	if err := runOpen([]string{srv.URL + "/s/gone"}, io.Discard, io.Discard); err == nil {
		t.Error("a 404 page, and no error")
	}
	if err := runOpen([]string{"http://example.com/s/tok"}, io.Discard, io.Discard); err == nil {
		t.Error("a link off loopback, and no error")
	}
}
