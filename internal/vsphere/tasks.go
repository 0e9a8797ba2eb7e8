package vsphere

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// The snapshot tasks below give enforce plain types: govmomi stays in this
// package, so the executor can be read (and its guards reviewed) without
// knowing the vSphere API.

var (
	// ErrTaskGone means vCenter no longer knows the task: it purges finished
	// tasks after a while and forgets running ones when it restarts, so the
	// caller must judge the outcome from the object the task worked on.
	ErrTaskGone = errors.New("the task is no longer known to vCenter")
	// ErrBusy matches a call refused because the object is busy (another
	// task runs on it, or it is in a state that forbids the call for now):
	// worth trying again next cycle, not a failure of the operation.
	ErrBusy = errors.New("the object is busy")
	// ErrNotFound matches a call on an object vCenter does not know (a
	// snapshot removed in the meantime, a VM deleted).
	ErrNotFound = errors.New("the object does not exist")
)

// TaskResult is how a vSphere task ended.
type TaskResult struct {
	// State is "success" or "error".
	State string
	// Fault names the fault of a failed task, with vCenter's message.
	Fault string
	// Busy is set when the fault says the object was busy (TaskInProgress,
	// InvalidState): the task should be tried again next cycle, and it does
	// not count as a failed attempt.
	Busy bool
}

// Task states of TaskResult.
const (
	TaskSuccess = "success"
	TaskError   = "error"
)

// callError carries the fault of a refused call, so callers can ask
// errors.Is(err, ErrBusy) and FaultOf(err) without importing govmomi.
type callError struct {
	fault    string
	busy     bool
	notFound bool
	err      error
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// Is makes the classification available to errors.Is.
func (e *callError) Is(target error) bool {
	return (target == ErrBusy && e.busy) || (target == ErrNotFound && e.notFound)
}

// classify wraps a call's error with its fault, when it has one.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var f types.BaseMethodFault
	msg, ok := fault.As(err, &f)
	if !ok {
		return err
	}
	return &callError{fault: faultText(f, msg), busy: busyFault(f), notFound: notFoundFault(f), err: err}
}

// FaultOf returns the vSphere fault of an error returned by this package's
// task methods ("TaskInProgress: ..."), or "" when the error is not a fault
// (a network failure, a cancelled context).
func FaultOf(err error) string {
	var ce *callError
	if errors.As(err, &ce) {
		return ce.fault
	}
	return ""
}

// busyFault reports faults that mean "not now": another task holds the VM or
// the VM is in a transient state. Both pass by themselves.
func busyFault(f types.BaseMethodFault) bool {
	switch f.(type) {
	case *types.TaskInProgress, *types.InvalidState:
		return true
	}
	return false
}

func notFoundFault(f types.BaseMethodFault) bool {
	switch f.(type) {
	case *types.ManagedObjectNotFound:
		return true
	}
	return false
}

// faultText renders a fault as its type name plus vCenter's message, when
// the message says more than the name (vcsim's message is the Go type).
func faultText(f types.BaseMethodFault, msg string) string {
	t := reflect.TypeOf(f)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := "fault"
	if t != nil {
		name = t.Name()
	}
	msg = strings.TrimSpace(msg)
	if msg == "" || msg == name || strings.TrimPrefix(msg, "*types.") == name || strings.TrimPrefix(msg, "types.") == name {
		return name
	}
	return name + ": " + msg
}

func vmRef(moref string) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VirtualMachine", Value: moref}
}

// Reread is one VM read again just before a task.
type Reread struct {
	// Snapshot is the facts of the snapshot asked for, when Exists.
	Snapshot facts.Snapshot
	Exists   bool
	// Busy describes the task queued or running on the VM, "" when none.
	Busy string
	// Tree is every snapshot of the VM now, the asked one among them (no
	// creators: vCenter's events are not read again).
	Tree []facts.Snapshot
	// VM is the VM's facts (its datastores and tags included), nil when the
	// VM no longer exists or has neither snapshots nor problems.
	VM *facts.VM
	// SpecialDisks names the VM's virtual disks in a mode other than
	// persistent, as "Hard disk 2 (independent_nonpersistent)".
	SpecialDisks []DiskMode
}

