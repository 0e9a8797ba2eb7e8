package selfservice

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

var (
	t0     = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	keyA   = []byte("0123456789abcdef0123456789abcdef-key-A")
	keyB   = []byte("fedcba9876543210fedcba9876543210-key-B")
	claims = Claims{Action: plan.RequestExtend, Customer: "acme", VCenter: "vc-east", SnapshotID: "snapshot-42",
		Created: t0.Add(-50 * time.Hour).Add(123456789), Expires: t0.Add(168 * time.Hour)}
)

func keys(t *testing.T, ks ...[]byte) *Keys {
	t.Helper()
	k, err := NewKeys(ks...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := keys(t, keyA)
	tok, err := k.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Verify(tok, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := claims
	want.Expires = want.Expires.Truncate(time.Second)
	if got != want {
		t.Fatalf("Verify = %+v, want %+v", got, want)
	}
}

// Every field the MAC binds is refused when changed, whichever byte of the
// payload carries it, and a token signed for one snapshot or customer does
// not verify as another's.
func TestVerifyRefusesTampering(t *testing.T) {
	k := keys(t, keyA)
	tok, _ := k.Sign(claims)
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for i := range raw {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		if _, err := k.Verify(base64.RawURLEncoding.EncodeToString(b), t0); !errors.Is(err, ErrTampered) {
			t.Errorf("byte %d flipped: err = %v, want ErrTampered", i, err)
		}
	}
	other := claims
	other.SnapshotID = "snapshot-43"
	tok2, _ := k.Sign(other)
	// Splice the other snapshot's payload onto this token's MAC.
	raw2, _ := base64.RawURLEncoding.DecodeString(tok2)
	spliced := append(raw2[:len(raw2)-macBytes:len(raw2)-macBytes], raw[len(raw)-macBytes:]...)
	if _, err := k.Verify(base64.RawURLEncoding.EncodeToString(spliced), t0); !errors.Is(err, ErrTampered) {
		t.Errorf("spliced snapshot id: err = %v", err)
	}
	for _, bad := range []string{"", "x", tok + "A", tok[:len(tok)-1], strings.Repeat("A", 200), tok + "=="} {
		if _, err := k.Verify(bad, t0); !errors.Is(err, ErrTampered) {
			t.Errorf("Verify(%q) err = %v, want ErrTampered", bad, err)
		}
	}
	if _, err := keys(t, keyB).Verify(tok, t0); !errors.Is(err, ErrTampered) {
		t.Errorf("another key: err = %v", err)
	}
}

func TestVerifyExpired(t *testing.T) {
	k := keys(t, keyA)
	tok, _ := k.Sign(claims)
	if _, err := k.Verify(tok, claims.Expires.Add(-time.Second)); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	if _, err := k.Verify(tok, claims.Expires); !errors.Is(err, ErrExpired) {
		t.Fatalf("at expiry: err = %v, want ErrExpired", err)
	}
}

// A rotated key still verifies while it is in the file (second line); new
// links are signed with the newest key only.
func TestKeyRotation(t *testing.T) {
	old := keys(t, keyA)
	tok, _ := old.Sign(claims)
	rotated := keys(t, keyB, keyA)
	if _, err := rotated.Verify(tok, t0); err != nil {
		t.Fatalf("old key's link after rotation: %v", err)
	}
	fresh, _ := rotated.Sign(claims)
	if _, err := keys(t, keyB).Verify(fresh, t0); err != nil {
		t.Fatalf("new links must be signed with the newest key: %v", err)
	}
	if _, err := keys(t, keyB).Verify(tok, t0); !errors.Is(err, ErrTampered) {
		t.Fatalf("old key removed: err = %v, want ErrTampered", err)
	}
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "# newest first\n"+string(keyB)+"\n\n"+string(keyA)+"\n", 0o600)
	k, err := LoadKeys(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.keys) != 2 || string(k.keys[0]) != string(keyB) {
		t.Fatalf("keys = %d, first wrong", len(k.keys))
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"short", write("short", "too-short-key\n", 0o600), "fewer than 32"},
		{"world-readable", write("world", string(keyA)+"\n", 0o644), "accessible to every user"},
		{"empty", write("empty", "# nothing\n", 0o600), "holds no key"},
	} {
		_, err := LoadKeys(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), string(keyA)) {
			t.Errorf("%s: the error shows the key", tc.name)
		}
	}
	if s := k.String() + k.GoString(); strings.Contains(s, string(keyA)) || strings.Contains(s, string(keyB)) {
		t.Errorf("Keys prints its keys: %s", s)
	}
}

// Links stay under 200 characters with a realistic base URL, vCenter
// instance UUID, customer id and snapshot id.
func TestLinkLength(t *testing.T) {
	l := &Linker{Keys: keys(t, keyA), PublicURL: "https://snapshots.hosting-provider.example/", TTL: 168 * time.Hour,
		ExtendBy: 24 * time.Hour, Commit: true}
	k := facts.Key{VCenter: "8c1e4a5b-7d2f-4e1a-9b3c-5d6e7f8a9b0c", VMUUID: "x", Snapshot: "snapshot-123456",
		Created: t0}
	links, err := l.Links("customer-name-01", k, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 3 {
		t.Fatalf("links = %d, want 3", len(links))
	}
	for _, ln := range links {
		if len(ln.URL) >= 200 {
			t.Errorf("%s link has %d characters: %s", ln.Action, len(ln.URL), ln.URL)
		}
		if !strings.HasPrefix(ln.URL, "https://snapshots.hosting-provider.example/s/") {
			t.Errorf("link %s", ln.URL)
		}
	}
	l.Commit = false
	if links, _ := l.Links("acme", k, t0); len(links) != 2 || links[1].Action != plan.RequestNotMine {
		t.Errorf("commit: false still offers commit: %+v", links)
	}
}
