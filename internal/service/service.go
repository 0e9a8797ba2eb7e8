package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/cycle"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/selfservice"
)

// Runner executes cycles; it owns the vCenter sessions, the mailer and the
// ledger. Reload swaps in a new config without reopening the ledger.
type Runner interface {
	Cycle(ctx context.Context, now time.Time) (*cycle.Result, error)
	Reload(cfg *config.Config) error
	Close(ctx context.Context) error
}

// Options configure Serve.
type Options struct {
	// Load reads and validates the config file; called again on every reload.
	Load func() (*config.Config, error)
	Log  zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Reload receives a value for every SIGHUP.
	Reload <-chan struct{}
	// StopGrace is how long a running cycle may go on after the stop signal
	// before it is cancelled (its writes are transactional and its notices
	// queued, so a cancelled cycle loses nothing).
	StopGrace time.Duration
	// Ready, if set, is called with the HTTP address once serving.
	Ready func(addr string)
	// Version is snapwarden's version, for snapwarden_build_info.
	Version string
	// Ledger is the runner's ledger, which the console reads and records
	// acknowledgements in; nil leaves the console without history.
	Ledger *ledger.Ledger
	// Public, if set, is served on self_service.listen: the customers'
	// self-service links, on a listener of its own that shares no path with
	// the console.
	Public http.Handler
	// PublicReady, if set, is called with the public listener's address.
	PublicReady func(addr string)
	// Elector grants the leadership among instances sharing a ledger on
	// PostgreSQL; nil means this process always leads.
	Elector Elector
	// CampaignEvery is how often a standby tries to take the leadership;
	// zero means 2 s.
	CampaignEvery time.Duration
}

// Elector grants the leadership: only the leader runs cycles (and so
// delivers the outbox and acts on snapshots); standbys serve HTTP.
type Elector interface {
	// TryLead takes the leadership if free; nil, nil when another leads.
	TryLead(ctx context.Context) (*ledger.Lease, error)
	// TakeoverDelay is how long a new leader waits before acting, for an
	// old one that lost its connection to notice and stop.
	TakeoverDelay() time.Duration
}

// Roles in /healthz.
const (
	roleLeader  = "leader"
	roleStandby = "standby"
)

// Service is a running `serve`.
type Service struct {
	opt     Options
	runner  Runner
	metrics *metrics

	mu       sync.Mutex
	cfg      *config.Config
	sched    cron.Schedule
	last     *cycle.Result
	lastErr  error
	lastDone time.Time
	role     string
	// campaignErr is why a standby's last try for the leadership failed
	// ("" when it found another leader).
	campaignErr string
	auth        *auth
	listen      string // the address served, which reloads do not change
}

// Serve runs cycles on cfg's schedule until ctx is cancelled (SIGTERM), then
// stops safely and returns nil. The first cycle runs at once.
func Serve(ctx context.Context, cfg *config.Config, runner Runner, opt Options) error {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.StopGrace == 0 {
		opt.StopGrace = 30 * time.Second
	}
	if opt.CampaignEvery == 0 {
		opt.CampaignEvery = 2 * time.Second
	}
	sched, err := cron.ParseStandard(cfg.Schedule)
	if err != nil {
		return fmt.Errorf("%s: schedule: %w", cfg.File, err)
	}
	a, err := newAuth(cfg, cfg.Listen)
	if err != nil {
		return err
	}
	s := &Service{opt: opt, runner: runner, cfg: cfg, sched: sched, metrics: newMetrics(opt.Version), auth: a, listen: cfg.Listen,
		role: roleStandby}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("%s: listen %s: %w", cfg.File, cfg.Listen, err)
	}
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opt.Log.Error().Err(err).Msg("http server stopped")
		}
	}()
	defer func() {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if opt.Public != nil {
		stop, err := servePublic(cfg, opt)
		if err != nil {
			return err
		}
		defer stop()
	}
	opt.Log.Info().Str("listen", ln.Addr().String()).Str("schedule", cfg.Schedule).Msg("serving")
	if opt.Ready != nil {
		opt.Ready(ln.Addr().String())
	}
	notify(opt.Log, daemon.SdNotifyReady, "STATUS=starting first cycle")

	stopWatchdog := watchdog(opt.Log)
	defer stopWatchdog()

	s.lead(ctx)

	notify(opt.Log, daemon.SdNotifyStopping, "STATUS=stopping")
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := runner.Close(closeCtx); err != nil {
		opt.Log.Warn().Err(err).Msg("closing sessions and ledger")
	}
	return nil
}

