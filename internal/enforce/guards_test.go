package enforce_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/snapwarden/snapwarden/internal/enforce"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// TestGuards plans with every guard passing, then changes vCenter (or the
// decision) for one VM per guard before the executor runs: each refusal
// comes back with its guard and is in the ledger, and only the snapshot
// nothing happened to is removed.
func TestGuards(t *testing.T) {
	e := newEnv(t, "guards.yaml")
	ctx := context.Background()
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	if n := len(due(p)); n != 14 {
		t.Fatalf("the plan has %d due, want all 14: %v", n, due(p))
	}

	// What happens between planning and execution.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The customer committed gone01's snapshot; recreated01's id now names
	// another snapshot; a backup runs on busy01; vCenter refuses reject01's
	// removal as busy; keep01's owner asked for an exemption; backup
	// software took over backup01's snapshot; fail01's merge breaks; and
	// inprog01's task meets a busy VM.
	must(e.sim.RemoveSnapshot("gone01", "s1"))
	must(e.sim.SetSnapshotCreated("recreated01", "s1", t0.Add(-10*time.Hour)))
	_, err := e.sim.StartTask("busy01", "createSnapshot", 3*time.Second)
	must(err)
	must(e.sim.RejectRemove("reject01", &types.TaskInProgress{}, 1))
	must(e.sim.RenameSnapshot("keep01", "s1", "", "before the upgrade keep-until=2099-01-01"))
	must(e.sim.RenameSnapshot("backup01", "s1", "VEEAM BACKUP TEMPORARY SNAPSHOT", ""))
	must(e.sim.FailRemove("fail01", &types.FileLocked{}, 0, 1))
	must(e.sim.FailRemove("inprog01", &types.TaskInProgress{}, 0, 1))
	must(e.sim.AttachTag("retagged01", "Customer", "globex")) // now disputed
	// nonpersistent01's disk now discards its writes at power-off;
	// independent01's keeps them outside snapshots, which a commit does not
	// change.
	must(e.sim.SetDiskMode("nonpersistent01", "independent_nonpersistent"))
	must(e.sim.SetDiskMode("independent01", "independent_persistent"))
	for i := range p.Decisions {
		switch d := &p.Decisions[i]; d.Snapshot.VM.Name {
		case "unwarned01":
			d.History.WarnedAt = time.Time{} // as if the notice had never been delivered
		case "toldlate01":
			d.History.WarnedAt = t0.Add(-59 * time.Minute) // delivered less than min_notice ago
		}
	}

	s := settings()
	s.MinNotice, s.Rules = time.Hour, e.planner.Rules
	out := e.executor(t0).Run(ctx, p, s)
	got := byName(out)
	want := map[string]struct{ result, reason, fault string }{
		"ok01/s1":            {enforce.ResultSuccess, "", ""},
		"gone01/s1":          {enforce.ResultRefused, enforce.GuardGone, ""},
		"recreated01/s1":     {enforce.ResultRefused, enforce.GuardRecreated, ""},
		"busy01/s1":          {enforce.ResultRefused, enforce.GuardBusy, ""},
		"reject01/s1":        {enforce.ResultRefused, enforce.GuardBusy, "TaskInProgress"},
		"keep01/s1":          {enforce.ResultRefused, enforce.GuardExempt, ""},
		"backup01/s1":        {enforce.ResultRefused, enforce.GuardManaged, ""},
		"unwarned01/s1":      {enforce.ResultRefused, enforce.GuardMinNotice, ""},
		"toldlate01/s1":      {enforce.ResultRefused, enforce.GuardMinNotice, ""},
		"retagged01/s1":      {enforce.ResultRefused, enforce.GuardOwner, ""},
		"nonpersistent01/s1": {enforce.ResultRefused, enforce.GuardDisk, ""},
		"independent01/s1":   {enforce.ResultSuccess, "", ""},
		"fail01/s1":          {enforce.ResultError, "", "FileLocked"},
		"inprog01/s1":        {enforce.ResultRefused, enforce.GuardBusy, "TaskInProgress"},
	}
	if len(out) != len(want) {
		t.Fatalf("got %d outcomes, want %d:%s", len(out), len(want), describe(out))
	}
	for name, w := range want {
		o := got[name+" remove"]
		if o.Result != w.result || o.Reason != w.reason || o.Fault != w.fault || o.Detail == "" {
			t.Errorf("%s: %s, want %s %s fault %q", name, describe([]enforce.Outcome{o}), w.result, w.reason, w.fault)
		}
	}
	if d := got["busy01/s1 remove"].Detail; !strings.Contains(d, "VirtualMachine.createSnapshot") {
		t.Errorf("busy detail %q does not name the running task", d)
	}

	// vCenter: only ok01's snapshot went; nothing was started where a
	// guard refused before the task.
	left := e.present(t)
	if _, ok := left["ok01/s1"]; ok {
		t.Error("ok01/s1 is still there")
	}
	for _, name := range []string{"recreated01/s1", "busy01/s1", "reject01/s1", "keep01/s1", "unwarned01/s1", "fail01/s1", "inprog01/s1"} {
		if _, ok := left[name]; !ok {
			t.Errorf("%s was removed despite its guard", name)
		}
	}
	if _, ok := left["backup01/VEEAM BACKUP TEMPORARY SNAPSHOT"]; !ok {
		t.Error("the backup snapshot was removed")
	}
	for _, vm := range []string{"recreated01", "busy01", "keep01", "backup01", "unwarned01"} {
		if n := e.sim.Removals(vm); n != 0 {
			t.Errorf("%s: %d removal calls despite a guard", vm, n)
		}
	}

	// Ledger: every attempt and refusal is there with its reason; only the
	// failed task counts as a failed attempt.
	acts := e.actions(t)
	for name, w := range want {
		evs := acts[name]
		if name == "backup01/s1" {
			evs = acts["backup01/VEEAM BACKUP TEMPORARY SNAPSHOT"]
			if len(evs) == 0 {
				evs = acts[name]
			}
		}
		if len(evs) != 1 || evs[0].Result != w.result {
			t.Errorf("%s: ledger %+v, want one %s action", name, evs, w.result)
			continue
		}
		if w.reason != "" && !strings.Contains(evs[0].What, w.reason+":") {
			t.Errorf("%s: ledger says %q, want the guard %q", name, evs[0].What, w.reason)
		}
	}
	if h := e.history(t, p, "fail01/s1"); h.Attempts != 1 || !strings.Contains(h.LastFault, "FileLocked") {
		t.Errorf("fail01 history %+v, want 1 failed attempt with its fault", h)
	}
	for _, name := range []string{"inprog01/s1", "reject01/s1", "busy01/s1"} {
		if h := e.history(t, p, name); h.Attempts != 0 || h.InFlight {
			t.Errorf("%s history %+v: a busy VM is not a failed attempt", name, h)
		}
	}
}

