package enforce

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

// ModeEnforce is the only enforcement mode that touches vCenter.
const ModeEnforce = "enforce"

// DefaultTaskTimeout bounds the wait on one task when Settings.TaskTimeout
// is zero. Removals of large snapshots run for hours; a shorter client-side
// limit would give up on tasks vCenter is still running.
const DefaultTaskTimeout = 24 * time.Hour

// Kinds of actions, as the ledger records them.
const (
	KindRemove      = "remove"
	KindConsolidate = "consolidate-disks"
)

// Results of an Outcome. ResultRunning is never written to the ledger: the
// action stays unfinished there, with its task id, for Resume.
const (
	ResultSuccess = ledger.ResultSuccess
	ResultError   = ledger.ResultError
	ResultRefused = ledger.ResultRefused
	ResultGone    = ledger.ResultGone
	ResultRunning = "running"
)

// Guard names: the stable Reason of a refused Outcome.
const (
	GuardGone      = "gone"             // the snapshot no longer exists
	GuardRecreated = "recreated"        // a snapshot with the same id but another create time
	GuardBusy      = "busy"             // a task runs on the VM, or vCenter said it is busy
	GuardInFlight  = "in-flight"        // another consolidation of the VM is in flight
	GuardExempt    = "exempt"           // the re-read snapshot is exempt (tag, keep-until)
	GuardManaged   = "managed"          // the re-read snapshot belongs to backup software
	GuardMinNotice = "min-notice"       // the current owner was not told min_notice before
	GuardOwner     = "owner"            // the re-read VM has another owner (or two) than the plan's
	GuardWindow    = "window"           // outside the maintenance window
	GuardDatastore = "datastore"        // the datastore lacks room for the merge
	GuardMode      = "mode"             // the plan was made in dry-run mode
	GuardVCenter   = "vcenter"          // vCenter could not be asked, so no guard could be checked
	GuardNotDue    = "not-due"          // the re-read snapshot is not past deadline + grace
	GuardBackup    = "backup"           // a backup (managed) snapshot is on the re-read VM
	GuardClone     = "linked-clone"     // another VM's disk chain uses the VM's files (as collected)
	GuardDisk      = plan.GuardDiskMode // a disk of the re-read VM is non-persistent (independent or legacy)
	GuardNotNeeded = "not-needed"       // the reloaded VM no longer needs its disks consolidated
)

// surprisingModes are the disk modes whose disks a snapshot never covers
// and whose writes are discarded (or held apart for a question) at
// power-off: committing or consolidating leaves them as they are, which
// the customer who asked for a commit would not expect of their data.
// independent_persistent disks are outside snapshots too, but keep every
// write, so a commit changes nothing a customer relies on.
var surprisingModes = map[string]bool{
	"independent_nonpersistent": true, "nonpersistent": true, "undoable": true, "append": true,
}

// diskRefusal is the disk-mode guard on a re-read VM's disks: a sentence
// naming the surprising ones, or "".
func diskRefusal(disks []vsphere.DiskMode, what string) string {
	var odd []string
	for _, d := range disks {
		if surprisingModes[d.Mode] {
			odd = append(odd, d.String())
		}
	}
	if len(odd) == 0 {
		return ""
	}
	return fmt.Sprintf("the VM has %s in a non-persistent mode, whose writes are discarded at power-off: %s would leave %s as %s, which its owner may not expect; support decides",
		strings.Join(odd, ", "), what, pluralIt(len(odd)), pluralIt(len(odd)))
}

