package policy

import (
	"fmt"
	"time"
)

// Action is what happens to a customer's snapshot after its deadline.
type Action string

const (
	// ActionEscalate hands an overdue snapshot to the support desk.
	ActionEscalate Action = "escalate"
	// ActionConsolidate commits an overdue snapshot after deadline + grace.
	ActionConsolidate Action = "consolidate"
)

// Valid reports whether a is a known action.
func (a Action) Valid() bool { return a == ActionEscalate || a == ActionConsolidate }

// Policy is a retention policy: the defaults, or a customer's merged override.
// The mapstructure tags are the config keys (docs/configuration.md).
type Policy struct {
	WarnAfter       time.Duration `mapstructure:"warn_after" json:"warn_after"`
	Deadline        time.Duration `mapstructure:"deadline" json:"deadline"`
	ReminderEvery   time.Duration `mapstructure:"reminder_every" json:"reminder_every"`
	EscalateEvery   time.Duration `mapstructure:"escalate_every" json:"escalate_every"`
	Action          Action        `mapstructure:"action" json:"action"`
	Grace           time.Duration `mapstructure:"grace" json:"grace"`
	MaxKeep         time.Duration `mapstructure:"max_keep" json:"max_keep"`
	ExemptTag       string        `mapstructure:"exempt_tag" json:"exempt_tag"`
	ManagedPatterns []string      `mapstructure:"managed_patterns" json:"managed_patterns"`
	// ManagedCreators are the accounts of backup software (shell-style,
	// case-insensitive, "\" is literal). When set, a snapshot is managed only
	// if its creator matches too; one of unknown creator stays managed.
	ManagedCreators   []string      `mapstructure:"managed_creators" json:"managed_creators"`
	ManagedStaleAfter time.Duration `mapstructure:"managed_stale_after" json:"managed_stale_after"`
	// PlatformPatterns match (shell-style, case-insensitive) the name or the
	// inventory path of VMs a platform runs for itself (vCloud Director
	// shadow VMs, Horizon replicas): their snapshots are the platform's, so
	// they are managed like a backup's, whatever their name.
	PlatformPatterns []string `mapstructure:"platform_patterns" json:"platform_patterns"`
	// MaxDepth is the deepest snapshot chain support tolerates (VMware: 2-3
	// for performance); a deeper snapshot is a chain_too_deep problem.
	MaxDepth int `mapstructure:"max_depth" json:"max_depth"`
	// HeadsUp sends the owner a short notice when a snapshot first appears
	// (serve only): what it costs, its deadline and what happens then. It
	// is not a warning: the min_notice clock starts at the first warning.
	HeadsUp bool `mapstructure:"heads_up" json:"heads_up"`
}

// Default is the default policy (docs/configuration.md), used for every key
// the config omits.
func Default() Policy {
	return Policy{
		WarnAfter:         24 * time.Hour,
		Deadline:          48 * time.Hour,
		ReminderEvery:     12 * time.Hour,
		EscalateEvery:     24 * time.Hour,
		Action:            ActionEscalate,
		Grace:             12 * time.Hour,
		MaxKeep:           336 * time.Hour,
		ExemptTag:         "snapwarden-exempt",
		ManagedPatterns:   []string{"VEEAM BACKUP TEMPORARY SNAPSHOT*", "Restore Point *", "__GX_BACKUP__*", "Cohesity_*", "Rubrik*"},
		ManagedStaleAfter: 24 * time.Hour,
		// vCloud Director's fast-provisioning shadow VMs; Horizon's View
		// Composer replicas and instant-clone internal VMs.
		PlatformPatterns: []string{"replica-????????-????-????-????-????????????", "cp-template-????????-????-????-????-????????????", "cp-replica-????????-????-????-????-????????????", "cp-parent-????????-????-????-????-????????????"},
		MaxDepth:         3,
	}
}

