// Package mailsink is a real SMTP server on 127.0.0.1 (emersion/go-smtp) that
// keeps every message it accepts: the mail server of the demo and of the
// end-to-end tests. It can be told to refuse mail, to show what snapwarden
// does while a mail server is down.
package mailsink
