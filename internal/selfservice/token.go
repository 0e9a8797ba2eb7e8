package selfservice

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// MinKeyBytes is the shortest key LoadKeys accepts.
const MinKeyBytes = 32

// macBytes is the HMAC-SHA256 truncated to 128 bits (RFC 2104 section 5
// allows it; NIST SP 800-107 rates it at 128 bits): it keeps links under 200
// characters with a vCenter instance UUID in them.
const macBytes = 16

// version is the token format; a change of format changes it.
const version = 1

// domain separates link MACs from any other use of the key.
const domain = "snapwarden/self-service/v1\x00"

// Token errors; Verify wraps them with detail.
var (
	ErrTampered = errors.New("the link is not valid")
	ErrExpired  = errors.New("the link has expired")
)

var actionCodes = []plan.RequestAction{plan.RequestExtend, plan.RequestCommit, plan.RequestNotMine}

// Claims is what a token says: the action, on which snapshot, for whom, until when.
type Claims struct {
	Action     plan.RequestAction
	Customer   string
	VCenter    string
	SnapshotID string
	Created    time.Time
	Expires    time.Time
}

// Keys are the HMAC keys, newest first: Sign uses the first, Verify accepts
// any, so a rotated key keeps its links working while it stays in the file.
type Keys struct{ keys [][]byte }

// String keeps keys out of logs and pages whatever prints them.
func (k *Keys) String() string {
	if len(k.keys) == 1 {
		return "1 key"
	}
	return fmt.Sprintf("%d keys, newest first", len(k.keys))
}

// GoString keeps %#v from printing the keys.
func (k *Keys) GoString() string { return k.String() }

// LoadKeys reads the key file: one key per line, newest first; blank lines
// and lines starting with # are skipped. Each key must be at least
// MinKeyBytes long, and the file must not be readable by others. Errors
// name the file and line, never the key.
func LoadKeys(path string) (*Keys, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("self_service.key_file %s: %w", path, err)
	}
	if st.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("self_service.key_file %s is accessible to every user (mode %04o): chmod o-rwx it, since whoever reads it can forge links", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("self_service.key_file %s: %w", path, err)
	}
	ks := &Keys{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < MinKeyBytes {
			return nil, fmt.Errorf("self_service.key_file %s line %d: the key has %d bytes, fewer than %d: make one with `openssl rand -base64 48`",
				path, i+1, len(line), MinKeyBytes)
		}
		ks.keys = append(ks.keys, []byte(line))
	}
	if len(ks.keys) == 0 {
		return nil, fmt.Errorf("self_service.key_file %s holds no key: make one with `openssl rand -base64 48`", path)
	}
	return ks, nil
}

// NewKeys makes Keys from raw keys, newest first, for tests and tools.
func NewKeys(keys ...[]byte) (*Keys, error) {
	for i, k := range keys {
		if len(k) < MinKeyBytes {
			return nil, fmt.Errorf("self-service key %d has %d bytes, fewer than %d", i+1, len(k), MinKeyBytes)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("no self-service key")
	}
	return &Keys{keys: keys}, nil
}

// Sign makes the token of c with the newest key.
func (k *Keys) Sign(c Claims) (string, error) {
	code := -1
	for i, a := range actionCodes {
		if a == c.Action {
			code = i
		}
	}
	if code < 0 {
		return "", fmt.Errorf("sign: unknown action %q", c.Action)
	}
	exp := c.Expires.Unix()
	if exp < 0 || exp > math.MaxUint32 {
		return "", fmt.Errorf("sign: expiry %s out of range", c.Expires)
	}
	var p bytes.Buffer
	p.WriteByte(version)
	p.WriteByte(byte(code))
	p.Write(binary.BigEndian.AppendUint32(nil, uint32(exp)))
	p.Write(binary.BigEndian.AppendUint64(nil, uint64(c.Created.UnixNano())))
	for _, s := range []string{c.Customer, c.VCenter, c.SnapshotID} {
		if len(s) > 255 {
			return "", fmt.Errorf("sign: %q is longer than 255 bytes", s)
		}
		p.WriteByte(byte(len(s)))
		p.WriteString(s)
	}
	payload := p.Bytes()
	return base64.RawURLEncoding.EncodeToString(append(payload, mac(k.keys[0], payload)...)), nil
}

func mac(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(domain))
	m.Write(payload)
	return m.Sum(nil)[:macBytes]
}

