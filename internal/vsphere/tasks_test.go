package vsphere

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/simfleet"
)

// taskEnv is a simulated small fleet with the simfleet extensions installed
// before the client's first call.
func taskEnv(t *testing.T) (*simfleet.Sim, *Client) {
	t.Helper()
	s := startSerialSim(t)
	return s, dial(t, target(s), Options{})
}

// startSerialSim seeds the small fleet one VM at a time: vcsim races with
// itself when one VM is created while another's snapshots are (the race
// detector sees Datastore.resolve read the datastore's VM list as CreateVM
// appends to it), and these tests need no seeding speed.
func startSerialSim(t *testing.T) *simfleet.Sim {
	t.Helper()
	s := simfleet.ForTest(t, "../../testdata/fleets/small.yaml", simfleet.Options{Username: user, Password: pass, Now: now, Dir: t.TempDir(), Workers: 1})
	s.Extend()
	return s
}

// snapshotID finds a snapshot's moref through a collection, as enforce
// gets it from the plan.
func snapshotID(t *testing.T, c *Client, vm, name string) facts.Snapshot {
	t.Helper()
	inv, err := c.Collect(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range inv.Snapshots {
		if s.VM.Name == vm && s.Name == name {
			return s
		}
	}
	t.Fatalf("no snapshot %s/%s collected", vm, name)
	return facts.Snapshot{}
}

func wait(t *testing.T, c *Client, task string) TaskResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := c.WaitTask(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSnapshotReRead(t *testing.T) {
	sim, c := taskEnv(t)
	ctx := context.Background()
	want := snapshotID(t, c, "web01", "after-config")
	got, ok, err := c.Snapshot(ctx, want.VM.MoRef, want.ID)
	if err != nil || !ok {
		t.Fatalf("Snapshot = %v, %v", ok, err)
	}
	if !got.Created.Equal(now.Add(-30*time.Hour)) || got.SizeBytes != 512<<20 || got.Depth != 2 || got.Name != "after-config" {
		t.Errorf("re-read %+v, want created 30h ago, 512MiB, depth 2", got)
	}
	if got.VM.InstanceUUID != want.VM.InstanceUUID || got.VM.Name != "web01" || !got.VM.HasTag("acme") {
		t.Errorf("re-read VM %+v, want web01 with its uuid and tag", got.VM)
	}
	if len(got.VM.Datastores) != 1 || got.VM.Datastores[0].Capacity != 1<<40 || got.VM.Datastores[0].Free != 600<<30 || got.VM.Datastores[0].Name == "" {
		t.Errorf("re-read datastores %+v, want the fleet's 1TiB with 600GiB free", got.VM.Datastores)
	}
	if _, ok, err := c.Snapshot(ctx, want.VM.MoRef, "snapshot-999999"); ok || err != nil {
		t.Errorf("unknown snapshot: ok=%v err=%v, want not found and no error", ok, err)
	}
	if _, ok, err := c.Snapshot(ctx, "vm-999999", want.ID); ok || err != nil {
		t.Errorf("unknown VM: ok=%v err=%v, want not found and no error", ok, err)
	}
	ref, found, err := c.FindVM(ctx, want.VM.InstanceUUID)
	if err != nil || !found || ref != want.VM.MoRef {
		t.Errorf("FindVM = %q %v %v, want %s", ref, found, err, want.VM.MoRef)
	}
	if _, found, err := c.FindVM(ctx, "00000000-0000-0000-0000-000000000000"); found || err != nil {
		t.Errorf("FindVM of an unknown uuid: found=%v err=%v", found, err)
	}
	// The guards' re-read is one SOAP call (the vAPI tag read aside),
	// whatever the VM's datastores and tasks.
	var calls Counter
	counted := dial(t, target(sim), Options{Counter: &calls})
	before := calls.SOAP()
	if r, err := counted.Recheck(ctx, want.VM.MoRef, want.ID); !r.Exists || err != nil {
		t.Fatalf("Recheck = %v, %v", r.Exists, err)
	} else if len(r.Tree) < 2 {
		t.Errorf("Recheck read %d snapshots of the VM's tree, want all of them", len(r.Tree))
	}
	if n := calls.SOAP() - before; n != 1 {
		t.Errorf("Recheck made %d SOAP calls, want 1", n)
	}

	// The re-read sees the datastore's space of now, not the collection's.
	if err := sim.SetDatastoreFree(200 << 30); err != nil {
		t.Fatal(err)
	}
	r, err := c.Recheck(ctx, want.VM.MoRef, want.ID)
	again, busy := r.Snapshot, r.Busy
	if err != nil || busy != "" || len(again.VM.Datastores) != 1 {
		t.Fatalf("Recheck = %+v busy %q err %v", again.VM.Datastores, busy, err)
	}
	if capacity, free := again.VM.Datastores[0].Capacity, again.VM.Datastores[0].Free; capacity != 1<<40 || free != 200<<30 {
		t.Errorf("re-read datastore space = %d %d, want 1TiB with the new 200GiB free", capacity, free)
	}
}

func TestRemoveSnapshotKeepsSizes(t *testing.T) {
	_, c := taskEnv(t)
	ctx := context.Background()
	snap := snapshotID(t, c, "web01", "after-config")
	task, err := c.RemoveSnapshot(ctx, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := wait(t, c, task); r.State != TaskSuccess {
		t.Fatalf("removal ended %+v", r)
	}
	if _, ok, err := c.Snapshot(ctx, snap.VM.MoRef, snap.ID); ok || err != nil {
		t.Fatalf("after removal: exists=%v err=%v", ok, err)
	}
	// The child is now the root's child, and sizes are still the fleet's.
	root := snapshotID(t, c, "web01", "before-upgrade")
	leaf := snapshotID(t, c, "web01", "try-2")
	if root.SizeBytes != 1<<30 || leaf.SizeBytes != 64<<20 || leaf.Depth != 2 || !leaf.Current {
		t.Errorf("after removal: root %d bytes, leaf %d bytes depth %d current %v", root.SizeBytes, leaf.SizeBytes, leaf.Depth, leaf.Current)
	}
	// The same snapshot again: vCenter no longer knows it.
	_, err = c.RemoveSnapshot(ctx, snap.ID)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `vcenter "vc-test": remove snapshot`) {
		t.Errorf("second removal: %v, want ErrNotFound with context", err)
	}
}

func TestBusyWhileASlowRemovalRuns(t *testing.T) {
	s, c := taskEnv(t)
	ctx := context.Background()
	snap := snapshotID(t, c, "web01", "before-upgrade")
	if busy, err := c.Busy(ctx, snap.VM.MoRef); busy != "" || err != nil {
		t.Fatalf("idle VM: busy %q, %v", busy, err)
	}
	if err := s.SlowRemove("web01", time.Second); err != nil {
		t.Fatal(err)
	}
	task, err := c.RemoveSnapshot(ctx, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Reads of the VM do not wait for the task (as in vCenter).
	began := time.Now()
	busy, err := c.Busy(ctx, snap.VM.MoRef)
	if err != nil || !strings.Contains(busy, task) || !strings.Contains(busy, "running") || !strings.Contains(busy, "VirtualMachine.removeSnapshot") {
		t.Errorf("busy = %q, %v; want the running removal %s", busy, err, task)
	}
	if _, ok, err := c.Snapshot(ctx, snap.VM.MoRef, snap.ID); !ok || err != nil {
		t.Errorf("during the removal the snapshot is still there: %v %v", ok, err)
	}
	if d := time.Since(began); d > 700*time.Millisecond {
		t.Errorf("reads during the task took %s: they waited for it", d)
	}
	if r := wait(t, c, task); r.State != TaskSuccess {
		t.Fatalf("removal ended %+v", r)
	}
	if busy, err := c.Busy(ctx, snap.VM.MoRef); busy != "" || err != nil {
		t.Errorf("after the task: busy %q, %v", busy, err)
	}

	// A task that is not a removal makes the VM busy too.
	other, err := s.StartTask("db01", "createSnapshot", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	db := snapshotID(t, c, "db01", "schema-v2")
	if busy, _ := c.Busy(ctx, db.VM.MoRef); !strings.Contains(busy, other) || !strings.Contains(busy, "VirtualMachine.createSnapshot") {
		t.Errorf("busy = %q, want %s (VirtualMachine.createSnapshot)", busy, other)
	}
}

func TestTaskFaults(t *testing.T) {
	s, c := taskEnv(t)
	ctx := context.Background()
	snap := snapshotID(t, c, "db01", "schema-v2")

	// A task that fails.
	if err := s.FailRemove("db01", &types.FileLocked{}, 50*time.Millisecond, 1); err != nil {
		t.Fatal(err)
	}
	task, err := c.RemoveSnapshot(ctx, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := wait(t, c, task); r.State != TaskError || r.Fault != "FileLocked" || r.Busy {
		t.Errorf("failed task: %+v, want error FileLocked, not busy", r)
	}
	// A task that fails because the VM is busy.
	if err := s.FailRemove("db01", &types.TaskInProgress{}, 0, 1); err != nil {
		t.Fatal(err)
	}
	task, err = c.RemoveSnapshot(ctx, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := wait(t, c, task); r.State != TaskError || r.Fault != "TaskInProgress" || !r.Busy {
		t.Errorf("busy task: %+v, want error TaskInProgress, busy", r)
	}
	// A call refused outright.
	if err := s.RejectRemove("db01", &types.TaskInProgress{}, 1); err != nil {
		t.Fatal(err)
	}
	_, err = c.RemoveSnapshot(ctx, snap.ID)
	if !errors.Is(err, ErrBusy) || FaultOf(err) != "TaskInProgress" {
		t.Errorf("refused call: %v (fault %q), want ErrBusy TaskInProgress", err, FaultOf(err))
	}
	// The rules are used up: the snapshot is still there and goes now.
	task, err = c.RemoveSnapshot(ctx, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := wait(t, c, task); r.State != TaskSuccess {
		t.Errorf("last removal: %+v", r)
	}
}

func TestWaitTaskGoneAndCancelled(t *testing.T) {
	s, c := taskEnv(t)
	ctx := context.Background()
	if _, err := c.WaitTask(ctx, "task-424242"); !errors.Is(err, ErrTaskGone) {
		t.Errorf("unknown task: %v, want ErrTaskGone", err)
	}

	snap := snapshotID(t, c, "db01", "schema-v2")
	if err := s.SlowRemove("db01", time.Second); err != nil {
		t.Fatal(err)
	}
	task, err := c.RemoveSnapshot(ctx, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	// A cancelled wait returns at once; the task goes on.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	if _, err := c.WaitTask(cctx, task); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled wait: %v", err)
	}
	if d := time.Since(began); d > 700*time.Millisecond {
		t.Errorf("cancelled wait returned after %s", d)
	}
	// A task forgotten while watched.
	go func() {
		time.Sleep(100 * time.Millisecond)
		s.ForgetTask(task)
	}()
	if _, err := c.WaitTask(ctx, task); !errors.Is(err, ErrTaskGone) {
		t.Errorf("forgotten task: %v, want ErrTaskGone", err)
	}
	// Its work still ends.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, ok, err := c.Snapshot(ctx, snap.VM.MoRef, snap.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the forgotten removal never ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWaitTaskRoundsShorterThanTheHTTPTimeout(t *testing.T) {
	s := startSerialSim(t)
	// One second per round: a task of 2.5 s spans several rounds.
	c := dial(t, target(s), Options{Timeout: 2 * time.Second})
	if got := c.waitRound(); got != 1 {
		t.Fatalf("round = %ds, want 1", got)
	}
	task, err := s.StartTask("lab01", "createSnapshot", 2500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r := wait(t, c, task); r.State != TaskSuccess {
		t.Errorf("long task ended %+v", r)
	}
}

func TestConsolidateDisks(t *testing.T) {
	s, c := taskEnv(t)
	ctx := context.Background()
	snap := snapshotID(t, c, "web01", "try-2")
	vm := snap.VM.MoRef
	// vcsim lacks the method unless the VM is extended.
	if _, err := c.ConsolidateDisks(ctx, vm); err == nil || FaultOf(err) != "MethodNotFound" {
		t.Errorf("plain vcsim: %v (fault %q), want MethodNotFound", err, FaultOf(err))
	}
	if err := s.EnableConsolidate("web01"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConsolidationNeeded("web01", true); err != nil {
		t.Fatal(err)
	}
	if need, err := c.ConsolidationNeeded(ctx, vm); !need || err != nil {
		t.Fatalf("ConsolidationNeeded = %v %v", need, err)
	}
	task, err := c.ConsolidateDisks(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	if r := wait(t, c, task); r.State != TaskSuccess {
		t.Fatalf("consolidation ended %+v", r)
	}
	if need, err := c.ConsolidationNeeded(ctx, vm); need || err != nil {
		t.Errorf("after consolidation: needed=%v %v", need, err)
	}
	if n := s.Consolidations("web01"); n != 1 {
		t.Errorf("Consolidations = %d, want 1", n)
	}
	// The VM is still vcsim's own: its snapshots can be removed and collected.
	task, err = c.RemoveSnapshot(ctx, snap.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := wait(t, c, task); r.State != TaskSuccess {
		t.Fatalf("removal on the extended VM: %+v", r)
	}
	if got := snapshotID(t, c, "web01", "after-config"); !got.Current || got.SizeBytes != 512<<20 {
		t.Errorf("after removing the leaf: %+v", got)
	}
}

func TestUnsafeRemovalIsRefusedNotPanicking(t *testing.T) {
	_, c := taskEnv(t)
	ctx := context.Background()
	root := snapshotID(t, c, "web01", "before-upgrade")
	vm := object.NewVirtualMachine(c.vim, types.ManagedObjectReference{Type: "VirtualMachine", Value: root.VM.MoRef})
	rt, err := vm.RevertToSnapshot(ctx, root.ID, true)
	if err == nil {
		err = rt.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.RemoveSnapshot(ctx, root.ID)
	if FaultOf(err) == "" || !strings.Contains(FaultOf(err), "NotSupported") {
		t.Errorf("removing the current root with children: %v, want NotSupported", err)
	}
	if _, ok, err := c.Snapshot(ctx, root.VM.MoRef, root.ID); !ok || err != nil {
		t.Errorf("the root must still be there: %v %v", ok, err)
	}
}
