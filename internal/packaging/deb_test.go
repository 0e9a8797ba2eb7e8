package packaging

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// root is the repository, seen from this package's folder.
const root = "../.."

const testVersion = "1.2.3+git4.abc1234"

// buildTestDeb packages a stand-in executable (the layout, not the binary,
// is under test; `make deb` packages the real one) and returns the .deb.
func buildTestDeb(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed (apt-get install dpkg): cannot inspect the .deb")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "snapwarden")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	deb, err := Build(testOptions(bin), dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(deb) != "snapwarden_"+testVersion+"_amd64.deb" {
		t.Fatalf("package file %s, want the conventional name", deb)
	}
	return deb
}

func testOptions(bin string) Options {
	return Options{Root: root, Binary: bin, Version: testVersion, Arch: "amd64", MTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// The same inputs give the same bytes (every member stamped with MTime), so
// anyone can rebuild a release's .deb and compare.
func TestDebReproducible(t *testing.T) {
	first := buildTestDeb(t)
	dir := t.TempDir()
	again, err := Build(testOptions(filepath.Join(filepath.Dir(first), "snapwarden")), dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(again)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatalf("two builds of the same inputs differ (%d and %d bytes)", len(a), len(b))
	}
	if c := dpkgDeb(t, "-c", first); strings.Count(c, " 2026-01-02 03:04 ") != strings.Count(c, "\n") {
		t.Errorf("not every member is stamped with MTime:\n%s", c)
	}
}

func dpkgDeb(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("dpkg-deb", args...)
	cmd.Env = append(os.Environ(), "TZ=UTC") // -c prints times in the local zone
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestDebControl(t *testing.T) {
	deb := buildTestDeb(t)
	want := map[string]string{
		"Package":      "snapwarden",
		"Version":      testVersion,
		"Architecture": "amd64",
		"Section":      "admin",
		"Priority":     "optional",
		"Maintainer":   DefaultMaintainer,
		"Depends":      "systemd",
		"Homepage":     "https://github.com/snapwarden/snapwarden",
	}
	for field, v := range want {
		if got := strings.TrimSpace(dpkgDeb(t, "-f", deb, field)); got != v {
			t.Errorf("control %s = %q, want %q", field, got, v)
		}
	}
	if d := dpkgDeb(t, "-f", deb, "Description"); !strings.Contains(d, "neither\n enabled nor started") {
		t.Errorf("the description does not say the service is not started:\n%s", d)
	}
	// The config is a conffile: dpkg keeps the administrator's edits on upgrade.
	if got := strings.Fields(dpkgDeb(t, "-I", deb, "conffiles")); !reflect.DeepEqual(got, []string{ConfigPath}) {
		t.Errorf("conffiles = %q, want only %s", got, ConfigPath)
	}
	info := dpkgDeb(t, "-I", deb)
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if !strings.Contains(info, s) {
			t.Errorf("dpkg-deb -I lists no %s:\n%s", s, info)
		}
	}
}

func TestDebContents(t *testing.T) {
	deb := buildTestDeb(t)
	// path -> "mode owner/group" as dpkg-deb -c prints them.
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(dpkgDeb(t, "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", line)
		}
		got[strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")] = f[0] + " " + f[1]
	}
	want := map[string]string{
		BinaryPath:            "-rwxr-xr-x root/root",
		UnitPath:              "-rw-r--r-- root/root",
		SysusersPath:          "-rw-r--r-- root/root",
		"/etc/snapwarden":     "drwxr-x--- root/root",
		ConfigPath:            "-rw-r----- root/root",
		CredentialsDir:        "drwx------ root/root",
		DocDir + "/README.md": "-rw-r--r-- root/root",
		DocDir + "/examples/prometheus/alerts.yaml":  "-rw-r--r-- root/root",
		DocDir + "/examples/grafana/snapwarden.json": "-rw-r--r-- root/root",
	}
	docs, err := docFiles(filepath.Join(root, "docs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		want[DocDir+"/docs/"+d] = "-rw-r--r-- root/root"
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q in the package, want %q", p, got[p], w)
		}
	}
	// Nothing else but the folders leading to them: the state directory is
	// systemd's (StateDirectory=), so purging the package never deletes the ledger.
	for p, g := range got {
		if _, ok := want[p]; !ok && !strings.HasPrefix(g, "d") {
			t.Errorf("unexpected file %s (%s) in the package", p, g)
		}
	}
	if _, ok := got["/var/lib/snapwarden"]; ok {
		t.Error("the package ships /var/lib/snapwarden: leave it to StateDirectory=")
	}

	x := t.TempDir()
	dpkgDeb(t, "-x", deb, x)
	for src, dst := range map[string]string{"README.md": DocDir + "/README.md", "configs/snapwarden.example.yaml": ConfigPath} {
		a, _ := os.ReadFile(filepath.Join(root, src))
		b, err := os.ReadFile(filepath.Join(x, dst))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s is not %s unchanged (%v)", dst, src, err)
		}
	}
}

// The maintainer scripts create the user, never enable or start the
// service (the shipped config names example vCenters) and are valid sh.
func TestDebScripts(t *testing.T) {
	deb := buildTestDeb(t)
	all := ""
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		body := dpkgDeb(t, "-I", deb, s)
		cmd := exec.Command("sh", "-n")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s is not valid sh: %v\n%s", s, err, out)
		}
		all += body
	}
	for _, bad := range []string{"systemctl enable", "systemctl start", "systemctl restart"} {
		if strings.Contains(all, bad) {
			t.Errorf("a maintainer script runs %q: the service must not start before its config is edited", bad)
		}
	}
	if !regexp.MustCompile(`systemd-sysusers .*\b` + regexp.QuoteMeta(filepath.Base(SysusersPath)) + "\n").MatchString(all) {
		t.Errorf("postinst does not apply %s", SysusersPath)
	}
}