func pluralIt(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// Settings are the enforcement settings of the config.
type Settings struct {
	// Mode is "enforce" to act; anything else never touches vCenter.
	Mode string
	// MaxConcurrent bounds the tasks running at once; zero or less means 1.
	MaxConcurrent int
	// MinFreePercent of each datastore's capacity must stay free after the
	// merge (which needs about the snapshot's size).
	MinFreePercent float64
	// Window is the maintenance window; nil means any time.
	Window *plan.Window
	// TaskTimeout bounds the wait on one task; zero means DefaultTaskTimeout.
	// A task still running then is left to Resume, never abandoned.
	TaskTimeout time.Duration
	// MinNotice is how long before the task a notice naming the snapshot
	// must have reached its current owner (enforcement.min_notice).
	MinNotice time.Duration
	// Rules are the ownership rules, applied again to the re-read VM: a VM
	// retagged since the plan (tasks can queue for hours) has an owner who
	// was not told. Nil skips the check.
	Rules []policy.Rule
}

// Outcome is what happened to one decision (or one resumed action).
type Outcome struct {
	Decision plan.Decision
	// Kind is "remove" or "consolidate-disks".
	Kind string
	// Result is "success", "error", "refused", or "running" (the wait ended
	// while the task runs on in vCenter; the ledger keeps it unfinished with
	// its task id and Resume picks it up). Resume can also return
	// "abandoned": no task id was recorded and the work is not done, so
	// the task most likely never started; it is no failed attempt.
	Result string
	// Reason is the guard of a refusal (Guard* constants).
	Reason string
	// Detail is one sentence for people and support.
	Detail string
	// TaskID is the vSphere task's moref value, once vCenter gave one.
	TaskID string
	// Fault is the vSphere fault of a failed or refused task.
	Fault string
	// At is when the attempt finished (for running: when the wait ended).
	At time.Time
	// Err is set when the ledger could not record the attempt or its result
	// (or the notices telling of it could not be rendered): the cycle must
	// then fail closed. An unrecorded result stays unfinished in the ledger
	// for Resume to record and tell.
	Err error
}

// Executor runs consolidations. One Executor serves a process: it
// remembers which actions it watches. Its fields are set before first use.
type Executor struct {
	// Pool gives the vCenter sessions (shared with collection).
	Pool *vsphere.Pool
	// Ledger is opened for writing.
	Ledger *ledger.Ledger
	Log    zerolog.Logger
	// Now is the clock; nil means time.Now. Run counts from the plan's time
	// and adds what Now says has elapsed since Run began.
	Now func() time.Time
	// Tell renders the notices of a finished outcome (a commit, a failure,
	// a VM gone); FinishAction queues them in the transaction that records
	// the result, so no result is recorded untold. Rendering stays with the
	// caller; nil queues none.
	Tell func(Outcome) ([]ledger.Notice, error)

	// watching holds the ledger ids of the actions this Executor waits on
	// or has finished, so Resume can be called every cycle (even while an
	// earlier call runs) without watching a task twice or finishing an
	// action again. An action left running is released for a later Resume.
	mu       sync.Mutex
	watching map[int64]bool
	// The scheduler's state is the Executor's, not one Run's: in serve the
	// act stage runs outside the cycle, so a Run can start while an earlier
	// one still watches hours-long tasks. Across all of them at most
	// MaxConcurrent tasks run, one per VM and per datastore, and a snapshot
	// queued or running in one Run is left out of the others (claimed).
	busy    map[string]bool // scoped VMs and datastores with a task underway
	active  int
	claimed map[facts.Key]bool
	// freed is closed (and replaced) whenever an attempt ends, waking Runs
	// that wait for a VM, a datastore or a slot another Run holds.
	freed chan struct{}
}

// claim keeps the decisions whose snapshots no other Run holds and marks
// them held.
func (e *Executor) claim(due []plan.Decision) []plan.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.claimed == nil {
		e.claimed = map[facts.Key]bool{}
	}
	var out []plan.Decision
	for _, d := range due {
		if k := d.Snapshot.Key(); !e.claimed[k] {
			e.claimed[k] = true
			out = append(out, d)
		}
	}
	return out
}

// unclaim lets later Runs take a snapshot again.
func (e *Executor) unclaim(d plan.Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.claimed, d.Snapshot.Key())
}

// resources are the scheduler's names of d's VM and datastores.
func resources(d plan.Decision) []string {
	vm := d.Snapshot.VM
	out := []string{"vm:" + scoped(vm.VCenter, vm.MoRef)}
	for _, x := range vm.Datastores {
		out = append(out, "ds:"+scoped(vm.VCenter, x.MoRef))
	}
	return out
}

