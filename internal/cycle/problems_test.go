package cycle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// TestProblemsGoToSupportOnly runs cycles over a fleet with one of each
// problem: support's digest lists them once, when first seen; no customer
// digest ever names one; the ledger keeps first sight; the orphan scan's
// findings stand between scans.
func TestProblemsGoToSupportOnly(t *testing.T) {
	e := newEnv(t, "problems.yaml")
	r := e.runner(t)

	res := cycle(t, r, t0)
	kinds := map[facts.ProblemKind]int{}
	for _, p := range res.Plan.Problems {
		kinds[p.Kind]++
		if !p.FirstSeen.Equal(t0) {
			t.Errorf("%s %s first seen %s, want the cycle's time", p.Kind, p.Path, p.FirstSeen)
		}
	}
	want := map[facts.ProblemKind]int{facts.ConsolidationNeeded: 1, facts.PhantomDelta: 1, facts.ChainTooDeep: 1, facts.OrphanFile: 3}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s problems, want %d (all: %v)", kinds[k], k, n, kinds)
		}
	}
	var support, customers []delivered
	for _, m := range messages(t, e.sink, 0) {
		if m.to[0] == "support@provider.example" {
			support = append(support, m)
		} else {
			customers = append(customers, m)
		}
	}
	if len(support) != 1 || len(customers) == 0 {
		t.Fatalf("%d support and %d customer messages, want one support digest and initech's", len(support), len(customers))
	}
	for _, s := range []string{"PROBLEMS CUSTOMERS CANNOT SEE (6 new, 6 open)", "consolidation_needed", "stuck01", "phantom01-000001.vmdk",
		"gone-vm-000001-sesparse.vmdk", "chain_too_deep", "deep01"} {
		if !strings.Contains(support[0].body, s) {
			t.Errorf("support digest lacks %q", s)
		}
	}
	if !strings.Contains(support[0].subject, "6 new problems") {
		t.Errorf("support subject %q does not count the new problems", support[0].subject)
	}
	for _, m := range customers {
		for _, s := range []string{"problem", "PROBLEM", "chain_too_deep", "max_depth", "phantom", "orphan", "gone-vm", "consolidation_needed"} {
			if strings.Contains(m.body, s) {
				t.Errorf("customer digest to %v mentions %q: problems are for support only", m.to, s)
			}
		}
	}

	// An hour later: nothing new to tell; first sight is the ledger's; the
	// scan is not due, so an orphan deleted meanwhile still stands.
	if err := os.Remove(filepath.Join(e.sim.DatastoreDir(), "gone-vm", "gone-vm-Snapshot1.vmsn")); err != nil {
		t.Fatal(err)
	}
	n := len(e.sink.Messages())
	res = cycle(t, r, t0.Add(time.Hour))
	if got := len(e.sink.Messages()) - n; got != 0 {
		t.Errorf("%d messages an hour later, want none: the problems were told", got)
	}
	orphans := 0
	for _, p := range res.Plan.Problems {
		if !p.FirstSeen.Equal(t0) {
			t.Errorf("%s %s first seen %s, want %s from the ledger", p.Kind, p.Path, p.FirstSeen, t0)
		}
		if p.Kind == facts.OrphanFile {
			orphans++
		}
	}
	if orphans != 3 {
		t.Errorf("%d orphan files between scans, want the last scan's 3", orphans)
	}

	// The VM is consolidated: its problem is resolved; when it comes back it
	// is new again and support hears of it.
	if err := e.sim.SetConsolidationNeeded("stuck01", false); err != nil {
		t.Fatal(err)
	}
	res = cycle(t, r, t0.Add(2*time.Hour))
	for _, p := range res.Plan.Problems {
		if p.Kind == facts.ConsolidationNeeded {
			t.Errorf("consolidation_needed still listed after it cleared")
		}
	}
	if err := e.sim.SetConsolidationNeeded("stuck01", true); err != nil {
		t.Fatal(err)
	}
	n = len(e.sink.Messages())
	cycle(t, r, t0.Add(3*time.Hour))
	ms := messages(t, e.sink, n)
	if len(ms) != 1 || !strings.Contains(ms[0].body, "PROBLEMS CUSTOMERS CANNOT SEE (1 new, 6 open)") {
		t.Errorf("when it comes back, messages = %d, want one support digest with 1 new problem", len(ms))
	}
}

