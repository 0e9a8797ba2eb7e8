package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/snapwarden/snapwarden/internal/simfleet"
)

// options is everything run needs, already validated: fleet files are loaded
// and the config template parsed, so that every usage mistake is reported
// (exit 2) before anything starts listening.
type options struct {
	fleets    []fleetArg
	dir       string // absolute
	username  string
	password  string
	now       time.Time
	smtp      bool
	mailDir   string
	tmplFile  string
	tmpl      *template.Template // nil without --config-template
	configOut string
	workers   int // simfleet Options.Workers; 0 is its default
}

// fleetArg is one --fleet: the vCenter's name and its loaded fleet.
type fleetArg struct {
	name  string
	file  string
	fleet *simfleet.Fleet
}

// nameRE keeps vCenter names usable as file names (NAME.password) and as
// unquoted YAML scalars in the rendered config.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// fleetFlag collects repeated --fleet values unparsed; they are resolved
// after all flags are read so errors can name the file.
type fleetFlag []string

func (f *fleetFlag) String() string     { return strings.Join(*f, ",") }
func (f *fleetFlag) Set(v string) error { *f = append(*f, v); return nil }

// parseArgs reads the flags, loads the fleets and parses the template. Every
// error it returns is a usage error (exit 2), except flag.ErrHelp.
func parseArgs(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("snapwarden-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		fleets           fleetFlag
		dir, now         string
		o                = &options{}
		tmplFile, outRaw string
	)
	fs.Var(&fleets, "fleet", "a fleet `[NAME=]FILE`, one simulated vCenter each (repeatable; NAME defaults to vc-<file base name>)")
	fs.StringVar(&dir, "dir", "", "directory for CA files, NAME.password, sim.json and the ready file (required)")
	fs.StringVar(&o.username, "username", "snapwarden@vsphere.local", "user name the simulated vCenters accept")
	fs.StringVar(&o.password, "password", "snapwarden-demo", "password the simulated vCenters accept")
	fs.StringVar(&now, "now", "", "RFC3339 time the fleets' snapshot ages count back from (default: now)")
	fs.BoolVar(&o.smtp, "smtp", true, "start the loopback SMTP sink")
	fs.StringVar(&o.mailDir, "mail-dir", "", "directory where the SMTP sink writes each accepted message as NNNN.eml")
	fs.StringVar(&tmplFile, "config-template", "", "Go text/template `FILE` rendered with the vCenters and SMTP sink")
	fs.StringVar(&outRaw, "config-out", "", "`FILE` to write the rendered config to (mode 0600)")
	// Parallel seeding is fast but races inside vcsim (concurrent CreateVM
	// tasks read and append the datastore's VM list unlocked): harmless in a
	// normal build, fatal under -race, so -race tests seed with one worker.
	fs.IntVar(&o.workers, "workers", 0, "VMs seeded in parallel per vCenter (0: simfleet's default; 1 for -race builds)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: snapwarden-sim --fleet [NAME=]FILE... --dir DIR [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		// The flag package has already printed the problem and the usage.
		return nil, usageErr(err)
	}
	if fs.NArg() > 0 {
		return nil, usageErr(fmt.Errorf("unexpected argument %q (fleet files are given with --fleet)", fs.Arg(0)))
	}
	if len(fleets) == 0 {
		return nil, usageErr(errors.New("--fleet is required: give at least one fleet file"))
	}
	if dir == "" {
		return nil, usageErr(errors.New("--dir is required"))
	}
	var err error
	if o.dir, err = filepath.Abs(dir); err != nil {
		return nil, usageErr(fmt.Errorf("--dir %s: %w", dir, err))
	}
	if o.username == "" || o.password == "" {
		return nil, usageErr(errors.New("--username and --password must not be empty"))
	}
	if now != "" {
		if o.now, err = time.Parse(time.RFC3339, now); err != nil {
			return nil, usageErr(fmt.Errorf("--now %q is not an RFC3339 time such as 2026-12-01T09:00:00Z", now))
		}
	}
	if o.workers < 0 {
		return nil, usageErr(fmt.Errorf("--workers %d: must be 0 or more", o.workers))
	}
	if o.mailDir != "" && !o.smtp {
		return nil, usageErr(errors.New("--mail-dir needs the SMTP sink: drop --smtp=false"))
	}
	if (tmplFile == "") != (outRaw == "") {
		return nil, usageErr(errors.New("--config-template and --config-out go together"))
	}
	if tmplFile != "" {
		b, err := os.ReadFile(tmplFile)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--config-template: %w", err))
		}
		o.tmplFile = tmplFile
		o.tmpl, err = template.New(filepath.Base(tmplFile)).Option("missingkey=error").Parse(string(b))
		if err != nil {
			return nil, usageErr(fmt.Errorf("--config-template %s: %w", tmplFile, err))
		}
		// Checked now rather than after the simulators are up, as the
		// mistake is in the command line, not in the run.
		if st, err := os.Stat(filepath.Dir(outRaw)); err != nil || !st.IsDir() {
			return nil, usageErr(fmt.Errorf("--config-out %s: its directory does not exist", outRaw))
		}
		o.configOut = outRaw
	}
	seen := map[string]string{}
	for _, v := range fleets {
		fa, err := loadFleet(v)
		if err != nil {
			return nil, usageErr(err)
		}
		if prev, dup := seen[fa.name]; dup {
			return nil, usageErr(fmt.Errorf("--fleet %s: vCenter name %q is already used by %s; name one with NAME=FILE", v, fa.name, prev))
		}
		seen[fa.name] = fa.file
		o.fleets = append(o.fleets, fa)
	}
	return o, nil
}

// loadFleet resolves one --fleet value. A prefix before "=" is a name only
// when it looks like one, so a path that happens to contain "=" still works.
func loadFleet(v string) (fleetArg, error) {
	name, file := "", v
	if i := strings.IndexByte(v, '='); i >= 0 && nameRE.MatchString(v[:i]) {
		name, file = v[:i], v[i+1:]
	}
	if file == "" {
		return fleetArg{}, fmt.Errorf("--fleet %q: no file given", v)
	}
	if name == "" {
		base := filepath.Base(file)
		name = "vc-" + strings.TrimSuffix(base, filepath.Ext(base))
		if !nameRE.MatchString(name) {
			return fleetArg{}, fmt.Errorf("--fleet %s: %q is not a usable vCenter name; give one with NAME=FILE", v, name)
		}
	}
	f, err := simfleet.Load(file)
	if err != nil {
		return fleetArg{}, fmt.Errorf("--fleet: %w", err)
	}
	return fleetArg{name: name, file: file, fleet: f}, nil
}
