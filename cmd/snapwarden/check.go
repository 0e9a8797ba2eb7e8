package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapwarden/snapwarden/internal/notify"
	"github.com/snapwarden/snapwarden/internal/selfservice"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

func (a *app) checkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "validate the config, log in to every vCenter and try the SMTP server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, _, err := a.load()
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "config %s: ok (%d vCenters, %d customers, mode %s)\n",
				cfg.File, len(cfg.VCenters), len(cfg.Customers), cfg.Enforcement.Mode)
			ctx := cmd.Context()
			failed := 0
			if cfg.SelfService.Enabled() {
				keys, err := selfservice.LoadKeys(cfg.SelfService.KeyFile)
				if err != nil {
					return usageErr(err)
				}
				fmt.Fprintf(a.stdout, "self_service %s: ok (%s)\n", cfg.SelfService.KeyFile, keys)
			}
			for _, vc := range cfg.VCenters {
				dctx, cancel := context.WithTimeout(ctx, time.Minute)
				c, err := vsphere.Dial(dctx, vc, vsphere.Options{Timeout: time.Minute})
				if err == nil {
					fmt.Fprintf(a.stdout, "vcenter %s: ok (%s, logged in as %s)\n", vc.Name, c.Version, vc.Username)
					err = c.Logout(dctx)
				}
				cancel()
				if err != nil {
					failed++
					fmt.Fprintf(a.stdout, "vcenter %s: FAILED: %v\n", vc.Name, err)
				}
			}
			smtpAddr := net.JoinHostPort(cfg.SMTP.Host, strconv.Itoa(cfg.SMTP.Port))
			mailer, err := notify.NewMailer(cfg.SMTP)
			if err == nil {
				sctx, cancel := context.WithTimeout(ctx, time.Minute)
				err = mailer.Check(sctx)
				cancel()
			}
			if err != nil {
				failed++
				fmt.Fprintf(a.stdout, "smtp %s: FAILED: %v\n", smtpAddr, err)
			} else {
				fmt.Fprintf(a.stdout, "smtp %s: ok (%s)\n", smtpAddr, cfg.SMTP.TLS)
			}
			if failed > 0 {
				return runtimeErr(fmt.Errorf("check: %d of %d connections failed", failed, len(cfg.VCenters)+1))
			}
			return nil
		},
	}
}
