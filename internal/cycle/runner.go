package cycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/enforce"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/notify"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/selfservice"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

// resumeWait is how long a cycle watches tasks an earlier process left
// running before it gets on with its own work.
const resumeWait = 30 * time.Second

// Options configure a Runner.
type Options struct {
	Log     zerolog.Logger
	VSphere vsphere.Options
	// Poster delivers webhooks; nil means a default one.
	Poster *notify.Poster
	// Now is the self-service pages' clock; nil means time.Now.
	Now func() time.Time
	// Detach runs the act stage outside the cycle (serve): removals take
	// hours, and collection and notices must go on at every schedule. Their
	// results are recorded and told by the executor as they end; the next
	// cycle's Result counts them. Without it (run) a cycle waits for its
	// removals, and for at most resumeWait on the tasks a stopped process left.
	Detach bool
}

// Runner executes cycles for `run` and `serve`. It owns the vCenter
// sessions, the mailer and the ledger (opened for writing: one process at a
// time).
type Runner struct {
	log    zerolog.Logger
	pool   *vsphere.Pool
	ledger *ledger.Ledger
	poster *notify.Poster
	exec   *enforce.Executor
	detach bool

	// deliverMu keeps one delivery at a time: the cycle's and the detached
	// act stage's read the same outbox.
	deliverMu sync.Mutex
	// headsUpMu makes a heads-up's check in the ledger and its queueing one
	// step, between the cycle and the pass between cycles.
	headsUpMu sync.Mutex
	// acting counts the detached act stages still running; Close waits.
	acting sync.WaitGroup
	// carried is what detached act stages did since the last cycle, folded
	// into the next cycle's Result (counts, outcomes, a ledger failure).
	carriedMu  sync.Mutex
	carried    *Result
	carriedErr error

	mu       sync.Mutex // guards the config-derived fields against Reload
	cfg      *config.Config
	planner  *Planner
	renderer *notify.Renderer
	mailer   *notify.Mailer
	public   *selfservice.Handler // nil while self-service links are off

	// limiter outlives reloads, so a reload does not reset the rate limit.
	limiter *selfservice.Limiter
	now     func() time.Time // the public pages' clock
	serving bool             // self-service was on at start, so serve listens for it
}

// New opens the ledger for writing and prepares the sessions and mailer.
func New(ctx context.Context, cfg *config.Config, opt Options) (*Runner, error) {
	led, err := ledger.Open(ctx, cfg.State)
	if err != nil {
		return nil, err
	}
	r := &Runner{log: opt.Log, ledger: led, poster: opt.Poster, detach: opt.Detach, limiter: selfservice.NewLimiter(1, 20), now: opt.Now}
	if r.poster == nil {
		r.poster = &notify.Poster{}
	}
	if err := r.Reload(cfg); err != nil {
		led.Close()
		return nil, err
	}
	vopt := opt.VSphere
	vopt.Log = opt.Log
	vopt.Parallel, vopt.CollectTimeout = cfg.Collect.Parallel, cfg.Collect.Timeout
	vopt.ScanEvery = cfg.Problems.ScanEvery
	r.pool = vsphere.NewPool(cfg.VCenters, vopt)
	r.exec = &enforce.Executor{Pool: r.pool, Ledger: led, Log: opt.Log, Tell: r.tell}
	return r, nil
}

// Reload swaps in a new config. Everything is prepared before anything is
// swapped, so a config that cannot be used leaves the old one running.
func (r *Runner) Reload(cfg *config.Config) error {
	var public *selfservice.Handler
	planner, err := NewPlanner(cfg)
	if err != nil {
		return err
	}
	planner.Log = r.log
	renderer, err := notify.NewRenderer(cfg.Templates)
	if err != nil {
		return fmt.Errorf("%s: templates: %w", cfg.File, err)
	}
	mailer, err := notify.NewMailer(cfg.SMTP)
	if err != nil {
		return fmt.Errorf("%s: smtp: %w", cfg.File, err)
	}
	if renderer.Links, public, err = r.selfService(cfg); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg != nil && r.cfg.State != cfg.State {
		r.log.Warn().Str("state", ledger.Redact(cfg.State)).Msg("state changed: the ledger moves at the next restart")
	}
	if r.cfg != nil && r.cfg.Collect != cfg.Collect {
		r.log.Warn().Msg("collect changed: takes effect at the next restart")
	}
	if r.cfg != nil && !r.serving && public != nil {
		// Links to a listener that is not there would fail every customer.
		r.log.Warn().Msg("self_service.public_url set by a reload: links start at the next restart, with the public listener")
		renderer.Links, public = nil, nil
	}
	if r.cfg != nil && r.cfg.SelfService.Listen != cfg.SelfService.Listen {
		r.log.Warn().Str("listen", cfg.SelfService.Listen).Msg("self_service.listen changed: takes effect at the next restart")
	}
	r.cfg, r.planner, r.renderer, r.mailer, r.public = cfg, planner, renderer, mailer, public
	if r.pool != nil {
		r.pool.SetTargets(context.Background(), cfg.VCenters)
	}
	return nil
}

