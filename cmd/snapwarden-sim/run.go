package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/snapwarden/snapwarden/internal/mailsink"
	"github.com/snapwarden/snapwarden/internal/simfleet"
)

// vcenterInfo is what a client needs to reach one simulated vCenter. The
// same value feeds sim.json and the config template, so both always agree.
type vcenterInfo struct {
	// Name is the vCenter's name in the config and in reports.
	Name string `json:"name"`
	// URL is https://127.0.0.1:PORT/sdk.
	URL string `json:"url"`
	// CAFile is the PEM of the simulator's self-signed certificate.
	CAFile string `json:"ca_file"`
	// Thumbprint is the certificate's SHA-1 thumbprint, as govc prints it.
	Thumbprint string `json:"thumbprint"`
	// Username is the user the simulator accepts.
	Username string `json:"username"`
	// PasswordFile holds the password (mode 0600), so it never appears in a config.
	PasswordFile string `json:"password_file"`
}

// smtpInfo is where the SMTP sink listens.
type smtpInfo struct {
	// Host is the sink's IP address (127.0.0.1).
	Host string `json:"host"`
	// Port is the sink's TCP port.
	Port int `json:"port"`
}

// templateData is the data --config-template is executed with.
type templateData struct {
	// VCenters lists the simulated vCenters in --fleet order.
	VCenters []vcenterInfo
	// Dir is the absolute --dir, for paths such as the ledger.
	Dir string
	// SMTP is the sink's address; zero with --smtp=false.
	SMTP smtpInfo
	// SelfService is what a self_service section needs on 127.0.0.1.
	SelfService selfServiceInfo
}

// selfServiceInfo lets a rendered config offer the customers' links on
// loopback: a key file and a port that was free when the sim started.
type selfServiceInfo struct {
	// KeyFile holds a random HMAC key (mode 0600), made once per --dir.
	KeyFile string
	// Listen is 127.0.0.1:PORT for self_service.listen.
	Listen string
	// URL is http://Listen, for self_service.public_url.
	URL string
}

// simJSON is the layout of DIR/sim.json, read by end-to-end tests.
type simJSON struct {
	VCenters []vcenterInfo `json:"vcenters"`
	SMTP     *smtpInfo     `json:"smtp,omitempty"`
}

// run starts every simulated vCenter and the SMTP sink, writes the files
// clients need, then DIR/ready, and serves until ctx is done. Everything it
// started is closed before it returns, on every path, so no govcsim-* folder
// is left behind. A stop requested during start-up is not an error.
func run(ctx context.Context, o *options, stderr io.Writer) error {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}
	ready := filepath.Join(o.dir, "ready")
	// A ready file from an earlier run would tell waiters to go ahead too soon.
	if err := removeIfExists(ready); err != nil {
		return fmt.Errorf("--dir: %w", err)
	}

	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	var state simJSON
	for _, fa := range o.fleets {
		sim, err := simfleet.Start(ctx, fa.fleet, simfleet.Options{
			Username: o.username, Password: o.password, Now: o.now, Dir: o.dir, Workers: o.workers,
		})
		if err != nil {
			if ctx.Err() != nil {
				return stopped(stderr)
			}
			return fmt.Errorf("vCenter %s (fleet %s): %w", fa.name, fa.file, err)
		}
		closers = append(closers, sim.Close)
		// Removals keep vSphere-shaped sizes, and ConsolidateVMDisks_Task
		// (which vcsim lacks) works, so enforce cycles behave as on vCenter.
		sim.Extend()
		for _, name := range sim.VMNames() {
			if err := sim.EnableConsolidate(name); err != nil {
				return fmt.Errorf("vCenter %s: %w", fa.name, err)
			}
		}
		if ctx.Err() != nil {
			return stopped(stderr)
		}
		pwFile := filepath.Join(o.dir, fa.name+".password")
		if err := writeFileAtomic(pwFile, []byte(o.password), 0o600); err != nil {
			return fmt.Errorf("vCenter %s: password file: %w", fa.name, err)
		}
		state.VCenters = append(state.VCenters, vcenterInfo{
			Name: fa.name, URL: sim.URL, CAFile: sim.CAFile, Thumbprint: sim.Thumbprint,
			Username: o.username, PasswordFile: pwFile,
		})
		fmt.Fprintf(stderr, "snapwarden-sim: %s %s (%d VMs)\n", fa.name, sim.URL, vmCount(fa.fleet))
	}

	if o.smtp {
		sink, err := mailsink.Start(mailsink.Options{Dir: o.mailDir})
		if err != nil {
			return fmt.Errorf("smtp sink: %w", err)
		}
		closers = append(closers, func() { _ = sink.Close() })
		state.SMTP = &smtpInfo{Host: sink.Host, Port: sink.Port}
		fmt.Fprintf(stderr, "snapwarden-sim: smtp %s\n", sink.Addr())
	}

	if err := writeState(o, &state); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return stopped(stderr)
	}
	// Last, so that its presence means every other file is complete.
	if err := writeFileAtomic(ready, nil, 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	fmt.Fprintln(stderr, "snapwarden-sim: ready")

	<-ctx.Done()
	fmt.Fprintln(stderr, "snapwarden-sim: stopping")
	// The services are about to go away: a left-over ready file would lie.
	_ = removeIfExists(ready)
	return nil
}