// take reserves a slot and d's VM and datastores when all are free. It also
// returns the channel closed at the next release, taken under the same lock
// so a Run that could not start anything never misses the release it waits for.
func (e *Executor) take(d plan.Decision, max int) (bool, <-chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.busy == nil {
		e.busy = map[string]bool{}
	}
	if e.freed == nil {
		e.freed = make(chan struct{})
	}
	if e.active >= max {
		return false, e.freed
	}
	res := resources(d)
	for _, r := range res {
		if e.busy[r] {
			return false, e.freed
		}
	}
	for _, r := range res {
		e.busy[r] = true
	}
	e.active++
	return true, e.freed
}

// put releases what take reserved and wakes the Runs waiting for it.
func (e *Executor) put(d plan.Decision) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range resources(d) {
		delete(e.busy, r)
	}
	e.active--
	if e.freed != nil {
		close(e.freed)
	}
	e.freed = make(chan struct{})
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// watch marks an action as watched; false when it already is.
func (e *Executor) watch(id int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.watching == nil {
		e.watching = map[int64]bool{}
	}
	if e.watching[id] {
		return false
	}
	e.watching[id] = true
	return true
}

// release lets a later Resume watch an action again, unless o finished it
// and the ledger recorded that.
func (e *Executor) release(id int64, o *Outcome) {
	if o.Result != ResultRunning && o.Err == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.watching, id)
}

// run is one Run or Resume: its clock and settings.
type run struct {
	e *Executor
	s Settings
	// creators are the plan's snapshot creators by scoped snapshot id, for
	// judging the other snapshots of a re-read VM.
	creators map[string]string
	// clock is the time guards and ledger stamps use. In Run it is the
	// plan's time plus the time elapsed since Run began, so a test's fixed
	// clock and a cycle judged "as of" another time agree with the plan,
	// and a run that lasts hours still sees the window close.
	clock func() time.Time
}

// scoped names a VM or datastore uniquely across vCenters.
func scoped(vcenter, id string) string { return vcenter + "/" + id }

