// Command snapwarden keeps VMware VM snapshots from becoming forgotten delta
// disks: it reports them, tells their owners, escalates to support and, where
// a customer's policy says so, commits them. See README.md and docs/.
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
	root.Version = versionString() // --version prints what `version` prints
	root.SetVersionTemplate("{{.Version}}\n")
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
	warnInsecure(log, cfg)
	return cfg, log, nil
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print the version (also --version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return err
		},
	}
}

// versionString is "snapwarden VERSION (GOVERSION, govmomi VERSION)".
func versionString() string {
	v, goVersion, govmomi := buildVersions()
	return fmt.Sprintf("snapwarden %s (%s, govmomi %s)", v, goVersion, govmomi)
}

// buildVersion is snapwarden's own version.
func buildVersion() string {
	v, _, _ := buildVersions()
	return v
}

// buildVersions reads snapwarden's, Go's and govmomi's versions from the
// build: the Makefile's -X main.version, else the module version.
func buildVersions() (v, goVersion, govmomi string) {
	v = version
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
	return v, goVersion, govmomi
}

// errVCenters is returned when some vCenter failed but the others reported.
var errVCenters = errors.New("some vCenters could not be read")

// warnInsecure logs every vCenter whose certificate is not verified: allowed,
// but never silent.
func warnInsecure(log zerolog.Logger, cfg *config.Config) {
	for _, vc := range cfg.VCenters {
		if vc.Insecure {
			log.Warn().Str("vcenter", vc.Name).Str("file", cfg.File).
				Msg("insecure: true: the vCenter's certificate is not verified; set ca_file or thumbprint instead")
		}
	}
}
