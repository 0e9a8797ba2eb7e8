package policy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
)

var update = flag.Bool("update", false, "rewrite golden files")

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func snap(name, desc string, age time.Duration, tags ...string) *facts.Snapshot {
	vm := &facts.VM{Name: "web01"}
	for _, t := range tags {
		vm.Tags = append(vm.Tags, facts.Tag{Category: "snapwarden", Name: t})
	}
	return &facts.Snapshot{VM: vm, Name: name, Description: desc, Created: now.Add(-age)}
}

func TestEvaluateStates(t *testing.T) {
	p := Default()
	tests := []struct {
		name       string
		s          *facts.Snapshot
		state      State
		reason     Reason
		detail     string // substring
		exemptTill time.Time
	}{
		{"young", snap("pre-patch", "", 5*time.Hour), StateOK, ReasonYoung, "age 5.0h < warn_after 24h", time.Time{}},
		{"warn boundary is warning", snap("pre-patch", "", 24*time.Hour), StateWarning, ReasonWarnAge, "age 24.0h >= warn_after 24h", time.Time{}},
		{"warning", snap("pre-patch", "", 30*time.Hour), StateWarning, ReasonWarnAge, "", time.Time{}},
		{"deadline boundary is overdue", snap("pre-patch", "", 48*time.Hour), StateOverdue, ReasonPastDeadline, "age 48.0h >= deadline 48h", time.Time{}},
		{"overdue", snap("before-upgrade", "", 50*time.Hour+30*time.Minute), StateOverdue, ReasonPastDeadline, "age 50.5h >= deadline 48h", time.Time{}},
		{"exempt tag in any category", snap("keep", "", 500*time.Hour, "snapwarden-exempt"), StateExempt, ReasonExemptTag, `exempt tag "snapwarden-exempt"`, time.Time{}},
		{"other tag is no exemption", snap("keep", "", 50*time.Hour, "gold"), StateOverdue, ReasonPastDeadline, "", time.Time{}},
		{"keep-until valid", snap("db", "testing keep-until=2026-11-30 thanks", 50*time.Hour), StateExempt, ReasonKeepUntil,
			"keep-until 2026-11-30", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"keep-until case and spaces", snap("db", "KEEP-UNTIL = 2026-11-30", 50*time.Hour), StateExempt, ReasonKeepUntil, "", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{"keep-until capped at max_keep", snap("db", "keep-until=2027-06-01", 50*time.Hour), StateExempt, ReasonKeepUntilCapped,
			"capped at max_keep 336h", now.Add(-50 * time.Hour).Add(336 * time.Hour)},
		{"keep-until cap already passed", snap("db", "keep-until=2027-06-01", 400*time.Hour), StateOverdue, ReasonPastDeadline, "has expired", time.Time{}},
		{"keep-until expired", snap("db", "keep-until=2026-11-20", 50*time.Hour), StateOverdue, ReasonPastDeadline, "keep-until 2026-11-20 in the description has expired", time.Time{}},
		{"keep-until expired while young", snap("db", "keep-until=2026-11-20", 2*time.Hour), StateOK, ReasonYoung, "has expired", time.Time{}},
		{"keep-until malformed", snap("db", "keep-until=next-friday", 30*time.Hour), StateWarning, ReasonWarnAge, `marker "keep-until=next-friday" is not keep-until=YYYY-MM-DD`, time.Time{}},
		{"keep-until impossible date", snap("db", "keep-until=2026-02-30", 30*time.Hour), StateWarning, ReasonWarnAge, "was ignored", time.Time{}},
		{"managed veeam name", snap("VEEAM BACKUP TEMPORARY SNAPSHOT", "", 2*time.Hour), StateManaged, ReasonManagedName, `"VEEAM BACKUP TEMPORARY SNAPSHOT*"`, time.Time{}},
		{"managed name is case-insensitive", snap("restore point 2026-11-20", "", 2*time.Hour), StateManaged, ReasonManagedName, "", time.Time{}},
		{"managed name with slash", snap("Rubrik/job/1", "", 2*time.Hour), StateManaged, ReasonManagedName, "", time.Time{}},
		{"managed description", snap("snap", "Please do not delete this snapshot. It is being used by Veeam Backup.", 2*time.Hour), StateManaged, ReasonManagedDesc, "backup software", time.Time{}},
		{"customer's do-not-delete is the customer's", snap("snap", "Please do not delete before Friday", 30*time.Hour), StateWarning, ReasonWarnAge, "", time.Time{}},
		{"a description naming Veeam is the customer's", snap("snap", "before the Veeam Backup upgrade", 30*time.Hour), StateWarning, ReasonWarnAge, "", time.Time{}},
		{"managed stale", snap("Cohesity_123", "", 30*time.Hour), StateManaged, ReasonManagedStale, "stuck backup snapshot", time.Time{}},
		{"managed beats exempt", snap("Cohesity_123", "", 30*time.Hour, "snapwarden-exempt"), StateManaged, ReasonManagedStale, "", time.Time{}},
		{"future create time", snap("skewed", "", -3*time.Hour), StateOK, ReasonYoung, "clock skew, age counted from first sight", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(tt.s, p, now)
			if v.State != tt.state || v.Reason != tt.reason {
				t.Fatalf("got %s/%s (%s), want %s/%s", v.State, v.Reason, v.Detail, tt.state, tt.reason)
			}
			if !strings.Contains(v.Detail, tt.detail) {
				t.Errorf("detail %q does not contain %q", v.Detail, tt.detail)
			}
			if !v.ExemptUntil.Equal(tt.exemptTill) {
				t.Errorf("exempt until %s, want %s", v.ExemptUntil, tt.exemptTill)
			}
			since := tt.s.Created
			if since.After(now) {
				since = now // clock skew, never seen before: from first sight, now
			}
			if want := since.Add(p.Deadline); !v.DeadlineAt.Equal(want) {
				t.Errorf("deadline %s, want %s", v.DeadlineAt, want)
			}
		})
	}
}

