package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The console needs a login wherever the network reaches listen, and its
// keys are checked with their names.
func TestConsoleAuth(t *testing.T) {
	for _, tc := range []struct {
		body, want string // want: "" for a config that loads
	}{
		{"listen: 127.0.0.1:9469\n", ""},
		{"listen: \"[::1]:9469\"\n", ""},
		{"listen: localhost:9469\n", ""},
		{"listen: 0.0.0.0:9469\n", `listen "0.0.0.0:9469" is not a loopback address, so the console needs a login`},
		{"listen: \":9469\"\n", "is not a loopback address"},
		{"listen: 0.0.0.0:9469\nconsole: {users_file: console.htpasswd}\n", ""},
		{"console: {users_file: missing.htpasswd}\n", `console.users_file "`},
		{"listen: 0.0.0.0:9469\nconsole: {trusted_header: X-Forwarded-User}\n", "console.trusted_header \"X-Forwarded-User\" needs console.trusted_proxies"},
		{"listen: 0.0.0.0:9469\nconsole: {trusted_header: X-Forwarded-User, trusted_proxies: [10.0.0.5/32, 10.1.0.0]}\n", `console.trusted_proxies[1] "10.1.0.0" is not a CIDR`},
		{"listen: 0.0.0.0:9469\nconsole: {trusted_header: X-Forwarded-User, trusted_proxies: [10.0.0.5/32]}\n", ""},
	} {
		p := write(t, minimal+tc.body)
		if err := os.WriteFile(filepath.Join(filepath.Dir(p), "console.htpasswd"), []byte("alice:$2y$10$x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.body, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.body, err, tc.want)
		case err == nil && c.Console.UsersFile != "" && !filepath.IsAbs(c.Console.UsersFile):
			t.Errorf("users_file not resolved against the config's folder: %s", c.Console.UsersFile)
		}
	}
}
