package simfleet

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// vcsim extensions for PropertyCollector waits (WaitForUpdatesEx).
//
// vcsim re-reads a collector's whole filter for every object update, and
// one snapshot creation makes about seven (task, task manager, snapshot,
// VM): with a filter on a ContainerView of 1,000 VMs, 50 new snapshots take
// close to a minute to be seen. vCenter sends only the changed properties.
// FastWait answers later waits (those with a version) the way vCenter
// costs: with a fresh read of only the objects that changed, keeping
// vcsim's own first full read (version "" and its pages). Benchmarks use it;
// correctness tests run on vcsim's own collector.

// watchExt is the per-Sim state of the wait extensions.
type watchExt struct {
	mu        sync.Mutex
	fast      bool
	fail      []types.BaseMethodFault // faults for the next waits with a version
	listeners map[types.ManagedObjectReference]*listener
}

// FastWait makes later WaitForUpdatesEx calls answer with fresh reads of
// only the changed objects (see above). Install it before the code under
// test creates its collector.
func (s *Sim) FastWait() {
	x := s.wx
	x.mu.Lock()
	x.fast = true
	x.mu.Unlock()
}

// FailWait makes the next WaitForUpdatesEx call that carries a version
// fail with fault, e.g. InvalidCollectorVersion, which vcsim never sends.
func (s *Sim) FailWait(fault types.BaseMethodFault) {
	x := s.wx
	x.mu.Lock()
	x.fail = append(x.fail, fault)
	x.mu.Unlock()
}

func (x *watchExt) handle(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	if ctx.Session == nil {
		return nil, nil
	}
	switch m.Name {
	case "CancelWaitForUpdates", "DestroyPropertyCollector":
		x.mu.Lock()
		l := x.listeners[m.This]
		if l != nil && m.Name == "DestroyPropertyCollector" {
			delete(x.listeners, m.This)
			ctx.Map.RemoveHandler(l)
		}
		x.mu.Unlock()
		if l != nil {
			l.cancelWait()
		}
		return nil, nil // vcsim does the rest
	case "WaitForUpdatesEx":
	default:
		return nil, nil
	}
	req, ok := m.Body.(*types.WaitForUpdatesEx)
	pc, isPC := ctx.Session.Get(m.This).(*simulator.PropertyCollector)
	if !ok || !isPC {
		return nil, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	l := x.listeners[m.This]
	if req.Version == "" {
		if x.fast && l == nil {
			// Listen from vcsim's full read on, so no change falls
			// between it and the first fast wait.
			l = &listener{ref: types.ManagedObjectReference{Type: "SnapwardenWaitListener", Value: m.This.Value}}
			x.listeners[m.This] = l
			ctx.Map.AddHandler(l)
		}
		return nil, nil // vcsim's own full read
	}
	if l == nil && len(x.fail) == 0 {
		return nil, nil // neither FastWait nor FailWait: vcsim's own wait
	}
	if pending(pc) {
		return nil, nil // the pages of vcsim's full read
	}
	if len(x.fail) > 0 {
		f := x.fail[0]
		x.fail = x.fail[1:]
		return nil, f
	}
	if l == nil {
		return nil, nil
	}
	// The listener has it all now; vcsim's own list would only grow.
	ctx.Map.RemoveHandler(pc)
	w := &fastWait{pc: pc, l: l}
	ctx.Session.Registry.Put(w) // answers this one call; it puts pc back first
	return w, nil
}

// pending reports whether vcsim still holds pages of an update set for the
// collector (its unexported pending field), which only vcsim can send.
func pending(pc *simulator.PropertyCollector) bool {
	f := reflect.ValueOf(pc).Elem().FieldByName("pending")
	return f.IsValid() && !f.IsNil()
}

// listener collects the object changes the registry announces.
type listener struct {
	ref types.ManagedObjectReference

	mu      sync.Mutex
	kinds   map[types.ManagedObjectReference]types.ObjectUpdateKind
	order   []types.ManagedObjectReference
	cancel  context.CancelFunc
	version int
}

func (l *listener) Reference() types.ManagedObjectReference { return l.ref }

func (l *listener) note(ref types.ManagedObjectReference, kind types.ObjectUpdateKind) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kinds == nil {
		l.kinds = map[types.ManagedObjectReference]types.ObjectUpdateKind{}
	}
	prev, seen := l.kinds[ref]
	if !seen {
		l.order = append(l.order, ref)
	}
	switch {
	case !seen, kind == types.ObjectUpdateKindLeave:
		l.kinds[ref] = kind
	case prev == types.ObjectUpdateKindLeave && kind == types.ObjectUpdateKindEnter:
		l.kinds[ref] = types.ObjectUpdateKindModify // gone and back: read it again
	}
}

func (l *listener) PutObject(_ *simulator.Context, o mo.Reference) {
	l.note(o.Reference(), types.ObjectUpdateKindEnter)
}

func (l *listener) UpdateObject(_ *simulator.Context, o mo.Reference, _ []types.PropertyChange) {
	l.note(o.Reference(), types.ObjectUpdateKindModify)
}

func (l *listener) RemoveObject(_ *simulator.Context, ref types.ManagedObjectReference) {
	l.note(ref, types.ObjectUpdateKindLeave)
}

