package enforce_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"

	"github.com/snapwarden/snapwarden/internal/enforce"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/simfleet"
)

// only keeps the decisions of the named "vm/snapshot"s.
func only(p *plan.Plan, names ...string) *plan.Plan {
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	q := *p
	q.Decisions = nil
	for _, d := range p.Decisions {
		if keep[d.Snapshot.VM.Name+"/"+d.Snapshot.Name] {
			q.Decisions = append(q.Decisions, d)
		}
	}
	return &q
}

// runUntilTask runs the executor on one decision of p and cancels its
// context (SIGTERM) as soon as the ledger holds the task id of its action.
func runUntilTask(t *testing.T, e *env, p *plan.Plan, name string) []enforce.Outcome {
	p = only(p, name)
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan []enforce.Outcome)
	go func() { done <- e.executor(t0).Run(ctx, p, settings()) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		running, err := e.led.Running(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		started := false
		for _, a := range running {
			started = started || (a.VM+"/"+a.Snapshot == name && a.TaskID != "")
		}
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no task id was recorded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	return <-done
}

func TestStopDuringTaskThenResume(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	ctx := context.Background()
	if err := e.sim.EnableConsolidate("db01"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetConsolidationNeeded("db01", true); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SlowRemove("db01", 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e.warn(t, t0.Add(-time.Hour), nil)
	out := runUntilTask(t, e, e.plan(t, t0), "db01/nightly")
	if len(out) != 1 || out[0].Result != enforce.ResultRunning || out[0].TaskID == "" {
		t.Fatalf("stopped run:%s", describe(out))
	}
	task := out[0].TaskID
	running, err := e.led.Running(ctx)
	if err != nil || len(running) != 1 || running[0].TaskID != task || running[0].Kind != enforce.KindRemove {
		t.Fatalf("ledger running %+v %v, want the removal with task %s", running, err, task)
	}
	// The task goes on in vCenter; the next plan sees it in flight.
	if d := decision(e.plan(t, t0), "db01/nightly"); d.Due || d.Reason != plan.ReasonInFlight || d.History.TaskID != task {
		t.Errorf("plan after the stop: %s due=%v %s", d.Action, d.Due, d.Reason)
	}

	// Restart: a new process resumes watching the same task.
	e.restart(t)
	res := e.executor(t0).Resume(ctx)
	got := byName(res)
	if o := got["db01/nightly remove"]; o.Result != enforce.ResultSuccess || o.TaskID != task {
		t.Errorf("resumed:%s", describe(res))
	}
	if o := got["db01/nightly consolidate-disks"]; o.Result != enforce.ResultSuccess {
		t.Errorf("the disk consolidation after a resumed removal:%s", describe(res))
	}
	if n := e.sim.Removals("db01"); n != 1 {
		t.Errorf("%d removal calls, want the one task only", n)
	}
	if _, ok := e.present(t)["db01/nightly"]; ok {
		t.Error("db01/nightly is still there")
	}
	if running, _ := e.led.Running(ctx); len(running) != 0 {
		t.Errorf("still running after Resume: %+v", running)
	}
	if evs := e.actions(t)["db01/nightly"]; len(evs) != 2 || evs[0].Result != ledger.ResultSuccess || evs[0].TaskID != task {
		t.Errorf("ledger %+v, want the removal finished with its task, then the disk consolidation", evs)
	}
	// Nothing is left to resume.
	if again := e.executor(t0).Resume(ctx); len(again) != 0 {
		t.Errorf("second Resume:%s", describe(again))
	}
}

func TestResumeConcurrentCallsWatchOnce(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	if err := e.sim.SlowRemove("db01", 800*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e.warn(t, t0.Add(-time.Hour), nil)
	runUntilTask(t, e, e.plan(t, t0), "db01/nightly")
	// One process, Resume at the start of two overlapping cycles.
	x := e.executor(t0)
	var wg sync.WaitGroup
	results := make([][]enforce.Outcome, 3)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = x.Resume(context.Background())
		}()
	}
	wg.Wait()
	var all []enforce.Outcome
	for _, r := range results {
		all = append(all, r...)
	}
	if len(all) != 1 || all[0].Result != enforce.ResultSuccess {
		t.Errorf("overlapping Resume calls:%s", describe(all))
	}
}

func TestResumeTaskVCenterForgot(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	ctx := context.Background()
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)

	// db01: the task failed and vCenter forgot it; the snapshot is still
	// there, so the attempt failed ("task lost").
	if err := e.sim.FailRemove("db01", &types.FileLocked{}, 300*time.Millisecond, 1); err != nil {
		t.Fatal(err)
	}
	lost := runUntilTask(t, e, p, "db01/nightly")[0]
	// web01/old: the task succeeded, then vCenter forgot it.
	if err := e.sim.SlowRemove("web01", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	forgot := runUntilTask(t, e, p, "web01/old")[0]
	waitFor(t, func() bool { _, ok := e.present(t)["web01/old"]; return !ok })
	waitFor(t, func() bool { busy := e.busy(t, "db01"); return busy == "" })
	e.sim.ForgetTask(lost.TaskID)
	e.sim.ForgetTask(forgot.TaskID)

	e.restart(t)
	got := byName(e.executor(t0).Resume(ctx))
	if o := got["db01/nightly remove"]; o.Result != enforce.ResultError || o.Fault != "task lost" {
		t.Errorf("lost task: %s", describe([]enforce.Outcome{o}))
	}
	if o := got["web01/old remove"]; o.Result != enforce.ResultSuccess {
		t.Errorf("forgotten finished task: %s", describe([]enforce.Outcome{o}))
	}
	if h := e.history(t, p, "db01/nightly"); h.Attempts != 1 || h.LastFault != "task lost" {
		t.Errorf("history %+v, want one failed attempt", h)
	}
}

func TestResumeWithoutTaskID(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	ctx := context.Background()
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	// A process stopped between StartAction and SetTask: for db01 the task
	// never started; web01/old was removed all the same.
	for _, name := range []string{"db01/nightly", "web01/old"} {
		d := decision(p, name)
		if _, err := e.led.StartAction(ctx, ledger.Action{Key: d.Snapshot.Key(), VM: d.Snapshot.VM.Name, Snapshot: d.Snapshot.Name,
			Customer: "acme", Kind: enforce.KindRemove, StartedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.sim.RemoveSnapshot("web01", "old"); err != nil {
		t.Fatal(err)
	}
	got := byName(e.executor(t0).Resume(ctx))
	if o := got["db01/nightly remove"]; o.Result != ledger.ResultAbandoned {
		t.Errorf("never started: %s", describe([]enforce.Outcome{o}))
	}
	if o := got["web01/old remove"]; o.Result != enforce.ResultSuccess {
		t.Errorf("done without a task id: %s", describe([]enforce.Outcome{o}))
	}
	// An abandoned attempt is not a failed one: the planner tries again.
	if d := decision(e.plan(t, t0), "db01/nightly"); !d.Due || d.Action != plan.ActionConsolidate {
		t.Errorf("after an abandoned attempt: %s due=%v %s", d.Action, d.Due, d.Reason)
	}
}

func TestMaxConcurrent(t *testing.T) {
	f := &simfleet.Fleet{Datastore: simfleet.Space{Capacity: 1 << 40, Free: 600 << 30}}
	for i := 0; i < 5; i++ {
		f.VMs = append(f.VMs, simfleet.VM{Name: fmt.Sprintf("vm%02d", i), Folder: "Customers/acme", Tags: map[string]string{"Customer": "acme"},
			Snapshots: []simfleet.Snap{{Name: "s", Age: simfleet.Duration(100 * time.Hour), Size: 1 << 30}}})
	}
	e := newEnvFleet(t, f, t0)
	e.warn(t, t0.Add(-time.Hour), nil)
	for _, vm := range f.VMs {
		if err := e.sim.SlowRemove(vm.Name, 250*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	p := e.plan(t, t0)

	// All VMs share the simulator's one datastore: one merge at a time.
	run := func(p *plan.Plan, n int) {
		t.Helper()
		s := settings()
		s.MaxConcurrent = n
		for _, o := range e.executor(t0).Run(context.Background(), p, s) {
			if o.Result != enforce.ResultSuccess {
				t.Errorf("max_concurrent %d:%s", n, describe([]enforce.Outcome{o}))
			}
		}
	}
	run(only(p, "vm00/s", "vm01/s"), 2)
	if peak := e.sim.PeakRemovals(); peak != 1 {
		t.Errorf("one datastore: %d removals at once, want 1", peak)
	}
	// As if each VM lived on its own datastore: max_concurrent is the limit.
	rest := only(p, "vm02/s", "vm03/s", "vm04/s")
	for i := range rest.Decisions {
		vm := *rest.Decisions[i].Snapshot.VM
		vm.Datastores = []facts.Datastore{{MoRef: fmt.Sprintf("datastore-%d", i), Name: "ds", Capacity: 1 << 40, Free: 600 << 30}}
		rest.Decisions[i].Snapshot.VM = &vm
	}
	run(rest, 2)
	if peak := e.sim.PeakRemovals(); peak != 2 {
		t.Errorf("three datastores, max_concurrent 2: %d removals at once, want 2", peak)
	}
	if left := e.present(t); len(left) != 0 {
		t.Errorf("left: %v", left)
	}
}

func decision(p *plan.Plan, name string) plan.Decision {
	for _, d := range p.Decisions {
		if d.Snapshot.VM.Name+"/"+d.Snapshot.Name == name {
			return d
		}
	}
	return plan.Decision{}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// busy asks vCenter whether a VM runs a task.
func (e *env) busy(t *testing.T, vm string) string {
	t.Helper()
	c, err := e.pool.Client(context.Background(), "vc-test")
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := e.sim.VMRef(vm)
	b, err := c.Busy(context.Background(), ref.Value)
	if err != nil && !strings.Contains(err.Error(), "not") {
		t.Fatal(err)
	}
	return b
}

// A VM that vanished under an unfinished removal is no commit: Resume
// records it "gone" and tells (through Tell, in the same ledger write), and
// a commit found by Resume is told as Run's would be.
func TestResumeVMGoneIsNotACommit(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	ctx := context.Background()
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	d := decision(p, "web01/old")
	gone := d.Snapshot.Key()
	gone.VMUUID = "4211dead-0000-0000-0000-000000000000"
	for _, k := range []facts.Key{gone, d.Snapshot.Key()} {
		if _, err := e.led.StartAction(ctx, ledger.Action{Key: k, VM: d.Snapshot.VM.Name, Snapshot: d.Snapshot.Name,
			Customer: "acme", Kind: enforce.KindRemove, StartedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.sim.RemoveSnapshot("web01", "old"); err != nil {
		t.Fatal(err)
	}
	x := e.executor(t0)
	var mu sync.Mutex // Resume tells from one goroutine per action
	told := map[string]string{}
	x.Tell = func(o enforce.Outcome) ([]ledger.Notice, error) {
		id := fmt.Sprintf("<%s-%s@test>", o.Decision.Snapshot.VM.InstanceUUID, o.Result)
		mu.Lock()
		told[o.Decision.Snapshot.VM.InstanceUUID] = o.Result
		mu.Unlock()
		return []ledger.Notice{{MessageID: id, Channel: ledger.ChannelEmail, Kind: ledger.KindSupport,
			Recipients: []string{"support@provider.example"}, Subject: o.Result, Body: []byte("x")}}, nil
	}
	out := x.Resume(ctx)
	if len(out) != 2 {
		t.Fatalf("resumed %s", describe(out))
	}
	if told[gone.VMUUID] != enforce.ResultGone || told[d.Snapshot.Key().VMUUID] != enforce.ResultSuccess {
		t.Errorf("told %v; want the vanished VM gone, the removed snapshot success", told)
	}
	pending, err := e.led.Pending(ctx)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending notices %d (%v), want the 2 Tell rendered", len(pending), err)
	}
	if running, err := e.led.Running(ctx); err != nil || len(running) != 0 {
		t.Errorf("still running after Resume: %v %v", running, err)
	}
}

// Fail closed: once the ledger cannot record a result, Run starts no more
// removals; the unrecorded one stays unfinished for Resume.
func TestRunStopsWhenTheLedgerFails(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	db, err := sql.Open("sqlite", filepath.Join(e.dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER disk_full BEFORE UPDATE OF finished_at ON actions
BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`); err != nil {
		t.Fatal(err)
	}
	s := settings()
	s.MaxConcurrent = 1
	out := e.executor(t0).Run(context.Background(), p, s)
	if len(out) != 1 || out[0].Err == nil || !strings.Contains(out[0].Err.Error(), "disk is full") {
		t.Fatalf("Run on a failing ledger:%s\nwant one attempt whose result could not be recorded", describe(out))
	}
	if running, err := e.led.Running(context.Background()); err != nil || len(running) != 1 {
		t.Errorf("unfinished actions %d (%v), want the one unrecorded", len(running), err)
	}
}

// In serve the act stage runs outside the cycle, so a second Run can start
// while the first still watches a task: the two share max_concurrent and
// the per-VM rule, and a snapshot the first holds is not attempted again.
func TestOverlappingRunsShareTheLimits(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	ctx := context.Background()
	if err := e.sim.SlowRemove("db01", 800*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	if len(due(p)) < 2 {
		t.Fatalf("due %v: the fleet needs two due consolidations", due(p))
	}
	x := e.executor(t0)
	s := settings()
	s.MaxConcurrent = 1

	first := make(chan []enforce.Outcome)
	go func() { first <- x.Run(ctx, only(p, "db01/nightly"), s) }()
	waitFor(t, func() bool {
		running, err := e.led.Running(ctx)
		return err == nil && len(running) == 1 && running[0].TaskID != ""
	})
	second := make(chan []enforce.Outcome)
	go func() { second <- x.Run(ctx, p, s) }()
	// While the first Run's task goes on, the second starts nothing.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if running, err := e.led.Running(ctx); err != nil || len(running) > 1 {
			t.Fatalf("%d actions running at once with max_concurrent 1 (%v)", len(running), err)
		}
	}
	a, b := <-first, <-second
	if got := byName(a); got["db01/nightly remove"].Result != enforce.ResultSuccess {
		t.Errorf("first run:%s", describe(a))
	}
	for _, o := range b {
		if o.Decision.Snapshot.VM.Name == "db01" {
			t.Errorf("the second run attempted db01, which the first held:%s", describe(b))
		}
	}
	if len(b) == 0 {
		t.Error("the second run attempted nothing once the slot was free")
	}
	if n := e.sim.Removals("db01"); n != 1 {
		t.Errorf("%d removal calls on db01, want 1", n)
	}
}
