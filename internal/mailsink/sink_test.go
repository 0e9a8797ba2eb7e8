package mailsink

import (
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSinkKeepsAndRefuses(t *testing.T) {
	dir := t.TempDir()
	s, err := Start(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	msg := "Subject: hi\r\n\r\nhello\r\n"
	if err := smtp.SendMail(s.Addr(), nil, "a@x.example", []string{"b@y.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := s.Messages()
	if len(got) != 1 || got[0].From != "a@x.example" || got[0].To[0] != "b@y.example" || !strings.Contains(string(got[0].Data), "hello") {
		t.Fatalf("messages = %+v", got)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "0001.eml")); err != nil || !strings.Contains(string(b), "hello") {
		t.Errorf("0001.eml: %q, %v", b, err)
	}
	html := "MIME-Version: 1.0\r\nSubject: h\r\nContent-Type: multipart/alternative; boundary=XX\r\n\r\n" +
		"--XX\r\nContent-Type: text/plain\r\n\r\nplain\r\n--XX\r\nContent-Type: text/html; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>caf=C3=A9</p>\r\n--XX--\r\n"
	if err := smtp.SendMail(s.Addr(), nil, "a@x.example", []string{"b@y.example"}, []byte(html)); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "0002.html")); err != nil || !strings.Contains(string(b), "<p>café</p>") {
		t.Errorf("0002.html: %q, %v; want the decoded HTML part", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "0001.html")); err == nil {
		t.Error("a text-only message got an .html file")
	}
	s.Refuse(true)
	if err := smtp.SendMail(s.Addr(), nil, "a@x.example", []string{"b@y.example"}, []byte(msg)); err == nil || !strings.Contains(err.Error(), "451") {
		t.Errorf("refusing sink accepted mail: %v", err)
	}
	s.Refuse(false)
	if err := smtp.SendMail(s.Addr(), nil, "a@x.example", []string{"b@y.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if len(s.Messages()) != 3 {
		t.Errorf("got %d messages after recovery, want 3", len(s.Messages()))
	}
}

func TestSinkRejectsOneRecipient(t *testing.T) {
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Reject("Gone@Acme.example")
	msg := []byte("Subject: hi\r\n\r\nhello\r\n")
	err = smtp.SendMail(s.Addr(), nil, "a@x.example", []string{"gone@acme.example"}, msg)
	if err == nil || !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "5.1.1") {
		t.Errorf("a rejected recipient: %v, want 550 5.1.1", err)
	}
	if err := smtp.SendMail(s.Addr(), nil, "a@x.example", []string{"ops@acme.example"}, msg); err != nil {
		t.Errorf("another recipient: %v", err)
	}
	if got := s.Messages(); len(got) != 1 || got[0].To[0] != "ops@acme.example" {
		t.Errorf("messages = %+v, want the one to ops@", got)
	}
}