// Verify checks token against every key (in constant time each) and its
// expiry at now. Any change of action, customer, snapshot, create time or
// expiry fails the MAC: ErrTampered. A valid token past its expiry is
// ErrExpired, with its claims.
func (k *Keys) Verify(token string, now time.Time) (Claims, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < 2+4+8+3+macBytes {
		return Claims{}, ErrTampered
	}
	payload, sum := raw[:len(raw)-macBytes], raw[len(raw)-macBytes:]
	ok := false
	for _, key := range k.keys {
		// Every key is tried, so timing says nothing about which matched.
		if hmac.Equal(sum, mac(key, payload)) {
			ok = true
		}
	}
	if !ok || payload[0] != version || int(payload[1]) >= len(actionCodes) {
		return Claims{}, ErrTampered
	}
	c := Claims{
		Action:  actionCodes[payload[1]],
		Expires: time.Unix(int64(binary.BigEndian.Uint32(payload[2:6])), 0).UTC(),
		Created: time.Unix(0, int64(binary.BigEndian.Uint64(payload[6:14]))).UTC(),
	}
	rest := payload[14:]
	for _, dst := range []*string{&c.Customer, &c.VCenter, &c.SnapshotID} {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return Claims{}, ErrTampered
		}
		*dst, rest = string(rest[1:1+int(rest[0])]), rest[1+int(rest[0]):]
	}
	if len(rest) != 0 {
		return Claims{}, ErrTampered
	}
	if !now.Before(c.Expires) {
		return c, ErrExpired
	}
	return c, nil
}

// Digest is what the ledger stores of a token: enough to make a second use
// of the link a no-op, useless to act with.
func Digest(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// Link is one self-service link of a customer digest.
type Link struct {
	Action plan.RequestAction
	Label  string
	URL    string
}

// Linker makes the links of a customer digest.
type Linker struct {
	Keys *Keys
	// PublicURL is the base of the links, such as https://snapshots.provider.example.
	PublicURL string
	TTL       time.Duration
	ExtendBy  time.Duration
	// Commit offers "commit it now".
	Commit bool
}

// Links returns the links for one snapshot of customer's, valid for TTL from at.
func (l *Linker) Links(customer string, k facts.Key, at time.Time) ([]Link, error) {
	actions := []plan.RequestAction{plan.RequestExtend}
	if l.Commit {
		actions = append(actions, plan.RequestCommit)
	}
	actions = append(actions, plan.RequestNotMine)
	base := strings.TrimRight(l.PublicURL, "/") + "/s/"
	out := make([]Link, 0, len(actions))
	for _, a := range actions {
		tok, err := l.Keys.Sign(Claims{Action: a, Customer: customer, VCenter: k.VCenter, SnapshotID: k.Snapshot,
			Created: k.Created, Expires: at.Add(l.TTL)})
		if err != nil {
			return nil, fmt.Errorf("self-service link for %s: %w", k, err)
		}
		out = append(out, Link{Action: a, Label: label(a, l.ExtendBy), URL: base + tok})
	}
	return out, nil
}

// label is the words of a link, in the digest and on the page's button.
func label(a plan.RequestAction, extendBy time.Duration) string {
	switch a {
	case plan.RequestExtend:
		return "Keep it " + hours(extendBy) + " longer"
	case plan.RequestCommit:
		return "Commit it now"
	default:
		return "Not ours"
	}
}

func hours(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d h", int(d/time.Hour))
	}
	return d.String()
}
