package simfleet

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// vcsim extensions for enforcement tests: ConsolidateVMDisks_Task (vcsim
// lacks it), removals that are slow or fail, tasks that keep a VM busy, and
// a layoutEx kept vSphere-shaped after removals made through the API.
//
// Why not replace the VM object with a wrapper, as govmomi's
// example_extend_test.go does? vcsim casts registry objects to
// *simulator.VirtualMachine in many places (RemoveSnapshot_Task itself, and
// this package's refresh), so a wrapped VM panics on the next removal.
// Instead the registry's Handler hook (consulted before every call) builds a
// wrapper for that one call. vcsim then prefers the caller's session
// registry over the Handler's answer, and that registry falls back to the
// global one, so the wrapper is put in the session registry for the length
// of the call and removed by the wrapper's method. The global registry
// keeps vcsim's own objects throughout.
//
// Why not vcsim's Task.Run for the slow parts? It holds the task entity's
// (the VM's) lock for the whole run, so every property read of the VM would
// block while a slow removal runs, unlike vCenter. Slow tasks here are
// registered and completed by hand, holding no lock while they wait.

// extension is the per-Sim state of the handler.
type extension struct {
	sim   *Sim
	on    atomic.Bool // set by Extend: until then every call is vcsim's
	tasks atomic.Int64

	mu           sync.Mutex
	consolidates map[string]int // vm moref -> ConsolidateVMDisks calls; present = enabled
	slow         map[string]time.Duration
	fail         map[string]*failure
	reject       map[string]*failure
	removals     map[string]int // vm moref -> RemoveSnapshot_Task calls
	running      int            // removal tasks running now
	peak         int            // the most removal tasks ever running at once
}

// failure makes the next count removals on a VM run for delay and fail.
type failure struct {
	fault types.BaseMethodFault
	delay time.Duration
	count int
}

// Extend turns on this file's simulator extensions. Every helper below
// calls it; call it directly when only the layoutEx upkeep is wanted, before
// the code under test starts the calls it should see extended.
//
// Once on, every RemoveSnapshot_Task runs as a task that, after vcsim's own
// removal, re-applies the fleet's create times and layoutEx sizes (vcsim
// rebuilds layoutEx with zero sizes), so later collections measure what a
// vCenter would. It also refuses, with a NotSupported fault, the removal
// that panics vcsim (a current root snapshot while other snapshots remain).
func (s *Sim) Extend() {
	s.ext()
}

func (s *Sim) ext() *extension {
	s.x.on.Store(true)
	return s.x
}

// installExtensions hooks this file's and watch.go's extensions into the
// registry's Handler, which vcsim reads on every call without a lock: Start
// calls it before the server serves, so that write happens before every
// read (set later, by the first Extend or FastWait, it raced with the
// server's goroutines). Each extension stays out of the way until turned
// on; the wait extensions answer first, and each leaves the calls it does
// not extend to the next, and to vcsim.
func (s *Sim) installExtensions() {
	s.x = &extension{sim: s, consolidates: map[string]int{}, slow: map[string]time.Duration{}, fail: map[string]*failure{},
		reject: map[string]*failure{}, removals: map[string]int{}}
	s.wx = &watchExt{listeners: map[types.ManagedObjectReference]*listener{}}
	s.Model.Map().Handler = func(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
		if r, f := s.wx.handle(ctx, m); r != nil || f != nil {
			return r, f
		}
		return s.x.handle(ctx, m)
	}
}

// callWrapper is a wrapper that lives in a session registry for one call.
type callWrapper interface {
	mo.Reference
	callWrapper()
}

// handle builds the wrapper for the calls this file extends and puts it in
// the caller's session registry, where vcsim looks first; nil leaves the
// call to vcsim.
func (x *extension) handle(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	if !x.on.Load() || ctx.Session == nil {
		return nil, nil
	}
	var w callWrapper
	switch m.Name {
	case "RemoveSnapshot_Task":
		if snap, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachineSnapshot); ok {
			w = &removal{snap: snap, x: x}
		}
	case "ConsolidateVMDisks_Task":
		x.mu.Lock()
		_, on := x.consolidates[m.This.Value]
		x.mu.Unlock()
		if vm, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachine); ok && on {
			w = &consolidator{vm: vm, x: x}
		}
	}
	// A wrapper whose call never reached it (a fault injected before the
	// method) must not answer for the object afterwards.
	if _, stale := ctx.Session.Registry.Get(m.This).(callWrapper); stale {
		ctx.Session.Registry.Remove(ctx, m.This)
	}
	if w == nil {
		return nil, nil
	}
	ctx.Session.Registry.Put(w)
	return w, nil
}

