package mailsink

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one accepted message: the envelope and the raw RFC 5322 bytes.
type Message struct {
	From string
	To   []string
	Data []byte
	At   time.Time
}

// Options configure Start.
type Options struct {
	// Dir, when set, receives every message as NNNN.eml as it arrives.
	Dir string
	// Addr to listen on; empty means 127.0.0.1:0.
	Addr string
}

// Sink is a running SMTP server.
type Sink struct {
	// Host and Port are where it listens.
	Host string
	Port int

	srv *smtp.Server
	dir string

	mu      sync.Mutex
	msgs    []Message
	refuse  error
	reject  map[string]bool // addresses answered 550 at RCPT TO
	connect int
}

// Start listens on loopback and serves until Close.
func Start(o Options) (*Sink, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("mailsink: %w", err)
		}
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("mailsink: listen %s: %w", o.Addr, err)
	}
	s := &Sink{dir: o.Dir}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.connect++
		s.mu.Unlock()
		return &session{sink: s}, nil
	}))
	s.srv.Domain = "mailsink.localhost"
	s.srv.AllowInsecureAuth = true
	s.srv.ReadTimeout, s.srv.WriteTimeout = time.Minute, time.Minute
	s.srv.MaxMessageBytes = 32 << 20
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is host:port.
func (s *Sink) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Close stops the server.
func (s *Sink) Close() error { return s.srv.Close() }

// Messages returns a copy of every message accepted so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Connections counts SMTP connections opened, to show connection reuse.
func (s *Sink) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connect
}

// Refuse makes the server answer every MAIL FROM with a temporary failure
// (451) while on is set: a mail server that is down for maintenance.
func (s *Sink) Refuse(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = nil
	if on {
		s.refuse = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "mailsink refuses mail for now"}
	}
}

// Reject makes the server refuse address for good at RCPT TO (550 5.1.1,
// no such user), as a mail server does for a contact that left; other
// recipients are accepted as usual.
func (s *Sink) Reject(address string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reject == nil {
		s.reject = map[string]bool{}
	}
	s.reject[strings.ToLower(address)] = true
}

func (s *Sink) add(m Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	if s.dir != "" {
		name := filepath.Join(s.dir, fmt.Sprintf("%04d.eml", len(s.msgs)))
		if err := os.WriteFile(name, m.Data, 0o644); err != nil {
			return fmt.Errorf("mailsink: keep message: %w", err)
		}
		// The HTML part on its own, so a person opens what the recipient sees.
		if html := htmlPart(m.Data); html != nil {
			if err := os.WriteFile(strings.TrimSuffix(name, ".eml")+".html", html, 0o644); err != nil {
				return fmt.Errorf("mailsink: keep HTML part: %w", err)
			}
		}
	}
	return nil
}

type session struct {
	sink *Sink
	from string
	to   []string
}

func (x *session) AuthMechanisms() []string { return nil }

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.sink.mu.Lock()
	err := x.sink.refuse
	x.sink.mu.Unlock()
	if err != nil {
		return err
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.sink.mu.Lock()
	rejected := x.sink.reject[strings.ToLower(to)]
	x.sink.mu.Unlock()
	if rejected {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + ">: no such user here"}
	}
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	if x.from == "" || len(x.to) == 0 {
		return errors.New("mailsink: DATA without MAIL FROM and RCPT TO")
	}
	return x.sink.add(Message{From: x.from, To: append([]string(nil), x.to...), Data: buf.Bytes(), At: time.Now()})
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }
