package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/report"
)

func (a *app) historyCmd() *cobra.Command {
	var vm, customer, since, format string
	cmd := &cobra.Command{
		Use:   "history",
		Short: "print the ledger's audit trail: notices, escalations, actions and resolutions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return usageErr(fmt.Errorf("--format %q: use table or json", format))
			}
			f := ledger.Filter{VM: vm, Customer: customer}
			if since != "" {
				d, err := config.ParseDuration(since)
				if err != nil {
					return usageErr(fmt.Errorf("--since %q: want a duration such as 48h or 7d", since))
				}
				f.Since = time.Now().Add(-d)
			}
			cfg, _, err := a.load()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			led, err := ledger.OpenReader(ctx, cfg.State)
			if err != nil {
				return runtimeErr(err)
			}
			defer led.Close()
			events, err := led.Audit(ctx, f)
			if err != nil {
				return runtimeErr(err)
			}
			if format == "json" {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				if events == nil {
					events = []ledger.Event{}
				}
				return enc.Encode(events)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tKIND\tVM\tSNAPSHOT\tCUSTOMER\tWHAT")
			for _, e := range events {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.Kind,
					report.Truncate(report.Clean(e.VM), 30), report.Truncate(report.Clean(e.Snapshot), 40), dash(e.Customer), report.Clean(e.What))
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&vm, "vm", "", "only this VM")
	fl.StringVar(&customer, "customer", "", "only this customer")
	fl.StringVar(&since, "since", "", "only the last DURATION (48h, 7d)")
	fl.StringVarP(&format, "format", "f", "table", "table or json")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
