package policy

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// keepUntilRE finds a keep-until marker anywhere in a description. The value
// is taken up to the next blank so that a malformed date can be reported.
var keepUntilRE = regexp.MustCompile(`(?i)keep-until\s*=\s*(\S*)`)

// managedDescriptions are the descriptions backup software writes on the
// snapshots it owns, in its own words (Veeam: "Please do not delete this
// snapshot. It is being used by Veeam Backup."). They are anchored: a
// customer's "please do not delete before Friday" is the customer's.
var managedDescriptions = []*regexp.Regexp{
	regexp.MustCompile(`(?i)^\s*please do not delete this snapshot\.\s*it is being used by veeam\b`),
}

// Evaluate judges one snapshot under policy p at time now. It is pure: the
// same facts, policy and now always give the same verdict. A create time in
// the future counts age from now; EvaluateSeen counts it from first sight.
func Evaluate(s *facts.Snapshot, p Policy, now time.Time) Verdict {
	return EvaluateSeen(s, p, now, time.Time{})
}

// EvaluateSeen is Evaluate for a snapshot the ledger first saw at firstSeen
// (zero for one never seen). Under clock skew (a create time after now) the
// create time says nothing, so age, deadline and action time count from
// first sight instead: a snapshot stamped 2099 would otherwise stay young
// for ever and never be told or removed.
func EvaluateSeen(s *facts.Snapshot, p Policy, now, firstSeen time.Time) Verdict {
	origin := s.Created
	skew := s.Created.After(now)
	if skew {
		origin = firstSeen
		if origin.IsZero() || origin.After(now) {
			origin = now
		}
	}
	v := Verdict{
		Since:      origin,
		WarnAt:     origin.Add(p.WarnAfter),
		DeadlineAt: origin.Add(p.Deadline),
		ActAt:      origin.Add(p.Deadline + p.Grace),
		Age:        now.Sub(origin),
		ClockSkew:  skew,
	}
	v.State, v.Reason, v.Detail = judge(s, p, now, &v)
	if v.ClockSkew {
		v.Detail += fmt.Sprintf(" (create time %s is in the future: clock skew, age counted from first sight at %s)",
			s.Created.UTC().Format(time.RFC3339), origin.UTC().Format(time.RFC3339))
	}
	return v
}

// judge decides state and reason; it may set ExemptUntil and MalformedMarker.
func judge(s *facts.Snapshot, p Policy, now time.Time, v *Verdict) (State, Reason, string) {
	note := ""
	if s.VM != nil {
		// A platform's VM is the platform's whatever its snapshots are
		// called, and no creator makes it a customer's.
		if pat, ok := managedName(s.VM.Name, p.PlatformPatterns); ok {
			return managed(v, p, ReasonPlatformVM, fmt.Sprintf("VM name matches platform pattern %q: the platform's own VM", pat))
		}
		if pat, ok := managedName(s.VM.Path, p.PlatformPatterns); ok && s.VM.Path != "" {
			return managed(v, p, ReasonPlatformVM, fmt.Sprintf("VM path matches platform pattern %q: the platform's own VM", pat))
		}
	}
	if pat, ok := managedName(s.Name, p.ManagedPatterns); ok {
		detail := fmt.Sprintf("name matches managed pattern %q", pat)
		if by, ok := managedCreator(s.Creator, p.ManagedCreators); ok {
			return managed(v, p, ReasonManagedName, detail+by)
		}
		note = "; " + detail + " but its creator " + s.Creator + " is not in managed_creators"
	} else if managedDescription(s.Description) {
		detail := "description says backup software owns it"
		if by, ok := managedCreator(s.Creator, p.ManagedCreators); ok {
			return managed(v, p, ReasonManagedDesc, detail+by)
		}
		note = "; " + detail + " but its creator " + s.Creator + " is not in managed_creators"
	}
	if p.ExemptTag != "" && s.VM != nil && s.VM.HasTag(p.ExemptTag) {
		return StateExempt, ReasonExemptTag, fmt.Sprintf("VM has the exempt tag %q", p.ExemptTag)
	}
	expired := ""
	if m := keepUntilRE.FindStringSubmatch(s.Description); m != nil {
		day, err := time.Parse("2006-01-02", strings.TrimRight(m[1], ".,;)"))
		if err != nil {
			v.MalformedMarker = m[0]
		} else {
			// The marker keeps the snapshot through the whole named day (UTC).
			until, reason := day.AddDate(0, 0, 1), ReasonKeepUntil
			detail := "keep-until " + day.Format("2006-01-02") + " in the description"
			if limit := v.Since.Add(p.MaxKeep); until.After(limit) {
				until, reason = limit, ReasonKeepUntilCapped
				detail = fmt.Sprintf("keep-until %s capped at max_keep %s after creation (until %s)",
					day.Format("2006-01-02"), fmtDuration(p.MaxKeep), limit.UTC().Format(time.RFC3339))
			}
			if now.Before(until) {
				v.ExemptUntil = until
				return StateExempt, reason, detail
			}
			expired = "; " + detail + " has expired"
			v.KeepUntilEnded, v.KeepUntilCapped = until, reason == ReasonKeepUntilCapped
		}
	}
	if v.MalformedMarker != "" {
		expired = fmt.Sprintf("; marker %q is not keep-until=YYYY-MM-DD and was ignored", v.MalformedMarker)
	}
	expired += note
	age := fmtHours(v.Age)
	switch {
	case v.Age >= p.Deadline:
		return StateOverdue, ReasonPastDeadline, fmt.Sprintf("age %s >= deadline %s%s", age, fmtDuration(p.Deadline), expired)
	case v.Age >= p.WarnAfter:
		return StateWarning, ReasonWarnAge, fmt.Sprintf("age %s >= warn_after %s%s", age, fmtDuration(p.WarnAfter), expired)
	default:
		return StateOK, ReasonYoung, fmt.Sprintf("age %s < warn_after %s%s", age, fmtDuration(p.WarnAfter), expired)
	}
}

