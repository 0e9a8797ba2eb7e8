package enforce_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/enforce"
	"github.com/snapwarden/snapwarden/internal/ledger"
)

func TestCommitsOverdueSnapshots(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	for _, vm := range []string{"web01", "db01", "app01"} {
		if err := e.sim.EnableConsolidate(vm); err != nil {
			t.Fatal(err)
		}
	}
	// db01 will be left needing a disk consolidation.
	if err := e.sim.SetConsolidationNeeded("db01", true); err != nil {
		t.Fatal(err)
	}
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	want := []string{"app01/base", "app01/patch", "db01/nightly", "web01/mid", "web01/old"}
	if got := due(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("the plan has %v due, want %v", got, want)
	}

	x := e.executor(t0)
	var logs lockedBuffer
	x.Log = zerolog.New(&logs)
	out := x.Run(context.Background(), p, settings())
	got := byName(out)
	if len(out) != 6 {
		t.Fatalf("want 5 removals and 1 disk consolidation, got:%s", describe(out))
	}
	for _, name := range want {
		o := got[name+" remove"]
		if o.Result != enforce.ResultSuccess || o.TaskID == "" || !o.At.Equal(t0) {
			t.Errorf("%s: %+v, want success with a task id at t0", name, o)
		}
	}
	// Oldest first: the outcomes come back in create-time order.
	if first := out[0].Decision.Snapshot.Name; first != "old" {
		t.Errorf("first outcome is %s, want the oldest snapshot", first)
	}
	if o := got["db01/nightly consolidate-disks"]; o.Result != enforce.ResultSuccess || o.TaskID == "" {
		t.Errorf("disk consolidation: %+v", o)
	}
	if n := e.sim.Consolidations("db01"); n != 1 {
		t.Errorf("ConsolidateVMDisks on db01: %d calls, want 1", n)
	}
	for _, vm := range []string{"web01", "app01"} {
		if n := e.sim.Consolidations(vm); n != 0 {
			t.Errorf("ConsolidateVMDisks on %s without consolidationNeeded: %d calls", vm, n)
		}
	}

	// vCenter: the due snapshots are gone, the rest is untouched and sized.
	left := e.present(t)
	for _, name := range want {
		if _, ok := left[name]; ok {
			t.Errorf("%s is still in vCenter", name)
		}
	}
	for name, size := range map[string]int64{"web01/young": 64 << 20, "keep01/kept": 1 << 30, "esc01/escalated": 1 << 30} {
		if s, ok := left[name]; !ok || s.SizeBytes != size {
			t.Errorf("%s: present=%v size=%d, want untouched with %d bytes", name, ok, s.SizeBytes, size)
		}
	}

	// Ledger: one finished action per task, with its task id.
	acts := e.actions(t)
	for _, name := range want {
		evs := acts[name]
		if len(evs) == 0 || evs[0].Result != ledger.ResultSuccess || evs[0].TaskID != got[name+" remove"].TaskID {
			t.Errorf("%s: ledger actions %+v, want success with task %s", name, evs, got[name+" remove"].TaskID)
		}
	}
	if evs := acts["db01/nightly"]; len(evs) != 2 || !strings.Contains(evs[1].What, "consolidate-disks") {
		t.Errorf("db01/nightly: ledger actions %+v, want the removal and the disk consolidation", evs)
	}
	if running, err := e.led.Running(context.Background()); err != nil || len(running) != 0 {
		t.Errorf("running actions after the run: %v %v", running, err)
	}

	// One log line per outcome, with the fields support filters on.
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != len(out) {
		t.Errorf("%d log lines for %d outcomes:\n%s", len(lines), len(out), logs.String())
	}
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		for _, k := range []string{"vcenter", "vm", "snapshot", "customer", "kind", "result", "task"} {
			if rec[k] == nil || rec[k] == "" {
				t.Errorf("log line lacks %s: %s", k, l)
			}
		}
	}

	// The next plan has nothing left to consolidate.
	if d := due(e.plan(t, t0)); len(d) != 0 {
		t.Errorf("next plan still has %v due", d)
	}
}

func TestDryRunTouchesNothing(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	before := e.present(t)
	for _, mode := range []string{"dry-run", "", "Enforce"} {
		s := settings()
		s.Mode = mode
		if out := e.executor(t0).Run(context.Background(), p, s); out != nil {
			t.Errorf("mode %q: %s", mode, describe(out))
		}
	}
	if after := e.present(t); len(after) != len(before) {
		t.Errorf("dry-run removed snapshots: %d before, %d after", len(before), len(after))
	}
	for name := range before {
		if n := e.sim.Removals(strings.Split(name, "/")[0]); n != 0 {
			t.Errorf("%s: %d removal calls in dry-run", name, n)
		}
	}
	if acts := e.actions(t); len(acts) != 0 {
		t.Errorf("dry-run wrote actions: %v", acts)
	}

	// A plan made in dry-run mode is not acted on even when the settings say enforce.
	p.Mode = "dry-run"
	out := e.executor(t0).Run(context.Background(), p, settings())
	if len(out) != len(due(p)) {
		t.Fatalf("dry-run plan: %s", describe(out))
	}
	for _, o := range out {
		if o.Result != enforce.ResultRefused || o.Reason != enforce.GuardMode {
			t.Errorf("dry-run plan: %s", describe([]enforce.Outcome{o}))
		}
	}
	if after := e.present(t); len(after) != len(before) {
		t.Error("a dry-run plan removed snapshots")
	}
}

// lockedBuffer collects log lines written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