// Close logs out of every vCenter and closes the ledger.
func (r *Runner) Close(ctx context.Context) error {
	// Detached act stages end soon after their context (the tasks go on in
	// vCenter and are resumed at the next start); their last ledger writes
	// must land before the ledger closes.
	waited := make(chan struct{})
	go func() { r.acting.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		r.log.Warn().Msg("closing while removals are still being watched: the next start resumes them")
	}
	perr := r.pool.Close(ctx)
	lerr := r.ledger.Close()
	if perr != nil {
		return perr
	}
	return lerr
}

// Ledger is the runner's ledger, for the console of `serve`: it reads the
// trail and records acknowledgements on the same (single) writer.
func (r *Runner) Ledger() *ledger.Ledger { return r.ledger }

// settings returns the config-derived parts for one cycle, so a reload
// during a cycle does not change it halfway.
func (r *Runner) settings() (*config.Config, *Planner, *notify.Renderer, *notify.Mailer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg, r.planner, r.renderer, r.mailer
}

// Cycle runs one cycle: collect, evaluate, plan, queue notices and record
// (one transaction), deliver the outbox, then act (enforce mode only). The
// result of each action is recorded together with the notices that tell of
// it (see tell), which are then delivered. A delivery failure leaves the
// notice owed to that recipient for the next cycle. Fail closed: when a
// ledger write fails, nothing more is sent or started in this cycle and
// Cycle returns the error.
func (r *Runner) Cycle(ctx context.Context, now time.Time) (*Result, error) {
	cfg, planner, renderer, mailer := r.settings()
	res := newResult(now)
	began := time.Now() // now may be a test's clock; the duration is real
	enforcing := cfg.Enforcement.Mode == enforce.ModeEnforce

	// Tasks a stopped process left running are watched to their end first,
	// so the plan sees them finished (or still in flight) and never starts
	// a second removal of the same snapshot. (Run judges its guards on the
	// plan's time plus the time elapsed, so the cycle's clock reaches it
	// through the plan.)
	carriedErr := r.takeCarried(res)
	if enforcing && r.detach {
		// Watched outside the cycle, to their end: Resume skips what this
		// process already watches, so every cycle may call it.
		r.act(ctx, cfg, mailer, now, func(ctx context.Context) []enforce.Outcome { return r.exec.Resume(ctx) })
	} else if enforcing {
		// Briefly: a task still running (hours, perhaps) stays in flight in
		// the ledger, which keeps the planner from starting another, and is
		// looked at again next cycle; it must not hold back this cycle's notices.
		rctx, cancel := context.WithTimeout(ctx, resumeWait)
		outcomes := r.exec.Resume(rctx)
		cancel()
		if err := res.acted(outcomes); err != nil {
			return res, err
		}
	}

	inv, err := Collect(ctx, r.pool, r.ledger)
	if err != nil {
		return nil, err
	}
	p, err := planner.Plan(ctx, inv, r.ledger, now)
	if err != nil {
		return nil, err
	}
	res.Plan = p

	acks, err := r.ledger.Acks(ctx, now)
	if err != nil {
		return res, err
	}
	bounces, err := r.ledger.Unreported(ctx)
	if err != nil {
		return res, err
	}
	notices, err := Notices(cfg, renderer, p, acks, bounces, now)
	if err != nil {
		return res, err
	}
	unlock := func() {}
	if headsUpAnywhere(cfg) {
		// Heads-ups the watcher's pass did not queue (the process stopped
		// first, or was down when the snapshot appeared) are queued with
		// the cycle's record, so none is owed only in memory. The pass
		// waits meanwhile: both check the ledger before they queue.
		r.headsUpMu.Lock()
		unlock = sync.OnceFunc(r.headsUpMu.Unlock)
		defer unlock()
		since, err := r.ledger.LastCycle(ctx)
		if err != nil {
			return res, err
		}
		hu, err := r.headsUps(ctx, cfg, renderer, MissedHeadsUps(p, since), now)
		if err != nil {
			return res, err
		}
		notices = append(notices, hu...)
	}
	for _, n := range notices {
		res.Queued[n.Kind]++
	}
	rec := ledger.Record{Started: now, Finished: now, Mode: cfg.Enforcement.Mode, Notices: notices,
		Snapshots: seen(p), Answered: keyVCenters(answered(cfg, p), p.VCenterIDs), VCenterIDs: p.VCenterIDs,
		Problems: p.Problems, ProblemVCenters: answered(cfg, p), Scans: inv.Scanned}
	for _, e := range p.Errors {
		rec.Errors = append(rec.Errors, e.VCenter+": "+e.Error)
	}
	rec.Summary = res.Summary()
	if _, err := r.ledger.Record(ctx, rec); err != nil {
		return res, err
	}
	unlock()
	if err := r.deliver(ctx, cfg, mailer, res, now); err != nil {
		return res, err
	}

	switch {
	case enforcing && r.detach:
		set := EnforceSettings(cfg, planner)
		r.act(ctx, cfg, mailer, now, func(ctx context.Context) []enforce.Outcome { return r.exec.Run(ctx, p, set) })
	case enforcing:
		if err := res.acted(r.exec.Run(ctx, p, EnforceSettings(cfg, planner))); err != nil {
			return res, err
		}
		if len(res.Outcomes) > 0 {
			if err := r.deliver(ctx, cfg, mailer, res, now); err != nil {
				return res, err
			}
		}
	}
	if res.Pending, err = r.ledger.OutboxPending(ctx); err != nil {
		return res, err
	}
	res.Duration = time.Since(began)
	if carriedErr != nil {
		return res, fmt.Errorf("acting since the last cycle: %w", carriedErr)
	}
	return res, nil
}

