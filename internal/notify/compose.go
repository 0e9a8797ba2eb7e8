package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// Compose turns a Message into the exact RFC 5322 bytes to store in the
// outbox and deliver: multipart/alternative with the text and HTML parts
// (UTF-8, quoted-printable), From, To, Reply-To when set, Subject, and the
// given Message-ID and Date. The output is the same for the same inputs
// except for the MIME boundaries.
//
// Every header value has CR, LF and other control characters removed, so
// nothing in a message can add a header.
func Compose(m Message, from string, messageID string, date time.Time) ([]byte, error) {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.From(oneLine(from)); err != nil {
		return nil, fmt.Errorf("compose: from address %q: %w", oneLine(from), err)
	}
	to := cleanAddrs(m.To)
	if len(to) == 0 {
		return nil, errors.New("compose: no recipient")
	}
	if err := msg.To(to...); err != nil {
		return nil, fmt.Errorf("compose: recipients: %w", err)
	}
	if rt := oneLine(m.ReplyTo); rt != "" {
		if err := msg.ReplyTo(rt); err != nil {
			return nil, fmt.Errorf("compose: reply-to address %q: %w", rt, err)
		}
	}
	id := strings.TrimSuffix(strings.TrimPrefix(oneLine(messageID), "<"), ">")
	if id == "" || !strings.Contains(id, "@") || strings.ContainsAny(id, "<> ") {
		return nil, fmt.Errorf("compose: message id %q is not of the form <left@right>", oneLine(messageID))
	}
	if date.IsZero() {
		return nil, errors.New("compose: no date")
	}
	msg.Subject(oneLine(m.Subject))
	msg.SetMessageIDWithValue(id)
	msg.SetDateWithValue(date.UTC())
	msg.SetUserAgent("snapwarden")
	// RFC 3834: a machine wrote this; auto-responders should stay quiet.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetGenHeader(gomail.HeaderXAutoResponseSuppress, "All")
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	var buf bytes.Buffer
	if _, err := msg.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("compose: write message: %w", err)
	}
	// go-mail folds headers longer than 76 characters; a Message-ID on a
	// continuation line is legal but trips up tools that grep for it and
	// some archivers, and it has no spaces to fold at anyway.
	return bytes.Replace(buf.Bytes(), []byte("\r\nMessage-ID:\r\n "), []byte("\r\nMessage-ID: "), 1), nil
}

// NewMessageID returns a fresh unique Message-ID for the from address's
// domain, like "<snapwarden.20261124T120000Z.8f3a0c1d2e4b5a69@provider.example>".
// A from address without a usable domain yields "localhost".
func NewMessageID(from string, at time.Time) string {
	domain := "localhost"
	if a, err := mail.ParseAddress(oneLine(from)); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 && validDomain(a.Address[i+1:]) {
			domain = strings.ToLower(a.Address[i+1:])
		}
	}
	var r [8]byte
	_, _ = rand.Read(r[:]) // crypto/rand.Read never fails (Go 1.24+)
	return fmt.Sprintf("<snapwarden.%s.%s@%s>", at.UTC().Format("20060102T150405Z"), hex.EncodeToString(r[:]), domain)
}

func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, c := range d {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