// TestGuardsReadAtExecutionTime: the window and the datastore's free space
// are judged when the task would start, not when the plan was made.
func TestGuardsReadAtExecutionTime(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	ctx := context.Background()
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	wantDue := len(due(p))

	// A window that opened at 22:00 for 6h: closed at t0 (12:00).
	sched, err := cron.ParseStandard("0 22 * * *")
	if err != nil {
		t.Fatal(err)
	}
	s := settings()
	s.Window = &plan.Window{Start: sched, Duration: 6 * time.Hour}
	out := e.executor(t0).Run(ctx, p, s)
	if len(out) != wantDue {
		t.Fatalf("window closed:%s", describe(out))
	}
	for _, o := range out {
		if o.Result != enforce.ResultRefused || o.Reason != enforce.GuardWindow || !strings.Contains(o.Detail, "2026-11-24T22:00:00Z") {
			t.Errorf("window closed:%s", describe([]enforce.Outcome{o}))
		}
	}
	// The run's clock is the plan's plus the time the run takes: at 23:00
	// the same window is open, so the guard passes it (and the datastore
	// guard below refuses).
	late := p.At.Add(11 * time.Hour)
	p.At = late

	// The datastore filled up since the plan: 600 GiB free then, 50 GiB now,
	// and 10% of 1 TiB must stay free.
	if err := e.sim.SetDatastoreFree(50 << 30); err != nil {
		t.Fatal(err)
	}
	out = e.executor(late).Run(ctx, p, s)
	if len(out) != wantDue {
		t.Fatalf("datastore full:%s", describe(out))
	}
	for _, o := range out {
		if o.Result != enforce.ResultRefused || o.Reason != enforce.GuardDatastore {
			t.Errorf("datastore full:%s", describe([]enforce.Outcome{o}))
		}
	}
	if n := len(e.present(t)); n != 8 {
		t.Errorf("%d snapshots left, want all 8", n)
	}
	for _, evs := range e.actions(t) {
		for _, ev := range evs {
			if ev.Result != ledger.ResultRefused {
				t.Errorf("a refused run recorded %+v", ev)
			}
		}
	}
}