// DiskMode is a virtual disk's label and mode (VirtualDiskMode: persistent,
// independent_persistent, independent_nonpersistent, nonpersistent,
// undoable, append).
type DiskMode struct {
	Label string
	Mode  string
}

func (d DiskMode) String() string { return fmt.Sprintf("%s (%s)", d.Label, d.Mode) }

// recheckProps are collection's VM properties plus the devices, for the
// disk modes: read per VM just before a task, never in the inventory-wide
// retrieval, whose time they would add to by half.
var recheckProps = append(slices.Clip(vmProps), "config.hardware.device")

// specialDisks lists the disks of m in a mode other than persistent.
func specialDisks(m *mo.VirtualMachine) []DiskMode {
	if m.Config == nil {
		return nil
	}
	var out []DiskMode
	for _, dev := range m.Config.Hardware.Device {
		disk, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		var mode string
		switch b := disk.Backing.(type) {
		case *types.VirtualDiskFlatVer2BackingInfo:
			mode = b.DiskMode
		case *types.VirtualDiskSeSparseBackingInfo:
			mode = b.DiskMode
		case *types.VirtualDiskSparseVer2BackingInfo:
			mode = b.DiskMode
		case *types.VirtualDiskRawDiskMappingVer1BackingInfo:
			mode = b.DiskMode
		case *types.VirtualDiskFlatVer1BackingInfo:
			mode = b.DiskMode
		case *types.VirtualDiskSparseVer1BackingInfo:
			mode = b.DiskMode
		}
		if mode == "" || mode == string(types.VirtualDiskModePersistent) {
			continue
		}
		label := fmt.Sprintf("disk %d", disk.Key)
		if d := disk.DeviceInfo.GetDescription(); d != nil && d.Label != "" {
			label = d.Label
		}
		out = append(out, DiskMode{Label: label, Mode: mode})
	}
	return out
}

// Recheck re-reads one VM in a single retrieval (the VM's properties, its
// datastores' space and its recent tasks, through traversal specs) plus its
// tags: one of its snapshots, whether it still exists, the VM's whole
// snapshot tree, its disk modes and the task queued or running on the VM
// (snapshotID "" asks for the VM alone). The folder path
// and custom attributes are not read again, since ownership is not decided
// again here. A VM that no longer exists has no snapshot.
func (c *Client) Recheck(ctx context.Context, vmMoRef, snapshotID string) (Reread, error) {
	objs, err := c.retrieveVM(ctx, vmMoRef, recheckProps, "datastore", "recentTask")
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return Reread{}, nil
		}
		return Reread{}, fmt.Errorf("vcenter %q: re-read vm %s: %w", c.Name, vmMoRef, err)
	}
	var vms []mo.VirtualMachine
	if err := mo.LoadObjectContent(onlyType(objs, "VirtualMachine"), &vms); err != nil {
		return Reread{}, fmt.Errorf("vcenter %q: re-read vm %s: decode: %w", c.Name, vmMoRef, err)
	}
	busy, err := busyTask(objs)
	if err != nil {
		return Reread{}, fmt.Errorf("vcenter %q: recent tasks of vm %s: %w", c.Name, vmMoRef, err)
	}
	if len(vms) == 0 {
		return Reread{Busy: busy}, nil
	}
	inv := &facts.Inventory{}
	p := c.addVM(inv, &vms[0], &chains{})
	if p == nil {
		return Reread{Busy: busy}, nil
	}
	for _, oc := range onlyType(objs, "Datastore") {
		p.vm.Datastores = append(p.vm.Datastores, datastoreOf(oc))
	}
	if err := c.tags(ctx, []*pendingVM{p}); err != nil {
		return Reread{}, fmt.Errorf("vcenter %q: re-read tags of vm %s: %w", c.Name, vmMoRef, err)
	}
	r := Reread{Busy: busy, Tree: inv.Snapshots, VM: p.vm, SpecialDisks: specialDisks(&vms[0])}
	if i := slices.IndexFunc(inv.Snapshots, func(s facts.Snapshot) bool { return snapshotID != "" && s.ID == snapshotID }); i >= 0 {
		r.Snapshot, r.Exists = inv.Snapshots[i], true
	}
	return r, nil
}