// act runs one detached act stage (Resume, or Run on a plan) in the
// background and delivers what its results queued as soon as it ends. The
// ledger times of that delivery follow the cycle's clock plus the time
// elapsed, as the executor's own stamps do.
func (r *Runner) act(ctx context.Context, cfg *config.Config, mailer *notify.Mailer, now time.Time, stage func(context.Context) []enforce.Outcome) {
	began := time.Now()
	r.acting.Add(1)
	go func() {
		defer r.acting.Done()
		outcomes := stage(ctx)
		acted := newResult(now)
		err := acted.acted(outcomes)
		// The results are counted before their notices go out, so the cycle
		// that follows a delivered commit notice has the commit too.
		r.carry(acted, err)
		if err == nil && len(outcomes) > 0 {
			sent := newResult(now)
			err = r.deliver(ctx, cfg, mailer, sent, now.Add(time.Since(began)))
			r.carry(sent, err)
		}
		if err != nil {
			// Fail closed: the executor started nothing more after the
			// failed write; the next cycle fails with it.
			r.log.Error().Err(err).Msg("act stage: the ledger could not record a result or a delivery")
		}
	}()
}

// carry keeps a detached act stage's result for the next cycle.
func (r *Runner) carry(res *Result, err error) {
	r.carriedMu.Lock()
	defer r.carriedMu.Unlock()
	if r.carried == nil {
		r.carried = newResult(res.Started)
	}
	r.carried.merge(res)
	r.carriedErr = errors.Join(r.carriedErr, err)
}

// takeCarried folds what detached act stages did since the last cycle into
// res and returns their ledger failure, if any.
func (r *Runner) takeCarried(res *Result) error {
	r.carriedMu.Lock()
	defer r.carriedMu.Unlock()
	if r.carried != nil {
		res.merge(r.carried)
	}
	err := r.carriedErr
	r.carried, r.carriedErr = nil, nil
	return err
}

// tell renders the notices of one action's result for the executor, which
// queues them with the result in one ledger write. It reads the config of
// the moment, like the cycle that runs the action.
func (r *Runner) tell(o enforce.Outcome) ([]ledger.Notice, error) {
	cfg, _, renderer, _ := r.settings()
	return ActionNotices(cfg, renderer, []enforce.Outcome{o}, o.At)
}

