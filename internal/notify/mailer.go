package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/failpoint"
)

// DefaultSMTPTimeout bounds connecting and each message's exchange with the
// SMTP server.
const DefaultSMTPTimeout = 30 * time.Second

// Mailer delivers composed messages to the configured SMTP server. It is safe
// for concurrent use; each Send or Check uses its own connection.
type Mailer struct {
	client  *gomail.Client
	addr    string
	timeout time.Duration
}

// Outgoing is one stored message to deliver: its exact bytes and, when set,
// the envelope recipients (otherwise the To and Cc headers are used).
type Outgoing struct {
	To  []string
	Raw []byte
}

// NewMailer prepares a Mailer for c. TLS: "starttls" (the default;
// mandatory, never a silent downgrade), "tls" (implicit TLS, usually port
// 465) or "none". When c.Username is set, it authenticates with the best
// mechanism the server offers (PLAIN or LOGIN only over TLS) using
// c.Password. The config fills in the port by TLS mode when none is set.
func NewMailer(c config.SMTP) (*Mailer, error) {
	host := strings.TrimSpace(c.Host)
	if host == "" {
		return nil, errors.New("smtp.host is empty")
	}
	mode := strings.ToLower(strings.TrimSpace(c.TLS))
	port := c.Port
	opts := []gomail.Option{gomail.WithTimeout(DefaultSMTPTimeout)}
	switch mode {
	case "", "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case "tls":
		opts = append(opts, gomail.WithSSL())
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		return nil, fmt.Errorf("smtp.tls must be starttls, tls or none, got %q", c.TLS)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("smtp.port %d is out of range", port)
	}
	opts = append(opts, gomail.WithPort(port))
	if c.Username != "" {
		opts = append(opts,
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(c.Username),
			gomail.WithPassword(c.Password.Reveal()))
	}
	client, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client for %s: %w", host, err)
	}
	return &Mailer{client: client, addr: net.JoinHostPort(host, strconv.Itoa(port)), timeout: DefaultSMTPTimeout}, nil
}

// connError marks a failure to reach or log in to the server: it concerns
// every message alike, so it is always worth retrying later.
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// badMessage marks a stored message that cannot be sent as it is.
type badMessage struct{ err error }

func (e *badMessage) Error() string { return e.err.Error() }
func (e *badMessage) Unwrap() error { return e.err }

// Check connects, greets, runs STARTTLS and authenticates as configured,
// then says QUIT: `snapwarden check` for the mail server.
func (m *Mailer) Check(ctx context.Context) error {
	sc, err := m.dial(ctx)
	if err != nil {
		return err
	}
	if err := m.client.CloseWithSMTPClient(sc); err != nil {
		return fmt.Errorf("smtp %s: quit: %w", m.addr, err)
	}
	return nil
}

func (m *Mailer) dial(ctx context.Context) (*smtp.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, &connError{fmt.Errorf("smtp %s: %w", m.addr, err)}
	}
	sc, err := m.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, &connError{fmt.Errorf("smtp %s: connect: %w", m.addr, err)}
	}
	return sc, nil
}

// Send delivers stored messages, unchanged, over one connection reused for
// the whole batch (reconnecting if it drops), and returns one error per
// message (nil = accepted by the server). The envelope sender is the From
// address; the recipients are Outgoing.To, or else the To and Cc headers.
// A message refused by the server does not stop the others.
func (m *Mailer) Send(ctx context.Context, msgs []Outgoing) []error {
	s := m.Session()
	defer s.Close()
	errs := make([]error, len(msgs))
	for i, o := range msgs {
		errs[i] = s.Send(ctx, o)
	}
	return errs
}

// Session sends messages one by one over one connection, opened by the
// first Send and reopened if it drops, so a caller can record each message's
// fate before the next one starts. Not safe for concurrent use.
type Session struct {
	m    *Mailer
	sc   *smtp.Client
	down error // the server was out of reach: later messages fail the same way
}

// Session starts a session; Close ends it.
func (m *Mailer) Session() *Session { return &Session{m: m} }

// Close says QUIT on the open connection, if any.
func (s *Session) Close() {
	if s.sc != nil {
		_ = s.m.client.CloseWithSMTPClient(s.sc)
		s.sc = nil
	}
}

