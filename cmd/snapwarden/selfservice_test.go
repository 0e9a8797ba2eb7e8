package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A key file others can read, or with a short key, is a config error: run
// and check exit 2 naming it, and the key is never printed; a good one is
// reported by check.
func TestSelfServiceKeyFile(t *testing.T) {
	e := newEnv(t, "small.yaml", "self_service: {public_url: https://snapshots.provider.example, listen: '127.0.0.1:0', key_file: link.key}\n")
	key := filepath.Join(e.dir, "link.key")
	secret := "cli-test-key-0123456789abcdefghijklmnopqrstuvwxyz"
	for _, tc := range []struct {
		body string
		mode os.FileMode
		want string
	}{
		{secret + "\n", 0o644, "accessible to every user"},
		{"short\n", 0o600, "fewer than 32"},
	} {
		if err := os.WriteFile(key, []byte(tc.body), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(key, tc.mode); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"run", "check"} {
			out, stderr, code := runCLI(t, cmd, "--config", e.cfg)
			if code != 2 || !strings.Contains(stderr, "self_service.key_file") || !strings.Contains(stderr, tc.want) {
				t.Errorf("%s with %s: exit %d, %s; want 2 naming the key file", cmd, tc.want, code, stderr)
			}
			if strings.Contains(out+stderr, secret) {
				t.Errorf("%s printed the key", cmd)
			}
		}
	}
	if err := os.WriteFile(key, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runCLI(t, "check", "--config", e.cfg)
	if code != 0 || !strings.Contains(out, "self_service "+key+": ok (1 key)") || strings.Contains(out+stderr, secret) {
		t.Errorf("check with a good key: exit %d\n%s%s", code, out, stderr)
	}
}