// seen lists every collected snapshot for the ledger.
func seen(p *plan.Plan) []ledger.Seen {
	out := make([]ledger.Seen, len(p.Decisions))
	for i, d := range p.Decisions {
		s := d.Snapshot
		out[i] = ledger.Seen{Key: s.Key(), VCenter: s.VM.VCenter, VM: s.VM.Name, VMMoRef: s.VM.MoRef,
			Snapshot: s.Name, Customer: d.Customer, Creator: s.Creator, SizeBytes: s.SizeBytes}
	}
	return out
}

// answered lists the vCenters that were read: only their vanished snapshots
// count as resolved (a vCenter that failed says nothing about its snapshots).
func answered(cfg *config.Config, p *plan.Plan) []string {
	failed := map[string]bool{}
	for _, e := range p.Errors {
		failed[e.VCenter] = true
	}
	var out []string
	for _, vc := range cfg.VCenters {
		if !failed[vc.Name] {
			out = append(out, vc.Name)
		}
	}
	return out
}

// deliver sends every pending notice of the outbox, this cycle's and any an
// earlier cycle could not deliver, with the bytes and Message-ID it stored,
// to each recipient still owed: one SMTP transaction per recipient, so a
// rejected contact does not stop the others. Each recipient is marked
// sending before SMTP starts and settled after; the first ledger write that
// fails stops delivery and is returned, so nothing is sent that the ledger
// does not know of (a recipient left sending is retried next time).
//
// Delivery times are the cycle's clock, like every other time the ledger
// keeps, so a test clock and the planner agree on what happened first.
func (r *Runner) deliver(ctx context.Context, cfg *config.Config, mailer *notify.Mailer, res *Result, now time.Time) error {
	r.deliverMu.Lock()
	defer r.deliverMu.Unlock()
	pending, err := r.ledger.Pending(ctx)
	if err != nil {
		return err
	}
	session := mailer.Session()
	defer session.Close()
	// A delivery that happened is recorded even while stopping.
	wctx := context.WithoutCancel(ctx)
	for _, n := range pending {
		for _, d := range n.Deliveries {
			if d.State != ledger.StatePending && d.State != ledger.StateSending {
				continue
			}
			if ctx.Err() != nil {
				return nil // stopping: the rest stays owed for the next start
			}
			if err := r.ledger.Sending(ctx, n.ID, d.Address, now); err != nil {
				return err
			}
			var derr error
			switch n.Channel {
			case ledger.ChannelEmail:
				derr = session.Send(ctx, notify.Outgoing{To: []string{d.Address}, Raw: n.Body})
			case ledger.ChannelWebhook:
				derr = errors.New("support.webhook is no longer configured")
				if url := cfg.Support.Webhook.Reveal(); url != "" {
					derr = r.poster.Post(ctx, url, n.Body)
				}
			}
			if err := r.settle(wctx, n, d, derr, res, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// settle records the result of one delivery to recipient d of n.
func (r *Runner) settle(ctx context.Context, n ledger.Notice, d ledger.Delivery, err error, res *Result, now time.Time) error {
	if err == nil {
		res.Sent[n.Kind]++
		if merr := r.ledger.MarkRecipientSent(ctx, n.ID, d.Address, now); merr != nil {
			return fmt.Errorf("notice %s was delivered but that could not be recorded (it is delivered again, with the same Message-ID): %w", n.MessageID, merr)
		}
		return nil
	}
	res.Failed[n.Kind]++
	permanent := !notify.Retryable(err)
	log := r.log.With().Str("kind", n.Kind).Str("customer", n.Customer).Str("message_id", n.MessageID).
		Str("recipient", d.Address).Logger()
	if permanent {
		log.Error().Err(err).Msg("recipient refused for good: listed in the next support digest")
	} else {
		log.Warn().Err(err).Int("attempts", d.Attempts+1).Msg("notice not delivered: retried next cycle")
	}
	return r.ledger.MarkRecipientFailed(ctx, n.ID, d.Address, now, notify.Reply(err), permanent)
}

// Notices turns the plan into this cycle's outbox entries: one digest per
// reachable customer, one support digest (email and webhook) for
// escalations and notices without a reachable owner. An escalation support
// acknowledged (acks, from the console) stays out of the digest while the
// acknowledgement holds; the digest counts it. Contacts rejected for good
// (bounces) are listed in it once. Pure apart from rendering.
func Notices(cfg *config.Config, rd *notify.Renderer, p *plan.Plan, acks map[facts.Key]ledger.Ack, bounces []ledger.Bounce, now time.Time) ([]ledger.Notice, error) {
	var sup notify.SupportDigest
	sup.At = now
	sup.Undeliverable = undeliverable(p, bounces)
	// The digests take copies of the decisions: sized first, so a first
	// cycle that tells of most of a large fleet does not hold up to twice
	// the copies while appends grow the slices.
	sizes := map[string]int{}
	unowned, escalated := 0, 0
	acked := func(d *plan.Decision) bool {
		a, ok := acks[d.Snapshot.Key()]
		return ok && a.Holds(d.Verdict.State.String(), now)
	}
	for i := range p.Decisions {
		d := &p.Decisions[i]
		if d.CustomerNotice != plan.ActionNone {
			if d.Reachable {
				sizes[d.Customer]++
			} else {
				unowned++
			}
		}
		if d.EscalateNow && !acked(d) {
			escalated++
		}
	}
	byCustomer := make(map[string][]plan.Decision, len(sizes))
	sup.Unowned = make([]plan.Decision, 0, unowned)
	sup.Escalations = make([]plan.Decision, 0, escalated)
	for i := range p.Decisions {
		d := &p.Decisions[i]
		if d.CustomerNotice != plan.ActionNone {
			if d.Reachable {
				if byCustomer[d.Customer] == nil {
					byCustomer[d.Customer] = make([]plan.Decision, 0, sizes[d.Customer])
				}
				byCustomer[d.Customer] = append(byCustomer[d.Customer], *d)
			} else {
				sup.Unowned = append(sup.Unowned, *d)
			}
		}
		if d.EscalateNow {
			if acked(d) {
				sup.Acknowledged++
			} else {
				sup.Escalations = append(sup.Escalations, *d)
			}
		}
	}
	// Problems go to support alone, once: in the digest of the cycle that
	// first sees them (the report lists them while they last).
	for _, pr := range p.Problems {
		if pr.New(now) {
			sup.Problems = append(sup.Problems, pr)
		}
	}
	sup.OpenProblems = len(p.Problems)
	var out []ledger.Notice
	for _, id := range slices.Sorted(maps.Keys(byCustomer)) {
		ds := byCustomer[id]
		n, err := customerNotice(cfg, rd, now, id, ledger.KindCustomer, notify.CustomerDigest{Attention: ds}, customerItems(ds))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	if len(sup.Escalations)+len(sup.Unowned)+len(sup.Problems)+customerBounces(bounces) == 0 {
		return out, nil
	}
	items := append(customerItems(sup.Unowned), escalationItems(sup.Escalations)...)
	sn, err := supportNotices(cfg, rd, sup, items, now)
	if err != nil {
		return nil, err
	}
	for i := range sn {
		sn[i].Reports = bounces
	}
	return append(out, sn...), nil
}

// customerBounces counts the rejections of customers' contacts. Those of
// the support address do not call for a digest of their own (it would go
// to the address that rejects it, cycle after cycle); they are listed in the
// next digest sent for another reason, and logged at error level meanwhile.
func customerBounces(bounces []ledger.Bounce) int {
	n := 0
	for _, b := range bounces {
		if b.Customer != "" {
			n++
		}
	}
	return n
}

// undeliverable turns the ledger's rejections into the support digest's
// section, naming the snapshots of a notice that reached nobody by the
// plan's names where it still has them.
func undeliverable(p *plan.Plan, bounces []ledger.Bounce) []notify.Bounce {
	if len(bounces) == 0 {
		return nil
	}
	names := map[facts.Key]string{}
	for _, d := range p.Decisions {
		if s := d.Snapshot; s.VM != nil {
			names[s.Key()] = s.VM.VCenter + " / " + s.VM.Name + " / " + s.Name
		}
	}
	out := make([]notify.Bounce, len(bounces))
	for i, b := range bounces {
		out[i] = notify.Bounce{Customer: b.Customer, Address: b.Address, Reply: b.Reply, At: b.At, Unreachable: b.Unreachable}
		for _, it := range b.Items {
			name, ok := names[it.Key]
			if !ok {
				name = it.Key.String() + " (no longer seen)"
			}
			out[i].Snapshots = append(out[i].Snapshots, name)
		}
	}
	return out
}

// customerNotice renders one customer's digest (d's Attention and Committed;
// the rest is filled in from the directory) as an email notice of kind.
func customerNotice(cfg *config.Config, rd *notify.Renderer, now time.Time, id, kind string, d notify.CustomerDigest, items []ledger.Item) (ledger.Notice, error) {
	c, _ := cfg.Customer(id)
	d.Customer = notify.Customer{ID: c.ID, Name: c.Name, Contacts: c.Contacts}
	d.At, d.SupportEmail, d.ExemptTag, d.MaxKeep = now, cfg.Support.Desk(), c.Policy.ExemptTag, c.Policy.MaxKeep
	msg, err := rd.Customer(d)
	if err != nil {
		return ledger.Notice{}, fmt.Errorf("customer %q: render %s notice: %w", id, kind, err)
	}
	n, err := emailNotice(msg, cfg.SMTP.From, now, kind, id, items)
	if err != nil {
		return ledger.Notice{}, fmt.Errorf("customer %q: %w", id, err)
	}
	return n, nil
}

// supportNotices renders one support digest as an email and, when a webhook
// is configured, as its JSON payload.
func supportNotices(cfg *config.Config, rd *notify.Renderer, sup notify.SupportDigest, items []ledger.Item, now time.Time) ([]ledger.Notice, error) {
	from := cfg.SMTP.From
	var out []ledger.Notice
	if len(cfg.Support.Email) > 0 {
		msg, err := rd.Support(sup, cfg.Support.Email)
		if err != nil {
			return nil, fmt.Errorf("support digest: %w", err)
		}
		n, err := emailNotice(msg, from, now, ledger.KindSupport, "", items)
		if err != nil {
			return nil, fmt.Errorf("support digest: %w", err)
		}
		out = append(out, n)
	}
	if hook := cfg.Support.Webhook.Reveal(); hook != "" {
		body, err := rd.Webhook(sup, strings.Contains(hook, "hooks.slack.com"))
		if err != nil {
			return nil, fmt.Errorf("support webhook: %w", err)
		}
		out = append(out, ledger.Notice{MessageID: notify.NewMessageID(from, now), Channel: ledger.ChannelWebhook, Kind: ledger.KindSupport,
			Recipients: []string{"support-webhook"}, Subject: "support webhook", Body: body, Items: items, CreatedAt: now})
	}
	return out, nil
}

func emailNotice(msg notify.Message, from string, now time.Time, kind, customer string, items []ledger.Item) (ledger.Notice, error) {
	id := notify.NewMessageID(from, now)
	raw, err := notify.Compose(msg, from, id, now)
	if err != nil {
		return ledger.Notice{}, fmt.Errorf("compose %s email: %w", kind, err)
	}
	return ledger.Notice{MessageID: id, Channel: ledger.ChannelEmail, Kind: kind, Customer: customer, Recipients: msg.To,
		Subject: msg.Subject, Body: raw, Items: items, CreatedAt: now}, nil
}

func customerItems(ds []plan.Decision) []ledger.Item {
	out := make([]ledger.Item, len(ds))
	for i, d := range ds {
		// The notice's own reason: d.Reason explains the main action, which
		// for an overdue snapshot is the escalation or consolidation.
		reason := plan.ReasonFirstNotice
		if d.CustomerNotice == plan.ActionRemind {
			reason = plan.ReasonReminderDue
		}
		out[i] = ledger.Item{Key: d.Snapshot.Key(), Action: d.CustomerNotice.String(), Reason: reason.String()}
		if !d.Reachable && d.Customer == "" {
			out[i].Reason = ledger.ItemUnowned // the notice goes to support: no known owner
		}
	}
	return out
}

func escalationItems(ds []plan.Decision) []ledger.Item {
	out := make([]ledger.Item, len(ds))
	for i, d := range ds {
		action := ledger.ItemEscalate
		switch {
		case d.Action == plan.ActionBlocked:
			action = ledger.ItemBlocked
		case d.Reason == plan.ReasonManagedStale:
			action = ledger.ItemManagedStale
		}
		out[i] = ledger.Item{Key: d.Snapshot.Key(), Action: action, Reason: d.Reason.String()}
	}
	return out
}