// lead runs cycles while this instance holds the leadership, until ctx is
// cancelled. A standby campaigns every CampaignEvery; a leader that loses the
// leadership cancels its cycle at once and becomes a standby again.
func (s *Service) lead(ctx context.Context) {
	if s.opt.Elector == nil {
		s.setRole(roleLeader)
		s.loop(ctx, nil)
		return
	}
	var lastErr string
	for ctx.Err() == nil {
		lease, err := s.opt.Elector.TryLead(ctx)
		if err != nil && err.Error() != lastErr && ctx.Err() == nil {
			// Once per distinct error: a database down for an hour
			// would otherwise log every poll.
			s.opt.Log.Error().Err(err).Msg("standby: cannot campaign for the leadership")
		}
		lastErr = ""
		if err != nil {
			lastErr = err.Error()
		}
		s.mu.Lock()
		s.campaignErr = lastErr
		s.mu.Unlock()
		if lease == nil {
			select {
			case <-ctx.Done():
			case <-time.After(s.opt.CampaignEvery):
			}
			continue
		}
		delay := s.opt.Elector.TakeoverDelay()
		if delay > 0 { // a shared ledger; a file has one writer anyway
			s.opt.Log.Info().Dur("delay", delay).Msg("took the leadership: acting after the takeover delay")
		}
		select {
		case <-ctx.Done():
			lease.Release()
			return
		case <-lease.Lost():
			continue
		case <-time.After(delay):
		}
		s.setRole(roleLeader)
		s.loop(ctx, lease.Lost())
		s.setRole(roleStandby)
		if ctx.Err() != nil {
			lease.Release()
			return
		}
		s.opt.Log.Error().Msg("lost the leadership (connection to the ledger lost): cycle cancelled, now a standby")
	}
}

func (s *Service) setRole(role string) {
	s.mu.Lock()
	s.role = role
	s.mu.Unlock()
	v := 0.0
	if role == roleLeader {
		v = 1
	}
	s.metrics.leader.Set(v)
	notify(s.opt.Log, "STATUS="+role)
}

// loop runs cycles one at a time: a cycle that overruns the next activation
// skips it rather than overlapping, and reloads wait for a running cycle.
// It returns when ctx is cancelled (after the grace) or, at once, when lost
// is closed: the leadership is gone and another instance may act.
func (s *Service) loop(ctx context.Context, lost <-chan struct{}) {
	// Cycles get their own context so SIGTERM can let one finish within the grace.
	cycleCtx, cancelCycles := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCycles()
	// Between cycles the runner waits for vCenter's updates (heads-ups, which
	// deliver notices: the leader's work too). It stops with ctx, or when
	// the leadership is lost, before the runner closes.
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	if w, ok := s.runner.(interface{ Watch(context.Context) }); ok {
		go func() { defer close(watched); w.Watch(watchCtx) }()
	} else {
		close(watched)
	}
	defer func() {
		stopWatch()
		<-watched
	}()

	done := make(chan struct{}, 1)
	running, reloadPending := false, false
	start := func() {
		running = true
		go func() {
			s.runCycle(cycleCtx)
			done <- struct{}{}
		}()
	}
	start()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	arm := func() {
		s.mu.Lock()
		next := s.sched.Next(s.opt.Now())
		s.mu.Unlock()
		timer.Reset(time.Until(next))
	}
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			if running {
				s.opt.Log.Info().Dur("grace", s.opt.StopGrace).Msg("stop requested: letting the running cycle finish")
				select {
				case <-done:
				case <-lost: // another instance may act now: no grace
					cancelCycles()
					<-done
				case <-time.After(s.opt.StopGrace):
					s.opt.Log.Warn().Msg("cycle still running after the grace: cancelling it; queued notices are delivered next start")
					cancelCycles()
					<-done
				}
			}
			return
		case <-lost:
			timer.Stop()
			stopWatch()
			cancelCycles()
			if running {
				<-done
			}
			return
		case <-done:
			running = false
			if reloadPending {
				reloadPending = false
				s.reload()
			}
			arm()
		case <-timer.C:
			// The timer is armed only between cycles, so an activation
			// never finds one running: a cycle that overruns its next
			// activation is followed by one at the first activation after it.
			start()
		case <-s.opt.Reload:
			if running {
				reloadPending = true
				continue
			}
			// The armed activation stands unless the schedule changed:
			// re-arming from now would let frequent reloads (a config
			// management run every few minutes) delay cycles for ever.
			if s.reload() {
				timer.Stop()
				arm()
			}
		}
	}
}

