package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/cycle"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
	"github.com/snapwarden/snapwarden/internal/report"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

func (a *app) reportCmd() *cobra.Command {
	var format, at, customer, output string
	var states []string
	cmd := &cobra.Command{
		Use:   "report",
		Short: "print the dry-run report: every snapshot, its state and what a cycle would do; changes nothing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := report.ParseFormat(format)
			if err != nil {
				return usageErr(fmt.Errorf("--format: %w", err))
			}
			opt := report.Options{Customer: customer, GeneratedAt: time.Now().UTC()}
			for _, s := range states {
				for _, name := range strings.Split(s, ",") {
					st, err := policy.ParseState(strings.TrimSpace(name))
					if err != nil {
						return usageErr(fmt.Errorf("--state: %w", err))
					}
					opt.States = append(opt.States, st)
				}
			}
			now := opt.GeneratedAt
			if at != "" {
				if now, err = time.Parse(time.RFC3339, at); err != nil {
					return usageErr(fmt.Errorf("--at %q: want an RFC3339 time such as 2026-11-26T09:00:00Z", at))
				}
			}
			cfg, log, err := a.load()
			if err != nil {
				return err
			}
			planner, err := cycle.NewPlanner(cfg)
			if err != nil {
				return usageErr(err)
			}
			planner.Log = log
			ctx := cmd.Context()
			// A reader: report runs beside a serving snapwarden and never writes.
			led, err := ledger.OpenReader(ctx, cfg.State)
			if err != nil {
				return runtimeErr(err)
			}
			defer led.Close()
			var calls vsphere.Counter
			pool := vsphere.NewPool(cfg.VCenters, vsphere.Options{Log: log, Counter: &calls,
				Parallel: cfg.Collect.Parallel, CollectTimeout: cfg.Collect.Timeout, ScanEvery: cfg.Problems.ScanEvery})
			defer func() { _ = pool.Close(ctx) }()

			inv, err := cycle.Collect(ctx, pool, led)
			if err != nil {
				return runtimeErr(err)
			}
			log.Debug().Int("vms", inv.VMs).Int("snapshots", len(inv.Snapshots)).Int64("soap_calls", calls.SOAP()).
				Int64("http_requests", calls.HTTP()).Msg("collected")
			p, err := planner.Plan(ctx, inv, led, now)
			if err != nil {
				return runtimeErr(err)
			}
			if customer != "" && !knownCustomer(cfg, p, customer) {
				return usageErr(fmt.Errorf("--customer: unknown customer %s: not in the config's customers and no snapshot belongs to it", customer))
			}
			if err := writeOutput(a.stdout, output, func(w io.Writer) error { return report.Render(w, f, p, opt) }); err != nil {
				return runtimeErr(err)
			}
			for _, e := range p.Errors {
				log.Error().Str("vcenter", e.VCenter).Msg(e.Error)
			}
			if len(p.Errors) > 0 {
				return runtimeErr(fmt.Errorf("%w: %d of %d failed (listed under errors)", errVCenters, len(p.Errors), len(cfg.VCenters)))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&format, "format", "f", "table", "table, json, csv, markdown or html")
	fl.StringVar(&at, "at", "", "forecast the states at this RFC3339 time instead of now")
	fl.StringVar(&customer, "customer", "", "only this customer's snapshots")
	fl.StringSliceVar(&states, "state", nil, "only these states: ok, warning, overdue, exempt, managed (repeat or comma-separate)")
	fl.StringVarP(&output, "output", "o", "", "write to this file instead of stdout")
	return cmd
}

// knownCustomer reports whether id is in the directory or owns a snapshot
// (an ownership rule can name a customer the directory lacks).
func knownCustomer(cfg *config.Config, p *plan.Plan, id string) bool {
	if _, ok := cfg.Customer(id); ok {
		return true
	}
	for _, d := range p.Decisions {
		if d.Customer == id {
			return true
		}
	}
	return false
}

// writeOutput renders to stdout, or to a file replaced atomically so a
// reader never sees half a report.
func writeOutput(stdout io.Writer, path string, render func(io.Writer) error) error {
	if path == "" || path == "-" {
		return render(stdout)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("--output %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := render(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("--output %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("--output %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("--output %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("--output %s: %w", path, err)
	}
	return nil
}