// done takes a wrapper out of the session registry at the start of its call.
func done(ctx *simulator.Context, w callWrapper) {
	if ctx.Session != nil && ctx.Session.Registry.Get(w.Reference()) == w {
		ctx.Session.Registry.Remove(ctx, w.Reference())
	}
}

func (s *Sim) vmRef(vmName string) (types.ManagedObjectReference, error) {
	ref, ok := s.VMRef(vmName)
	if !ok {
		return ref, fmt.Errorf("vm %q not in the fleet", vmName)
	}
	return ref, nil
}

// EnableConsolidate gives one VM ConsolidateVMDisks_Task: a task that
// succeeds, clears runtime.consolidationNeeded and is counted (see
// Consolidations). Other VMs keep vcsim's answer, MethodNotFound.
func (s *Sim) EnableConsolidate(vmName string) error {
	ref, err := s.vmRef(vmName)
	if err != nil {
		return err
	}
	x := s.ext()
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.consolidates[ref.Value]; !ok {
		x.consolidates[ref.Value] = 0
	}
	return nil
}

// Consolidations counts the ConsolidateVMDisks_Task calls on a VM.
func (s *Sim) Consolidations(vmName string) int {
	ref, err := s.vmRef(vmName)
	if err != nil {
		return 0
	}
	x := s.ext()
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.consolidates[ref.Value]
}

// SlowRemove makes every later removal of a snapshot of the VM run for d
// before vcsim removes it; zero restores the usual speed.
func (s *Sim) SlowRemove(vmName string, d time.Duration) error {
	ref, err := s.vmRef(vmName)
	if err != nil {
		return err
	}
	x := s.ext()
	x.mu.Lock()
	defer x.mu.Unlock()
	if d <= 0 {
		delete(x.slow, ref.Value)
	} else {
		x.slow[ref.Value] = d
	}
	return nil
}

// FailRemove makes the next count removals of snapshots of the VM start a
// task that runs for delay and then fails with fault, leaving the snapshot
// in place. A task fault (as opposed to a refused call, see RejectRemove) is
// what vCenter reports for a consolidation that breaks mid-way.
func (s *Sim) FailRemove(vmName string, fault types.BaseMethodFault, delay time.Duration, count int) error {
	ref, err := s.vmRef(vmName)
	if err != nil {
		return err
	}
	x := s.ext()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.fail[ref.Value] = &failure{fault: fault, delay: delay, count: count}
	return nil
}

// RejectRemove makes the next count RemoveSnapshot_Task calls on snapshots
// of the VM fail at once with fault, no task created, as vCenter refuses a
// removal while another task holds the VM. (vcsim's own fault injection
// does the same, but its rules see the object vcsim dispatches to, which
// here is the wrapper of the call.)
func (s *Sim) RejectRemove(vmName string, fault types.BaseMethodFault, count int) error {
	ref, err := s.vmRef(vmName)
	if err != nil {
		return err
	}
	x := s.ext()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.reject[ref.Value] = &failure{fault: fault, count: count}
	return nil
}

// StartTask starts a task on the VM that runs for d and then succeeds, so
// the VM shows a running task in recentTask, as during a backup or a
// vMotion. name is the task's method, e.g. "createSnapshot" (its
// descriptionId becomes VirtualMachine.createSnapshot). It returns the
// task's moref value.
func (s *Sim) StartTask(vmName, name string, d time.Duration) (string, error) {
	ref, err := s.vmRef(vmName)
	if err != nil {
		return "", err
	}
	x := s.ext()
	ctx := &simulator.Context{Context: context.Background(), Map: s.Model.Map()}
	t := x.startTask(ctx, ref, name, func(*simulator.Context) (types.AnyType, types.BaseMethodFault) {
		time.Sleep(d)
		return nil, nil
	})
	return t.Value, nil
}

// ForgetTask removes a task from the simulator, as a vCenter restart or
// its purge of old tasks does: later calls on it fail with
// ManagedObjectNotFound. A running task's work still goes on.
func (s *Sim) ForgetTask(taskID string) {
	ctx := s.Context()
	ctx.Map.Remove(ctx, types.ManagedObjectReference{Type: "Task", Value: taskID})
}

