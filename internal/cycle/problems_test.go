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
