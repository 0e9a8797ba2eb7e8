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
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable holding the test server's DSN.
const EnvDSN = "SNAPWARDEN_TEST_POSTGRES"

var (
	once    sync.Once
	baseDSN string
	whyNot  string
	shared  *Cluster
)

// Start finds or starts the server; the first call does the work. It returns
// the reason there is none ("" when there is one).
func Start() (reason string) {
	once.Do(func() {
		if dsn := os.Getenv(EnvDSN); dsn != "" {
			baseDSN = dsn
			return
		}
		c, err := startCluster()
		if err != nil {
			whyNot = EnvDSN + " is not set and " + err.Error()
			return
		}
		shared, baseDSN = c, c.DSN
	})
	return whyNot
}

// Stop stops the throwaway cluster, if Start started one. Call it from
// TestMain after the tests.
func Stop() {
	if shared != nil {
		shared.stop()
	}
}

// Schema returns a DSN for a new, empty schema of the test server (dropped
// when tb ends), or skips tb when there is no server.
func Schema(tb testing.TB) string {
	tb.Helper()
	if why := Start(); why != "" {
		tb.Skip("no PostgreSQL: " + why)
	}
	return schemaOf(tb, baseDSN)
}

func schemaOf(tb testing.TB, base string) string {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("pgtest: connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("pgtest: %s is not a postgres:// URL: %v", EnvDSN, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Cluster is a throwaway PostgreSQL cluster of one test.
type Cluster struct {
	DSN   string
	pgctl string
	data  string
	opts  string
	dir   string
	cred  *syscall.Credential // the user it runs as when the test runs as root
}

// Private starts a cluster for tb alone (stopped when tb ends), for tests
// that restart the server; it skips tb when initdb and pg_ctl are missing.
func Private(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := startCluster()
	if err != nil {
		tb.Skip("no private PostgreSQL cluster: " + err.Error())
	}
	tb.Cleanup(c.stop)
	return c
}

// Schema returns a DSN for a new, empty schema of the cluster.
func (c *Cluster) Schema(tb testing.TB) string {
	tb.Helper()
	return schemaOf(tb, c.DSN)
}

// Restart stops the server (fast: sessions are cut) and starts it again on
// the same port.
func (c *Cluster) Restart(tb testing.TB) {
	tb.Helper()
	c.Down(tb)
	c.Up(tb)
}

// Down stops the server; sessions are cut.
func (c *Cluster) Down(tb testing.TB) {
	tb.Helper()
	if out, err := c.run("-D", c.data, "-m", "fast", "-w", "stop"); err != nil {
		tb.Fatalf("pg_ctl stop: %v: %s", err, out)
	}
}

// Up starts the server again on the same port.
func (c *Cluster) Up(tb testing.TB) {
	tb.Helper()
	if out, err := c.run("-D", c.data, "-o", c.opts, "-l", filepath.Join(c.dir, "log"), "-w", "-t", "30", "start"); err != nil {
		tb.Fatalf("pg_ctl start: %v: %s", err, out)
	}
}

func (c *Cluster) stop() {
	_, _ = c.run("-D", c.data, "-m", "immediate", "stop")
	_ = os.RemoveAll(c.dir)
}

func (c *Cluster) run(args ...string) ([]byte, error) {
	cmd := exec.Command(c.pgctl, args...)
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

// startCluster runs initdb and pg_ctl in a temporary directory on a free
// loopback port. PostgreSQL refuses to run as root: then it runs as the
// postgres (or nobody) user.
func startCluster() (*Cluster, error) {
	initdb, err1 := exec.LookPath("initdb")
	pgctl, err2 := exec.LookPath("pg_ctl")
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("initdb/pg_ctl are not installed")
	}
	dir, err := os.MkdirTemp("", "snapwarden-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{pgctl: pgctl, data: filepath.Join(dir, "data"), dir: dir}
	if os.Geteuid() == 0 {
		if c.cred, err = unprivileged(); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	initCmd := exec.Command(initdb, "-D", c.data, "-U", "postgres", "--auth=trust", "--no-sync")
	if c.cred != nil {
		initCmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	if out, err := initCmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	c.opts = fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", port, dir)
	if out, err := c.run("-D", c.data, "-o", c.opts, "-l", filepath.Join(dir, "log"), "-w", "-t", "30", "start"); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pg_ctl start: %v: %s", err, out)
	}
	c.DSN = "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/postgres?sslmode=disable&connect_timeout=10"
	return c, nil
}

// unprivileged finds a user for the server when the test runs as root.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
	}
	return nil, fmt.Errorf("running as root and no postgres or nobody user to run initdb as")
}
