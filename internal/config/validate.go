package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/plan"
)

var customerIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// validate appends every problem it finds, each naming its key.
func (c *Config) validate(e *Error) {
	if _, err := cron.ParseStandard(c.Schedule); err != nil {
		e.add("schedule %q is not a cron spec (such as \"@every 1h\" or \"0 * * * *\"): %v", c.Schedule, err)
	}
	if c.State == "" {
		e.add("state must name the ledger file, such as /var/lib/snapwarden/ledger.db, or a PostgreSQL database (postgres://...)")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		e.add("listen %q must be host:port, such as 127.0.0.1:9469: %v", c.Listen, err)
	}
	if _, err := zerolog.ParseLevel(c.Log.Level); err != nil || c.Log.Level == "" {
		e.add("log.level %q must be debug, info, warn or error", c.Log.Level)
	}
	if !oneOf(c.Log.Format, "auto", "json", "console") {
		e.add("log.format %q must be auto, json or console", c.Log.Format)
	}
	c.validateVCenters(e)
	if c.Collect.Parallel < 1 {
		e.add("collect.parallel must be 1 or more, got %d", c.Collect.Parallel)
	}
	if c.Problems.ScanEvery <= 0 {
		e.add("problems.scan_every must be a positive duration such as 24h, got %s", c.Problems.ScanEvery)
	}
	if c.Collect.Timeout <= 0 {
		e.add("collect.timeout must be a positive duration such as 15m, got %s", c.Collect.Timeout)
	}
	if err := c.Policy.Validate("policy"); err != nil {
		e.add("%v", err)
	}
	for i, r := range c.Ownership {
		c.validateRule(e, i, r)
	}
	c.validateCustomers(e)
	for i, a := range c.Support.Email {
		if _, err := mail.ParseAddress(a); err != nil {
			e.add("support.email[%d] %q is not an email address: %v", i, a, err)
		}
	}
	if c.Support.Webhook != "" {
		if u, err := url.Parse(c.Support.Webhook.Reveal()); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			e.add("support.webhook must be an http(s) URL")
		}
	}
	c.validateSMTP(e)
	if c.Templates != "" {
		if st, err := os.Stat(c.Templates); err != nil || !st.IsDir() {
			e.add("templates %q must be a folder of email templates: %v", c.Templates, err)
		}
	}
	c.validateEnforcement(e)
	c.validateSelfService(e)
	c.validateConsole(e)
}

// validateConsole refuses a console reachable from the network without a
// login: only a loopback listen may go without one.
func (c *Config) validateConsole(e *Error) {
	con := c.Console
	if host, _, err := net.SplitHostPort(c.Listen); err == nil && !con.Auth() && !Loopback(host) {
		e.add("listen %q is not a loopback address, so the console needs a login: set console.users_file or console.trusted_header", c.Listen)
	}
	if con.UsersFile != "" {
		if _, err := os.Stat(con.UsersFile); err != nil {
			e.add("console.users_file %q: %v", con.UsersFile, err)
		}
	}
	if con.TrustedHeader != "" && len(con.TrustedProxies) == 0 {
		e.add("console.trusted_header %q needs console.trusted_proxies: the CIDRs of the proxies allowed to set it", con.TrustedHeader)
	}
	for i, p := range con.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil {
			e.add("console.trusted_proxies[%d] %q is not a CIDR such as 10.0.0.5/32: %v", i, p, err)
		}
	}
}

// Loopback reports whether a listen host only accepts connections from this
// machine: localhost or a loopback IP (an empty host is every interface).
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckNotify is the validation only run and serve need: escalations and
// notices without a reachable owner must have somewhere to go. report and
// check work without it.
func (c *Config) CheckNotify() error {
	if len(c.Support.Email) == 0 && c.Support.Webhook == "" {
		return &Error{File: c.File, Problems: []string{"support: set support.email or support.webhook: run and serve escalate there"}}
	}
	return nil
}

func (c *Config) validateVCenters(e *Error) {
	if len(c.VCenters) == 0 {
		e.add("vcenters: list at least one vCenter (name, url, username, password_file)")
	}
	seen := map[string]bool{}
	for i, vc := range c.VCenters {
		k := fmt.Sprintf("vcenters[%d]", i)
		if vc.Name == "" {
			e.add("%s.name is required: it names the vCenter in reports and errors", k)
		} else if seen[vc.Name] {
			e.add("%s.name %q is used twice: vCenter names must be unique", k, vc.Name)
		}
		seen[vc.Name] = true
		if u, err := url.Parse(vc.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			e.add("%s.url %q must be an https URL such as https://vc.example.net/sdk", k, vc.URL)
		}
		if vc.Username == "" {
			e.add("%s.username is required", k)
		}
		if vc.Password == "" && vc.PasswordFile == "" {
			e.add("%s: set password_file (or password)", k)
		}
		if vc.Insecure && (vc.CAFile != "" || vc.Thumbprint != "") {
			e.add("%s.insecure: true turns off the certificate check that ca_file/thumbprint configure: set one or the other", k)
		}
		if vc.CAFile != "" {
			if b, err := os.ReadFile(vc.CAFile); err != nil {
				e.add("%s.ca_file: %v", k, err)
			} else if blk, _ := pem.Decode(b); blk == nil {
				e.add("%s.ca_file %s holds no PEM certificate", k, vc.CAFile)
			} else if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
				e.add("%s.ca_file %s: %v", k, vc.CAFile, err)
			}
		}
	}
}