// The unit as packaged passes systemd-analyze verify, points at the packaged
// binary and loads credentials from the folder the package ships.
func TestDebUnitVerifies(t *testing.T) {
	deb := buildTestDeb(t)
	x := t.TempDir()
	dpkgDeb(t, "-x", deb, x)
	unit, err := os.ReadFile(filepath.Join(x, UnitPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"\nExecStart=" + BinaryPath + " serve --config " + ConfigPath + "\n", "\nLoadCredential=snapwarden:" + CredentialsDir + "\n",
		"\nPrivateUsers=yes\n", "\nPrivateMounts=yes\n", "\nUser=snapwarden\n"} {
		if !bytes.Contains(unit, []byte(s)) {
			t.Errorf("the packaged unit lacks %q", strings.TrimSpace(s))
		}
	}
	sysusers, _ := os.ReadFile(filepath.Join(x, SysusersPath))
	if !bytes.Contains(sysusers, []byte("\nu snapwarden ")) {
		t.Errorf("%s does not create the user snapwarden:\n%s", SysusersPath, sysusers)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd): the unit is not verified")
	}
	// verify checks that ExecStart exists: point it at the extracted binary.
	dir := t.TempDir()
	local := bytes.Replace(unit, []byte("ExecStart="+BinaryPath), []byte("ExecStart="+filepath.Join(x, BinaryPath)), 1)
	if err := os.WriteFile(filepath.Join(dir, "snapwarden.service"), local, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "snapwarden.service")).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestPackagedUnitNeedsExecStart(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "snapwarden.service")
	if err := os.WriteFile(p, []byte("[Service]\nExecStart=/opt/snapwarden serve\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := packagedUnit(p, dir); err == nil || !strings.Contains(err.Error(), "found 0") {
		t.Fatalf("a unit not starting /usr/local/bin/snapwarden was packaged: %v", err)
	}
}

func TestDocFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.md", "sub/b.md"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := docFiles(dir)
	if err != nil || !reflect.DeepEqual(got, []string{"a.md", "sub/b.md"}) {
		t.Fatalf("docFiles = %q, %v", got, err)
	}
	if got, err := docFiles(filepath.Join(dir, "none")); got != nil || err != nil {
		t.Fatalf("docFiles of a missing folder = %q, %v; want none", got, err)
	}
}

