package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

const vcOnly = `
vcenters:
  - {name: vc1, url: "https://vc1.example.net/sdk", username: svc, password_file: vc1.password}
`

const minimal = vcOnly + "support: {email: support@provider.example}\n"

// write puts a config and its password file in a temp dir and returns the config path.
func write(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vc1.password"), []byte("hunter2-vc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "snapwarden.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c, err := Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Schedule != "@every 1h" || c.Listen != "127.0.0.1:9469" || c.Enforcement.Mode != "dry-run" ||
		c.Policy.Deadline != 48*time.Hour || c.Policy.WarnAfter != 24*time.Hour || c.SMTP.TLS != "starttls" ||
		c.Enforcement.MaxPerRun != 10 || c.Enforcement.TaskTimeout != 24*time.Hour || c.Enforcement.MinNotice != 24*time.Hour {
		t.Fatalf("defaults not applied: %+v", c)
	}
	if c.VCenters[0].Password.Reveal() != "hunter2-vc" {
		t.Fatalf("password_file not read (or newline kept): %q", c.VCenters[0].Password.Reveal())
	}
	if !filepath.IsAbs(c.VCenters[0].PasswordFile) || filepath.Dir(c.VCenters[0].PasswordFile) != filepath.Dir(c.File) {
		t.Fatalf("relative password_file not resolved against the config's folder: %s", c.VCenters[0].PasswordFile)
	}
}