// TestDatastoreFillsFirst: a snapshot that grew between two cycles on a
// datastore that fills before its deadline is escalated at once and its
// owner told; the constant one beside it is not; one sample forecasts
// nothing.
func TestDatastoreFillsFirst(t *testing.T) {
	e := newEnv(t, "growth.yaml")
	r := e.runner(t)

	res := cycle(t, r, t0)
	for _, d := range res.Plan.Decisions {
		if d.Growth.BytesPerHour != nil || d.EscalateNow {
			t.Errorf("%s at first sight: rate %v, escalate %v; want no forecast", d.Snapshot.Name, d.Growth.BytesPerHour, d.EscalateNow)
		}
	}
	if n := len(e.sink.Messages()); n != 0 {
		t.Fatalf("%d messages at first sight of two young snapshots", n)
	}

	if err := e.sim.Grow(); err != nil {
		t.Fatal(err)
	}
	res = cycle(t, r, t0.Add(time.Hour))
	for _, d := range res.Plan.Decisions {
		rate := d.Growth.BytesPerHour
		switch d.Snapshot.Name {
		case "import-test":
			if rate == nil || *rate != 4<<30 || d.Reason.String() != "datastore-fills-first" || !d.EscalateNow || d.FillsFirst == nil {
				t.Errorf("growing snapshot: rate %v reason %s escalate %v", rate, d.Reason, d.EscalateNow)
			}
		case "steady":
			if rate == nil || *rate != 0 || d.EscalateNow {
				t.Errorf("constant snapshot: rate %v escalate %v, want 0 and no alarm", rate, d.EscalateNow)
			}
		}
	}
	if len(res.Plan.Datastores) != 1 || !res.Plan.Datastores[0].FullAt.Equal(t0.Add(time.Hour+5*time.Hour)) {
		t.Errorf("datastores = %+v, want LocalDS_0 full 5h later (20GiB at 4GiB/h)", res.Plan.Datastores)
	}
	got := map[string]string{}
	for _, m := range messages(t, e.sink, 0) {
		got[m.to[0]] = m.body
	}
	if s := got["support@provider.example"]; !strings.Contains(s, "grow01") || !strings.Contains(s, "forecast to fill") {
		t.Errorf("support digest lacks the escalation:\n%s", s)
	}
	if c := got["ops@acme.example"]; !strings.Contains(c, "Urgent") || !strings.Contains(c, "LocalDS_0") || strings.Contains(c, "steady") {
		t.Errorf("acme's digest does not say the datastore fills first (or names the steady one):\n%s", c)
	}
}

// TestRenamedVCenterKeepsItsProblems: problems and orphan scans are kept by
// the vCenter's config name; renaming it neither announces its problems
// again nor leaves the old name's orphan files standing beside the new.
func TestRenamedVCenterKeepsItsProblems(t *testing.T) {
	e := newEnv(t, "problems.yaml")
	r := e.runner(t)
	first := cycle(t, r, t0)
	sent := len(e.sink.Messages())

	renameVCenter(t, e, r, "vc-renamed")
	for _, at := range []time.Time{t0.Add(time.Hour), t0.Add(2 * time.Hour)} {
		res := cycle(t, r, at)
		if got := recipients(messages(t, e.sink, sent)); len(got) != 0 {
			t.Errorf("at %s after the rename sent to %v, want nothing new", at, got)
		}
		if len(res.Plan.Problems) != len(first.Plan.Problems) {
			t.Errorf("at %s: %d problems, want the %d from before the rename", at, len(res.Plan.Problems), len(first.Plan.Problems))
		}
		for _, p := range res.Plan.Problems {
			if p.VCenter != "vc-renamed" || !p.FirstSeen.Equal(t0) {
				t.Errorf("at %s: %s %s on %q first seen %s; want the new name and first sight at %s", at, p.Kind, p.Path, p.VCenter, p.FirstSeen, t0)
			}
		}
	}
}
