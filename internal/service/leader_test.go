package service

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/pgtest"
)

// TestMain stops the PostgreSQL cluster pgtest may have started.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	os.Exit(code)
}

// quickElector is the real leadership with no takeover delay, to keep the
// test short; the delay itself is exercised by cmd/snapwarden's failover test.
type quickElector struct{ *ledger.Ledger }

func (quickElector) TakeoverDelay() time.Duration { return 0 }

// watcher is a runner that also watches between cycles (heads-ups): only
// while leading.
type watcher struct {
	*runner
	watching atomic.Int32
}

func (w *watcher) Watch(ctx context.Context) {
	w.watching.Add(1)
	defer w.watching.Add(-1)
	<-ctx.Done()
}

type instance struct {
	r    *runner
	w    *watcher
	log  *syncBuffer
	base string
}

func startInstance(t *testing.T, ctx context.Context, state string) *instance {
	t.Helper()
	led, err := ledger.Open(ctx, state)
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{r: newRunner(), log: &syncBuffer{}}
	in.w = &watcher{runner: in.r}
	addr, done := make(chan string, 1), make(chan error, 1)
	cfg := &config.Config{File: "snapwarden.yaml", Schedule: "@every 1h", Listen: "127.0.0.1:0"}
	go func() {
		done <- Serve(ctx, cfg, in.w, Options{Log: zerolog.New(in.log), StopGrace: time.Minute,
			Ready: func(a string) { addr <- a }, Elector: quickElector{led}, CampaignEvery: 20 * time.Millisecond})
	}()
	in.base = "http://" + <-addr
	t.Cleanup(func() {
		<-done
		led.Close()
	})
	return in
}

// Two instances on one ledger: one leads and runs cycles, the other serves
// /healthz as a standby; when the leader's connection dies its cycle is
// cancelled and the standby takes over.
func TestOneLeader(t *testing.T) {
	state := pgtest.Schema(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := startInstance(t, ctx, state)
	b := startInstance(t, ctx, state)

	var leader, standby *instance
	select {
	case <-a.r.startedCh:
		leader, standby = a, b
	case <-b.r.startedCh:
		leader, standby = b, a
	case <-time.After(10 * time.Second):
		t.Fatal("no instance started a cycle")
	}
	if code, body := get(t, standby.base+"/healthz"); code != http.StatusOK || !strings.Contains(body, `"role":"standby"`) {
		t.Errorf("standby /healthz: %d %s", code, body)
	}
	if _, body := get(t, leader.base+"/healthz"); !strings.Contains(body, `"role":"leader"`) {
		t.Errorf("leader /healthz: %s", body)
	}
	if _, body := get(t, leader.base+"/metrics"); !strings.Contains(body, "\nsnapwarden_leader 1\n") {
		t.Errorf("leader /metrics lacks snapwarden_leader 1")
	}
	if _, body := get(t, standby.base+"/metrics"); !strings.Contains(body, "\nsnapwarden_leader 0\n") {
		t.Errorf("standby /metrics lacks snapwarden_leader 0")
	}
	for deadline := time.Now().Add(5 * time.Second); leader.w.watching.Load() != 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // the watch starts beside the first cycle
	}
	if l, s := leader.w.watching.Load(), standby.w.watching.Load(); l != 1 || s != 0 {
		t.Errorf("watching between cycles: leader %d, standby %d; want 1, 0", l, s)
	}

	// Cut the leader's session, as a server restart or a network cut would.
	conn, err := pgx.Connect(ctx, state)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
WHERE locktype = 'advisory' AND objid = hashtext(current_schema())::oid AND pid <> pg_backend_pid()`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminate the leader's session: %d %v", n, err)
	}
	select {
	case <-standby.r.startedCh:
	case <-time.After(10 * time.Second):
		t.Fatalf("the standby did not take over:\n%s", standby.log.String())
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(leader.log.String(), "lost the leadership") {
		if time.Now().After(deadline) {
			t.Fatalf("the old leader did not stop:\n%s", leader.log.String())
		}
		time.Sleep(5 * time.Millisecond) // polling a log
	}
	leader.r.mu.Lock()
	active := leader.r.active
	leader.r.mu.Unlock()
	if active != 0 || leader.w.watching.Load() != 0 {
		t.Errorf("the old leader still runs %d cycles, watches %d times", active, leader.w.watching.Load())
	}
	if code, body := get(t, leader.base+"/healthz"); code != http.StatusOK || !strings.Contains(body, `"role":"standby"`) {
		t.Errorf("old leader /healthz: %d %s", code, body)
	}
	cancel()
	close(a.r.release)
	close(b.r.release)
}

// While PostgreSQL is down no instance leads and /healthz says why (503);
// once it is back one leads again.
func TestServerDown(t *testing.T) {
	c := pgtest.Private(t)
	state := c.Schema(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := startInstance(t, ctx, state)
	select {
	case <-a.r.startedCh:
	case <-time.After(10 * time.Second):
		t.Fatal("the only instance does not lead")
	}
	c.Down(t)
	waitHealth := func(want string, code int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, body := get(t, a.base+"/healthz")
			if got == code && strings.Contains(body, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/healthz = %d %s, want %d %q\n%s", got, body, code, want, a.log.String())
			}
			time.Sleep(20 * time.Millisecond) // polling /healthz
		}
	}
	waitHealth("standby: cannot reach the ledger", http.StatusServiceUnavailable)
	c.Up(t)
	select {
	case <-a.r.startedCh:
	case <-time.After(10 * time.Second):
		t.Fatalf("no cycle after the server came back:\n%s", a.log.String())
	}
	waitHealth(`"role":"leader"`, http.StatusServiceUnavailable) // its first cycle runs on
	cancel()
	close(a.r.release)
}