// Send delivers one stored message, unchanged: nil means the server
// accepted it.
func (s *Session) Send(ctx context.Context, o Outgoing) error {
	m := s.m
	if s.down != nil {
		return s.down
	}
	env, err := envelopeOf(o)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if s.sc == nil {
			if s.sc, err = m.dial(ctx); err != nil {
				s.down = err
				return err
			}
		}
		inData, err := m.sendOne(ctx, s.sc, env, o.Raw)
		if err == nil {
			return nil
		}
		if isReply(err) && !isClosing(err) {
			// The server refused this message; the connection is fine.
			if rerr := s.sc.Reset(); rerr != nil {
				_ = s.sc.Close()
				s.sc = nil
			}
			return fmt.Errorf("smtp %s: %w", m.addr, err)
		}
		// The connection broke (or the server is closing it).
		_ = s.sc.Close()
		s.sc = nil
		if !inData && attempt == 0 && ctx.Err() == nil {
			// Nothing was handed over yet: reconnect and try once more.
			continue
		}
		return fmt.Errorf("smtp %s: %w", m.addr, err)
	}
}

// sendOne runs one mail transaction. inData reports whether the server had
// accepted DATA, after which a retry could deliver the message twice.
func (m *Mailer) sendOne(ctx context.Context, sc *smtp.Client, env envelope, raw []byte) (inData bool, err error) {
	timeout := m.timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if timeout <= 0 {
		return false, context.DeadlineExceeded
	}
	if err := sc.UpdateDeadline(timeout); err != nil {
		return false, fmt.Errorf("set deadline: %w", err)
	}
	if err := sc.Mail(env.from); err != nil {
		return false, fmt.Errorf("MAIL FROM:<%s>: %w", env.from, err)
	}
	for _, rcpt := range env.to {
		if err := sc.Rcpt(rcpt); err != nil {
			return false, fmt.Errorf("RCPT TO:<%s>: %w", rcpt, err)
		}
	}
	if err := failpoint.Hit("smtp.data"); err != nil {
		return false, err
	}
	w, err := sc.Data()
	if err != nil {
		return false, fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		_ = w.Close()
		return true, fmt.Errorf("DATA: write message: %w", err)
	}
	if err := w.Close(); err != nil {
		return true, fmt.Errorf("DATA: end of message: %w", err)
	}
	// The server has the message: a stop here delivers it again later.
	if err := failpoint.Hit("smtp.accepted"); err != nil {
		return true, err
	}
	return true, nil
}

type envelope struct {
	from string
	to   []string
}

// envelopeOf reads the envelope of a stored message from its headers.
func envelopeOf(o Outgoing) (envelope, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(o.Raw))
	if err != nil {
		return envelope{}, &badMessage{fmt.Errorf("stored message: read headers: %w", err)}
	}
	from, err := msg.Header.AddressList("From")
	if err != nil || len(from) == 0 {
		return envelope{}, &badMessage{fmt.Errorf("stored message: no valid From header: %v", err)}
	}
	env := envelope{from: from[0].Address}
	if len(o.To) > 0 {
		for _, a := range o.To {
			p, err := mail.ParseAddress(oneLine(a))
			if err != nil {
				return envelope{}, &badMessage{fmt.Errorf("recipient %q: %w", oneLine(a), err)}
			}
			env.to = append(env.to, p.Address)
		}
		return env, nil
	}
	for _, h := range []string{"To", "Cc"} {
		list, err := msg.Header.AddressList(h)
		if err != nil && !errors.Is(err, mail.ErrHeaderNotPresent) {
			return envelope{}, &badMessage{fmt.Errorf("stored message: %s header: %w", h, err)}
		}
		for _, a := range list {
			env.to = append(env.to, a.Address)
		}
	}
	if len(env.to) == 0 {
		return envelope{}, &badMessage{errors.New("stored message: no recipient")}
	}
	return env, nil
}

// Reply is what to record of a failed delivery: the server's reply when it
// gave one ("550 5.1.1 no such user", on one line and unquoted, unlike
// textproto.Error's text), else the error.
func Reply(err error) string {
	var te *textproto.Error
	if errors.As(err, &te) {
		return fmt.Sprintf("%03d %s", te.Code, oneLine(te.Msg))
	}
	return err.Error()
}

// isReply reports whether err is the server's answer to a command.
func isReply(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te)
}

// isClosing reports a 421 reply: the server is closing the connection.
func isClosing(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code == 421
}

// Retryable reports whether a delivery error is worth retrying later:
// network errors, timeouts, SMTP 4xx replies and failures to connect or log
// in (they concern the server, not the message) are; SMTP 5xx replies to a
// message (bad recipient, rejected content) and messages that cannot be
// read are not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var bad *badMessage
	if errors.As(err, &bad) {
		return false
	}
	var ce *connError
	if errors.As(err, &ce) {
		return true
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code >= 400 && te.Code < 500
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		return se.IsTemp()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// Other SMTP error types (go-smtp's SMTPError) say it themselves.
	var tmp interface{ Temporary() bool }
	if errors.As(err, &tmp) {
		return tmp.Temporary()
	}
	return false
}