// stopped reports a stop requested before everything was up.
func stopped(stderr io.Writer) error {
	fmt.Fprintln(stderr, "snapwarden-sim: stopped before ready")
	return nil
}

// writeState writes sim.json and the rendered config.
func writeState(o *options, state *simJSON) error {
	b, err := json.MarshalIndent(state, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(o.dir, "sim.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("sim.json: %w", err)
	}
	if o.tmpl == nil {
		return nil
	}
	data := templateData{VCenters: state.VCenters, Dir: o.dir}
	if state.SMTP != nil {
		data.SMTP = *state.SMTP
	}
	ss, err := selfService(o.dir)
	if err != nil {
		return err
	}
	data.SelfService = ss
	var buf bytes.Buffer
	if err := o.tmpl.Execute(&buf, data); err != nil {
		// The template parsed but refers to something the data lacks.
		return usageErr(fmt.Errorf("--config-template %s: %w", o.tmplFile, err))
	}
	// 0600: a rendered config may carry secrets the template was given.
	if err := writeFileAtomic(o.configOut, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("--config-out %s: %w", o.configOut, err)
	}
	return nil
}

// selfService makes DIR/link.key unless it exists (links already mailed keep
// working across restarts) and picks a free loopback port for the public
// listener. The port is free now; snapwarden serve binds it a moment later,
// which is good enough on a developer's machine.
func selfService(dir string) (selfServiceInfo, error) {
	key := filepath.Join(dir, "link.key")
	if _, err := os.Stat(key); errors.Is(err, fs.ErrNotExist) {
		raw := make([]byte, 48)
		if _, err := rand.Read(raw); err != nil {
			return selfServiceInfo{}, fmt.Errorf("link key: %w", err)
		}
		if err := writeFileAtomic(key, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
			return selfServiceInfo{}, fmt.Errorf("link key %s: %w", key, err)
		}
	} else if err != nil {
		return selfServiceInfo{}, fmt.Errorf("link key %s: %w", key, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return selfServiceInfo{}, fmt.Errorf("a free port for the self-service listener: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return selfServiceInfo{}, fmt.Errorf("a free port for the self-service listener: %w", err)
	}
	return selfServiceInfo{KeyFile: key, Listen: addr, URL: "http://" + addr}, nil
}

// vmCount is the number of VMs a fleet builds, generated ones included.
func vmCount(f *simfleet.Fleet) int {
	n := len(f.VMs)
	if f.Generate != nil {
		n += f.Generate.VMs
	}
	return n
}

// writeFileAtomic writes through a temporary file and a rename, so a reader
// polling for the file never sees it half written, and the mode is exactly
// perm even when the file already existed (os.WriteFile keeps an old mode).
func writeFileAtomic(name string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // a no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

func removeIfExists(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