func (l *listener) take() ([]types.ManagedObjectReference, map[types.ManagedObjectReference]types.ObjectUpdateKind) {
	l.mu.Lock()
	defer l.mu.Unlock()
	order, kinds := l.order, l.kinds
	l.order, l.kinds = nil, nil
	return order, kinds
}

func (l *listener) cancelWait() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
	}
}

// fastWait is the one-call stand-in for a collector's WaitForUpdatesEx.
type fastWait struct {
	pc *simulator.PropertyCollector
	l  *listener
}

func (w *fastWait) Reference() types.ManagedObjectReference { return w.pc.Reference() }

// Lock and Unlock opt out of vcsim's per-object lock, as its collector
// does: a long wait must not lock out CancelWaitForUpdates.
func (*fastWait) Lock()   {}
func (*fastWait) Unlock() {}

func (w *fastWait) WaitForUpdatesEx(ctx *simulator.Context, r *types.WaitForUpdatesEx) soap.HasFault {
	ctx.Session.Registry.Put(w.pc)
	wait, cancel := context.WithCancel(context.Background())
	once := false
	if o := r.Options; o != nil && o.MaxWaitSeconds != nil {
		once = *o.MaxWaitSeconds == 0
		if *o.MaxWaitSeconds > 0 {
			wait, cancel = context.WithTimeout(context.Background(), time.Duration(*o.MaxWaitSeconds)*time.Second)
		}
	}
	w.l.mu.Lock()
	w.l.cancel = cancel
	w.l.mu.Unlock()
	defer cancel()
	body := &methods.WaitForUpdatesExBody{Res: &types.WaitForUpdatesExResponse{}}
	tick := time.NewTicker(20 * time.Millisecond) // let a change's updates gather, as vcsim does
	defer tick.Stop()
	for {
		order, kinds := w.l.take()
		if set := w.updates(ctx, order, kinds); set != nil {
			body.Res.Returnval = set
			return body
		}
		if once {
			return body
		}
		select {
		case <-wait.Done():
			if wait.Err() == context.Canceled {
				body.Res = nil
				body.Fault_ = simulator.Fault("", new(types.RequestCanceled))
			}
			return body
		case <-tick.C:
		}
	}
}

// updates reads the changed objects the collector's filters watch, fresh,
// as whole-object changes: every watched property assigned, the unset ones
// removed. nil when none of them changed.
func (w *fastWait) updates(ctx *simulator.Context, order []types.ManagedObjectReference,
	kinds map[types.ManagedObjectReference]types.ObjectUpdateKind) *types.UpdateSet {
	if len(order) == 0 {
		return nil
	}
	set := &types.UpdateSet{}
	for _, fref := range w.pc.Filter {
		f, ok := ctx.Session.Get(fref).(*simulator.PropertyFilter)
		if !ok {
			continue
		}
		paths := map[string][]string{}
		for _, ps := range f.Spec.PropSet {
			paths[ps.Type] = ps.PathSet
		}
		fu := types.PropertyFilterUpdate{Filter: fref}
		var read []types.ObjectSpec
		for _, ref := range order {
			if _, watched := paths[ref.Type]; !watched {
				continue
			}
			if kinds[ref] == types.ObjectUpdateKindLeave {
				fu.ObjectSet = append(fu.ObjectSet, types.ObjectUpdate{Obj: ref, Kind: types.ObjectUpdateKindLeave})
				continue
			}
			read = append(read, types.ObjectSpec{Obj: ref})
		}
		if len(read) > 0 {
			res := w.pc.RetrievePropertiesEx(ctx, &types.RetrievePropertiesEx{
				SpecSet: []types.PropertyFilterSpec{{ObjectSet: read, PropSet: f.Spec.PropSet}},
				Options: types.RetrieveOptions{MaxObjects: int32(len(read))},
			}).(*methods.RetrievePropertiesExBody)
			if res.Res != nil && res.Res.Returnval != nil {
				for _, oc := range res.Res.Returnval.Objects {
					fu.ObjectSet = append(fu.ObjectSet, objectUpdate(oc, kinds[oc.Obj], paths[oc.Obj.Type]))
				}
			}
		}
		if len(fu.ObjectSet) > 0 {
			set.FilterSet = append(set.FilterSet, fu)
		}
	}
	if len(set.FilterSet) == 0 {
		return nil
	}
	w.l.mu.Lock()
	w.l.version++
	set.Version = fmt.Sprintf("fast-%d", w.l.version)
	w.l.mu.Unlock()
	return set
}

func objectUpdate(oc types.ObjectContent, kind types.ObjectUpdateKind, paths []string) types.ObjectUpdate {
	u := types.ObjectUpdate{Obj: oc.Obj, Kind: kind}
	got := map[string]bool{}
	for _, p := range oc.PropSet {
		got[p.Name] = true
		u.ChangeSet = append(u.ChangeSet, types.PropertyChange{Name: p.Name, Op: types.PropertyChangeOpAssign, Val: p.Val})
	}
	for _, p := range paths {
		if !got[p] {
			u.ChangeSet = append(u.ChangeSet, types.PropertyChange{Name: p, Op: types.PropertyChangeOpRemove})
		}
	}
	return u
}