// startTask registers a running task on entity and completes it when run
// returns, holding no lock while run works (see the file comment). The
// task appears in the entity's recentTask, as vCenter shows it. run gets a
// context of its own, a clone of ctx, so locks it takes are not shared with
// the request that started it.
func (x *extension) startTask(ctx *simulator.Context, entity types.ManagedObjectReference, name string,
	run func(*simulator.Context) (types.AnyType, types.BaseMethodFault)) types.ManagedObjectReference {
	t := simulator.CreateTask(entity, name, nil)
	// vcsim's counter is private; a range of its own keeps ids unique.
	t.Self = types.ManagedObjectReference{Type: "Task", Value: fmt.Sprintf("task-%d", 900000+x.tasks.Add(1))}
	t.Info.Key, t.Info.Task = t.Self.Value, t.Self
	started := time.Now()
	t.Info.State, t.Info.StartTime = types.TaskInfoStateRunning, &started
	ctx.Map.Put(t)
	bg := *ctx
	go func() {
		res, fault := run(&bg)
		state := types.TaskInfoStateSuccess
		var lf any
		if fault != nil {
			state = types.TaskInfoStateError
			lf = types.LocalizedMethodFault{Fault: fault, LocalizedMessage: fmt.Sprintf("%T", fault)}
		}
		// The completion is published under a context of its own: the
		// task's lock must not be shared with run's.
		done := &simulator.Context{Context: context.Background(), Map: ctx.Map}
		ctx.Map.AtomicUpdate(done, t, []types.PropertyChange{
			{Name: "info.completeTime", Val: time.Now()},
			{Name: "info.state", Val: state},
			{Name: "info.result", Val: res},
			{Name: "info.error", Val: lf},
		})
	}()
	return t.Self
}

// removal is a snapshot for the length of one RemoveSnapshot_Task call.
// Its first field is the snapshot, which vcsim's property collector looks
// through; it does not embed it, so it is no mo.Entity and putting it in a
// registry writes nothing to the snapshot.
type removal struct {
	snap *simulator.VirtualMachineSnapshot
	x    *extension
}

// Reference is the snapshot's moref.
func (r *removal) Reference() types.ManagedObjectReference { return r.snap.Self }
func (r *removal) callWrapper()                            {}

// RemoveSnapshotTask starts a task that applies the VM's scripted delay or
// failure, then has vcsim remove the snapshot and re-applies the fleet's
// sizes before it reports success.
func (r *removal) RemoveSnapshotTask(ctx *simulator.Context, req *types.RemoveSnapshot_Task) soap.HasFault {
	done(ctx, r)
	x, vm := r.x, r.snap.Vm
	x.mu.Lock()
	x.removals[vm.Value]++
	if f := x.reject[vm.Value]; f != nil && f.count > 0 {
		f.count--
		x.mu.Unlock()
		return &methods.RemoveSnapshot_TaskBody{Fault_: simulator.Fault(fmt.Sprintf("%T", f.fault), f.fault)}
	}
	x.mu.Unlock()
	if f := x.unsafeRemoval(ctx, vm, req); f != nil {
		return &methods.RemoveSnapshot_TaskBody{Fault_: simulator.Fault("vcsim cannot remove a current root snapshot while others remain", f)}
	}
	x.mu.Lock()
	delay := x.slow[vm.Value]
	var fail *failure
	if f := x.fail[vm.Value]; f != nil && f.count > 0 {
		f.count--
		fail = f
		delay = f.delay
	}
	x.mu.Unlock()
	orig := r.snap
	x.mu.Lock()
	x.running++
	x.peak = max(x.peak, x.running)
	x.mu.Unlock()
	task := x.startTask(ctx, vm, "removeSnapshot", func(bg *simulator.Context) (types.AnyType, types.BaseMethodFault) {
		defer func() {
			x.mu.Lock()
			x.running--
			x.mu.Unlock()
		}()
		time.Sleep(delay)
		if fail != nil {
			return nil, fail.fault
		}
		if bg.Map.Get(req.This) == nil { // removed meanwhile, e.g. by a second call
			return nil, &types.ManagedObjectNotFound{Obj: req.This}
		}
		var body soap.HasFault
		bg.WithLock(orig, func() { body = orig.RemoveSnapshotTask(bg, req) })
		if f := body.Fault(); f != nil {
			if mf, ok := f.Detail.Fault.(types.BaseMethodFault); ok {
				return nil, mf
			}
			return nil, &types.SystemError{Reason: f.String}
		}
		inner, ok := bg.Map.Get(body.(*methods.RemoveSnapshot_TaskBody).Res.Returnval).(*simulator.Task)
		if !ok {
			return nil, &types.SystemError{Reason: "vcsim's removal task vanished"}
		}
		inner.Wait()
		var lf *types.LocalizedMethodFault
		bg.Map.WithLock(&simulator.Context{Context: context.Background(), Map: bg.Map}, inner, func() { lf = inner.Info.Error })
		if lf != nil {
			return nil, lf.Fault
		}
		if err := x.sim.refresh(vm); err != nil {
			return nil, &types.SystemError{Reason: err.Error()}
		}
		return nil, nil
	})
	return &methods.RemoveSnapshot_TaskBody{Res: &types.RemoveSnapshot_TaskResponse{Returnval: task}}
}

