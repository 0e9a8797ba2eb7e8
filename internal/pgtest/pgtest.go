package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding the test server's DSN.
const EnvDSN = "SNAPWARDEN_TEST_POSTGRES"

var (
	once    sync.Once
	baseDSN string
	whyNot  string
	stopFn  = func() {}
)

// Start finds or starts the server; the first call does the work. It returns
// the reason there is none ("" when there is one).
func Start() (reason string) {
	once.Do(func() {
		if dsn := os.Getenv(EnvDSN); dsn != "" {
			baseDSN = dsn
			return
		}
		baseDSN, stopFn, whyNot = startCluster()
	})
	return whyNot
}

// Stop stops the throwaway cluster, if Start started one. Call it from
// TestMain after the tests.
func Stop() { stopFn() }

// Schema returns a DSN for a new, empty schema of the test server (dropped
// when tb ends), or skips tb when there is no server.
func Schema(tb testing.TB) string {
	tb.Helper()
	if why := Start(); why != "" {
		tb.Skip("no PostgreSQL: " + why)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, baseDSN)
	if err != nil {
		tb.Fatalf("pgtest: connect to %s: %v", EnvDSN, err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		c, err := pgx.Connect(ctx, baseDSN)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(baseDSN)
	if err != nil {
		tb.Fatalf("pgtest: %s is not a postgres:// URL: %v", EnvDSN, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// startCluster runs initdb and pg_ctl in a temporary directory on a free
// loopback port. PostgreSQL refuses to run as root, hence the first check.
func startCluster() (dsn string, stop func(), reason string) {
	stop = func() {}
	initdb, err1 := exec.LookPath("initdb")
	pgctl, err2 := exec.LookPath("pg_ctl")
	if err1 != nil || err2 != nil {
		return "", stop, EnvDSN + " is not set and initdb/pg_ctl are not installed"
	}
	if os.Geteuid() == 0 {
		return "", stop, EnvDSN + " is not set and initdb refuses to run as root"
	}
	dir, err := os.MkdirTemp("", "snapwarden-pg-")
	if err != nil {
		return "", stop, err.Error()
	}
	fail := func(what string, err error, out []byte) (string, func(), string) {
		_ = os.RemoveAll(dir)
		return "", func() {}, fmt.Sprintf("%s: %v: %s", what, err, out)
	}
	data := filepath.Join(dir, "data")
	if out, err := exec.Command(initdb, "-D", data, "-U", "postgres", "--auth=trust", "--no-sync").CombinedOutput(); err != nil {
		return fail("initdb", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail("free port", err, nil)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", port, dir)
	if out, err := exec.Command(pgctl, "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "30", "start").CombinedOutput(); err != nil {
		return fail("pg_ctl start", err, out)
	}
	stop = func() {
		_ = exec.Command(pgctl, "-D", data, "-m", "immediate", "stop").Run()
		_ = os.RemoveAll(dir)
	}
	dsn = "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/postgres?sslmode=disable&connect_timeout=10"
	return dsn, stop, ""
}
