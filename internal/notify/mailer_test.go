package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/mailsink"
)

func sink(t testing.TB) *mailsink.Sink {
	t.Helper()
	s, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func mailer(t testing.TB, s *mailsink.Sink) *Mailer {
	t.Helper()
	m, err := NewMailer(config.SMTP{Host: s.Host, Port: s.Port, From: testFrom, TLS: "none"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func composed(t *testing.T, to ...string) []byte {
	t.Helper()
	m := Message{To: to, Subject: "[snapwarden] test", Text: "hello\n", HTML: "<p>hello</p>\n"}
	raw, err := Compose(m, testFrom, NewMessageID(testFrom, cycleAt), cycleAt)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func messageID(t *testing.T, raw []byte) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return msg.Header.Get("Message-Id")
}

func lf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

func TestSendBatchOneConnection(t *testing.T) {
	s := sink(t)
	var out []Outgoing
	for i := range 50 {
		out = append(out, Outgoing{Raw: composed(t, fmt.Sprintf("user%02d@example.com", i), "cc@example.com")})
	}
	for i, err := range mailer(t, s).Send(context.Background(), out) {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("%d SMTP connections for one batch, want 1", n)
	}
	got := s.Messages()
	if len(got) != 50 {
		t.Fatalf("%d messages arrived, want 50", len(got))
	}
	for i, m := range got {
		want := fmt.Sprintf("user%02d@example.com,cc@example.com", i)
		if strings.Join(m.To, ",") != want || m.From != "noreply@provider.example" {
			t.Errorf("message %d: envelope %s -> %v, want %s", i, m.From, m.To, want)
		}
		if !bytes.Equal(lf(m.Data), lf(out[i].Raw)) {
			t.Errorf("message %d: the server got other bytes than stored", i)
		}
	}
}

func TestSendExplicitRecipients(t *testing.T) {
	s := sink(t)
	errs := mailer(t, s).Send(context.Background(), []Outgoing{{To: []string{"other@example.com"}, Raw: composed(t, "header@example.com")}})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	if got := s.Messages(); len(got) != 1 || strings.Join(got[0].To, ",") != "other@example.com" {
		t.Errorf("envelope recipients %v", got)
	}
}

func TestSendRefusedThenRetried(t *testing.T) {
	s := sink(t)
	mr := mailer(t, s)
	raw := composed(t, "ops@acme.example")
	id := messageID(t, raw)

	s.Refuse(true)
	errs := mr.Send(context.Background(), []Outgoing{{Raw: raw}, {Raw: raw}})
	for i, err := range errs {
		if err == nil || !Retryable(err) {
			t.Fatalf("message %d while refused: %v (retryable %v)", i, err, Retryable(err))
		}
	}
	if !strings.Contains(errs[0].Error(), "451") {
		t.Errorf("error %q does not carry the reply code", errs[0])
	}

	s.Refuse(false)
	for range 2 { // a retry, then a duplicate re-send of the same bytes
		if errs := mr.Send(context.Background(), []Outgoing{{Raw: raw}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	got := s.Messages()
	if len(got) != 2 {
		t.Fatalf("%d messages arrived, want 2", len(got))
	}
	for _, m := range got {
		if messageID(t, m.Data) != id || !bytes.Equal(lf(m.Data), lf(raw)) {
			t.Errorf("re-sent message differs: Message-ID %q, want %q", messageID(t, m.Data), id)
		}
	}
}

func TestSendServerDown(t *testing.T) {
	// A loopback port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	_ = ln.Close()
	mr, err := NewMailer(config.SMTP{Host: "127.0.0.1", Port: addr.Port, TLS: "none"})
	if err != nil {
		t.Fatal(err)
	}
	errs := mr.Send(context.Background(), []Outgoing{{Raw: composed(t, "a@example.com")}, {Raw: composed(t, "b@example.com")}})
	for i, err := range errs {
		if err == nil || !Retryable(err) {
			t.Errorf("message %d with the server down: %v (retryable %v)", i, err, Retryable(err))
		}
	}
}

func TestSendBadMessageIsPermanent(t *testing.T) {
	s := sink(t)
	errs := mailer(t, s).Send(context.Background(), []Outgoing{
		{Raw: []byte("not a message")},
		{To: []string{"not an address"}, Raw: composed(t, "a@example.com")},
		{Raw: composed(t, "ok@example.com")},
	})
	for i, err := range errs[:2] {
		if err == nil || Retryable(err) {
			t.Errorf("bad message %d: %v (retryable %v)", i, err, Retryable(err))
		}
	}
	if errs[2] != nil {
		t.Errorf("a good message after bad ones: %v", errs[2])
	}
}

func TestRetryable(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&textproto.Error{Code: 550, Msg: "5.1.1 no such user"}, false},
		{fmt.Errorf("smtp x: RCPT TO:<a@b>: %w", &textproto.Error{Code: 550, Msg: "no such user"}), false},
		{&textproto.Error{Code: 554, Msg: "rejected"}, false},
		{&textproto.Error{Code: 451, Msg: "try later"}, true},
		{&textproto.Error{Code: 421, Msg: "closing"}, true},
		{&gosmtp.SMTPError{Code: 550, Message: "no"}, false},
		{&gosmtp.SMTPError{Code: 452, Message: "full"}, true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{context.DeadlineExceeded, true},
		{&connError{&textproto.Error{Code: 535, Msg: "auth failed"}}, true},
		{&badMessage{errors.New("no From")}, false},
		{errors.New("something else"), false},
	}
	for _, c := range cases {
		if got := Retryable(c.err); got != c.want {
			t.Errorf("Retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestCheck(t *testing.T) {
	s := sink(t)
	if err := mailer(t, s).Check(context.Background()); err != nil {
		t.Fatalf("check against the sink: %v", err)
	}
	// The sink offers no STARTTLS: a mandatory STARTTLS must refuse, never
	// fall back to plain text.
	m, err := NewMailer(config.SMTP{Host: s.Host, Port: s.Port, TLS: "starttls"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("starttls against a server without it: %v", err)
	}
	// Credentials configured: the error never shows the password.
	m, err = NewMailer(config.SMTP{Host: s.Host, Port: s.Port, TLS: "none", Username: "svc", Password: "hunter2-secret"})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Check(context.Background())
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("auth against a server without AUTH: %v", err)
	}
	if _, err := NewMailer(config.SMTP{Host: "x", TLS: "ssl3"}); err == nil {
		t.Error("unknown tls mode accepted")
	}
	if _, err := NewMailer(config.SMTP{TLS: "none"}); err == nil {
		t.Error("empty host accepted")
	}
}

func TestSendCanceled(t *testing.T) {
	s := sink(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errs := mailer(t, s).Send(ctx, []Outgoing{{Raw: composed(t, "a@example.com")}})
	if errs[0] == nil || !Retryable(errs[0]) {
		t.Errorf("canceled send: %v", errs[0])
	}
	if len(s.Messages()) != 0 {
		t.Error("a canceled send delivered")
	}
}

// One message, one transaction per recipient: the server's permanent
// rejection of one contact is a non-retryable error carrying its reply, and
// the next recipient is served over the same connection.
func TestSessionPerRecipient(t *testing.T) {
	s := sink(t)
	s.Reject("gone@acme.example")
	raw := composed(t, "gone@acme.example", "ops@acme.example")
	sess := mailer(t, s).Session()
	defer sess.Close()
	err := sess.Send(context.Background(), Outgoing{To: []string{"gone@acme.example"}, Raw: raw})
	if err == nil || Retryable(err) || !strings.HasPrefix(Reply(err), "550 5.1.1") {
		t.Fatalf("rejected recipient: %v (retryable %v, reply %q), want a permanent 550 5.1.1", err, Retryable(err), Reply(err))
	}
	if err := sess.Send(context.Background(), Outgoing{To: []string{"ops@acme.example"}, Raw: raw}); err != nil {
		t.Fatalf("the other recipient: %v", err)
	}
	got := s.Messages()
	if len(got) != 1 || strings.Join(got[0].To, ",") != "ops@acme.example" || messageID(t, got[0].Data) != messageID(t, raw) {
		t.Errorf("delivered %+v, want the message to ops@ only, same Message-ID", got)
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}
