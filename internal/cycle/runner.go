package cycle

import (
	"context"
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

	mu       sync.Mutex // guards the config-derived fields against Reload
	cfg      *config.Config
	planner  *Planner
	renderer *notify.Renderer
	mailer   *notify.Mailer
}

// New opens the ledger for writing and prepares the sessions and mailer.
func New(ctx context.Context, cfg *config.Config, opt Options) (*Runner, error) {
	led, err := ledger.Open(ctx, cfg.State)
	if err != nil {
		return nil, err
	}
	r := &Runner{log: opt.Log, ledger: led, poster: opt.Poster}
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
	r.exec = &enforce.Executor{Pool: r.pool, Ledger: led, Log: opt.Log}
	return r, nil
}

// Reload swaps in a new config. Everything is prepared before anything is
// swapped, so a config that cannot be used leaves the old one running.
func (r *Runner) Reload(cfg *config.Config) error {
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
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cfg != nil && r.cfg.State != cfg.State {
		r.log.Warn().Str("state", ledger.Redact(cfg.State)).Msg("state changed: the ledger moves at the next restart")
	}
	if r.cfg != nil && r.cfg.Collect != cfg.Collect {
		r.log.Warn().Msg("collect changed: takes effect at the next restart")
	}
	r.cfg, r.planner, r.renderer, r.mailer = cfg, planner, renderer, mailer
	if r.pool != nil {
		r.pool.SetTargets(context.Background(), cfg.VCenters)
	}
	return nil
}