// TestInFlightElsewhereOnTheVM: a consolidation of the VM still running (as
// the ledger says) holds back every other snapshot of that VM.
func TestInFlightElsewhereOnTheVM(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	ctx := context.Background()
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	var old plan.Decision
	for _, d := range p.Decisions {
		if d.Snapshot.Name == "old" {
			old = d
		}
	}
	// A previous process started a removal of web01/young and stopped.
	young := old
	for _, d := range p.Decisions {
		if d.Snapshot.Name == "young" {
			young = d
		}
	}
	if _, err := e.led.StartAction(ctx, ledger.Action{Key: young.Snapshot.Key(), VM: "web01", Snapshot: "young", Customer: "acme",
		Kind: enforce.KindRemove, StartedAt: t0.Add(-time.Minute), TaskID: "task-77"}); err != nil {
		t.Fatal(err)
	}
	out := byName(e.executor(t0).Run(ctx, p, settings()))
	for _, name := range []string{"web01/old", "web01/mid"} {
		if o := out[name+" remove"]; o.Result != enforce.ResultRefused || o.Reason != enforce.GuardInFlight || !strings.Contains(o.Detail, "task-77") {
			t.Errorf("%s: %s", name, describe([]enforce.Outcome{o}))
		}
	}
	if o := out["db01/nightly remove"]; o.Result != enforce.ResultSuccess {
		t.Errorf("another VM is not held back: %s", describe([]enforce.Outcome{o}))
	}
}

// TestWindowRecheckExpectsTheRemovalToFit: the re-check uses the plan's
// window (with its removal rate) and refuses a removal that would outlast it.
func TestWindowRecheckExpectsTheRemovalToFit(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	wantDue := len(due(p))
	// 11:00-12:01 UTC: at the plan's 12:00 a minute is left, less than any removal takes.
	w, err := plan.ParseWindow("CRON_TZ=UTC 0 11 * * *", 61*time.Minute, time.Local)
	if err != nil {
		t.Fatal(err)
	}
	p.Window = w
	out := e.executor(t0).Run(context.Background(), p, settings())
	if len(out) != wantDue || wantDue == 0 {
		t.Fatalf("want %d refusals:%s", wantDue, describe(out))
	}
	for _, o := range out {
		if o.Result != enforce.ResultRefused || o.Reason != enforce.GuardWindow || !strings.Contains(o.Detail, "expected to take") {
			t.Errorf("a removal that outlasts the window:%s", describe([]enforce.Outcome{o}))
		}
	}
}

// TestBackupOnTheReReadVM: a backup snapshot that appeared on the VM since
// the plan holds back its consolidations; other VMs go on.
func TestBackupOnTheReReadVM(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	if err := e.sim.RenameSnapshot("web01", "young", "VEEAM BACKUP TEMPORARY SNAPSHOT", ""); err != nil {
		t.Fatal(err)
	}
	out := e.executor(t0).Run(context.Background(), p, settings())
	refusedOnWeb01(t, out, enforce.GuardBackup, "VEEAM BACKUP TEMPORARY SNAPSHOT", "beside a backup")
}

// TestLinkedCloneOnThePlannedVM: a due decision whose VM's disk files the
// collection found in another VM's chain (the planner blocks such a VM; a
// plan built otherwise must not slip through) is refused, naming the clone.
func TestLinkedCloneOnThePlannedVM(t *testing.T) {
	e := newEnv(t, "overdue.yaml")
	e.warn(t, t0.Add(-time.Hour), nil)
	p := e.plan(t, t0)
	for i := range p.Decisions {
		if vm := p.Decisions[i].Snapshot.VM; vm.Name == "web01" {
			vm.SharesDisksWith = []string{"clone01"}
		}
	}
	out := e.executor(t0).Run(context.Background(), p, settings())
	refusedOnWeb01(t, out, enforce.GuardClone, "clone01", "under a linked clone")
}

// refusedOnWeb01 checks that guard, with a detail naming detail, refused
// both due removals on web01 (old and mid) while other VMs' removals went on.
func refusedOnWeb01(t *testing.T, out []enforce.Outcome, guard, detail, situation string) {
	t.Helper()
	web, others := 0, 0
	for _, o := range out {
		switch {
		case o.Decision.Snapshot.VM.Name != "web01":
			if o.Result == enforce.ResultSuccess {
				others++
			}
		case o.Result == enforce.ResultRefused && o.Reason == guard && strings.Contains(o.Detail, detail):
			web++
		default:
			t.Errorf("web01 %s:%s", situation, describe([]enforce.Outcome{o}))
		}
	}
	if web != 2 || others == 0 {
		t.Errorf("%d refusals on web01 (want 2: old and mid), %d removals elsewhere:%s", web, others, describe(out))
	}
}