func managed(v *Verdict, p Policy, r Reason, detail string) (State, Reason, string) {
	if v.Age >= p.ManagedStaleAfter {
		return StateManaged, ReasonManagedStale, fmt.Sprintf("%s; age %s >= managed_stale_after %s: a stuck backup snapshot",
			detail, fmtHours(v.Age), fmtDuration(p.ManagedStaleAfter))
	}
	return StateManaged, r, detail
}

// managedName matches shell-style patterns case-insensitively.
func managedName(name string, patterns []string) (string, bool) {
	for _, pat := range patterns {
		if ok, _ := matchPattern(pat, name); ok {
			return pat, true
		}
	}
	return "", false
}

// matchPattern is path.Match without case. Names have no path structure, so
// a "/" in a snapshot name must not stop "*" from matching it.
func matchPattern(pattern, name string) (bool, error) {
	return path.Match(strings.ReplaceAll(strings.ToLower(pattern), "/", "\x00"),
		strings.ReplaceAll(strings.ToLower(name), "/", "\x00"))
}

func managedDescription(desc string) bool {
	for _, re := range managedDescriptions {
		if re.MatchString(desc) {
			return true
		}
	}
	return false
}

// managedCreator confirms a name or description match by the creator: any
// creator when no managed_creators are set, else one that matches them. A
// creator that is unknown (vCenter purged the event before snapwarden saw
// the snapshot) keeps the snapshot managed: never removed, and support hears
// of it after managed_stale_after. It returns the detail to add.
func managedCreator(creator string, patterns []string) (string, bool) {
	switch {
	case len(patterns) == 0:
		return "", true
	case creator == "":
		return "; creator unknown, so it is kept as backup software's", true
	}
	for _, pat := range patterns {
		if ok, _ := matchCreator(pat, creator); ok {
			return fmt.Sprintf("; created by %s (managed_creators %q)", creator, pat), true
		}
	}
	return "", false
}

// matchCreator is matchPattern with "\" taken literally: Windows accounts
// are written DOMAIN\user.
func matchCreator(pattern, creator string) (bool, error) {
	return matchPattern(strings.ReplaceAll(pattern, `\`, `\\`), creator)
}

// fmtHours prints an age as hours with one decimal, as reports do.
func fmtHours(d time.Duration) string {
	return fmt.Sprintf("%.1fh", d.Hours())
}

// fmtDuration prints a policy duration the way it is usually written in the
// config: "48h", "90m", else Go's form.
func fmtDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
