package vsphere

import (
	"context"
	"errors"
	"fmt"
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

// ErrResync is returned by Watcher.Poll when vCenter no longer knows the
// version the watcher holds (InvalidCollectorVersion): the watcher's copy
// cannot be patched and must be replaced by a full read (Client.Watch).
var ErrResync = errors.New("vCenter lost the update version (InvalidCollectorVersion): a full read is needed")

// Changes is what one Poll learnt: VMs that entered the view, whose watched
// properties changed, or that left it, and the snapshots that were not in
// the watcher's copy before (by VM moref and snapshot moref).
type Changes struct {
	Entered, Modified, Left int
	// NewSnapshots holds "vm-42/snapshot-7" for each snapshot that appeared.
	NewSnapshots []string
}

// Watcher keeps a copy of one vCenter's inventory objects, patched from
// PropertyCollector updates, so a cycle reads only what changed. It owns a
// PropertyCollector of its own with one filter on a ContainerView, both
// kept for the session; the update version is carried between Polls. A
// Watcher is used by one goroutine at a time.
type Watcher struct {
	c       *Client
	pc      *property.Collector
	view    types.ManagedObjectReference
	version string

	vms    map[types.ManagedObjectReference]*slimVM
	others map[types.ManagedObjectReference]types.ObjectContent
	// stale VMs had a change the copy cannot apply (a keyed sub-property,
	// as vCenter may send for arrays, or one of snapshot and layoutEx
	// without the other): they are read again before use.
	stale map[types.ManagedObjectReference]bool
}

// maxObjectUpdates is the page size asked of WaitForUpdatesEx; vCenter and
// vcsim may send fewer (vcsim: 100).
const maxObjectUpdates = 1000

// Watch creates the collector, view and filter and reads the whole
// inventory through them (the updates of version ""): the one full read of
// the session.
func (c *Client) Watch(ctx context.Context) (*Watcher, error) {
	pc, err := property.DefaultCollector(c.vim).Create(ctx)
	if err != nil {
		return nil, fmt.Errorf("vcenter %q: create property collector: %w", c.Name, err)
	}
	w := &Watcher{c: c, pc: pc}
	if err := w.start(ctx); err != nil {
		// The collector and its filter die with it; the view is separate.
		w.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return w, nil
}

func (w *Watcher) start(ctx context.Context) error {
	sc := w.c.vim.ServiceContent
	cv, err := methods.CreateContainerView(ctx, w.c.vim, &types.CreateContainerView{
		This: *sc.ViewManager, Container: sc.RootFolder, Recursive: true, Type: inventoryKinds,
	})
	if err != nil {
		return fmt.Errorf("vcenter %q: create container view: %w", w.c.Name, err)
	}
	w.view = cv.Returnval
	props, extra := w.c.watchedProps(inventoryKinds)
	objects := append([]types.ObjectSpec{{
		Obj: w.view, Skip: types.NewBool(true),
		SelectSet: []types.BaseSelectionSpec{&types.TraversalSpec{Type: "ContainerView", Path: "view"}},
	}}, extra...)
	if _, err := w.pc.CreateFilter(ctx, types.CreateFilter{
		Spec: types.PropertyFilterSpec{ObjectSet: objects, PropSet: props}, PartialUpdates: false,
	}); err != nil {
		return fmt.Errorf("vcenter %q: create property filter: %w", w.c.Name, err)
	}
	w.vms = map[types.ManagedObjectReference]*slimVM{}
	w.others = map[types.ManagedObjectReference]types.ObjectContent{}
	w.stale = map[types.ManagedObjectReference]bool{}
	w.version = ""
	if _, err := w.Poll(ctx, 0); err != nil {
		return err
	}
	return nil
}

// watchedProps is the property spec of the inventory read: VMs, containers,
// datastores and the custom field names.
func (c *Client) watchedProps(kinds []string) ([]types.PropertySpec, []types.ObjectSpec) {
	props := []types.PropertySpec{{Type: "VirtualMachine", PathSet: vmProps}}
	for _, t := range kinds[1:] {
		props = append(props, types.PropertySpec{Type: t, PathSet: containerProps[t]})
	}
	var extra []types.ObjectSpec
	if cfm := c.vim.ServiceContent.CustomFieldsManager; cfm != nil {
		props = append(props, types.PropertySpec{Type: "CustomFieldsManager", PathSet: []string{"field"}})
		extra = append(extra, types.ObjectSpec{Obj: *cfm})
	}
	return props, extra
}

// Poll asks for the updates since the last Poll, waiting up to wait for the
// first (zero: check once), reads every page and patches the copy. Changes
// counts what happened; ErrResync means the copy must be read again.
func (w *Watcher) Poll(ctx context.Context, wait time.Duration) (Changes, error) {
	var ch Changes
	secs := int32(wait / time.Second)
	req := types.WaitForUpdatesEx{This: w.pc.Reference(), Version: w.version,
		Options: &types.WaitOptions{MaxWaitSeconds: &secs, MaxObjectUpdates: maxObjectUpdates}}
	for {
		req.Version = w.version
		res, err := methods.WaitForUpdatesEx(ctx, w.c.vim, &req)
		if err != nil && ctx.Err() != nil {
			// Abandoned: vCenter would hold the wait (and vcsim its
			// shutdown) until MaxWaitSeconds.
			_ = w.pc.CancelWaitForUpdates(context.WithoutCancel(ctx))
		}
		if err != nil {
			if fault.Is(err, &types.InvalidCollectorVersion{}) {
				return ch, fmt.Errorf("vcenter %q: %w", w.c.Name, ErrResync)
			}
			if fault.Is(err, &types.RequestCanceled{}) && ctx.Err() == nil {
				return ch, nil // interrupted for a cycle: the version stands
			}
			return ch, fmt.Errorf("vcenter %q: wait for updates: %w", w.c.Name, err)
		}
		set := res.Returnval
		if set == nil { // MaxWaitSeconds passed without a change
			return ch, nil
		}
		w.version = set.Version
		for _, fs := range set.FilterSet {
			for _, u := range coalesce(fs.ObjectSet) {
				w.apply(u, &ch)
			}
		}
		if set.Truncated == nil || !*set.Truncated {
			return ch, nil
		}
		// The rest of a truncated set is due now: do not wait for more.
		secs = 0
	}
}

// coalesce merges the changes an update set holds for one object one after
// the other into its first update: vCenter (and vcsim) may send a VM's new
// snapshot tree and its new layoutEx as two updates, which the copy can
// apply only together (see apply). An enter or leave is kept as it comes.
func coalesce(updates []types.ObjectUpdate) []types.ObjectUpdate {
	out := make([]types.ObjectUpdate, 0, len(updates))
	last := make(map[types.ManagedObjectReference]int, len(updates))
	for _, u := range updates {
		if i, ok := last[u.Obj]; ok && u.Kind == types.ObjectUpdateKindModify && out[i].Kind != types.ObjectUpdateKindLeave {
			out[i].ChangeSet = append(out[i].ChangeSet, u.ChangeSet...)
			continue
		}
		last[u.Obj] = len(out)
		out = append(out, u)
	}
	return out
}

// apply patches the copy with one object update.
func (w *Watcher) apply(u types.ObjectUpdate, ch *Changes) {
	if u.Obj.Type != "VirtualMachine" {
		switch u.Kind {
		case types.ObjectUpdateKindLeave:
			delete(w.others, u.Obj)
		default:
			oc := w.others[u.Obj]
			oc.Obj = u.Obj
			oc.PropSet = patchProps(oc.PropSet, u.ChangeSet)
			w.others[u.Obj] = oc
		}
		return
	}
	switch u.Kind {
	case types.ObjectUpdateKindLeave:
		if _, ok := w.vms[u.Obj]; ok {
			ch.Left++
		}
		delete(w.vms, u.Obj)
		delete(w.stale, u.Obj)
		return
	case types.ObjectUpdateKindEnter:
		ch.Entered++
	default:
		ch.Modified++
	}
	m := &mo.VirtualMachine{}
	old := w.vms[u.Obj]
	if old != nil {
		old.fat(m, &types.VirtualMachineConfigInfo{})
	} else {
		m.Self = u.Obj
	}
	if !applyChanges(m, u.ChangeSet) {
		w.stale[u.Obj] = true
	}
	s := &slimVM{}
	s.plain(m)
	// The snapshot tree and layoutEx are kept only as what they come to:
	// a VM that enters brings both (unset ones are absent), a change of
	// both is derived again, a new layoutEx alone resizes the snapshots
	// held, and a new tree alone (or a part of either) is applied by
	// reading the VM again before use (its new snapshots are known now).
	tree, layout, part := changedOf(u.ChangeSet)
	switch {
	case old == nil || u.Kind == types.ObjectUpdateKindEnter || tree && layout && !part:
		s.derive(m)
	case !tree && !layout && !part:
		s.snapshots, s.current, s.disks = old.snapshots, old.current, old.disks
	case layout && !tree && !part:
		s.snapshots, s.current = slices.Clone(old.snapshots), old.current
		s.layout(m.LayoutEx)
	default:
		s.derive(m)
		w.stale[u.Obj] = true
	}
	w.vms[u.Obj] = s
	before := map[string]bool{}
	if old != nil {
		for _, t := range old.snapshots {
			before[t.id] = true
		}
	}
	for _, t := range s.snapshots {
		if !before[t.id] {
			ch.NewSnapshots = append(ch.NewSnapshots, u.Obj.Value+"/"+t.id)
		}
	}
}

// changedOf reports whether changes replace the snapshot tree, the
// layoutEx, or only a part of either (a nested path).
func changedOf(changes []types.PropertyChange) (tree, layout, part bool) {
	for _, c := range changes {
		switch {
		case c.Name == "snapshot":
			tree = true
		case c.Name == "layoutEx":
			layout = true
		case strings.HasPrefix(c.Name, "snapshot.") || strings.HasPrefix(c.Name, "snapshot[") ||
			strings.HasPrefix(c.Name, "layoutEx.") || strings.HasPrefix(c.Name, "layoutEx["):
			part = true
		}
	}
	return tree, layout, part
}

// applyChanges sets the changed properties on m; it reports false when a
// change names a keyed element (customValue["3"]) or a path the struct does
// not know, which only a fresh read can apply.
func applyChanges(m *mo.VirtualMachine, changes []types.PropertyChange) (ok bool) {
	defer func() {
		if recover() != nil { // mo.ApplyPropertyChange panics on a path it does not know
			ok = false
		}
	}()
	for _, c := range changes {
		var f mo.Field
		if !f.FromString(c.Name) || f.Key != nil {
			return false
		}
		if c.Op == types.PropertyChangeOpRemove || c.Op == types.PropertyChangeOpIndirectRemove {
			c.Val = nil
		}
		mo.ApplyPropertyChange(m, []types.PropertyChange{c})
	}
	return true
}

// patchProps applies changes to a small object's property list.
func patchProps(props []types.DynamicProperty, changes []types.PropertyChange) []types.DynamicProperty {
	for _, c := range changes {
		out := props[:0]
		for _, p := range props {
			if p.Name != c.Name {
				out = append(out, p)
			}
		}
		props = out
		if c.Op != types.PropertyChangeOpRemove && c.Op != types.PropertyChangeOpIndirectRemove && c.Val != nil {
			props = append(props, types.DynamicProperty{Name: c.Name, Val: c.Val})
		}
	}
	return props
}

// Inventory builds the vCenter's inventory from the copy, as Collect does
// from a full read: VMs with a change the copy could not apply are read
// again first (one call), tags are read in one bulk call, creators only for
// snapshots known does not hold.
func (w *Watcher) Inventory(ctx context.Context, known Known) (*facts.Inventory, error) {
	if err := w.refresh(ctx); err != nil {
		return nil, err
	}
	b := w.c.newBuilder()
	for _, oc := range w.others {
		b.object(oc)
	}
	for _, s := range w.vms {
		b.vm(s)
	}
	return b.finish(ctx, known)
}

// refresh reads the stale VMs again.
func (w *Watcher) refresh(ctx context.Context) error {
	if len(w.stale) == 0 {
		return nil
	}
	refs := make([]types.ManagedObjectReference, 0, len(w.stale))
	for ref := range w.stale {
		refs = append(refs, ref)
	}
	var vms []mo.VirtualMachine
	if err := property.DefaultCollector(w.c.vim).Retrieve(ctx, refs, vmProps, &vms); err != nil {
		return fmt.Errorf("vcenter %q: read changed VMs again: %w", w.c.Name, err)
	}
	for i := range vms {
		w.vms[vms[i].Self] = slim(&vms[i])
	}
	clear(w.stale)
	return nil
}

// interrupt cancels a wait in flight on vCenter's side (Pool: a cycle is
// due); the waiting Poll returns what it had, or nothing.
func (w *Watcher) interrupt(ctx context.Context) {
	_ = w.pc.CancelWaitForUpdates(ctx)
}

// Close destroys the collector (and so its filter) and the view; vCenter
// would otherwise keep them until the session ends.
func (w *Watcher) Close(ctx context.Context) {
	if w.view.Value != "" {
		_, _ = methods.DestroyView(ctx, w.c.vim, &types.DestroyView{This: w.view})
	}
	_ = w.pc.Destroy(ctx)
}
