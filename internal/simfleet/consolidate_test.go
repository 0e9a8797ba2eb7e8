package simfleet

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// extended starts the small fleet with the extensions installed and a
// client logged in as a customer of the simulator would be.
func extended(t *testing.T) (*Sim, *object.VirtualMachine, func(string) types.ManagedObjectReference) {
	t.Helper()
	// One VM at a time (see startSerialSim in internal/vsphere).
	f, err := Load("../../testdata/fleets/small.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), f, Options{Username: "u@vsphere.local", Password: "pw", Now: now, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.Extend()
	c, err := connect(t, s, "u@vsphere.local", "pw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Logout(context.Background()) })
	ref, _ := s.VMRef("web01")
	vm := object.NewVirtualMachine(c.Client, ref)
	snap := func(name string) types.ManagedObjectReference {
		t.Helper()
		r, err := vm.FindSnapshot(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		return *r
	}
	return s, vm, snap
}

func consolidate(ctx context.Context, vm *object.VirtualMachine) (*object.Task, error) {
	res, err := methods.ConsolidateVMDisks_Task(ctx, vm.Client(), &types.ConsolidateVMDisks_Task{This: vm.Reference()})
	if err != nil {
		return nil, err
	}
	return object.NewTask(vm.Client(), res.Returnval), nil
}

func removeVia(ctx context.Context, vm *object.VirtualMachine, id string) (*object.Task, error) {
	consolidate := true
	return vm.RemoveSnapshot(ctx, id, false, &consolidate)
}

func TestConsolidateVMDisksExtension(t *testing.T) {
	s, vm, _ := extended(t)
	ctx := context.Background()
	if err := s.EnableConsolidate("web01"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableConsolidate("nope"); err == nil {
		t.Error("EnableConsolidate of an unknown VM: no error")
	}
	if err := s.SetConsolidationNeeded("web01", true); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		task, err := consolidate(ctx, vm)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			t.Fatalf("consolidate %d: %v", i, err)
		}
		var m mo.VirtualMachine
		if err := vm.Properties(ctx, vm.Reference(), []string{"runtime.consolidationNeeded"}, &m); err != nil {
			t.Fatal(err)
		}
		if m.Runtime.ConsolidationNeeded {
			t.Errorf("consolidate %d: consolidationNeeded still set", i)
		}
		if n := s.Consolidations("web01"); n != i {
			t.Errorf("Consolidations = %d, want %d", n, i)
		}
	}
	// Other VMs keep vcsim's answer.
	ref, _ := s.VMRef("db01")
	other := object.NewVirtualMachine(vm.Client(), ref)
	if _, err := consolidate(ctx, other); err == nil || !strings.Contains(err.Error(), "does not implement") {
		t.Errorf("db01 consolidate: %v, want vcsim's does not implement", err)
	}
	// The registry still holds vcsim's own VM, so vcsim's casts keep working.
	if obj := s.Context().Map.Get(vm.Reference()); !strings.HasSuffix(fmt.Sprintf("%T", obj), "simulator.VirtualMachine") {
		t.Errorf("registry holds %T", obj)
	}
}

func TestRemovalThroughTheAPIKeepsSizes(t *testing.T) {
	s, vm, snap := extended(t)
	ctx := context.Background()
	task, err := removeVia(ctx, vm, snap("after-config").Value)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	var m mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"snapshot", "layoutEx"}, &m); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, f := range m.LayoutEx.File {
		if f.Type != string(types.VirtualMachineFileLayoutExFileTypeDiskExtent) || !strings.HasSuffix(f.Name, "-flat.vmdk") {
			total += f.Size
		}
	}
	// The config file plus the two remaining snapshots (1 GiB + 64 MiB) and
	// descriptors: vcsim alone would report 0.
	if total < 1<<30 {
		t.Errorf("layoutEx after an API removal holds %d bytes of snapshot files, want the fleet's sizes", total)
	}
	root := m.Snapshot.RootSnapshotList[0]
	if !root.CreateTime.Equal(now.Add(-50*time.Hour)) || len(root.ChildSnapshotList) != 1 || root.ChildSnapshotList[0].Name != "try-2" {
		t.Errorf("tree after removal: %+v", root)
	}
	if err := s.Refresh("web01"); err != nil { // idempotent after the automatic one
		t.Fatal(err)
	}
}

func TestScriptedRemovals(t *testing.T) {
	s, vm, snap := extended(t)
	ctx := context.Background()
	id := snap("try-2").Value

	// Refused call.
	if err := s.RejectRemove("web01", &types.TaskInProgress{}, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := removeVia(ctx, vm, id); err == nil || !strings.Contains(err.Error(), "TaskInProgress") {
		t.Errorf("rejected removal: %v", err)
	}
	// Failing task, after a delay.
	if err := s.FailRemove("web01", &types.FileLocked{}, 100*time.Millisecond, 1); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	task, err := removeVia(ctx, vm, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Wait(ctx); err == nil || !strings.Contains(err.Error(), "FileLocked") {
		t.Errorf("failing task: %v", err)
	}
	if d := time.Since(began); d < 100*time.Millisecond {
		t.Errorf("failing task ended after %s, before its delay", d)
	}
	// Slow task: the VM shows it in recentTask while it runs.
	if err := s.SlowRemove("web01", 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	task, err = removeVia(ctx, vm, id)
	if err != nil {
		t.Fatal(err)
	}
	var m mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"recentTask"}, &m); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range m.RecentTask {
		found = found || r == task.Reference()
	}
	if !found {
		t.Errorf("recentTask %v lacks the running removal %s", m.RecentTask, task.Reference())
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.FindSnapshot(ctx, "try-2"); err == nil {
		t.Error("try-2 is still there after the slow removal")
	}
	// A busy task of another kind.
	busy, err := s.StartTask("web01", "createSnapshot", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := object.NewTask(vm.Client(), types.ManagedObjectReference{Type: "Task", Value: busy}).Wait(ctx); err != nil {
		t.Errorf("StartTask's task: %v", err)
	}
}
