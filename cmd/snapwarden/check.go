package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/notify"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

// defaultCheckTimeout bounds each server's check: a hung vCenter or SMTP
// server is named with the step it hung in, instead of being waited on.
const defaultCheckTimeout = 30 * time.Second

func (a *app) checkCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "validate the config; log in to every vCenter, read it and verify the account's privileges; try the SMTP server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usageErr(fmt.Errorf("--timeout must be positive, such as 30s"))
			}
			cfg, _, err := a.load()
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "config %s: ok (%d vCenters, %d customers, mode %s)\n",
				cfg.File, len(cfg.VCenters), len(cfg.Customers), cfg.Enforcement.Mode)
			failed := 0
			for _, vc := range cfg.VCenters {
				if !checkVCenter(cmd.Context(), a.stdout, vc, cfg.Enforcement.Mode == "enforce", timeout) {
					failed++
				}
			}
			if !checkSMTP(cmd.Context(), a.stdout, cfg.SMTP, timeout) {
				failed++
			}
			if failed > 0 {
				return runtimeErr(fmt.Errorf("check: %d of %d servers failed", failed, len(cfg.VCenters)+1))
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", defaultCheckTimeout, "how long each vCenter's and the SMTP server's check may take")
	return cmd
}

// checkVCenter logs in, asks vCenter which privileges the account lacks and
// reads the inventory as a cycle does (tags and creators included); it
// prints one line per finding and reports whether the vCenter passed.
func checkVCenter(ctx context.Context, out io.Writer, vc config.VCenter, enforce bool, timeout time.Duration) bool {
	name := vc.Name
	if vc.Insecure {
		fmt.Fprintf(out, "vcenter %s: WARNING: insecure: true, the certificate is not verified (set ca_file or thumbprint instead)\n", name)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	step := "login"
	fail := func(err error) bool {
		msg := vsphere.Unnamed(name, err)
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			msg = fmt.Sprintf("did not finish within %s (--timeout): %s", timeout, msg)
		}
		fmt.Fprintf(out, "vcenter %s: FAILED at %s: %s\n", name, step, msg)
		return false
	}
	c, err := vsphere.Dial(ctx, vc, vsphere.Options{Timeout: timeout})
	if err != nil {
		return fail(err)
	}
	defer func() { _ = c.Logout(context.WithoutCancel(ctx)) }()
	// Privileges first: a role without System.Read makes the retrieval
	// below fail in ways that do not say why.
	step = "privileges"
	missing, err := c.MissingPrivileges(ctx)
	if err != nil {
		return fail(err)
	}
	ok := true
	for _, p := range missing {
		verdict := "WARNING"
		switch {
		case p.Use == vsphere.UseRead, p.Use == vsphere.UseEnforce && enforce:
			verdict, ok = "FAILED", false
		case p.Use == vsphere.UseEnforce:
			verdict = "WARNING (needed once enforcement.mode is enforce)"
		}
		fmt.Fprintf(out, "vcenter %s: %s: %s lacks privilege %s on the root folder, used to %s (see docs/vcenter-role.md)\n",
			name, verdict, vc.Username, p.ID, p.Why)
	}
	step = "retrieve (inventory, tags, creators)"
	inv, err := c.Collect(ctx, nil)
	if err != nil {
		return fail(err)
	}
	if ok {
		fmt.Fprintf(out, "vcenter %s: ok (%s, logged in as %s, %d VMs, %d snapshots)\n",
			name, c.Version, vc.Username, inv.VMs, len(inv.Snapshots))
	}
	return ok
}

// checkSMTP connects to the SMTP server (TLS and login as configured).
func checkSMTP(ctx context.Context, out io.Writer, s config.SMTP, timeout time.Duration) bool {
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	mailer, err := notify.NewMailer(s)
	if err == nil {
		// go-mail reads the server's greeting under its own 30 s timeout,
		// not ctx's: wait for ctx alone (the process ends soon after).
		done := make(chan error, 1)
		go func() { done <- mailer.Check(ctx) }()
		select {
		case err = <-done:
		case <-ctx.Done():
			err = fmt.Errorf("connect: %w", ctx.Err())
		}
	}
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "smtp "+addr+": ")
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			msg = fmt.Sprintf("did not finish within %s (--timeout): %s", timeout, msg)
		}
		fmt.Fprintf(out, "smtp %s: FAILED at connect and login: %s\n", addr, msg)
		return false
	}
	fmt.Fprintf(out, "smtp %s: ok (%s)\n", addr, s.TLS)
	return true
}
