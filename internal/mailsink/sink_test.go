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
	s.Refuse(true)
	if err := smtp.SendMail(s.Addr(), nil, "a@x.example", []string{"b@y.example"}, []byte(msg)); err == nil || !strings.Contains(err.Error(), "451") {
		t.Errorf("refusing sink accepted mail: %v", err)
	}
	s.Refuse(false)
	if err := smtp.SendMail(s.Addr(), nil, "a@x.example", []string{"b@y.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if len(s.Messages()) != 2 {
		t.Errorf("got %d messages after recovery, want 2", len(s.Messages()))
	}
}