func (c *Config) validateRule(e *Error, i int, r OwnershipRule) {
	k := fmt.Sprintf("ownership[%d]", i)
	n := 0
	for _, s := range []string{r.TagCategory, r.CustomAttribute, r.FolderRegex} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		e.add("%s must set exactly one of tag_category, custom_attribute, folder_regex", k)
		return
	}
	if r.FolderRegex != "" {
		re, err := regexp.Compile(r.FolderRegex)
		switch {
		case err != nil:
			e.add("%s.folder_regex %q does not compile: %v", k, r.FolderRegex, err)
		case re.SubexpIndex("customer") < 0:
			e.add("%s.folder_regex %q needs a group named customer, such as (?P<customer>[^/]+)", k, r.FolderRegex)
		}
	}
}

func (c *Config) validateCustomers(e *Error) {
	seen := map[string]bool{}
	for i, cu := range c.Customers {
		k := fmt.Sprintf("customers[%d]", i)
		switch {
		case !customerIDRE.MatchString(cu.ID):
			e.add("%s.id %q must be lowercase letters, digits, '.', '_' or '-'", k, cu.ID)
		case seen[cu.ID]:
			e.add("%s.id %q is used twice", k, cu.ID)
		}
		seen[cu.ID] = true
		if len(cu.Contacts) == 0 {
			e.add("%s.contacts: list at least one email address", k)
		}
		for j, a := range cu.Contacts {
			if _, err := mail.ParseAddress(a); err != nil {
				e.add("%s.contacts[%d] %q is not an email address: %v", k, j, a, err)
			}
		}
		if cu.Policy.Deadline != 0 { // merged; zero means the merge itself failed
			if err := cu.Policy.Validate(k + ".policy"); err != nil {
				e.add("%v", err)
			}
		}
	}
}

func (c *Config) validateSMTP(e *Error) {
	s := c.SMTP
	if s.Host == "" {
		e.add("smtp.host is required")
	}
	if s.Port < 1 || s.Port > 65535 {
		e.add("smtp.port %d must be 1-65535", s.Port)
	}
	if !oneOf(s.TLS, "starttls", "tls", "none") {
		e.add("smtp.tls %q must be starttls, tls or none", s.TLS)
	}
	if _, err := mail.ParseAddress(s.From); err != nil {
		e.add("smtp.from %q is not an address such as \"snapwarden <noreply@provider.example>\": %v", s.From, err)
	}
	if s.Password != "" && s.Username == "" {
		e.add("smtp.password is set but smtp.username is empty")
	}
}

func (c *Config) validateEnforcement(e *Error) {
	en := c.Enforcement
	if !oneOf(en.Mode, "dry-run", "enforce") {
		e.add("enforcement.mode %q must be dry-run or enforce", en.Mode)
	}
	if en.MaxPerRun < 0 {
		e.add("enforcement.max_per_run must be 0 or more")
	}
	if en.MaxConcurrent < 1 {
		e.add("enforcement.max_concurrent must be at least 1")
	}
	if en.MinFreePercent < 0 || en.MinFreePercent >= 100 {
		e.add("enforcement.min_free_percent %g must be from 0 to below 100", en.MinFreePercent)
	}
	if en.MaxAttempts < 1 {
		e.add("enforcement.max_attempts must be at least 1")
	}
	if en.TaskTimeout <= 0 {
		e.add("enforcement.task_timeout must be a positive duration such as 24h")
	}
	if en.MinNotice <= 0 {
		e.add("enforcement.min_notice must be a positive duration such as 24h, got %s", en.MinNotice)
	}
	if w := en.Window; w != nil {
		if _, err := plan.ParseWindow(w.Start, w.Duration, time.Local); err != nil {
			e.add("enforcement.window.start %q is not a cron spec such as \"0 22 * * *\" (local time, or \"CRON_TZ=Europe/Berlin 0 22 * * *\"): %v", w.Start, err)
		}
		if w.Duration <= 0 || w.Duration > 24*time.Hour {
			e.add("enforcement.window.duration must be more than 0 and at most 24h, got %s", w.Duration)
		}
	}
}

// validateSelfService checks the link settings; the key file itself is read
// and judged by selfservice.LoadKeys when run or serve start.
func (c *Config) validateSelfService(e *Error) {
	s := c.SelfService
	if !s.Enabled() {
		return
	}
	if u, err := url.Parse(s.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
		e.add("self_service.public_url %q must be an http(s) URL without a query, such as https://snapshots.provider.example", s.PublicURL)
	}
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		e.add("self_service.listen %q must be host:port, such as 0.0.0.0:9470: %v", s.Listen, err)
	} else if s.Listen == c.Listen {
		e.add("self_service.listen %q must differ from listen: the console and the public links never share a listener", s.Listen)
	}
	if s.KeyFile == "" {
		e.add("self_service.key_file is required with public_url: it holds the links' HMAC key (at least 32 random bytes)")
	}
	if s.LinkTTL <= 0 || s.ExtendBy <= 0 {
		e.add("self_service.link_ttl and extend_by must be positive durations such as 168h and 24h")
	}
	if s.MaxExtends < 0 {
		e.add("self_service.max_extends must be 0 or more")
	}
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}