// Snapshot is Recheck's answer without the VM's busy task and tree: whether
// the snapshot still exists, and its facts. It makes Recheck's whole read
// (datastores, recent tasks and the vAPI tag read included), so the facts
// are complete; callers that only ask whether it is gone pay for that too.
func (c *Client) Snapshot(ctx context.Context, vmMoRef, snapshotID string) (facts.Snapshot, bool, error) {
	r, err := c.Recheck(ctx, vmMoRef, snapshotID)
	return r.Snapshot, r.Exists, err
}

// retrieveVM reads one VM (the paths in vmPaths; none skips the VM itself)
// and, through the VM properties named in follow, the objects they refer to:
// "datastore" for their space, "recentTask" for their info. One call,
// whatever the number of datastores and tasks.
func (c *Client) retrieveVM(ctx context.Context, vmMoRef string, vmPaths []string, follow ...string) ([]types.ObjectContent, error) {
	spec := types.PropertyFilterSpec{ObjectSet: []types.ObjectSpec{{Obj: vmRef(vmMoRef), Skip: types.NewBool(len(vmPaths) == 0)}}}
	if len(vmPaths) > 0 {
		spec.PropSet = append(spec.PropSet, types.PropertySpec{Type: "VirtualMachine", PathSet: vmPaths})
	}
	for _, path := range follow {
		spec.ObjectSet[0].SelectSet = append(spec.ObjectSet[0].SelectSet, &types.TraversalSpec{Type: "VirtualMachine", Path: path})
		switch path {
		case "datastore":
			spec.PropSet = append(spec.PropSet, types.PropertySpec{Type: "Datastore", PathSet: containerProps["Datastore"]})
		case "recentTask":
			spec.PropSet = append(spec.PropSet, types.PropertySpec{Type: "Task", PathSet: []string{"info"}})
		}
	}
	res, err := methods.RetrievePropertiesEx(ctx, c.vim, &types.RetrievePropertiesEx{
		This: c.vim.ServiceContent.PropertyCollector, SpecSet: []types.PropertyFilterSpec{spec}})
	if err != nil {
		return nil, classify(err)
	}
	if res.Returnval == nil {
		return nil, nil
	}
	return res.Returnval.Objects, nil
}

// busyTask describes the first queued or running task among the objects, or
// returns "" when there is none.
func busyTask(objs []types.ObjectContent) (string, error) {
	var tasks []mo.Task
	if err := mo.LoadObjectContent(onlyType(objs, "Task"), &tasks); err != nil {
		return "", fmt.Errorf("decode: %w", err)
	}
	for _, t := range tasks {
		switch t.Info.State {
		case types.TaskInfoStateQueued, types.TaskInfoStateRunning:
			what := t.Info.DescriptionId
			if what == "" {
				what = t.Info.Name
			}
			return fmt.Sprintf("task %s (%s) %s", t.Self.Value, what, t.Info.State), nil
		}
	}
	return "", nil
}

// FindVM returns the moref of the VM with this instance UUID, and whether
// one exists. The ledger identifies VMs by instance UUID, which survives a
// re-registration that changes the moref.
func (c *Client) FindVM(ctx context.Context, instanceUUID string) (string, bool, error) {
	si := c.vim.ServiceContent.SearchIndex
	if si == nil {
		return "", false, fmt.Errorf("vcenter %q: find vm %s: no search index", c.Name, instanceUUID)
	}
	res, err := methods.FindByUuid(ctx, c.vim, &types.FindByUuid{
		This: *si, Uuid: instanceUUID, VmSearch: true, InstanceUuid: types.NewBool(true),
	})
	if err != nil {
		return "", false, fmt.Errorf("vcenter %q: find vm %s: %w", c.Name, instanceUUID, classify(err))
	}
	if res.Returnval == nil {
		return "", false, nil
	}
	return res.Returnval.Value, true, nil
}

