package service

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/report"
)

// localUser is who acts on a console without logins (loopback listen only).
const localUser = "local"

// maxUserLen bounds a user name from a header or a login: it is stored with
// every acknowledgement and shown in history.
const maxUserLen = 128

// auth decides who a console request comes from.
type auth struct {
	// open: listen is loopback and no login is configured, so anyone who
	// can connect is trusted (as localUser).
	open bool
	// users maps user names to bcrypt hashes from console.users_file.
	users map[string][]byte
	// header names the user when the request comes from one of proxies.
	header  string
	proxies []*net.IPNet
}

// dummyHash is compared against for unknown users, so a login takes as long
// whether or not the name exists.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("snapwarden"), bcrypt.DefaultCost)

// newAuth reads the console's logins from cfg (the users file at every
// start and reload). listen is the address actually served: a reload that
// changes listen takes effect only at restart, so it is what counts.
func newAuth(cfg *config.Config, listen string) (*auth, error) {
	con := cfg.Console
	a := &auth{header: con.TrustedHeader}
	if !con.Auth() {
		host, _, err := net.SplitHostPort(listen)
		if err != nil || !config.Loopback(host) {
			return nil, fmt.Errorf("%s: listen %q is not a loopback address, so the console needs a login: set console.users_file or console.trusted_header", cfg.File, listen)
		}
		a.open = true
		return a, nil
	}
	for _, c := range con.TrustedProxies {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return nil, fmt.Errorf("%s: console.trusted_proxies: %w", cfg.File, err)
		}
		a.proxies = append(a.proxies, n)
	}
	if con.UsersFile != "" {
		users, err := readHtpasswd(con.UsersFile)
		if err != nil {
			return nil, fmt.Errorf("%s: console.users_file: %w", cfg.File, err)
		}
		a.users = users
	}
	return a, nil
}

// readHtpasswd reads "user:hash" lines (htpasswd -B); blank lines and #
// comments are skipped, and anything but a bcrypt hash is refused, since
// htpasswd's other formats (MD5, SHA1, crypt) are weak.
func readHtpasswd(path string) (map[string][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	users := map[string][]byte{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("%s:%d: want user:bcrypt-hash", path, n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil || !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("%s:%d: user %q: not a bcrypt hash (create entries with htpasswd -B)", path, n, name)
		}
		users[name] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return users, nil
}

// user returns who r comes from, or false when it carries no valid login.
func (a *auth) user(r *http.Request) (string, bool) {
	if a.open {
		return localUser, true
	}
	if a.header != "" && a.fromProxy(r) {
		if u := cleanUser(r.Header.Get(a.header)); u != "" {
			return u, true
		}
	}
	name, pass, ok := r.BasicAuth()
	if !ok || a.users == nil {
		return "", false
	}
	hash, known := a.users[name]
	if !known {
		hash = dummyHash
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(pass)); err != nil || !known {
		return "", false
	}
	return cleanUser(name), true
}

// fromProxy reports whether the connection comes from a trusted proxy (the
// peer address, never a forwarded-for header, which anyone can send).
func (a *auth) fromProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	for _, n := range a.proxies {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// cleanUser makes a user name safe to store and show: one line, bounded.
func cleanUser(s string) string {
	return report.Truncate(strings.TrimSpace(report.Clean(s)), maxUserLen)
}

// challenge asks the browser for a login.
func (a *auth) challenge(w http.ResponseWriter) {
	if a.users != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="snapwarden", charset="UTF-8"`)
	}
	http.Error(w, "login required", http.StatusUnauthorized)
}
