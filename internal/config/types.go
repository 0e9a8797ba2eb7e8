package config

import (
	"time"

	"github.com/snapwarden/snapwarden/internal/policy"
)

// Secret is a string that never prints: fmt, logs and JSON see "<secret>".
type Secret string

// Config is the whole snapwarden configuration (docs/configuration.md).
type Config struct {
	// File is the path the config was read from, for error messages.
	File        string          `mapstructure:"-"`
	Schedule    string          `mapstructure:"schedule"`
	State       string          `mapstructure:"state"`
	Listen      string          `mapstructure:"listen"`
	Log         Log             `mapstructure:"log"`
	VCenters    []VCenter       `mapstructure:"vcenters"`
	Collect     Collect         `mapstructure:"collect"`
	Policy      policy.Policy   `mapstructure:"policy"`
	Ownership   []OwnershipRule `mapstructure:"ownership"`
	Customers   []Customer      `mapstructure:"customers"`
	Support     Support         `mapstructure:"support"`
	SMTP        SMTP            `mapstructure:"smtp"`
	Templates   string          `mapstructure:"templates"`
	Enforcement Enforcement     `mapstructure:"enforcement"`
	Console     Console         `mapstructure:"console"`
	SelfService SelfService     `mapstructure:"self_service"`
	Problems    Problems        `mapstructure:"problems"`
}

// Problems configures the search for problems customers cannot see.
type Problems struct {
	// ScanEvery is how often each vCenter's datastores are searched for
	// orphaned delta and snapshot files (a search walks every folder).
	ScanEvery time.Duration `mapstructure:"scan_every"`
}

// Console is who may use the support console and API on listen: users of
// a bcrypt htpasswd file (HTTP Basic), or the user a trusted reverse proxy
// names in a header.
type Console struct {
	UsersFile      string   `mapstructure:"users_file"`
	TrustedHeader  string   `mapstructure:"trusted_header"`
	TrustedProxies []string `mapstructure:"trusted_proxies"` // CIDRs
}

// Auth reports whether console logins are configured.
func (c Console) Auth() bool { return c.UsersFile != "" || c.TrustedHeader != "" }

// Log configures zerolog.
type Log struct {
	Level  string `mapstructure:"level"`  // debug | info | warn | error
	Format string `mapstructure:"format"` // auto | json | console
}

// VCenter is one vCenter to collect from.
type VCenter struct {
	Name         string `mapstructure:"name"`
	URL          string `mapstructure:"url"`
	Username     string `mapstructure:"username"`
	Password     Secret `mapstructure:"password"`
	PasswordFile string `mapstructure:"password_file"`
	Insecure     bool   `mapstructure:"insecure"`
	CAFile       string `mapstructure:"ca_file"`
	Thumbprint   string `mapstructure:"thumbprint"`
}

// Collect bounds how vCenters are read.
type Collect struct {
	// Parallel is how many vCenters are collected at once.
	Parallel int `mapstructure:"parallel"`
	// Timeout cuts off a vCenter slower than this for the cycle, so it does
	// not hold back the others' notices.
	Timeout time.Duration `mapstructure:"timeout"`
}

// OwnershipRule is one way to find a VM's customer; exactly one field is set.
type OwnershipRule struct {
	TagCategory     string `mapstructure:"tag_category"`
	CustomAttribute string `mapstructure:"custom_attribute"`
	FolderRegex     string `mapstructure:"folder_regex"`
}

// Customer is one entry of the customer directory.
type Customer struct {
	ID       string   `mapstructure:"id"`
	Name     string   `mapstructure:"name"`
	Contacts []string `mapstructure:"contacts"`
	// Override holds the policy keys this customer sets, as written.
	Override map[string]any `mapstructure:"policy"`
	// Policy is the customer's policy: the default policy with Override
	// merged over it.
	Policy policy.Policy `mapstructure:"-"`
}

// Support is where escalations go.
type Support struct {
	// Email is the support desk's addresses: one string (also
	// comma-separated) or a list. Support digests go to all of them.
	Email   []string `mapstructure:"email"`
	Webhook Secret   `mapstructure:"webhook"` // URLs of chat webhooks carry tokens
}

// Desk is the support address customers are told to write to (and replies
// go to): the first of support.email, or "" when none is set.
func (s Support) Desk() string {
	if len(s.Email) == 0 {
		return ""
	}
	return s.Email[0]
}

// SMTP is the outgoing mail server.
type SMTP struct {
	Host         string `mapstructure:"host"`
	Port         int    `mapstructure:"port"`
	Username     string `mapstructure:"username"`
	Password     Secret `mapstructure:"password"`
	PasswordFile string `mapstructure:"password_file"`
	From         string `mapstructure:"from"`
	TLS          string `mapstructure:"tls"` // starttls | tls | none
}

// defaultPort fills in the port the TLS mode implies when none is set:
// submission (587) for starttls, submissions (465) for tls, 25 for none.
func (s *SMTP) defaultPort() {
	if s.Port != 0 {
		return
	}
	switch s.TLS {
	case "tls":
		s.Port = 465
	case "none":
		s.Port = 25
	default:
		s.Port = 587
	}
}

// Enforcement controls guarded consolidation.
type Enforcement struct {
	Mode           string        `mapstructure:"mode"` // dry-run | enforce
	MaxPerRun      int           `mapstructure:"max_per_run"`
	MaxConcurrent  int           `mapstructure:"max_concurrent"`
	Window         *Window       `mapstructure:"window"`
	MinFreePercent float64       `mapstructure:"min_free_percent"`
	MaxAttempts    int           `mapstructure:"max_attempts"`
	TaskTimeout    time.Duration `mapstructure:"task_timeout"`
	// MinNotice is how long before a consolidation its owner must have
	// received a notice naming the snapshot.
	MinNotice time.Duration `mapstructure:"min_notice"`
	// FixConsolidationNeeded runs ConsolidateVMDisks_Task, under the same
	// guards, on a VM of a `consolidate` customer left with
	// runtime.consolidationNeeded. Off by default: support decides.
	FixConsolidationNeeded bool `mapstructure:"fix_consolidation_needed"`
}

// Window is a maintenance window: it opens at each cron Start and lasts Duration.
type Window struct {
	Start    string        `mapstructure:"start"`
	Duration time.Duration `mapstructure:"duration"`
}

// SelfService configures the signed links in customer digests and the public
// listener that serves them (package selfservice). Links are off while
// PublicURL is empty.
type SelfService struct {
	PublicURL  string        `mapstructure:"public_url"`
	Listen     string        `mapstructure:"listen"`
	KeyFile    string        `mapstructure:"key_file"`
	LinkTTL    time.Duration `mapstructure:"link_ttl"`
	ExtendBy   time.Duration `mapstructure:"extend_by"`
	MaxExtends int           `mapstructure:"max_extends"`
	Commit     bool          `mapstructure:"commit"`
}

// Enabled reports whether digests carry self-service links.
func (s SelfService) Enabled() bool { return s.PublicURL != "" }
