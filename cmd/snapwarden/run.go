package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/cycle"
	"github.com/snapwarden/snapwarden/internal/selfservice"
	"github.com/snapwarden/snapwarden/internal/service"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

// runner loads the config and opens what run and serve share: the ledger
// (for writing), the vCenter sessions and the mailer.
func (a *app) runner(cmd *cobra.Command, opt cycle.Options) (*config.Config, zerolog.Logger, *cycle.Runner, error) {
	cfg, log, err := a.load()
	if err != nil {
		return nil, log, nil, err
	}
	if err := cfg.CheckNotify(); err != nil {
		return nil, log, nil, usageErr(err)
	}
	if cfg.SelfService.Enabled() {
		// A bad key file is a config error (exit 2), found before the ledger opens.
		if _, err := selfservice.LoadKeys(cfg.SelfService.KeyFile); err != nil {
			return nil, log, nil, usageErr(fmt.Errorf("%s: %w", cfg.File, err))
		}
	}
	opt.Log = log
	r, err := cycle.New(cmd.Context(), cfg, opt)
	if err != nil {
		return nil, log, nil, runtimeErr(err)
	}
	return cfg, log, r, nil
}

func (a *app) runCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "run one cycle: notify, escalate, record; consolidate only when enforcement.mode is enforce",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var calls vsphere.Counter
			_, log, r, err := a.runner(cmd, cycle.Options{VSphere: vsphere.Options{Counter: &calls}})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			defer func() {
				if err := r.Close(ctx); err != nil {
					log.Warn().Err(err).Msg("closing sessions and ledger")
				}
			}()
			// Beside `serve` instances on PostgreSQL, one cycle may run
			// only while no instance leads.
			lease, err := r.Ledger().TryLead(ctx)
			if err != nil {
				return runtimeErr(err)
			}
			if lease == nil {
				return runtimeErr(fmt.Errorf("another snapwarden instance leads on this ledger: it runs the cycles; stop it first"))
			}
			defer lease.Release()
			select { // a leader that just lost its connection stops first
			case <-time.After(r.Ledger().TakeoverDelay()):
			case <-ctx.Done():
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() {
				select {
				case <-lease.Lost():
					cancel()
				case <-ctx.Done():
				}
			}()
			res, err := r.Cycle(ctx, time.Now().UTC())
			if err != nil && ctx.Err() != nil {
				return runtimeErr(fmt.Errorf("cycle cancelled (interrupted): stopping; the ledger keeps what it committed and queued notices are delivered by the next run (interrupted in: %v)", err))
			}
			if err != nil {
				return runtimeErr(err)
			}
			log.Info().Int64("soap_calls", calls.SOAP()).Int64("http_requests", calls.HTTP()).Msg(res.Summary())
			res.LogVCenterErrors(log)
			if !res.OK() {
				return runtimeErr(fmt.Errorf("cycle finished with errors: %s", res.Summary()))
			}
			return nil
		},
	}
}

func (a *app) serveCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "run cycles on the schedule, with /healthz, /metrics, /report and the support console; SIGHUP reloads the config",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Removals are watched outside the cycles; a Watcher per vCenter
			// lets steady cycles read only what changed.
			cfg, log, r, err := a.runner(cmd, cycle.Options{Detach: true, VSphere: vsphere.Options{Watch: true}})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			reload := make(chan struct{}, 1)
			go func() {
				for range hup {
					select {
					case reload <- struct{}{}:
					default: // a reload is already pending
					}
				}
			}()
			err = service.Serve(ctx, cfg, r, service.Options{
				Load: func() (*config.Config, error) {
					cfg, err := config.Load(a.configPath)
					if err == nil {
						err = cfg.CheckNotify()
					}
					if err == nil {
						warnInsecure(log, cfg)
					}
					return cfg, err
				},
				Log:     log,
				Reload:  reload,
				Version: buildVersion(),
				Public:  r.Public(),
				Ledger:  r.Ledger(),
				Elector: r.Ledger(),
			})
			if err != nil {
				return runtimeErr(err)
			}
			return nil
		},
	}
}