// Validate checks a policy; prefix names where it came from in the config
// ("policy" or "customers[2].policy") so the error names the key.
func (p Policy) Validate(prefix string) error {
	pos := []struct {
		key string
		d   time.Duration
	}{
		{"warn_after", p.WarnAfter}, {"deadline", p.Deadline}, {"reminder_every", p.ReminderEvery},
		{"escalate_every", p.EscalateEvery}, {"max_keep", p.MaxKeep}, {"managed_stale_after", p.ManagedStaleAfter},
	}
	for _, k := range pos {
		if k.d <= 0 {
			return fmt.Errorf("%s.%s must be a positive duration such as 24h, got %s", prefix, k.key, k.d)
		}
	}
	if p.Grace < 0 {
		return fmt.Errorf("%s.grace must not be negative, got %s", prefix, p.Grace)
	}
	if p.Deadline <= p.WarnAfter {
		return fmt.Errorf("%s.deadline must be longer than %s.warn_after (%s <= %s)", prefix, prefix, p.Deadline, p.WarnAfter)
	}
	if p.MaxDepth < 1 || p.MaxDepth > 32 {
		return fmt.Errorf("%s.max_depth must be 1 to 32 (vSphere's limit), got %d", prefix, p.MaxDepth)
	}
	if !p.Action.Valid() {
		return fmt.Errorf("%s.action must be escalate or consolidate, got %q", prefix, p.Action)
	}
	for i, pat := range p.ManagedPatterns {
		if _, err := matchPattern(pat, ""); err != nil {
			return fmt.Errorf("%s.managed_patterns[%d] %q is not a valid shell pattern: %w", prefix, i, pat, err)
		}
	}
	for i, pat := range p.PlatformPatterns {
		if _, err := matchPattern(pat, ""); err != nil {
			return fmt.Errorf("%s.platform_patterns[%d] %q is not a valid shell pattern: %w", prefix, i, pat, err)
		}
	}
	for i, pat := range p.ManagedCreators {
		if _, err := matchCreator(pat, ""); err != nil {
			return fmt.Errorf("%s.managed_creators[%d] %q is not a valid shell pattern: %w", prefix, i, pat, err)
		}
	}
	return nil
}

// State is a snapshot's retention state, the `state` of reports.
type State int

// The states of docs/report.md, in order of urgency for sorting (most urgent last
// is not implied; use Urgency).
const (
	StateOK State = iota
	StateWarning
	StateOverdue
	StateExempt
	StateManaged
)

var stateNames = [...]string{"ok", "warning", "overdue", "exempt", "managed"}

// String returns the report name of the state.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// ParseState reads a report state name.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown state %q: use one of ok, warning, overdue, exempt, managed", name)
}

// MarshalText makes a State render as its name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reason says why a verdict has its state.
type Reason int

// Reasons for a verdict.
const (
	ReasonYoung           Reason = iota // age < warn_after
	ReasonWarnAge                       // warn_after <= age < deadline
	ReasonPastDeadline                  // age >= deadline
	ReasonExemptTag                     // the VM carries the exempt tag
	ReasonKeepUntil                     // a valid keep-until marker holds
	ReasonKeepUntilCapped               // keep-until holds, capped at max_keep
	ReasonManagedName                   // name matches a managed pattern
	ReasonManagedDesc                   // description says backup software owns it
	ReasonManagedStale                  // managed and older than managed_stale_after
	ReasonPlatformVM                    // the VM's name or path matches a platform pattern
)

var reasonNames = [...]string{
	"young", "warn-age", "past-deadline", "exempt-tag", "keep-until", "keep-until-capped",
	"managed-name", "managed-description", "managed-stale", "platform-vm",
}

// String returns a short stable name of the reason.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// Verdict is the policy's answer for one snapshot at a time now.
type Verdict struct {
	State  State
	Reason Reason
	// Detail is the human sentence of the report's `reason` column,
	// e.g. "age 50.5h >= deadline 48h".
	Detail string
	// Since is when the age counts from: the create time, or under clock
	// skew the ledger's first sight of the snapshot (now for a new one).
	Since time.Time
	// Age at now, counted from Since.
	Age time.Duration
	// ClockSkew is set when the create time lies after now.
	ClockSkew bool
	// WarnAt, DeadlineAt and ActAt (deadline + grace) are absolute times
	// from Since and the policy.
	WarnAt     time.Time
	DeadlineAt time.Time
	ActAt      time.Time
	// ExemptUntil is the end of a keep-until exemption (after capping); zero
	// when none holds. When it passes, the snapshot is judged by age again.
	ExemptUntil time.Time
	// MalformedMarker holds a keep-until marker that could not be read, so the
	// report and the customer can be told.
	MalformedMarker string
	// KeepUntilEnded is when a keep-until exemption that no longer holds
	// ended (after capping), so the customer is told why the snapshot counts
	// by its age again; zero when there was none. KeepUntilCapped is set when
	// max_keep ended it before the date written.
	KeepUntilEnded  time.Time
	KeepUntilCapped bool
}