func (s *Service) runCycle(ctx context.Context) {
	res, err := s.runner.Cycle(ctx, s.opt.Now())
	s.mu.Lock()
	s.last, s.lastErr, s.lastDone = res, err, s.opt.Now()
	s.mu.Unlock()
	s.metrics.observe(res, err)
	status := "STATUS=" + res.Summary()
	switch {
	case err != nil && ctx.Err() != nil:
		// Cancelled at stop after the grace: whatever step it was in says
		// "context canceled", which reads like a fault of that step.
		s.opt.Log.Warn().Str("interrupted", err.Error()).Msg("cycle cancelled: stopping; the ledger keeps what it committed and queued notices are delivered at the next start")
		status = "STATUS=stopping: cycle cancelled"
	case err != nil:
		s.opt.Log.Error().Err(err).Msg("cycle failed")
		status = "STATUS=last cycle failed: " + err.Error()
	default:
		s.opt.Log.Info().Str("result", res.Status()).Msg(res.Summary())
		res.LogVCenterErrors(s.opt.Log)
	}
	notify(s.opt.Log, status)
}

// reload reads the config again; a broken file is logged and the running
// config kept, so a typo never stops the service. It reports whether the
// schedule changed.
func (s *Service) reload() (scheduleChanged bool) {
	notify(s.opt.Log, daemon.SdNotifyReloading)
	defer notify(s.opt.Log, daemon.SdNotifyReady)
	cfg, err := s.opt.Load()
	if err == nil {
		var sched cron.Schedule
		var a *auth
		if sched, err = cron.ParseStandard(cfg.Schedule); err == nil {
			a, err = newAuth(cfg, s.listen)
		}
		if err == nil {
			if err = s.runner.Reload(cfg); err == nil {
				s.mu.Lock()
				if cfg.Listen != s.cfg.Listen {
					s.opt.Log.Warn().Str("listen", cfg.Listen).Msg("listen changed: takes effect at the next restart")
				}
				scheduleChanged = cfg.Schedule != s.cfg.Schedule
				s.cfg, s.sched, s.auth = cfg, sched, a
				s.mu.Unlock()
				s.opt.Log.Info().Str("schedule", cfg.Schedule).Bool("schedule_changed", scheduleChanged).Msg("config reloaded")
				return scheduleChanged
			}
		}
	}
	s.opt.Log.Error().Err(err).Msg("reload refused: keeping the running config")
	return false
}

// notify sends sd_notify states; outside systemd it is a no-op.
func notify(log zerolog.Logger, states ...string) {
	for _, st := range states {
		if _, err := daemon.SdNotify(false, st); err != nil {
			log.Debug().Err(err).Str("state", st).Msg("sd_notify")
		}
	}
}

// watchdog pings systemd at half of WatchdogSec when it is set.
func watchdog(log zerolog.Logger) func() {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return func() {}
	}
	t := time.NewTicker(every / 2)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-t.C:
				notify(log, daemon.SdNotifyWatchdog)
			case <-stop:
				t.Stop()
				return
			}
		}
	}()
	return func() { close(stop) }
}

// servePublic starts the self-service listener; stop shuts it down.
func servePublic(cfg *config.Config, opt Options) (stop func(), err error) {
	ln, err := net.Listen("tcp", cfg.SelfService.Listen)
	if err != nil {
		return nil, fmt.Errorf("%s: self_service.listen %s: %w", cfg.File, cfg.SelfService.Listen, err)
	}
	srv := selfservice.Server(opt.Public)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opt.Log.Error().Err(err).Msg("self-service server stopped")
		}
	}()
	opt.Log.Info().Str("listen", ln.Addr().String()).Msg("serving self-service links under " + selfservice.Prefix)
	if opt.PublicReady != nil {
		opt.PublicReady(ln.Addr().String())
	}
	return func() {
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}, nil
}