// Busy returns "" when no task is queued or running on the VM, else a
// description of the first such task, e.g. "task task-12
// (VirtualMachine.createSnapshot) running". It follows the VM's recentTask
// in one retrieval, so tasks vCenter has already purged are skipped rather
// than failing the call.
func (c *Client) Busy(ctx context.Context, vmMoRef string) (string, error) {
	objs, err := c.retrieveVM(ctx, vmMoRef, nil, "recentTask")
	if err == nil {
		var busy string
		if busy, err = busyTask(objs); err == nil {
			return busy, nil
		}
	}
	return "", fmt.Errorf("vcenter %q: recent tasks of vm %s: %w", c.Name, vmMoRef, err)
}

// RemoveSnapshot commits one snapshot: RemoveSnapshot_Task with
// removeChildren=false (children stay) and consolidate=true. It returns as
// soon as the task exists, so its id can be recorded before the wait.
func (c *Client) RemoveSnapshot(ctx context.Context, snapshotID string) (string, error) {
	res, err := methods.RemoveSnapshot_Task(ctx, c.vim, &types.RemoveSnapshot_Task{
		This:           types.ManagedObjectReference{Type: "VirtualMachineSnapshot", Value: snapshotID},
		RemoveChildren: false,
		Consolidate:    types.NewBool(true),
	})
	if err != nil {
		return "", fmt.Errorf("vcenter %q: remove snapshot %s: %w", c.Name, snapshotID, classify(err))
	}
	return res.Returnval.Value, nil
}

// ConsolidateDisks starts ConsolidateVMDisks_Task on a VM left with
// consolidationNeeded, and returns as soon as the task exists.
func (c *Client) ConsolidateDisks(ctx context.Context, vmMoRef string) (string, error) {
	res, err := methods.ConsolidateVMDisks_Task(ctx, c.vim, &types.ConsolidateVMDisks_Task{This: vmRef(vmMoRef)})
	if err != nil {
		return "", fmt.Errorf("vcenter %q: consolidate disks of vm %s: %w", c.Name, vmMoRef, classify(err))
	}
	return res.Returnval.Value, nil
}

// Reload has vCenter read the VM's state again from its host:
// runtime.consolidationNeeded can stay stale after a removal until then. A
// refused reload is only logged (the flag read next may then be stale,
// which only delays a disk consolidation), except for a VM that no longer
// exists: ErrNotFound.
func (c *Client) Reload(ctx context.Context, vmMoRef string) error {
	_, err := methods.Reload(ctx, c.vim, &types.Reload{This: vmRef(vmMoRef)})
	if err = classify(err); errors.Is(err, ErrNotFound) {
		return fmt.Errorf("vcenter %q: reload vm %s: %w", c.Name, vmMoRef, err)
	} else if err != nil {
		c.opt.Log.Debug().Err(err).Str("vcenter", c.Name).Str("vm", vmMoRef).Msg("reload before reading consolidationNeeded")
	}
	return nil
}

// ConsolidationNeeded reloads the VM and reads runtime.consolidationNeeded.
func (c *Client) ConsolidationNeeded(ctx context.Context, vmMoRef string) (bool, error) {
	ref := vmRef(vmMoRef)
	if err := c.Reload(ctx, vmMoRef); err != nil {
		return false, err
	}
	var m mo.VirtualMachine
	if err := property.DefaultCollector(c.vim).RetrieveOne(ctx, ref, []string{"runtime.consolidationNeeded"}, &m); err != nil {
		return false, fmt.Errorf("vcenter %q: read consolidationNeeded of vm %s: %w", c.Name, vmMoRef, classify(err))
	}
	return m.Runtime.ConsolidationNeeded, nil
}

