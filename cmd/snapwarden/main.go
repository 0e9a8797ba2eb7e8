// Command snapwarden keeps VMware VM snapshots from becoming forgotten delta
// disks: it reports them, tells their owners, escalates to support and, where
// a customer's policy says so, commits them. See README.md and DESIGN.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/snapwarden/snapwarden/internal/config"
)

// version is set at build time by the Makefile (-ldflags -X main.version=...).
var version = "dev"

// memoryLimit is the soft heap limit when GOMEMLIMIT is not set: a cycle
// over 10,000 VMs then stays under 150 MiB of RSS, the GC working harder
// rather than letting garbage double the heap. Larger fleets only make the
// GC busier; GOMEMLIMIT overrides it.
const memoryLimit = 100 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "snapwarden:", err)
	}
	os.Exit(exitCode(err))
}

// app carries what every command shares: the config path and the output streams.
type app struct {
	configPath     string
	stdout, stderr io.Writer
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "snapwarden",
		Short:         "VM snapshot retention for vSphere: report, notify, escalate, consolidate",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&a.configPath, "config", defaultConfig(), "config file (env SNAPWARDEN_CONFIG)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
	root.AddCommand(a.reportCmd(), a.runCmd(), a.serveCmd(), a.checkCmd(), a.historyCmd(), versionCmd())
	return root
}

func defaultConfig() string {
	if p := os.Getenv("SNAPWARDEN_CONFIG"); p != "" {
		return p
	}
	return "/etc/snapwarden/snapwarden.yaml"
}

// load reads the config; any problem is a config error (exit 2).
func (a *app) load() (*config.Config, zerolog.Logger, error) {
	cfg, err := config.Load(a.configPath)
	if err != nil {
		return nil, zerolog.Nop(), usageErr(err)
	}
	log, err := newLogger(a.stderr, cfg.Log)
	if err != nil {
		return nil, zerolog.Nop(), usageErr(fmt.Errorf("%s: %w", cfg.File, err))
	}
	return cfg, log, nil
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := version
			goVersion, govmomi := "", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
				if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
					v = bi.Main.Version
				}
				for _, d := range bi.Deps {
					if d.Path == "github.com/vmware/govmomi" {
						govmomi = d.Version
					}
				}
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "snapwarden %s (%s, govmomi %s)\n", v, goVersion, govmomi)
			return err
		},
	}
}

// errVCenters is returned when some vCenter failed but the others reported.
var errVCenters = errors.New("some vCenters could not be read")