// TestPlatformPatterns: a VM whose name or inventory path matches
// platform_patterns (case-insensitively) is the platform's: its snapshots
// are managed whatever they are called, stale after managed_stale_after;
// a customer's VM with a similar name is judged by age.
func TestPlatformPatterns(t *testing.T) {
	p := Default()
	p.PlatformPatterns = append(p.PlatformPatterns, "/DC0/vm/Platform/*")
	for _, tt := range []struct {
		name, vm, path string
		age            time.Duration
		state          State
		reason         Reason
		detail         string
	}{
		{"Horizon replica, any case", "Replica-0a1b2c3d-0000-4e5f-8a9b-0123456789ab", "/DC0/vm/VMwareViewComposerReplicaFolder/Replica-0a1b2c3d-0000-4e5f-8a9b-0123456789ab", 2 * time.Hour, StateManaged, ReasonPlatformVM, `VM name matches platform pattern "replica-`},
		{"instant-clone parent", "cp-parent-77aa1b2c-0000-4e5f-8a9b-0123456789ab", "/DC0/vm/ClonePrepInternalTemplateFolder/cp-parent-77aa1b2c-0000-4e5f-8a9b-0123456789ab", 2 * time.Hour, StateManaged, ReasonPlatformVM, ""},
		{"by inventory path", "builder01", "/DC0/vm/Platform/builder01", 2 * time.Hour, StateManaged, ReasonPlatformVM, `VM path matches platform pattern "/DC0/vm/Platform/*"`},
		{"stale platform snapshot", "replica-9e8d7c6b-0000-4e5f-8a9b-0123456789ab", "/DC0/vm/replica-9e8d7c6b-0000-4e5f-8a9b-0123456789ab", 30 * time.Hour, StateManaged, ReasonManagedStale, "platform pattern"},
		{"a customer's VM named like one", "web-replica-1", "/DC0/vm/Customers/acme/web-replica-1", 30 * time.Hour, StateWarning, ReasonWarnAge, ""},
		{"a customer's replica-test", "replica-test", "/DC0/vm/Customers/acme/replica-test", 30 * time.Hour, StateWarning, ReasonWarnAge, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := snap("pre-patch", "", tt.age, "snapwarden-exempt")
			s.VM.Name, s.VM.Path = tt.vm, tt.path
			if tt.state == StateWarning {
				s.VM.Tags = nil
			}
			v := Evaluate(s, p, now)
			if v.State != tt.state || v.Reason != tt.reason || !strings.Contains(v.Detail, tt.detail) {
				t.Fatalf("got %s/%s (%s), want %s/%s with %q", v.State, v.Reason, v.Detail, tt.state, tt.reason, tt.detail)
			}
		})
	}
	p.PlatformPatterns = []string{"["}
	if err := p.Validate("policy"); err == nil || !strings.Contains(err.Error(), "policy.platform_patterns[0]") {
		t.Errorf("a bad pattern: %v, want an error naming policy.platform_patterns[0]", err)
	}
}