// The maintainer scripts at work: dpkg installs the package into a scratch
// root (DPKG_ROOT, scripts run without chroot), upgrades it over an edited
// config, removes and purges it; the host's own users are left alone.
func TestDebInstallsIntoScratchRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dpkg --root needs root to set owners: run as root (CI does)")
	}
	for _, tool := range []string{"dpkg", "systemd-sysusers"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed: the maintainer scripts are not run", tool)
		}
	}
	deb := buildTestDeb(t)
	r := t.TempDir()
	for _, d := range []string{"info", "updates", "triggers"} {
		if err := os.MkdirAll(filepath.Join(r, "var/lib/dpkg", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"status", "available"} {
		if err := os.WriteFile(filepath.Join(r, "var/lib/dpkg", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hostPasswd, _ := os.ReadFile("/etc/passwd")
	dpkg := func(args ...string) {
		t.Helper()
		// systemd is a dependency the scratch root does not have.
		all := append([]string{"--root=" + r, "--force-script-chrootless", "--force-depends", "--log=/dev/null"}, args...)
		cmd := exec.Command("dpkg", all...)
		// dpkg refuses to run without ldconfig and start-stop-daemon on PATH.
		cmd.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":/usr/sbin:/usr/bin:/sbin:/bin")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	at := func(p string) string { return filepath.Join(r, p) }
	owner := func(p string) (os.FileMode, uint32, uint32) {
		t.Helper()
		st, err := os.Stat(at(p))
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		return st.Mode().Perm(), sys.Uid, sys.Gid
	}

	dpkg("--install", deb)
	group, _ := os.ReadFile(at("etc/group"))
	var gid uint32
	for _, line := range strings.Split(string(group), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 && f[0] == "snapwarden" {
			n, _ := strconv.Atoi(f[2])
			gid = uint32(n)
		}
	}
	if passwd, _ := os.ReadFile(at("etc/passwd")); gid == 0 || !strings.Contains(string(passwd), "snapwarden:x:") {
		t.Fatalf("postinst created no snapwarden user and group:\n%s\n%s", passwd, group)
	}
	for p, want := range map[string][3]uint32{
		"etc/snapwarden":   {0o750, 0, gid},
		ConfigPath[1:]:     {0o640, 0, gid},
		CredentialsDir[1:]: {0o700, 0, 0},
		BinaryPath[1:]:     {0o755, 0, 0},
	} {
		if m, u, g := owner(p); uint32(m) != want[0] || u != want[1] || g != want[2] {
			t.Errorf("/%s: %o %d:%d, want %o %d:%d", p, m, u, g, want[0], want[1], want[2])
		}
	}
	if status, _ := os.ReadFile(at("var/lib/dpkg/status")); !strings.Contains(string(status), "Conffiles:\n "+ConfigPath+" ") {
		t.Errorf("dpkg did not register %s as a conffile:\n%s", ConfigPath, status)
	}

	// An upgrade keeps the administrator's edit and choice of group.
	edited := []byte("# edited by the administrator\n")
	if err := os.WriteFile(at(ConfigPath), edited, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(at(ConfigPath), 0, 0); err != nil {
		t.Fatal(err)
	}
	dpkg("--install", deb)
	if b, _ := os.ReadFile(at(ConfigPath)); !bytes.Equal(b, edited) {
		t.Errorf("the upgrade replaced the edited config:\n%s", b)
	}
	if _, _, g := owner(ConfigPath[1:]); g != 0 {
		t.Errorf("the upgrade changed the config's group back to %d", g)
	}

	dpkg("--remove", "snapwarden")
	if _, err := os.Stat(at(BinaryPath)); !os.IsNotExist(err) {
		t.Errorf("remove left %s: %v", BinaryPath, err)
	}
	if _, err := os.Stat(at(ConfigPath)); err != nil {
		t.Errorf("remove deleted the config (only purge may): %v", err)
	}
	dpkg("--purge", "snapwarden")
	if _, err := os.Stat(at(ConfigPath)); !os.IsNotExist(err) {
		t.Errorf("purge left the config: %v", err)
	}
	if after, _ := os.ReadFile("/etc/passwd"); !bytes.Equal(after, hostPasswd) {
		t.Fatal("installing into the scratch root changed the host's /etc/passwd")
	}
}

func TestBuildRefuses(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("not executable"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "exe")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, binary, version, want string
	}{
		{"no binary", filepath.Join(dir, "none"), testVersion, "make build first"},
		{"not executable", plain, testVersion, "is not an executable file"},
		{"not a Debian version", exe, "v1.2.3", `version "v1.2.3" is not a Debian version`},
	} {
		o := testOptions(tt.binary)
		o.Version = tt.version
		if _, err := Build(o, dir); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.deb")); len(left) > 0 {
		t.Errorf("a refused build left %v", left)
	}
}

// systemd refuses to start a unit whose LoadCredential= folder is missing, so
// the README's manual install must create the folder the unit names.
func TestManualRouteCreatesCredentialsDir(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(root, "configs", "snapwarden.service"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`\nLoadCredential=[\w.-]+:(\S+)\n`).FindSubmatch(unit)
	if m == nil || string(m[1]) != CredentialsDir {
		t.Fatalf("the unit loads credentials from %q, want %s (the folder the package ships)", m, CredentialsDir)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, steps, _ := strings.Cut(string(readme), "## Running as a service")
	steps, _, _ = strings.Cut(steps, "\n```\n")
	if !regexp.MustCompile(`(?m)^install -d -m 0?700 ` + regexp.QuoteMeta(CredentialsDir) + `\s`).MatchString(steps) {
		t.Errorf("README's \"Running as a service\" steps do not create %s (root only):\n%s", CredentialsDir, steps)
	}
}
