package packaging

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// Where the package puts things.
const (
	BinaryPath     = "/usr/bin/snapwarden"
	UnitPath       = "/usr/lib/systemd/system/snapwarden.service"
	SysusersPath   = "/usr/lib/sysusers.d/snapwarden.conf"
	ConfigPath     = "/etc/snapwarden/snapwarden.yaml"
	CredentialsDir = "/etc/snapwarden/credentials"
	DocDir         = "/usr/share/doc/snapwarden"
)

// The unit in configs/ is for a manual install into /usr/local/bin; the
// package ships it pointed at its own binary.
const manualExecStart = "ExecStart=/usr/local/bin/snapwarden "

// DefaultMaintainer goes into the control file unless Options says otherwise.
const DefaultMaintainer = "snapwarden maintainers <maintainers@snapwarden.invalid>"

// Options say what to package.
type Options struct {
	// Root is the repository: configs/, README.md and docs/ are read from it.
	Root string
	// Binary is the snapwarden executable to ship as /usr/bin/snapwarden.
	Binary string
	// Version is a Debian version (see DebianVersion).
	Version string
	// Arch is the Go architecture Binary was built for; "" means runtime.GOARCH.
	Arch string
	// Maintainer is "Name <email>"; "" means DefaultMaintainer.
	Maintainer string
	// MTime stamps every file and archive member (mkdeb: the commit's time),
	// so the same inputs give the same .deb byte for byte; zero means now.
	MTime time.Time
}

// Build writes the .deb into dir under its conventional name
// (snapwarden_VERSION_ARCH.deb) and returns its path.
func Build(o Options, dir string) (string, error) {
	work, err := os.MkdirTemp("", "snapwarden-deb-")
	if err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	defer os.RemoveAll(work)
	info, err := o.info(work)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, deb.Default.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("deb: %w", err)
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("deb %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("deb %s: %w", path, err)
	}
	return path, nil
}

// info describes the package; files it generates (the rewritten unit) go into work.
func (o Options) info(work string) (*nfpm.Info, error) {
	if !debVerRE.MatchString(o.Version) {
		return nil, fmt.Errorf("deb: version %q is not a Debian version", o.Version)
	}
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.Maintainer == "" {
		o.Maintainer = DefaultMaintainer
	}
	st, err := os.Stat(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("deb: binary: %w (make build first)", err)
	}
	if !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("deb: binary %s is not an executable file", o.Binary)
	}
	unit, err := packagedUnit(filepath.Join(o.Root, "configs", "snapwarden.service"), work)
	if err != nil {
		return nil, err
	}
	src := func(rel string) string { return filepath.Join(o.Root, filepath.FromSlash(rel)) }
	file := func(source, dst string, mode os.FileMode) *files.Content {
		return &files.Content{Source: source, Destination: dst, FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}}
	}
	contents := files.Contents{
		file(o.Binary, BinaryPath, 0o755),
		file(unit, UnitPath, 0o644),
		file(src("configs/snapwarden.sysusers"), SysusersPath, 0o644),
		// The config holds no secret (passwords go to credentials/) but names
		// the vCenters and customers: readable by the service's group only.
		// postinst gives both to the group snapwarden, which exists only then.
		{Destination: "/etc/snapwarden", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o750, Owner: "root", Group: "root"}},
		{Source: src("configs/snapwarden.example.yaml"), Destination: ConfigPath, Type: files.TypeConfigNoReplace,
			FileInfo: &files.ContentFileInfo{Mode: 0o640, Owner: "root", Group: "root"}},
		// LoadCredential= reads the passwords as root; nobody else needs to.
		{Destination: CredentialsDir, Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o700, Owner: "root", Group: "root"}},
		file(src("README.md"), DocDir+"/README.md", 0o644),
		file(src("configs/prometheus/alerts.yaml"), DocDir+"/examples/prometheus/alerts.yaml", 0o644),
		file(src("configs/grafana/snapwarden.json"), DocDir+"/examples/grafana/snapwarden.json", 0o644),
	}
	docs, err := docFiles(src("docs"))
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		contents = append(contents, file(src("docs/"+d), DocDir+"/docs/"+d, 0o644))
	}
	scripts := src("internal/packaging/debian")
	info := &nfpm.Info{
		Name:          "snapwarden",
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       o.Version,
		VersionSchema: "none",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    o.Maintainer,
		Homepage:      "https://github.com/snapwarden/snapwarden",
		Description: "VM snapshot retention for vSphere\n" +
			"snapwarden watches VMware VM snapshots across vCenters, emails customers\n" +
			"before a deadline, escalates to support and, in enforce mode, consolidates\n" +
			"overdue snapshots behind guards. The service is installed but neither\n" +
			"enabled nor started: edit " + ConfigPath + " first.",
		DisableGlobbing: true,
		MTime:           o.MTime,
		Overridables: nfpm.Overridables{
			// systemd-sysusers in postinst, and the unit itself.
			Depends:  []string{"systemd"},
			Contents: contents,
			Umask:    0o022,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(scripts, "postinst"),
				PreRemove:   filepath.Join(scripts, "prerm"),
				PostRemove:  filepath.Join(scripts, "postrm"),
			},
		},
	}
	return nfpm.WithDefaults(info), nil
}

// packagedUnit writes the unit with ExecStart at BinaryPath into work.
func packagedUnit(path, work string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("deb: unit: %w", err)
	}
	unit := string(b)
	if n := strings.Count(unit, manualExecStart); n != 1 {
		return "", fmt.Errorf("deb: unit %s: want one line starting %q to point at %s, found %d", path, manualExecStart, BinaryPath, n)
	}
	unit = strings.Replace(unit, manualExecStart, "ExecStart="+BinaryPath+" ", 1)
	out := filepath.Join(work, "snapwarden.service")
	if err := os.WriteFile(out, []byte(unit), 0o644); err != nil {
		return "", fmt.Errorf("deb: unit: %w", err)
	}
	return out, nil
}

// docFiles lists the regular files under dir (slash-separated, relative to
// it); a missing dir has none.
func docFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deb: docs: %w", err)
	}
	return out, nil
}