// TestManagedCreators: with managed_creators set, a backup-looking name or
// description is backup software's only when a backup account created it;
// an unknown creator stays managed (never removed; support told when stale).
func TestManagedCreators(t *testing.T) {
	p := Default()
	p.ManagedCreators = []string{"VSPHERE.LOCAL\\svc-veeam", "svc-rubrik*@corp.example"}
	veeam := "Please do not delete this snapshot. It is being used by Veeam Backup."
	for _, tt := range []struct {
		name, snapName, desc, creator string
		state                         State
		detail                        string
	}{
		{"backup account by name", "Rubrik_job_7", "", "SVC-RUBRIK-01@corp.example", StateManaged, "created by SVC-RUBRIK-01@corp.example"},
		{"backup account by description", "snap", veeam, `vsphere.local\svc-veeam`, StateManaged, "description says backup software owns it"},
		{"customer's Rubrik-named test", "Rubrik-agent-test", "", `CORP\alice`, StateWarning, `name matches managed pattern "Rubrik*" but its creator CORP\alice is not in managed_creators`},
		{"customer copying Veeam's words", "snap", veeam, "alice@corp.example", StateWarning, "not in managed_creators"},
		{"unknown creator stays managed", "Rubrik_job_8", "", "", StateManaged, "creator unknown"},
		{"a backup account's own name is no pattern match", "nightly", "", "svc-rubrik@corp.example", StateWarning, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := snap(tt.snapName, tt.desc, 30*time.Hour)
			s.Creator = tt.creator
			v := Evaluate(s, p, now)
			if v.State != tt.state || !strings.Contains(v.Detail, tt.detail) {
				t.Fatalf("got %s (%s), want %s with %q", v.State, v.Detail, tt.state, tt.detail)
			}
		})
	}
	p.ManagedCreators = []string{"[svc"}
	if err := p.Validate("policy"); err == nil || !strings.Contains(err.Error(), "policy.managed_creators[0]") {
		t.Fatalf("a bad creator pattern: %v", err)
	}
}

// TestEndedMarkerIsRecorded: the verdict keeps when a keep-until exemption
// ended and whether max_keep cut it short, for the customer's digest.
func TestEndedMarkerIsRecorded(t *testing.T) {
	p := Default()
	v := Evaluate(snap("db", "keep-until=2026-11-20", 50*time.Hour), p, now)
	if !v.KeepUntilEnded.Equal(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)) || v.KeepUntilCapped {
		t.Errorf("expired marker: ended %s capped %v", v.KeepUntilEnded, v.KeepUntilCapped)
	}
	s := snap("db", "keep-until=2027-06-01", 400*time.Hour)
	if v := Evaluate(s, p, now); !v.KeepUntilEnded.Equal(s.Created.Add(p.MaxKeep)) || !v.KeepUntilCapped {
		t.Errorf("capped marker: ended %s capped %v", v.KeepUntilEnded, v.KeepUntilCapped)
	}
	if v := Evaluate(snap("db", "keep-until=2026-11-30", 50*time.Hour), p, now); !v.KeepUntilEnded.IsZero() {
		t.Errorf("a marker that holds has ended at %s", v.KeepUntilEnded)
	}
}

func TestEvaluateFutureCreateTimeHasZeroAge(t *testing.T) {
	v := Evaluate(snap("x", "", -time.Hour), Default(), now)
	if v.Age != 0 || !v.ClockSkew {
		t.Fatalf("age %s skew %v, want 0 and true", v.Age, v.ClockSkew)
	}
}

// A create time in 2099 must not keep a snapshot young for ever: its age
// counts from the ledger's first sight, so it becomes overdue like any other.
func TestEvaluateClockSkewCountsFromFirstSight(t *testing.T) {
	p := Default()
	s := &facts.Snapshot{VM: &facts.VM{Name: "web01"}, Name: "skewed", Created: time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)}
	first := now.Add(-50 * time.Hour)
	v := EvaluateSeen(s, p, now, first)
	if !v.ClockSkew || v.State != StateOverdue || v.Age != 50*time.Hour || !v.Since.Equal(first) {
		t.Fatalf("first seen 50h ago: %s age %s since %s skew %v, want overdue 50h from first sight", v.State, v.Age, v.Since, v.ClockSkew)
	}
	if want := first.Add(p.Deadline + p.Grace); !v.ActAt.Equal(want) {
		t.Errorf("ActAt %s, want %s (from first sight)", v.ActAt, want)
	}
	if !strings.Contains(v.Detail, "2099-01-01T00:00:00Z") || !strings.Contains(v.Detail, "first sight") {
		t.Errorf("detail %q does not name the future create time and first sight", v.Detail)
	}
	// A normal create time ignores first sight.
	s.Created = now.Add(-time.Hour)
	if v := EvaluateSeen(s, p, now, first); v.ClockSkew || v.Age != time.Hour {
		t.Errorf("no skew: age %s skew %v, want 1h from the create time", v.Age, v.ClockSkew)
	}
}