// Close logs out of every vCenter and closes the ledger.
func (r *Runner) Close(ctx context.Context) error {
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
// (one transaction), deliver the outbox, then act (enforce mode only) and
// tell customers and support what was done. A delivery failure leaves the
// notice pending for the next cycle; nothing is lost or sent twice.
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
	var outcomes []enforce.Outcome
	if enforcing {
		// Briefly: a task still running (hours, perhaps) stays in flight in
		// the ledger, which keeps the planner from starting another, and is
		// looked at again next cycle; it must not hold back this cycle's notices.
		rctx, cancel := context.WithTimeout(ctx, resumeWait)
		outcomes = r.exec.Resume(rctx)
		cancel()
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
	notices, err := Notices(cfg, renderer, p, acks, now)
	if err != nil {
		return res, err
	}
	for _, n := range notices {
		res.Queued[n.Kind]++
	}
	rec := ledger.Record{Started: now, Finished: now, Mode: cfg.Enforcement.Mode, Notices: notices,
		Snapshots: seen(p), Answered: keyVCenters(answered(cfg, p), p.VCenterIDs), VCenterIDs: p.VCenterIDs}
	for _, e := range p.Errors {
		rec.Errors = append(rec.Errors, e.VCenter+": "+e.Error)
	}
	rec.Summary = res.Summary()
	cycleID, err := r.ledger.Record(ctx, rec)
	if err != nil {
		return res, err
	}
	if err := r.ledger.RecordProblems(ctx, now, p.Problems, answered(cfg, p), inv.Scanned); err != nil {
		return res, err
	}
	r.deliver(ctx, cfg, mailer, res, now)

	if enforcing {
		outcomes = append(outcomes, r.exec.Run(ctx, p, EnforceSettings(cfg, planner))...)
	}
	if len(outcomes) > 0 {
		for _, o := range outcomes {
			res.Actions[o.Result]++
		}
		res.Outcomes = outcomes
		acted, err := ActionNotices(cfg, renderer, outcomes, now)
		if err != nil {
			return res, err
		}
		for _, n := range acted {
			res.Queued[n.Kind]++
		}
		if err := r.ledger.Queue(context.WithoutCancel(ctx), cycleID, acted); err != nil {
			return res, err
		}
		r.deliver(ctx, cfg, mailer, res, now)
	}
	res.Duration = time.Since(began)
	return res, nil
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

// deliver sends every pending notice of the outbox: this cycle's and any an
// earlier cycle could not deliver, with the bytes and Message-ID it stored.
//
// Delivery times are the cycle's clock, like every other time the ledger
// keeps, so a test clock and the planner agree on what happened first.
func (r *Runner) deliver(ctx context.Context, cfg *config.Config, mailer *notify.Mailer, res *Result, now time.Time) {
	pending, err := r.ledger.Pending(ctx)
	if err != nil {
		r.log.Error().Err(err).Msg("outbox: read pending notices")
		res.Failed["outbox"]++
		return
	}
	var mails []ledger.Notice
	var out []notify.Outgoing
	for _, n := range pending {
		switch n.Channel {
		case ledger.ChannelEmail:
			mails = append(mails, n)
			out = append(out, notify.Outgoing{To: n.Recipients, Raw: n.Body})
		case ledger.ChannelWebhook:
			url := cfg.Support.Webhook.Reveal()
			err := fmt.Errorf("support.webhook is no longer configured")
			if url != "" {
				err = r.poster.Post(ctx, url, n.Body)
			}
			r.settle(ctx, n, err, url == "" || !notify.Retryable(err), res, now)
		}
	}
	if len(out) == 0 {
		return
	}
	errs := mailer.Send(ctx, out)
	for i, n := range mails {
		r.settle(ctx, n, errs[i], errs[i] != nil && !notify.Retryable(errs[i]), res, now)
	}
}

// settle records one delivery result in the ledger.
func (r *Runner) settle(ctx context.Context, n ledger.Notice, err error, permanent bool, res *Result, now time.Time) {
	log := r.log.With().Str("kind", n.Kind).Str("customer", n.Customer).Str("message_id", n.MessageID).Logger()
	if err == nil {
		res.Sent[n.Kind]++
		if merr := r.ledger.MarkSent(ctx, n.ID, now); merr != nil {
			log.Error().Err(merr).Msg("notice sent but not marked: it may be sent again with the same Message-ID")
		}
		return
	}
	res.Failed[n.Kind]++
	if permanent {
		log.Error().Err(err).Msg("notice refused for good: support must follow up by hand")
	} else {
		log.Warn().Err(err).Int("attempts", n.Attempts+1).Msg("notice not delivered: retried next cycle")
	}
	if merr := r.ledger.MarkFailed(ctx, n.ID, now, err.Error(), permanent); merr != nil {
		log.Error().Err(merr).Msg("record delivery failure")
	}
}

// Notices turns the plan into this cycle's outbox entries: one digest per
// reachable customer, one support digest (email and webhook) for
// escalations and notices without a reachable owner. An escalation support
// acknowledged (acks, from the console) stays out of the digest while the
// acknowledgement holds; the digest counts it. Pure apart from rendering.
func Notices(cfg *config.Config, rd *notify.Renderer, p *plan.Plan, acks map[facts.Key]ledger.Ack, now time.Time) ([]ledger.Notice, error) {
	byCustomer := map[string][]plan.Decision{}
	var sup notify.SupportDigest
	sup.At = now
	for _, d := range p.Decisions {
		if d.CustomerNotice != plan.ActionNone {
			if d.Reachable {
				byCustomer[d.Customer] = append(byCustomer[d.Customer], d)
			} else {
				sup.Unowned = append(sup.Unowned, d)
			}
		}
		if d.EscalateNow {
			if a, ok := acks[d.Snapshot.Key()]; ok && a.Holds(d.Verdict.State.String(), now) {
				sup.Acknowledged++
			} else {
				sup.Escalations = append(sup.Escalations, d)
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
	if len(sup.Escalations)+len(sup.Unowned)+len(sup.Problems) == 0 {
		return out, nil
	}
	items := append(customerItems(sup.Unowned), escalationItems(sup.Escalations)...)
	sn, err := supportNotices(cfg, rd, sup, items, now)
	if err != nil {
		return nil, err
	}
	return append(out, sn...), nil
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