// unsafeRemoval refuses the removal that panics vcsim: the current snapshot
// while it is a root and other snapshots remain (vCenter handles it; vcsim
// loses the tree).
func (x *extension) unsafeRemoval(ctx *simulator.Context, vmRef types.ManagedObjectReference, req *types.RemoveSnapshot_Task) types.BaseMethodFault {
	vm, ok := ctx.Map.Get(vmRef).(*simulator.VirtualMachine)
	if !ok {
		return nil
	}
	var bad bool
	iso := &simulator.Context{Context: context.Background(), Map: ctx.Map}
	ctx.Map.WithLock(iso, vm, func() {
		info := vm.Snapshot
		if info == nil || info.CurrentSnapshot == nil || *info.CurrentSnapshot != req.This {
			return
		}
		for _, root := range info.RootSnapshotList {
			if root.Snapshot == req.This {
				bad = len(info.RootSnapshotList) > 1 || len(root.ChildSnapshotList) > 0
			}
		}
	})
	if bad {
		return &types.NotSupported{}
	}
	return nil
}

// consolidator is a VM for the length of one ConsolidateVMDisks_Task call,
// built like removal.
type consolidator struct {
	vm *simulator.VirtualMachine
	x  *extension
}

// Reference is the VM's moref.
func (c *consolidator) Reference() types.ManagedObjectReference { return c.vm.Self }
func (c *consolidator) callWrapper()                            {}

// ConsolidateVMDisksTask implements the method vcsim lacks: a task that
// succeeds and clears runtime.consolidationNeeded.
func (c *consolidator) ConsolidateVMDisksTask(ctx *simulator.Context, req *types.ConsolidateVMDisks_Task) soap.HasFault {
	done(ctx, c)
	vm, x := c.vm, c.x
	task := simulator.CreateTask(vm, "consolidateVMDisks", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		ctx.WithLock(vm, func() {
			ctx.Update(vm, []types.PropertyChange{{Name: "runtime.consolidationNeeded", Val: false}})
		})
		x.mu.Lock()
		x.consolidates[vm.Self.Value]++
		x.mu.Unlock()
		return nil, nil
	})
	return &methods.ConsolidateVMDisks_TaskBody{Res: &types.ConsolidateVMDisks_TaskResponse{Returnval: task.Run(ctx)}}
}

// RenameSnapshot changes a snapshot's name and description, as vSphere's
// RenameSnapshot does (vcsim lacks it): a customer adding
// keep-until=YYYY-MM-DD after a collection, for example. An empty name
// keeps the name.
func (s *Sim) RenameSnapshot(vmName, snapshot, name, description string) error {
	ref, snap, err := s.findSnapshot(vmName, snapshot)
	if err != nil {
		return err
	}
	ctx := s.Context()
	obj, ok := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return fmt.Errorf("vm %s not in the simulator", ref.Value)
	}
	ctx.WithLock(obj, func() {
		eachSnapshot(obj.Snapshot.RootSnapshotList, func(n *types.VirtualMachineSnapshotTree) {
			if n.Snapshot == snap {
				if name != "" {
					n.Name = name
				}
				n.Description = description
			}
		})
		ctx.Update(obj, []types.PropertyChange{{Name: "snapshot.rootSnapshotList", Val: obj.Snapshot.RootSnapshotList}})
	})
	return nil
}

// Removals counts the RemoveSnapshot_Task calls on snapshots of a VM that
// reached the simulator (refused ones included), so a test can tell that
// no second removal was started.
func (s *Sim) Removals(vmName string) int {
	ref, err := s.vmRef(vmName)
	if err != nil {
		return 0
	}
	x := s.ext()
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.removals[ref.Value]
}

// PeakRemovals is the most removal tasks that ran at once in this
// simulator since Extend, for tests of concurrency limits.
func (s *Sim) PeakRemovals() int {
	x := s.ext()
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.peak
}