func TestEvaluateCustomerPolicy(t *testing.T) {
	p := Default()
	p.Deadline = 72 * time.Hour
	if v := Evaluate(snap("x", "", 50*time.Hour), p, now); v.State != StateWarning {
		t.Fatalf("a 72h deadline leaves a 50h snapshot in warning, got %s", v.State)
	}
}

func TestOwnerFirstRuleWins(t *testing.T) {
	rules := []Rule{
		{TagCategory: "Customer"},
		{CustomAttribute: "Customer"},
		{FolderRegex: regexp.MustCompile(`/Customers/(?P<customer>[^/]+)/`)},
		{FolderRegex: regexp.MustCompile(`/Tenants/([^/]+)/`)},
	}
	tests := []struct {
		name string
		vm   facts.VM
		want string
		rule int
	}{
		{"tag", facts.VM{Tags: []facts.Tag{{Category: "Env", Name: "prod"}, {Category: "Customer", Name: "acme"}},
			CustomAttributes: map[string]string{"Customer": "globex"}, Path: "/DC0/vm/Customers/initech/web01"}, "acme", 0},
		{"attribute", facts.VM{CustomAttributes: map[string]string{"Customer": "globex"}, Path: "/DC0/vm/Customers/initech/web01"}, "globex", 1},
		{"empty attribute falls through", facts.VM{CustomAttributes: map[string]string{"Customer": ""}, Path: "/DC0/vm/Customers/initech/web01"}, "initech", 2},
		{"folder named group", facts.VM{Path: "/DC0/vm/Customers/initech/web01"}, "initech", 2},
		{"folder first group", facts.VM{Path: "/DC0/vm/Tenants/umbrella/db"}, "umbrella", 3},
		{"vm directly in Customers is no match", facts.VM{Path: "/DC0/vm/Customers"}, "", -1},
		{"unowned", facts.VM{Path: "/DC0/vm/Lab/test01"}, "", -1},
		{"two tags in the owner category are disputed, whatever sorts first",
			facts.VM{Tags: []facts.Tag{{Category: "Customer", Name: "zeta"}, {Category: "Customer", Name: "acme"}, {Category: "Customer", Name: "zeta"}},
				Path: "/DC0/vm/Customers/initech/web01"}, "acme,zeta", 0},
		{"a later rule never settles a dispute", facts.VM{Tags: []facts.Tag{{Category: "Customer", Name: "b"}, {Category: "Customer", Name: "a"}},
			CustomAttributes: map[string]string{"Customer": "a"}}, "a,b", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, rule := Owner(&tt.vm, rules)
			if got := strings.Join(ids, ","); got != tt.want || rule != tt.rule {
				t.Fatalf("Owner = %q (rule %d), want %q (rule %d)", got, rule, tt.want, tt.rule)
			}
		})
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	p := Default()
	p.Deadline = p.WarnAfter
	err := p.Validate("customers[1].policy")
	if err == nil || !strings.Contains(err.Error(), "customers[1].policy.deadline must be longer than customers[1].policy.warn_after") {
		t.Fatalf("got %v", err)
	}
	p = Default()
	p.ManagedPatterns = []string{"[abc"}
	if err := p.Validate("policy"); err == nil || !strings.Contains(err.Error(), "policy.managed_patterns[0]") {
		t.Fatalf("got %v", err)
	}
}

// TestGoldenVerdicts walks a chain and its markers through a week of hourly
// clocks and pins every state change, so a change of behaviour shows in review.
func TestGoldenVerdicts(t *testing.T) {
	p := Default()
	created := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	vm := &facts.VM{Name: "db01"}
	snaps := []*facts.Snapshot{
		{VM: vm, Name: "root", Created: created, Depth: 1},
		{VM: vm, Name: "child", Created: created.Add(20 * time.Hour), Depth: 2},
		{VM: vm, Name: "kept", Description: "keep-until=2026-11-23", Created: created, Depth: 1},
		{VM: vm, Name: "kept-long", Description: "keep-until=2027-01-01", Created: created, Depth: 1},
		{VM: vm, Name: "Restore Point 1", Created: created, Depth: 1},
	}
	var b strings.Builder
	last := map[string]string{}
	for h := 0; h <= 24*18; h++ {
		at := created.Add(time.Duration(h) * time.Hour)
		for _, s := range snaps {
			v := Evaluate(s, p, at)
			line := fmt.Sprintf("%s/%s: %s", v.State, v.Reason, v.Detail)
			key := v.State.String() + v.Reason.String()
			if last[s.Name] != key {
				fmt.Fprintf(&b, "%s %-16s %s\n", at.Format(time.RFC3339), s.Name, line)
				last[s.Name] = key
			}
		}
	}
	golden(t, "verdicts.golden", b.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file; review and run go test -update:\n--- got\n%s", path, got)
	}
}
