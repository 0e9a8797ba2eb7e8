package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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
	var cancelled error
	select {
	case <-r.release:
	case <-ctx.Done():
		// What a ledger call says when its context is cancelled.
		cancelled = fmt.Errorf("ledger /var/lib/snapwarden/ledger.db: history: begin: %w", ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.active--
	if cancelled != nil {
		return nil, cancelled
	}
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
	past := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	return serveAt(t, load, func() time.Time { return past })
}

// serveAt starts Serve with the clock now.
func serveAt(t *testing.T, load func() (*config.Config, error), now func() time.Time) *harness {
	t.Helper()
	cfg := &config.Config{File: "snapwarden.yaml", Schedule: "@every 1h", Listen: "127.0.0.1:0"}
	h := &harness{r: newRunner(), log: &syncBuffer{}, addr: make(chan string, 1), reload: make(chan struct{}, 1), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.done <- Serve(ctx, cfg, h.r, Options{Load: load, Log: zerolog.New(h.log), Now: now,
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

// A reload that keeps the schedule keeps the armed activation: the clock
// is half an hour past the last cycle and its activation a moment away when
// the reload comes, and the cycle still runs then (re-arming would put it an
// hour after the reload, and every reload would push it further).
func TestReloadKeepsTheSchedule(t *testing.T) {
	var offset atomic.Int64
	base := time.Now().Add(-time.Hour + 1500*time.Millisecond) // the first activation is 1.5 s away
	same := &config.Config{File: "snapwarden.yaml", Schedule: "@every 1h", Listen: "127.0.0.1:0"}
	h := serveAt(t, func() (*config.Config, error) { return same, nil },
		func() time.Time { return base.Add(time.Duration(offset.Load())) })
	<-h.r.startedCh
	h.r.release <- struct{}{}
	h.waitLog(t, "last cycle")
	offset.Store(int64(30 * time.Minute))
	h.reload <- struct{}{}
	select {
	case <-h.r.startedCh:
		if !strings.Contains(h.log.String(), "config reloaded") {
			t.Fatal("the cycle ran before the reload was handled: the test proves nothing")
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no cycle at the armed activation after a reload that kept the schedule:\n%s", h.log.String())
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

// /metrics has build_info, help texts naming the labels the counters carry,
// and every counter's zero series before anything happened, so rate()
// sees the first event.
func TestMetricsFromTheStart(t *testing.T) {
	h := serve(t, nil)
	base := "http://" + <-h.addr
	<-h.r.startedCh
	_, body := get(t, base+"/metrics")
	for _, want := range []string{
		`snapwarden_build_info{goversion="` + runtime.Version() + `",version=""} 1`,
		`# HELP snapwarden_notices_sent_total Notices delivered, by kind (customer:`,
		`snapwarden_notices_sent_total{kind="customer"} 0`,
		`snapwarden_notices_sent_total{kind="support"} 0`,
		`snapwarden_notices_failed_total{kind="action"} 0`,
		`snapwarden_consolidations_total{result="success"} 0`,
		`snapwarden_consolidations_total{result="refused"} 0`,
		`snapwarden_cycles_total{result="failed"} 0`,
		`snapwarden_cycles_total{result="ok"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// A cycle cancelled at stop (after the grace) is logged as cancelled, not
// as a failure of whatever ledger or vCenter call it was in.
func TestStopCancelsACycle(t *testing.T) {
	r, log := newRunner(), &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := &config.Config{File: "snapwarden.yaml", Schedule: "@every 1h", Listen: "127.0.0.1:0"}
	go func() {
		done <- Serve(ctx, cfg, r, Options{Log: zerolog.New(log), StopGrace: time.Millisecond})
	}()
	<-r.startedCh
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out := log.String(); !strings.Contains(out, "cycle cancelled: stopping") || strings.Contains(out, "cycle failed") {
		t.Errorf("log:\n%s", out)
	}
}

// docs/operations.md lists every snapwarden_ series /metrics has.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics("test")
	// Labelled series without a value are not gathered: give each one.
	m.snapshots.WithLabelValues("ok", "acme")
	m.bytes.WithLabelValues("ok", "acme")
	m.vcErrors.WithLabelValues("vc-east")
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if name := f.GetName(); strings.HasPrefix(name, "snapwarden_") && !strings.Contains(string(doc), "`"+name+"`") {
			t.Errorf("docs/operations.md does not list the metric `%s`", name)
		}
	}
}