// Run executes every due consolidate decision of the plan, oldest first,
// under the guards, and returns one Outcome per attempted decision
// (refusals included; a decision not started because ctx ended has none).
// Every attempt is written with StartAction before its task and
// FinishAction after; a refusal is written as an action finished
// "refused". In any mode but enforce, Run returns nil and touches nothing.
func (e *Executor) Run(ctx context.Context, p *plan.Plan, s Settings) []Outcome {
	if s.Mode != ModeEnforce || p == nil {
		return nil
	}
	var due []plan.Decision
	for _, d := range p.Decisions {
		if d.Action == plan.ActionConsolidate && d.Due && d.Snapshot.VM != nil {
			due = append(due, d)
		}
	}
	for _, pr := range p.Problems {
		if pr.FixDue() && pr.VM != nil {
			due = append(due, fixDecision(pr))
		}
	}
	if len(due) == 0 {
		return nil
	}
	// Oldest first; disk consolidations (no create time) lead: they are
	// the VMs already running on deltas nobody can see.
	sort.SliceStable(due, func(i, j int) bool { return due[i].Snapshot.Created.Before(due[j].Snapshot.Created) })
	if p.Mode != "" && p.Mode != ModeEnforce {
		// A plan computed as a dry-run report promised nothing would change.
		out := make([]Outcome, len(due))
		for i, d := range due {
			out[i] = Outcome{Decision: d, Kind: kindOf(d), Result: ResultRefused, Reason: GuardMode,
				Detail: fmt.Sprintf("the plan was made in %s mode", p.Mode), At: e.now()}
			e.log(out[i])
		}
		return out
	}
	if s.MaxConcurrent <= 0 {
		s.MaxConcurrent = 1
	}
	if s.TaskTimeout <= 0 {
		s.TaskTimeout = DefaultTaskTimeout
	}
	if p.Window != nil {
		// The plan's window carries the removal rate the planner expected.
		s.Window = p.Window
	}
	r := &run{e: e, s: s, clock: e.now, creators: map[string]string{}}
	for _, d := range p.Decisions {
		if d.Snapshot.VM != nil {
			r.creators[scoped(d.Snapshot.VM.VCenter, d.Snapshot.ID)] = d.Creator()
		}
	}
	if !p.At.IsZero() {
		began := e.now()
		r.clock = func() time.Time { return p.At.Add(e.now().Sub(began)) }
	}

	// Consolidations in flight from earlier runs or a previous process: the
	// planner kept their snapshots out, but another snapshot of the same VM
	// must wait for them too.
	inFlight := map[string]string{}
	running, err := e.Ledger.Running(ctx)
	if err != nil {
		e.Log.Error().Err(err).Msg("enforce: read running actions; nothing is started this cycle")
		return nil
	}
	for _, a := range running {
		inFlight[scoped(a.Key.VCenter, a.Key.VMUUID)] = fmt.Sprintf("%s of %s (task %s) started %s", a.Kind, a.Snapshot,
			orUnknown(a.TaskID), a.StartedAt.UTC().Format(time.RFC3339))
	}

	// The scheduler starts the oldest pending decision whose VM and
	// datastores are free, while fewer than MaxConcurrent tasks run in this
	// process. A decision whose VM or datastore is taken waits without
	// holding back younger ones elsewhere; one whose snapshot another Run
	// holds is that Run's.
	due = e.claim(due)
	type done struct {
		i   int
		out []Outcome
	}
	var (
		results  = make([][]Outcome, len(due))
		started  = make([]bool, len(due))
		finished = make(chan done)
		active   = 0
		// unrecorded is set once the ledger failed to record an attempt:
		// fail closed, start no more (the running ones end normally).
		unrecorded = false
	)
	defer func() {
		for i, d := range due {
			if !started[i] {
				e.unclaim(d)
			}
		}
	}()
	pending := len(due)
	for pending > 0 || active > 0 {
		var freed <-chan struct{}
		for i := 0; i < len(due) && ctx.Err() == nil && !unrecorded; i++ {
			if started[i] {
				continue
			}
			ok, ch := e.take(due[i], s.MaxConcurrent)
			freed = ch
			if !ok {
				continue
			}
			started[i] = true
			pending--
			active++
			go func(i int, d plan.Decision) {
				k := d.Snapshot.Key() // the ledger's identity of the VM, as in inFlight
				attempt := r.attempt
				if isFix(d) {
					attempt = r.fix
				}
				finished <- done{i, attempt(ctx, d, inFlight[scoped(k.VCenter, k.VMUUID)])}
			}(i, due[i])
		}
		stopping := ctx.Err() != nil || unrecorded
		if active == 0 && (stopping || pending == 0) {
			break // ctx ended or the ledger failed: the rest are left for the next cycle
		}
		var r done
		if stopping {
			r = <-finished // nothing new starts: only this Run's own tasks are awaited
		} else {
			select {
			case r = <-finished:
			case <-freed:
				continue // another Run's attempt ended: its VM, datastore or slot may be free
			case <-ctx.Done():
				continue // loop once more: nothing new starts, the running tasks are awaited
			}
		}
		active--
		e.put(due[r.i])
		e.unclaim(due[r.i])
		results[r.i] = r.out
		for _, o := range r.out {
			unrecorded = unrecorded || o.Err != nil
		}
	}
	var out []Outcome
	for _, r := range results {
		out = append(out, r...)
	}
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// attempt re-checks the guards for one decision and, when all pass, removes
// the snapshot and consolidates the VM's disks if it needs it.
func (r *run) attempt(ctx context.Context, d plan.Decision, inFlight string) []Outcome {
	e, s := r.e, r.s
	vm := d.Snapshot.VM
	refuse := func(guard, detail, fault string) []Outcome {
		return []Outcome{r.refuse(ctx, d, KindRemove, guard, detail, fault)}
	}
	now := r.clock()
	if why, _ := s.Window.Fits(now, d.Snapshot.SizeBytes); why != "" {
		return refuse(GuardWindow, why, "")
	}
	if inFlight != "" {
		return refuse(GuardInFlight, "another consolidation of the VM is in flight: "+inFlight, "")
	}
	if short := minNotice(d, s.MinNotice, now); short != "" {
		return refuse(GuardMinNotice, short, "")
	}
	c, err := e.Pool.Client(ctx, vm.VCenter)
	if err != nil {
		return refuse(GuardVCenter, "vCenter could not be reached: "+err.Error(), "")
	}
	// One retrieval answers the snapshot, datastore and busy guards.
	rr, err := c.Recheck(ctx, vm.MoRef, d.Snapshot.ID)
	fresh, busy := rr.Snapshot, rr.Busy
	switch {
	case err != nil:
		return refuse(GuardVCenter, "the snapshot could not be read again: "+err.Error(), vsphere.FaultOf(err))
	case !rr.Exists:
		return refuse(GuardGone, "the snapshot no longer exists", "")
	case !fresh.Created.Equal(d.Snapshot.Created):
		return refuse(GuardRecreated, fmt.Sprintf("snapshot %s now has create time %s, not %s: it is another snapshot",
			d.Snapshot.ID, fresh.Created.UTC().Format(time.RFC3339), d.Snapshot.Created.UTC().Format(time.RFC3339)), "")
	}
	if g, detail := judge(&fresh, d, now); g != "" {
		return refuse(g, detail, "")
	}
	if name := r.backup(rr.Tree, d, now); name != "" {
		return refuse(GuardBackup, plan.BackupRefusal(name), "")
	}
	// The plan's fact, not a re-read: which VMs use a file of this VM's
	// chains takes every VM's layoutEx, a read of the whole inventory per
	// removal; a linked clone made since the collection is the one case
	// this misses.
	if clones := vm.SharesDisksWith; len(clones) > 0 {
		return refuse(GuardClone, plan.LinkedCloneRefusal(clones), "")
	}
	if odd := diskRefusal(rr.SpecialDisks, "committing the snapshot"); odd != "" {
		return refuse(GuardDisk, odd, "")
	}
	if why := r.owner(fresh.VM, d); why != "" {
		return refuse(GuardOwner, why, "")
	}
	if busy != "" {
		return refuse(GuardBusy, "the VM is busy: "+busy, "")
	}
	if short := plan.DatastoreShort(fresh, s.MinFreePercent); short != "" {
		return refuse(GuardDatastore, short, "")
	}

	first := r.task(ctx, d, KindRemove, func(ctx context.Context) (string, error) {
		return c.RemoveSnapshot(ctx, d.Snapshot.ID)
	}, func(ctx context.Context) (bool, error) {
		_, exists, err := c.Snapshot(ctx, vm.MoRef, d.Snapshot.ID)
		return !exists, err
	})
	out := []Outcome{first}
	if first.Result != ResultSuccess {
		return out
	}
	if o, ok := r.consolidateIfNeeded(ctx, c, d); ok {
		out = append(out, o)
	}
	return out
}

// owner is the ownership guard: the ownership rules applied to the re-read
// VM must give the planned customer, and only them. It returns why not, or "".
func (r *run) owner(vm *facts.VM, d plan.Decision) string {
	if r.s.Rules == nil {
		return ""
	}
	var ids []string
	if vm != nil {
		ids, _ = policy.Owner(vm, r.s.Rules)
	}
	if len(ids) != 1 || ids[0] != d.Customer {
		return fmt.Sprintf("the VM now belongs to %q, not %q as planned: its owner must be told first", ids, d.Customer)
	}
	return ""
}

// minNotice is the min_notice guard, checked again at the moment of the
// task: the plan's history is the current owner's own (a notice to a
// previous owner or to support never counts), and its first delivered notice
// must be at least min (never less than an instant) old. It returns why the
// removal must wait, or "".
func minNotice(d plan.Decision, min time.Duration, now time.Time) string {
	if d.Reason == plan.ReasonCustomerCommit {
		// The owner's own request (plan sets WarnedAt to it) is the notice.
		min = 0
	}
	w := d.History.WarnedAt
	switch {
	case d.Customer == "" || !d.Reachable:
		return "the snapshot has no reachable owner to warn: no removal without notice"
	case w.IsZero():
		return fmt.Sprintf("no notice about it has reached its owner %q yet: no removal without notice", d.Customer)
	case !now.After(w) || now.Before(w.Add(min)):
		return fmt.Sprintf("its owner %q was first told at %s, less than min_notice (%s) ago", d.Customer,
			w.UTC().Format(time.RFC3339), min)
	}
	return ""
}

// judge evaluates the policy on the re-read snapshot. The customer's policy
// is the plan's; name, description, tags and create time are vCenter's of
// now (attempt applies the ownership rules to them too). A create time in
// the future counts from the plan's first sight, as the planner counted it.
func judge(fresh *facts.Snapshot, d plan.Decision, now time.Time) (string, string) {
	keepUnread(fresh.VM, d.Snapshot.VM)
	fresh.Creator = d.Creator() // creators are not read again
	v := policy.EvaluateSeen(fresh, *d.Policy, now, d.History.FirstSeen)
	switch {
	case v.State == policy.StateManaged:
		return GuardManaged, "the snapshot now belongs to backup software: " + v.Detail
	case v.State == policy.StateExempt:
		return GuardExempt, "the snapshot is now exempt: " + v.Detail
	case d.Reason == plan.ReasonCustomerCommit:
		// The customer asked for it: no deadline to wait for.
	case v.State != policy.StateOverdue || now.Before(v.ActAt):
		return GuardNotDue, "the snapshot is not past deadline + grace any more: " + v.Detail
	}
	return "", ""
}

// keepUnread gives the re-read VM what Recheck does not read again, from
// the collection: its folder, path, datacenter and custom attributes.
func keepUnread(fresh, planned *facts.VM) {
	if fresh != nil && planned != nil {
		fresh.Folder, fresh.Path, fresh.Datacenter = planned.Folder, planned.Path, planned.Datacenter
		fresh.CustomAttributes = planned.CustomAttributes
	}
}

// backup names a snapshot of the re-read tree that the policy judges
// managed (backup software's), "" when there is none. Creators are the
// plan's; a snapshot the plan did not see has none, which the policy takes
// as managed when its name or description looks like a backup's.
func (r *run) backup(tree []facts.Snapshot, d plan.Decision, now time.Time) string {
	for _, s := range tree {
		if s.ID == d.Snapshot.ID {
			continue
		}
		s.Creator = r.creators[scoped(d.Snapshot.VM.VCenter, s.ID)]
		if policy.Evaluate(&s, *d.Policy, now).State == policy.StateManaged {
			return s.Name
		}
	}
	return ""
}

// consolidateIfNeeded runs ConsolidateVMDisks_Task as a second recorded
// action when the VM was left with consolidationNeeded.
func (r *run) consolidateIfNeeded(ctx context.Context, c *vsphere.Client, d plan.Decision) (Outcome, bool) {
	vm := d.Snapshot.VM.MoRef
	need, err := c.ConsolidationNeeded(ctx, vm)
	if err != nil {
		if ctx.Err() != nil {
			return Outcome{}, false
		}
		// The removal is done; the flag is read again next time the VM is
		// collected, so a failed read only delays the consolidation.
		r.e.Log.Warn().Err(err).Str("vcenter", d.Snapshot.VM.VCenter).Str("vm", d.Snapshot.VM.Name).
			Msg("enforce: consolidationNeeded could not be read after the removal")
		return Outcome{}, false
	}
	if !need {
		return Outcome{}, false
	}
	return r.task(ctx, d, KindConsolidate, func(ctx context.Context) (string, error) {
		return c.ConsolidateDisks(ctx, vm)
	}, func(ctx context.Context) (bool, error) {
		need, err := c.ConsolidationNeeded(ctx, vm)
		return !need, err
	}), true
}

// action is the ledger row of an attempt on d.
func action(d plan.Decision, kind string, at time.Time) ledger.Action {
	return ledger.Action{Key: d.Snapshot.Key(), VCenter: d.Snapshot.VM.VCenter, VM: d.Snapshot.VM.Name,
		Snapshot: d.Snapshot.Name, Customer: d.Customer, Kind: kind, StartedAt: at}
}

// refuse records a refusal as an action finished "refused", with the
// notices Tell renders of it (most refusals have none: the planner
// escalates the ones that last), and returns it.
func (r *run) refuse(ctx context.Context, d plan.Decision, kind, guard, detail, fault string) Outcome {
	e, now := r.e, r.clock()
	o := Outcome{Decision: d, Kind: kind, Result: ResultRefused, Reason: guard, Detail: detail, Fault: fault, At: now}
	wctx := context.WithoutCancel(ctx) // a refusal found is recorded even while stopping
	var notices []ledger.Notice
	id, err := e.Ledger.StartAction(wctx, action(d, kind, now))
	if err == nil && e.Tell != nil {
		notices, err = e.Tell(o)
	}
	if err == nil {
		err = e.Ledger.FinishAction(wctx, id, now, ledger.ResultRefused, refusal(guard, detail, fault), notices)
	}
	if err != nil {
		o.Err = err
		e.Log.Error().Err(err).Str("guard", guard).Msg("enforce: record refusal")
	}
	e.log(o)
	return o
}

// refusal is the ledger's fault column of a refusal: the guard first, so
// `history` can be filtered by it.
func refusal(guard, detail, fault string) string {
	s := guard + ": " + detail
	if fault != "" && fault != detail {
		s += " (" + fault + ")"
	}
	return s
}

// task runs one recorded task: StartAction, start, SetTask, wait,
// FinishAction. gone tells, for a task vCenter forgot, whether its work is
// done (the snapshot is gone; the VM needs no consolidation).
func (r *run) task(ctx context.Context, d plan.Decision, kind string,
	start func(context.Context) (string, error), gone func(context.Context) (bool, error)) (o Outcome) {
	e := r.e
	o = Outcome{Decision: d, Kind: kind}
	// The ledger writes must happen even when ctx ends mid-way: the record
	// of a started task is what prevents a second one.
	wctx := context.WithoutCancel(ctx)
	id, err := e.Ledger.StartAction(wctx, action(d, kind, r.clock()))
	if err != nil {
		// Without the record a restart could not find the task: do not start it.
		o.Result, o.Detail, o.At = ResultError, "the attempt could not be recorded, so no task was started: "+err.Error(), r.clock()
		o.Err = err
		e.log(o)
		return o
	}
	e.watch(id)
	defer func() { e.release(id, &o) }()
	taskID, err := start(ctx)
	if err != nil {
		o.Fault = vsphere.FaultOf(err)
		switch {
		case errors.Is(err, vsphere.ErrBusy):
			return r.finish(wctx, id, o, ResultRefused, GuardBusy, "vCenter refused the task because the VM is busy; next cycle: "+err.Error())
		case errors.Is(err, vsphere.ErrNotFound) && kind == KindRemove:
			return r.finish(wctx, id, o, ResultRefused, GuardGone, "the snapshot no longer exists: "+err.Error())
		case ctx.Err() != nil:
			// Stopped before vCenter answered: whether the task exists is
			// unknown, so the action stays unfinished for Resume to judge.
			o.Result, o.Detail, o.At = ResultRunning, "stopped while the task was being started; Resume checks whether it ran", r.clock()
			e.log(o)
			return o
		}
		return r.finish(wctx, id, o, ResultError, "", "the task could not be started: "+err.Error())
	}
	o.TaskID = taskID
	if err := e.Ledger.SetTask(wctx, id, taskID); err != nil {
		o.Err = err
		e.Log.Error().Err(err).Str("task", taskID).Msg("enforce: record task id; a restart cannot resume this task")
	}
	return r.wait(ctx, wctx, id, o, gone)
}

// wait watches a recorded task to its end and finishes its ledger entry.
func (r *run) wait(ctx, wctx context.Context, id int64, o Outcome, gone func(context.Context) (bool, error)) Outcome {
	e, timeout := r.e, r.s.TaskTimeout
	// By identity: a resumed action's vCenter may have been renamed since.
	c, err := e.Pool.Client(ctx, o.Decision.Snapshot.Key().VCenter)
	if err != nil {
		o.Result, o.Detail, o.At = ResultRunning, "vCenter could not be reached to watch the task: "+err.Error(), r.clock()
		e.log(o)
		return o
	}
	var res vsphere.TaskResult
	if timeout > 0 {
		tctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		res, err = c.WaitTask(tctx, o.TaskID)
	} else {
		res, err = c.WaitTask(ctx, o.TaskID)
	}
	switch {
	case errors.Is(err, vsphere.ErrTaskGone):
		doneNow, gerr := gone(wctx)
		switch {
		case gerr != nil:
			o.Result, o.Detail, o.At = ResultRunning, "vCenter forgot the task and its result could not be checked: "+gerr.Error(), r.clock()
			e.log(o)
			return o
		case doneNow:
			return r.finish(wctx, id, o, ResultSuccess, "", "vCenter no longer knows the task, and its work is done")
		}
		o.Fault = "task lost"
		return r.finish(wctx, id, o, ResultError, "", "vCenter no longer knows the task, and its work is not done")
	case err != nil:
		// Stopped, the task_timeout passed, or the session broke: the task
		// goes on in vCenter, so the action stays unfinished with its task
		// id and no second task is ever started for it.
		o.Result, o.At = ResultRunning, r.clock()
		o.Detail = "the task is still running in vCenter; its end is recorded by Resume: " + err.Error()
		e.log(o)
		return o
	case res.State == vsphere.TaskSuccess:
		return r.finish(wctx, id, o, ResultSuccess, "", "the task succeeded")
	case res.Busy:
		o.Fault = res.Fault
		return r.finish(wctx, id, o, ResultRefused, GuardBusy, "the VM was busy; next cycle: "+res.Fault)
	}
	o.Fault = res.Fault
	return r.finish(wctx, id, o, ResultError, "", "the task failed: "+res.Fault)
}

// finish writes the result of action id together with the notices that
// tell of it, and logs the outcome. When the notices cannot be rendered the
// result is still recorded (it is a fact), and o.Err fails the cycle.
func (r *run) finish(wctx context.Context, id int64, o Outcome, result, guard, detail string) Outcome {
	e := r.e
	o.Result, o.Reason, o.Detail, o.At = result, guard, detail, r.clock()
	fault := o.Fault
	if result == ResultRefused {
		fault = refusal(guard, detail, o.Fault)
	}
	var notices []ledger.Notice
	if e.Tell != nil {
		var err error
		if notices, err = e.Tell(o); err != nil {
			o.Err = errors.Join(o.Err, fmt.Errorf("notices of action %d: %w", id, err))
			e.Log.Error().Err(err).Int64("action", id).Msg("enforce: the notices of the result could not be rendered")
		}
	}
	if err := e.Ledger.FinishAction(wctx, id, o.At, result, fault, notices); err != nil {
		o.Err = errors.Join(o.Err, err)
		e.Log.Error().Err(err).Int64("action", id).Msg("enforce: record the end of the action; Resume records it next time")
	}
	e.log(o)
	return o
}

// log writes one line per outcome.
func (e *Executor) log(o Outcome) {
	s := o.Decision.Snapshot
	ev := e.Log.Info()
	switch o.Result {
	case ResultError:
		ev = e.Log.Error()
	case ResultRefused, ResultRunning:
		ev = e.Log.Warn()
	}
	if s.VM != nil {
		ev = ev.Str("vcenter", s.VM.VCenter).Str("vm", s.VM.Name)
	}
	ev = ev.Str("snapshot", s.Name).Str("snapshot_id", s.ID).Str("customer", o.Decision.Customer).
		Str("kind", o.Kind).Str("result", o.Result)
	if o.Reason != "" {
		ev = ev.Str("reason", o.Reason)
	}
	if o.TaskID != "" {
		ev = ev.Str("task", o.TaskID)
	}
	if o.Fault != "" {
		ev = ev.Str("fault", o.Fault)
	}
	ev.Msg(o.Detail)
}
