package enforce

import (
	"context"
	"sync"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// Resume watches the tasks a previous process (or an earlier wait that was
// cut short) left running, as the ledger's unfinished actions, and finishes
// their ledger entries, with the notices Tell renders, as Run does. For a
// task vCenter no longer knows it re-reads the snapshot: gone means success,
// still there means error "task lost". A VM that vanished is no commit: the
// action is recorded "gone" (support is told, not the customer). An
// action that never got its task id is judged the same way, except that a
// snapshot still there is recorded "abandoned" (the task most likely never
// started; the planner tries again). A removal that ends in success is
// followed by the disk consolidation the VM may need, as in Run.
//
// Resume starts no removal and waits until every watched task ends or ctx
// does. Actions this Executor already watches are skipped, so Resume may be
// called at the start of every cycle. It returns one Outcome per action it
// watched.
func (e *Executor) Resume(ctx context.Context) []Outcome {
	running, err := e.Ledger.Running(ctx)
	if err != nil {
		e.Log.Error().Err(err).Msg("enforce: read running actions to resume")
		return nil
	}
	r := &run{e: e, clock: e.now}
	results := make([][]Outcome, len(running))
	var wg sync.WaitGroup
	for i, a := range running {
		if !e.watch(a.ID) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := r.resume(ctx, a)
			results[i] = out
			if len(out) > 0 {
				e.release(a.ID, &out[0])
			}
		}()
	}
	wg.Wait()
	var out []Outcome
	for _, o := range results {
		out = append(out, o...)
	}
	return out
}

// resume finishes one unfinished action.
func (r *run) resume(ctx context.Context, a ledger.Action) []Outcome {
	e := r.e
	d := decisionOf(a)
	o := Outcome{Decision: d, Kind: a.Kind, TaskID: a.TaskID}
	wctx := context.WithoutCancel(ctx)
	stillRunning := func(detail string) []Outcome {
		o.Result, o.Detail, o.At = ResultRunning, detail, r.clock()
		e.log(o)
		return []Outcome{o}
	}
	c, err := e.Pool.Client(ctx, a.Key.VCenter) // by identity: the config name may have changed
	if err != nil {
		return stillRunning("vCenter could not be reached to resume the task: " + err.Error())
	}
	moref, found, err := c.FindVM(ctx, a.Key.VMUUID)
	if err != nil {
		return stillRunning("the VM could not be looked up: " + err.Error())
	}
	if !found {
		// Its snapshot went with it, but nobody can tell whether it was
		// committed first: telling the customer "committed" would be a guess.
		what := "the snapshot was committed"
		if o.IsFix() {
			what = "its disks were consolidated"
		}
		return []Outcome{r.finish(wctx, a.ID, o, ResultGone, "", "the VM no longer exists in vCenter; whether "+what+" before it went is unknown")}
	}
	d.Snapshot.VM.MoRef = moref
	o.Decision = d
	// gone tells whether the action's work is done, for a task that vCenter
	// forgot or whose id was never recorded.
	gone := func(ctx context.Context) (bool, error) {
		if a.Kind == KindConsolidate {
			need, err := c.ConsolidationNeeded(ctx, moref)
			return !need, err
		}
		snap, exists, err := c.Snapshot(ctx, moref, a.Key.Snapshot)
		if err == nil && exists && !snap.Created.Equal(a.Key.Created) {
			exists = false // another snapshot under the same id: ours is gone
		}
		return !exists, err
	}

	var out []Outcome
	if a.TaskID == "" {
		// The process stopped between StartAction and SetTask: the task
		// may have been started or not.
		if busy, err := c.Busy(ctx, moref); err != nil {
			return stillRunning("the VM's tasks could not be read: " + err.Error())
		} else if busy != "" {
			return stillRunning("no task id was recorded and the VM is busy (" + busy + "); judged again next time")
		}
		done, err := gone(ctx)
		if err != nil {
			return stillRunning("the snapshot could not be read again: " + err.Error())
		}
		if done {
			out = append(out, r.finish(wctx, a.ID, o, ResultSuccess, "", "no task id was recorded, but the work is done"))
		} else {
			o.Fault = "task never started"
			o = r.finish(wctx, a.ID, o, ledger.ResultAbandoned, "", "no task id was recorded and the work is not done: the task never started")
			out = append(out, o)
		}
	} else {
		out = append(out, r.wait(ctx, wctx, a.ID, o, gone))
	}
	if last := out[len(out)-1]; a.Kind == KindRemove && last.Result == ResultSuccess {
		if co, ok := r.consolidateIfNeeded(ctx, c, d); ok {
			out = append(out, co)
		}
	}
	return out
}

// decisionOf rebuilds what the ledger knows of an action's snapshot as a
// decision, so a resumed outcome reads like one from Run (Key() works; the
// plan's verdict and policy are not known).
func decisionOf(a ledger.Action) plan.Decision {
	vc := a.VCenter
	if vc == "" {
		vc = a.Key.VCenter
	}
	vm := &facts.VM{VCenter: vc, VCenterID: a.Key.VCenter, Name: a.VM, InstanceUUID: a.Key.VMUUID}
	return plan.Decision{
		Item: plan.Item{
			Snapshot: facts.Snapshot{VM: vm, ID: a.Key.Snapshot, Name: a.Snapshot, Created: a.Key.Created},
			Customer: a.Customer,
			Policy:   &policy.Policy{}, // not known here; readers dereference it
		},
		History: plan.History{InFlight: true, TaskID: a.TaskID},
		Action:  plan.ActionConsolidate,
	}
}
