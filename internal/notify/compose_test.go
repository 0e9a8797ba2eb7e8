package notify

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
)

const testFrom = "snapwarden <noreply@provider.example>"

// parts parses a composed message and returns its headers and the decoded
// text and HTML parts.
func parts(t *testing.T, raw []byte) (mail.Header, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail cannot parse the message: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	var text, html string
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	return msg.Header, text, html
}

func TestComposeHeaders(t *testing.T) {
	m, err := renderer(t).Customer(customerDigest())
	if err != nil {
		t.Fatal(err)
	}
	id := NewMessageID(testFrom, cycleAt)
	raw, err := Compose(m, testFrom, id, cycleAt)
	if err != nil {
		t.Fatal(err)
	}
	h, text, html := parts(t, raw)
	checks := map[string]string{
		"Message-Id": id,
		"Subject":    m.Subject,
		"Date":       "Tue, 24 Nov 2026 12:00:00 +0000",
		"Reply-To":   "<support@provider.example>",
	}
	for k, want := range checks {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "noreply@provider.example" || from[0].Name != "snapwarden" {
		t.Errorf("From %v: %v", from, err)
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Address != "ops@acme.example" || to[1].Address != "cto@acme.example" {
		t.Errorf("To %v: %v", to, err)
	}
	if crlf := strings.NewReplacer("\r\n", "\n"); crlf.Replace(text) != m.Text || crlf.Replace(html) != m.HTML {
		t.Error("the decoded parts differ from the rendered message")
	}
	if !bytes.Contains(raw, []byte("\r\n")) || bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Error("the message does not use CRLF line ends throughout")
	}
	// Unfolded: the Message-ID stays on the header's own line (it is longer
	// than the 76 characters at which go-mail folds).
	if !bytes.Contains(raw, []byte("\r\nMessage-ID: "+id+"\r\n")) {
		t.Errorf("the Message-ID is not on one line:\n%s", raw[:bytes.Index(raw, []byte("\r\n\r\n"))])
	}

	// Deterministic except for the MIME boundaries.
	again, err := Compose(m, testFrom, id, cycleAt)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unbound(t, raw), unbound(t, again)) {
		t.Errorf("compose is not deterministic:\n%s\n---\n%s", raw, again)
	}
}

// unbound replaces a message's MIME boundaries with a fixed string.
func unbound(t *testing.T, raw []byte) []byte {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if params["boundary"] == "" {
		t.Fatal("no boundary")
	}
	return bytes.ReplaceAll(raw, []byte(params["boundary"]), []byte("BOUNDARY"))
}

// The support digest goes to every support address and a desk member's
// reply goes to the desk, not to the no-reply sender.
func TestComposeSupportDigest(t *testing.T) {
	m, err := renderer(t).Support(supportDigest(), []string{"desk@provider.example", "noc@provider.example"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Compose(m, testFrom, NewMessageID(testFrom, cycleAt), cycleAt)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := parts(t, raw)
	if got := h.Get("Reply-To"); got != "<desk@provider.example>" {
		t.Errorf("Reply-To %q, want the first support address", got)
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 2 {
		t.Errorf("To %v: %v, want both support addresses", to, err)
	}
}

func TestComposeErrors(t *testing.T) {
	m := Message{To: []string{"a@example.com"}, Subject: "s", Text: "t", HTML: "<p>h</p>"}
	if _, err := Compose(m, "not an address", "<a@b>", cycleAt); err == nil {
		t.Error("bad from accepted")
	}
	if _, err := Compose(Message{Subject: "s", Text: "t"}, testFrom, "<a@b>", cycleAt); err == nil {
		t.Error("no recipient accepted")
	}
	if _, err := Compose(m, testFrom, "no-at-sign", cycleAt); err == nil {
		t.Error("bad message id accepted")
	}
	if _, err := Compose(m, testFrom, "<a@b>", time.Time{}); err == nil {
		t.Error("zero date accepted")
	}
}

func TestNewMessageID(t *testing.T) {
	re := regexp.MustCompile(`^<snapwarden\.20261124T120000Z\.[0-9a-f]{16}@provider\.example>$`)
	a, b := NewMessageID(testFrom, cycleAt), NewMessageID(testFrom, cycleAt)
	if !re.MatchString(a) || a == b {
		t.Errorf("message ids %q %q", a, b)
	}
	if id := NewMessageID("garbage", cycleAt); !strings.HasSuffix(id, "@localhost>") {
		t.Errorf("fallback id %q", id)
	}
}

// hostileDigest has names meant to break HTML, headers and layout.
func hostileDigest() CustomerDigest {
	long := strings.Repeat("x", 300)
	mk := func(vmName, snap string) plan.Decision {
		d := decision(snapSpec{vm: vm(vmName, "acme"), name: snap, id: "snapshot-9", age: 30 * time.Hour,
			size: gib, customer: "acme", state: policy.StateWarning, detail: "age 30h >= warn_after 24h"})
		d.Action, d.At, d.CustomerNotice = plan.ActionEscalate, d.Verdict.DeadlineAt, plan.ActionWarn
		return d
	}
	d := customerDigest()
	d.Attention = []plan.Decision{
		mk("<script>alert(1)</script>", "evil\r\nBcc: victim@example.com"),
		mk(long, long),
		mk("Prüfung-ñ-日本", "Prüfung-ñ-日本"),
		mk("invoice\u202Efdp.exe", "rcs.\u2067bad\u2069\u0085snap"),
	}
	d.Committed = nil
	return d
}

func TestHostileNames(t *testing.T) {
	m, err := renderer(t).Customer(hostileDigest())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;alert(1)&lt;/<wbr>script&gt;") {
		t.Error("the HTML part does not escape the VM name")
	}
	raw, err := Compose(m, testFrom, NewMessageID(testFrom, cycleAt), cycleAt)
	if err != nil {
		t.Fatal(err)
	}
	h, text, html := parts(t, raw)
	var dec mime.WordDecoder
	for k, vs := range h {
		for _, v := range vs {
			v, err := dec.DecodeHeader(v)
			if err != nil {
				t.Fatalf("header %s: %v", k, err)
			}
			for _, bad := range []string{"victim", "script", "Prüfung", strings.Repeat("x", 30), "evil"} {
				if strings.Contains(v, bad) {
					t.Errorf("header %s: %q contains %q", k, v, bad)
				}
			}
		}
	}
	if _, ok := h["Bcc"]; ok {
		t.Error("a Bcc header was injected")
	}
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	if bytes.Contains(head, []byte("victim")) {
		t.Error("raw headers contain victim")
	}
	for _, want := range []string{"Prüfung-ñ-日本", "evil Bcc: victim@example.com", strings.Repeat("x", 300)} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q", want)
		}
	}
	if strings.Contains(html, "<script>") || !strings.Contains(html, "Prüfung-<wbr>ñ-<wbr>日本") {
		t.Error("decoded HTML part is wrong")
	}
	// Bidi overrides and isolates would make a name read as another one.
	// (<wbr> marks where the HTML part may wrap a name.)
	for part, body := range map[string]string{"text": text, "html": strings.ReplaceAll(html, "<wbr>", "")} {
		if strings.ContainsAny(body, "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u0085") {
			t.Errorf("the %s part keeps a bidi override or C1 control", part)
		}
		if !strings.Contains(body, "invoicefdp.exe") || !strings.Contains(body, "rcs.bad snap") {
			t.Errorf("the %s part lacks the cleaned names", part)
		}
	}
	for _, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d bytes exceeds RFC 5322's limit", len(line))
		}
	}
}