// waitRound bounds one WaitForUpdatesEx round trip below the HTTP timeout
// of a call; the wait itself has no end but ctx's.
func (c *Client) waitRound() int32 {
	round := time.Minute
	if half := c.opt.Timeout / 2; half < round {
		round = half
	}
	if round < time.Second {
		round = time.Second
	}
	return int32(round / time.Second)
}

// WaitTask waits until a task ends and returns how it ended. It uses the
// property collector (WaitForUpdatesEx) in rounds shorter than the HTTP
// timeout, so a removal that takes hours is watched for hours: the only
// limit is ctx. A task vCenter does not know (any more) returns ErrTaskGone.
// When ctx ends first, the task goes on in vCenter and ctx's error is
// returned.
func (c *Client) WaitTask(ctx context.Context, taskID string) (TaskResult, error) {
	ref := types.ManagedObjectReference{Type: "Task", Value: taskID}
	wrap := func(err error) error { return fmt.Errorf("vcenter %q: wait for task %s: %w", c.Name, taskID, err) }
	pc, err := property.DefaultCollector(c.vim).Create(ctx)
	if err != nil {
		return TaskResult{}, wrap(classify(err))
	}
	defer func() {
		// A collector left behind costs vCenter memory until the session
		// ends; destroy it even when ctx was cancelled.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = pc.Destroy(dctx)
	}()
	_, err = pc.CreateFilter(ctx, types.CreateFilter{Spec: types.PropertyFilterSpec{
		ObjectSet: []types.ObjectSpec{{Obj: ref}},
		PropSet:   []types.PropertySpec{{Type: "Task", PathSet: []string{"info"}}},
	}})
	if err != nil {
		if ctx.Err() != nil {
			return TaskResult{}, wrap(ctx.Err())
		}
		if errors.Is(classify(err), ErrNotFound) {
			return TaskResult{}, wrap(ErrTaskGone)
		}
		return TaskResult{}, wrap(classify(err))
	}
	round := c.waitRound()
	for {
		var (
			info *types.TaskInfo
			gone bool
		)
		opts := &property.WaitOptions{Options: &types.WaitOptions{MaxWaitSeconds: &round}}
		err := pc.WaitForUpdatesEx(ctx, opts, func(updates []types.ObjectUpdate) bool {
			for _, u := range updates {
				if u.Obj != ref {
					continue
				}
				if u.Kind == types.ObjectUpdateKindLeave || len(u.MissingSet) > 0 {
					gone = true
					return true
				}
				for _, ch := range u.ChangeSet {
					if ch.Name != "info" {
						continue
					}
					switch v := ch.Val.(type) {
					case types.TaskInfo:
						info = &v
					case *types.TaskInfo:
						info = v
					}
				}
			}
			return info != nil && (info.State == types.TaskInfoStateSuccess || info.State == types.TaskInfoStateError)
		})
		// The collector answers a cancelled wait with CancelWaitForUpdates'
		// result, nil on success: ctx must be asked first.
		if ctx.Err() != nil {
			return TaskResult{}, wrap(ctx.Err())
		}
		if err != nil {
			if errors.Is(classify(err), ErrNotFound) {
				return TaskResult{}, wrap(ErrTaskGone)
			}
			return TaskResult{}, wrap(classify(err))
		}
		if gone {
			return TaskResult{}, wrap(ErrTaskGone)
		}
		if info == nil {
			continue // the round ended without news: wait again
		}
		switch info.State {
		case types.TaskInfoStateSuccess:
			return TaskResult{State: TaskSuccess}, nil
		case types.TaskInfoStateError:
			r := TaskResult{State: TaskError, Fault: "unknown fault"}
			if info.Error != nil && info.Error.Fault != nil {
				r.Fault = faultText(info.Error.Fault, info.Error.LocalizedMessage)
				r.Busy = busyFault(info.Error.Fault)
			} else if info.Error != nil && info.Error.LocalizedMessage != "" {
				r.Fault = info.Error.LocalizedMessage
			}
			return r, nil
		}
	}
}
