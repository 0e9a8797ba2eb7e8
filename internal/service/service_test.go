package service

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/cycle"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// runner stands in for cycle.Runner (the service's own interface; vCenter
// and SMTP are exercised end to end in cmd/snapwarden's serve test). Its
// cycles wait for the test to let them finish.
type runner struct {
	mu        sync.Mutex
	active    int
	maxActive int
	started   int
	fail      error
	errs      []facts.VCenterError // the cycles' vCenter errors
	vcenters  int
	reloaded  []*config.Config
	release   chan struct{}
	startedCh chan struct{}
}

func newRunner() *runner {
	return &runner{release: make(chan struct{}, 100), startedCh: make(chan struct{}, 100)}
}

func (r *runner) Cycle(ctx context.Context, now time.Time) (*cycle.Result, error) {
	r.mu.Lock()
	r.active++
	r.started++
	r.maxActive = max(r.maxActive, r.active)
	r.mu.Unlock()
	r.startedCh <- struct{}{}
	select {
	case <-r.release:
	case <-ctx.Done():
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active--
	if r.fail != nil {
		return nil, r.fail
	}
	return &cycle.Result{Started: now, Plan: &plan.Plan{At: now, VCenters: r.vcenters, Errors: r.errs}}, nil
}

func (r *runner) Reload(cfg *config.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reloaded = append(r.reloaded, cfg)
	return nil
}

func (r *runner) Close(context.Context) error { return nil }

// syncBuffer is a log sink the test can read while the service writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type harness struct {
	r      *runner
	log    *syncBuffer
	addr   chan string
	reload chan struct{}
	load   func() (*config.Config, error)
	done   chan error
	cancel context.CancelFunc
}

// serve starts Serve with a clock fixed in the past, so every activation of
// the schedule is already due: the loop is tested without waiting for time.
func serve(t *testing.T, load func() (*config.Config, error)) *harness {
	t.Helper()
	cfg := &config.Config{File: "snapwarden.yaml", Schedule: "@every 1h", Listen: "127.0.0.1:0"}
	h := &harness{r: newRunner(), log: &syncBuffer{}, addr: make(chan string, 1), reload: make(chan struct{}, 1), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	past := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	go func() {
		h.done <- Serve(ctx, cfg, h.r, Options{Load: load, Log: zerolog.New(h.log), Now: func() time.Time { return past },
			Reload: h.reload, StopGrace: time.Minute, Ready: func(a string) { h.addr <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		close(h.r.release)
		<-h.done
	})
	return h
}

func (h *harness) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", s, h.log.String())
		}
		time.Sleep(5 * time.Millisecond) // polling a log, not waiting for a deadline
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// Cycles run one at a time: with every activation already due, the next
// cycle starts only when the running one has finished.
func TestCyclesNeverOverlap(t *testing.T) {
	h := serve(t, nil)
	for i := 0; i < 4; i++ {
		<-h.r.startedCh
		h.r.release <- struct{}{}
	}
	<-h.r.startedCh
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	if h.r.maxActive != 1 || h.r.started < 5 {
		t.Errorf("%d cycles ran at once (%d started), want one at a time", h.r.maxActive, h.r.started)
	}
}

// A broken config at reload is logged and the running one kept; a good one
// is handed to the runner, after the running cycle.
func TestReload(t *testing.T) {
	var mu sync.Mutex
	next := func() (*config.Config, error) {
		return nil, errors.New("snapwarden.yaml: policy.deadline: \"soon\" is not a duration")
	}
	h := serve(t, func() (*config.Config, error) { mu.Lock(); defer mu.Unlock(); return next() })
	<-h.r.startedCh
	h.reload <- struct{}{}
	h.r.release <- struct{}{}
	h.waitLog(t, "reload refused: keeping the running config")
	if len(h.r.reloaded) != 0 {
		t.Fatal("a broken config reached the runner")
	}
	mu.Lock()
	good := &config.Config{File: "snapwarden.yaml", Schedule: "@every 2h", Listen: "127.0.0.1:0"}
	next = func() (*config.Config, error) { return good, nil }
	mu.Unlock()
	h.reload <- struct{}{}
	h.r.release <- struct{}{} // a reload waits for the running cycle
	h.waitLog(t, "config reloaded")
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	if len(h.r.reloaded) != 1 || h.r.reloaded[0] != good {
		t.Errorf("runner got %v, want the new config", h.r.reloaded)
	}
}

// /healthz is 503 until a cycle succeeds, 200 after, 503 after a failure.
func TestHealthz(t *testing.T) {
	h := serve(t, nil)
	base := "http://" + <-h.addr
	<-h.r.startedCh
	if code, _ := get(t, base+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz before any cycle: %d, want 503", code)
	}
	h.r.release <- struct{}{}
	h.waitLog(t, "last cycle")
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after a good cycle: %d %s", code, body)
	}
	<-h.r.startedCh
	h.r.mu.Lock()
	h.r.fail = errors.New("ledger /var/lib/snapwarden/ledger.db: disk full")
	h.r.mu.Unlock()
	h.r.release <- struct{}{}
	h.waitLog(t, "cycle failed")
	if code, body := get(t, base+"/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "disk full") {
		t.Errorf("/healthz after a failed cycle: %d %s", code, body)
	}
}

// TestEveryVCenterDownIsAFailedCycle: with no vCenter answering the cycle
// counts as failed, not partial, and serve logs each vCenter's reason at
// error level; with one of two down it is partial.
func TestEveryVCenterDownIsAFailedCycle(t *testing.T) {
	h := serve(t, nil)
	base := "http://" + <-h.addr
	h.r.mu.Lock()
	h.r.vcenters = 2
	h.r.errs = []facts.VCenterError{{VCenter: "vc-east", Error: "vcenter \"vc-east\": login: Login failure"},
		{VCenter: "vc-west", Error: "vcenter \"vc-west\": connect: connection refused"}}
	h.r.mu.Unlock()
	<-h.r.startedCh
	h.r.release <- struct{}{}
	h.waitLog(t, "connection refused")
	for _, want := range []string{`"level":"error","vcenter":"vc-east","error":"vcenter \"vc-east\": login: Login failure"`,
		`"level":"error","vcenter":"vc-west"`} {
		if !strings.Contains(h.log.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, h.log.String())
		}
	}
	<-h.r.startedCh
	h.r.mu.Lock()
	h.r.errs = h.r.errs[1:]
	h.r.mu.Unlock()
	h.r.release <- struct{}{}
	<-h.r.startedCh
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{`snapwarden_cycles_total{result="failed"} 1`, `snapwarden_cycles_total{result="partial"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