// The SMTP port follows the TLS mode unless set.
func TestSMTPPortByTLS(t *testing.T) {
	for tls, want := range map[string]int{"starttls": 587, "tls": 465, "none": 25} {
		c, err := Load(write(t, minimal+"smtp: {host: mail.example, tls: "+tls+"}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c.SMTP.Port != want {
			t.Errorf("tls %s: port %d, want %d", tls, c.SMTP.Port, want)
		}
	}
	c, err := Load(write(t, minimal+"smtp: {host: mail.example, tls: tls, port: 2465}\n"))
	if err != nil || c.SMTP.Port != 2465 {
		t.Errorf("an explicit port was replaced: %v %v", c, err)
	}
}

func TestCustomerPolicyMerge(t *testing.T) {
	c, err := Load(write(t, minimal+`
policy: {warn_after: 12h, deadline: 2d}
customers:
  - {id: acme, name: ACME, contacts: [ops@acme.example], policy: {deadline: 72h, action: consolidate}}
  - {id: initech, name: Initech, contacts: [it@initech.example]}
`))
	if err != nil {
		t.Fatal(err)
	}
	acme := c.PolicyFor("acme")
	if acme.Deadline != 72*time.Hour || acme.Action != "consolidate" || acme.WarnAfter != 12*time.Hour {
		t.Fatalf("acme policy = %+v: want its override over the top-level policy", acme)
	}
	if p := c.PolicyFor("initech"); p.Deadline != 48*time.Hour || p.Action != "escalate" {
		t.Fatalf("initech policy = %+v: want the top-level policy", p)
	}
	if p := c.PolicyFor("unknown"); p.Deadline != 48*time.Hour {
		t.Fatalf("unknown customer gets %+v", p)
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("SNAPWARDEN_ENFORCEMENT_MODE", "enforce")
	t.Setenv("SNAPWARDEN_POLICY_DEADLINE", "96h")
	t.Setenv("SNAPWARDEN_SMTP_PASSWORD", "smtp-secret")
	t.Setenv("SNAPWARDEN_SMTP_USERNAME", "mailer")
	t.Setenv("SNAPWARDEN_SCHEDULE", "*/5 * * * *")
	c, err := Load(write(t, minimal+"enforcement: {mode: dry-run}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Enforcement.Mode != "enforce" || c.Policy.Deadline != 96*time.Hour || c.SMTP.Password.Reveal() != "smtp-secret" ||
		c.Schedule != "*/5 * * * *" {
		t.Fatalf("env not applied: mode=%s deadline=%s schedule=%s", c.Enforcement.Mode, c.Policy.Deadline, c.Schedule)
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"yaml syntax", "vcenters: [\n  - name: x\n bad", "not valid YAML"},
		{"unknown key with hint", minimal + "polcy: {deadline: 48h}\n", `unknown key "polcy" (did you mean "policy"?)`},
		{"unknown nested key", minimal + "policy: {dedline: 48h}\n", `unknown key "policy.dedline" (did you mean "policy.deadline"?)`},
		{"unknown key in a list", minimal + "customers: [{id: a, contacts: [a@b.example], colour: red}]\n", `unknown key "customers[0].colour"`},
		{"unknown key in an override", minimal + "customers: [{id: a, contacts: [a@b.example], policy: {deadlin: 2h}}]\n", "customers[0].policy"},
		{"bad duration", minimal + "policy: {deadline: soon}\n", `"soon" is not a duration`},
		{"bare number duration", minimal + "policy: {deadline: 48}\n", "48 is not a duration"},
		{"deadline before warn", minimal + "policy: {warn_after: 48h, deadline: 24h}\n", "policy.deadline must be longer than policy.warn_after"},
		{"customer deadline before warn", minimal + "customers: [{id: a, contacts: [a@b.example], policy: {deadline: 1h}}]\n",
			"customers[0].policy.deadline must be longer than customers[0].policy.warn_after"},
		{"bad action", minimal + "policy: {action: delete}\n", "policy.action must be escalate or consolidate"},
		{"no parallel collection", minimal + "collect: {parallel: 0}\n", "collect.parallel must be 1 or more"},
		{"bad cron", minimal + "schedule: every hour\n", `schedule "every hour" is not a cron spec`},
		{"bad regex", minimal + "ownership: [{folder_regex: '(['}]\n", "ownership[0].folder_regex"},
		{"regex without group", minimal + "ownership: [{folder_regex: '/Customers/'}]\n", "needs a group named customer"},
		{"two rule kinds", minimal + "ownership: [{tag_category: C, custom_attribute: C}]\n", "ownership[0] must set exactly one"},
		{"duplicate customer", minimal + "customers: [{id: a, contacts: [a@b.example]}, {id: a, contacts: [a@b.example]}]\n", `customers[1].id "a" is used twice`},
		{"bad email", minimal + "customers: [{id: a, contacts: [not-an-address]}]\n", `customers[0].contacts[0] "not-an-address"`},
		{"insecure and ca_file", `
vcenters: [{name: v, url: "https://v/sdk", username: u, password: p, insecure: true, thumbprint: "AA:BB"}]
support: {email: s@p.example}`, "vcenters[0].insecure"},
		{"password and password_file", `
vcenters: [{name: v, url: "https://v/sdk", username: u, password: p, password_file: vc1.password}]
support: {email: s@p.example}`, "vcenters[0].password_file and vcenters[0].password are both set"},
		{"missing password_file", `
vcenters: [{name: v, url: "https://v/sdk", username: u, password_file: nope.password}]
support: {email: s@p.example}`, "vcenters[0].password_file: cannot read"},
		{"no vcenters", "support: {email: s@p.example}\n", "vcenters: list at least one"},
		{"http url", `
vcenters: [{name: v, url: "http://v/sdk", username: u, password: p}]
support: {email: s@p.example}`, "vcenters[0].url"},
		{"bad mode", minimal + "enforcement: {mode: yolo}\n", "enforcement.mode \"yolo\""},
		{"bad window", minimal + "enforcement: {window: {start: '0 22 * * *', duration: 30h}}\n", "enforcement.window.duration"},
		{"wrong type", minimal + "enforcement: {max_per_run: lots}\n", "max_per_run"},
		{"no notice before a removal", minimal + "enforcement: {min_notice: 0s}\n", "enforcement.min_notice must be a positive duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := write(t, tt.body)
			_, err := Load(p)
			if err == nil {
				t.Fatal("Load accepted a bad config")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), p) {
				t.Fatalf("error %q: want it to start with the file name and contain %q", err, tt.want)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/snapwarden.yaml")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/snapwarden.yaml: cannot read the config file") {
		t.Fatalf("got %v", err)
	}
}

// TestExampleConfigLoads follows the README's "Running as a service" steps:
// it creates in a folder only the files those steps create under
// /etc/snapwarden/, and the example config must load from there.
func TestExampleConfigLoads(t *testing.T) {
	body, err := os.ReadFile("../../configs/snapwarden.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, steps, ok := strings.Cut(string(readme), "## Running as a service")
	if steps, _, ok = strings.Cut(steps, "\n```\n"); !ok {
		t.Fatal("README: no shell block under \"Running as a service\"")
	}
	var created []string
	for _, m := range regexp.MustCompile(`for f in ([^;]+); do`).FindAllStringSubmatch(steps, -1) {
		for _, name := range strings.Fields(m[1]) {
			created = append(created, name+".password")
		}
	}
	for _, m := range regexp.MustCompile(`install [^\n]*/dev/stdin /etc/snapwarden/([\w.-]+)\s`).FindAllStringSubmatch(steps, -1) {
		created = append(created, m[1])
	}
	if !strings.Contains(steps, "/etc/snapwarden/$f.password") || len(created) == 0 {
		t.Fatalf("README: cannot tell which password files the steps create:\n%s", steps)
	}
	if strings.Contains(steps, "<<<") {
		t.Error("README: a here-string puts the password in the shell history")
	}
	text := strings.NewReplacer("/etc/snapwarden/", "").Replace(string(body))
	p := write(t, text)
	dir := filepath.Dir(p)
	for _, f := range created {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("pw\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(p); err != nil {
		t.Fatalf("the example config does not load after the README's steps (which create %v): %v", created, err)
	}
}

// TestNoSecretLeaks prints the config every way a developer might and checks
// that neither password appears.
func TestNoSecretLeaks(t *testing.T) {
	t.Setenv("SNAPWARDEN_SMTP_PASSWORD", "smtp-hunter3")
	t.Setenv("SNAPWARDEN_SMTP_USERNAME", "mailer")
	c, err := Load(write(t, vcOnly+"support: {email: s@p.example, webhook: 'https://hooks.slack.com/services/T0/B0/tok-en'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		fmt.Fprintf(&out, verb+"\n", *c)
		fmt.Fprintf(&out, verb+"\n", c.VCenters[0].Password)
	}
	j, _ := json.Marshal(c)
	out.Write(j)
	lg := zerolog.New(&out)
	lg.Info().Interface("config", c).Str("pw", c.SMTP.Password.String()).Msg("loaded")
	for _, secret := range []string{"hunter2-vc", "smtp-hunter3", "tok-en"} {
		if strings.Contains(out.String(), secret) || strings.Contains(out.String(), fmt.Sprintf("%x", secret)) {
			t.Fatalf("secret %q leaked:\n%s", secret, out.String())
		}
	}
	if !strings.Contains(out.String(), "<secret>") {
		t.Fatal("secrets should print as <secret>")
	}
	// A validation error must not echo a secret either.
	_, err = Load(write(t, vcOnly+"support: {email: s@p.example, webhook: 'ftp://tok-en@x'}\n"))
	if err == nil || strings.Contains(err.Error(), "tok-en") {
		t.Fatalf("error leaks or is missing: %v", err)
	}
}

// Every key works by environment, list entries by index; a variable that
// names no key is an error rather than silently ignored.
func TestEnvListEntriesAndUnknownVariables(t *testing.T) {
	t.Setenv("SNAPWARDEN_VCENTERS_0_PASSWORD", "from-env")
	t.Setenv("SNAPWARDEN_VCENTERS_0_PASSWORD_FILE", "")
	t.Setenv("SNAPWARDEN_CUSTOMERS_0_POLICY_DEADLINE", "72h")
	t.Setenv("SNAPWARDEN_CUSTOMERS_0_CONTACTS", "a@acme.example,b@acme.example")
	t.Setenv("SNAPWARDEN_ENFORCEMENT_WINDOW_DURATION", "4h")
	t.Setenv("SNAPWARDEN_ENFORCEMENT_WINDOW_START", "0 22 * * *")
	c, err := Load(write(t, `
vcenters:
  - {name: vc1, url: "https://vc1.example.net/sdk", username: svc}
customers:
  - {id: acme, contacts: [ops@acme.example]}
support: {email: support@provider.example}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.VCenters[0].Password.Reveal() != "from-env" || c.PolicyFor("acme").Deadline != 72*time.Hour ||
		len(c.Customers[0].Contacts) != 2 || c.Enforcement.Window == nil || c.Enforcement.Window.Duration != 4*time.Hour {
		t.Fatalf("env not applied: %+v %+v %+v", c.VCenters[0], c.Customers[0], c.Enforcement.Window)
	}

	for _, name := range []string{"SNAPWARDEN_VCENTERS_1_PASSWORD", "SNAPWARDEN_POLICY_DEADLIN", "SNAPWARDEN_POLICY"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, "x")
			_, err := Load(write(t, minimal))
			if err == nil || !strings.Contains(err.Error(), "environment variable "+name+" names no config key") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// A bad value from the environment names the variable, not only the file.
func TestEnvErrorsNameTheVariable(t *testing.T) {
	for _, tt := range []struct{ name, value, want string }{
		{"SNAPWARDEN_POLICY_DEADLINE", "soon", `"soon" is not a duration`},
		{"SNAPWARDEN_ENFORCEMENT_MODE", "yolo", `enforcement.mode "yolo"`},
		{"SNAPWARDEN_VCENTERS_0_URL", "http://vc1/sdk", "vcenters[0].url"},
		{"SNAPWARDEN_ENFORCEMENT_MAX_PER_RUN", "lots", "max_per_run"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.name, tt.value)
			_, err := Load(write(t, minimal))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "(set by environment variable "+tt.name+")") {
				t.Fatalf("got %v: want %q and the variable named", err, tt.want)
			}
		})
	}
}

// support.email takes one address (as before), a comma-separated string or a list.
func TestSupportEmailList(t *testing.T) {
	for body, want := range map[string][]string{
		"support: {email: desk@p.example}\n":                  {"desk@p.example"},
		"support: {email: [desk@p.example, noc@p.example]}\n": {"desk@p.example", "noc@p.example"},
		"support: {email: 'desk@p.example,noc@p.example'}\n":  {"desk@p.example", "noc@p.example"},
		"support: {webhook: 'https://hooks.example/x'}\n":     nil,
	} {
		c, err := Load(write(t, vcOnly+body))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(c.Support.Email) != fmt.Sprint(want) && !(len(want) == 0 && len(c.Support.Email) == 0) {
			t.Errorf("%s: support.email %q, want %q", body, c.Support.Email, want)
		}
		if len(want) > 0 && c.Support.Desk() != want[0] {
			t.Errorf("%s: desk %q", body, c.Support.Desk())
		}
	}
	_, err := Load(write(t, vcOnly+"support: {email: [desk@p.example, nope]}\n"))
	if err == nil || !strings.Contains(err.Error(), `support.email[1] "nope"`) {
		t.Fatalf("got %v", err)
	}
}

// Every key snapwarden knows is documented in docs/configuration.md (as
// `key`, lists as `vcenters[].name`): a key added without its line fails here.
func TestEveryKeyDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, tree keyTree)
	walk = func(prefix string, tree keyTree) {
		for name, sub := range tree {
			key := prefix + name
			if elem, ok := sub["[]"]; ok {
				walk(key+"[].", elem)
				continue
			}
			if sub == nil || key == "customers[].policy" { // an override holds policy's keys
				if !strings.Contains(string(doc), "`"+key+"`") {
					t.Errorf("docs/configuration.md does not document the key `%s`", key)
				}
				continue
			}
			walk(key+".", sub)
		}
	}
	walk("", knownKeys(configType))
}

// A PostgreSQL state is a DSN, not a path relative to the config's folder;
// SNAPWARDEN_STATE carries one with its password.
func TestPostgresState(t *testing.T) {
	dsn := "postgres://snapwarden@db.example/snapwarden?sslmode=verify-full"
	c, err := Load(write(t, minimal+"state: "+dsn+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.State != dsn {
		t.Errorf("state = %q, want the DSN as written", c.State)
	}
	withPassword := "postgresql://snapwarden:s3cret@db.example/snapwarden"
	t.Setenv("SNAPWARDEN_STATE", withPassword)
	if c, err = Load(write(t, minimal)); err != nil || c.State != withPassword {
		t.Errorf("state from the environment = %q, %v", c.State, err)
	}
}
