package cycle

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// told lists the decoded plain-text bodies delivered to addr since message from.
func told(t *testing.T, e *env, from int, addr string) []string {
	t.Helper()
	var out []string
	for _, m := range messages(t, e.sink, from) {
		for _, to := range m.to {
			if to == addr {
				out = append(out, partOf(t, m, "text/plain"))
			}
		}
	}
	return out
}

func mentions(bodies []string, s string) bool {
	for _, b := range bodies {
		if strings.Contains(b, s) {
			return true
		}
	}
	return false
}

func decisionOf(t *testing.T, res *Result, vm, snapshot string) plan.Decision {
	t.Helper()
	for _, d := range res.Plan.Decisions {
		if d.Snapshot.VM.Name == vm && d.Snapshot.Name == snapshot {
			return d
		}
	}
	t.Fatalf("no decision for %s/%s", vm, snapshot)
	return plan.Decision{}
}

func committed(res *Result, snapshot string) bool {
	for _, o := range res.Outcomes {
		if o.Result == "success" && o.Decision.Snapshot.Name == snapshot {
			return true
		}
	}
	return false
}

// A VM whose overdue snapshot was warned about to one customer and then
// handed to another (a consolidate customer) is not committed on the first
// owner's notice: the new owner is told first, with the earliest commit
// time, and the clock starts then.
func TestMovedVMStartsTheClockAgain(t *testing.T) {
	e := newEnv(t, "small.yaml")
	e.cfg.Enforcement.Mode = "enforce"
	if err := e.sim.SetSnapshotCreated("db01", "schema-v2", t0.Add(-100*time.Hour)); err != nil {
		t.Fatal(err)
	}
	r := e.runner(t)
	cycle(t, r, t0)
	if !mentions(told(t, e, 0, "it@initech.example"), "schema-v2") {
		t.Fatal("initech, the owner at t0, was not told of schema-v2")
	}

	// db01 goes to globex (its Customer attribute, the rule before folders).
	if err := e.sim.SetAttribute("db01", "Customer", "globex"); err != nil {
		t.Fatal(err)
	}
	n := len(e.sink.Messages())
	at := t0.Add(time.Hour)
	res := cycle(t, r, at)
	if committed(res, "schema-v2") {
		t.Fatal("schema-v2 was committed on the previous owner's notice; its new owner was never told")
	}
	d := decisionOf(t, res, "db01", "schema-v2")
	if d.Customer != "globex" || d.CustomerNotice != plan.ActionWarn || d.Reason != plan.ReasonOwnerChanged ||
		!strings.Contains(d.Why, `owner changed from "initech"`) {
		t.Errorf("after the move: customer %q notice %s reason %s why %q; want a first notice to globex saying the owner changed from initech",
			d.Customer, d.CustomerNotice, d.Reason, d.Why)
	}
	commitAt := at.Add(e.cfg.Enforcement.MinNotice)
	if !d.CommitAt.Equal(commitAt) {
		t.Errorf("commit at %s, want %s (min_notice after the new owner's first notice)", d.CommitAt, commitAt)
	}
	if got := told(t, e, n, "noc@globex.example"); !mentions(got, "schema-v2") ||
		!mentions(got, "no earlier than "+commitAt.Format("2006-01-02 15:04 UTC")) {
		t.Errorf("globex's first notice lacks schema-v2 or its commit time %s:\n%s", commitAt, strings.Join(got, "\n---\n"))
	}
	if res := cycle(t, r, commitAt.Add(-time.Minute)); committed(res, "schema-v2") {
		t.Fatal("committed before min_notice passed since the new owner's notice")
	}
	if res := cycle(t, r, commitAt); !committed(res, "schema-v2") {
		t.Errorf("schema-v2 not committed min_notice after globex was told: %+v", decisionOf(t, res, "db01", "schema-v2"))
	}
}

// A snapshot whose owner was unknown went to support; once a consolidate
// customer owns it, that relay is no warning: the customer is told first.
func TestSupportRelayIsNoWarning(t *testing.T) {
	e := newEnv(t, "small.yaml")
	e.cfg.Enforcement.Mode = "enforce"
	if err := e.sim.SetSnapshotCreated("lab01", "scratch", t0.Add(-100*time.Hour)); err != nil {
		t.Fatal(err)
	}
	r := e.runner(t)
	cycle(t, r, t0)
	if !mentions(told(t, e, 0, "support@provider.example"), "scratch") {
		t.Fatal("support was not told of the unowned snapshot")
	}
	if err := e.sim.SetAttribute("lab01", "Customer", "globex"); err != nil {
		t.Fatal(err)
	}
	n := len(e.sink.Messages())
	res := cycle(t, r, t0.Add(time.Hour))
	if committed(res, "scratch") {
		t.Fatal("scratch was committed although only support had been told")
	}
	if d := decisionOf(t, res, "lab01", "scratch"); d.CustomerNotice != plan.ActionWarn || d.Customer != "globex" {
		t.Errorf("now owned by globex: notice %s to %q, want a first notice to globex", d.CustomerNotice, d.Customer)
	}
	if !mentions(told(t, e, n, "noc@globex.example"), "scratch") {
		t.Error("globex was not told of scratch")
	}
}

// A customer missing from the directory gets nothing (support does); once
// added with action consolidate, its first notice starts the clock.
func TestNewCustomerIsToldFirst(t *testing.T) {
	e := newEnv(t, "small.yaml")
	e.cfg.Enforcement.Mode = "enforce"
	if err := e.sim.SetSnapshotCreated("lab01", "scratch", t0.Add(-100*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetAttribute("lab01", "Customer", "umbrella"); err != nil {
		t.Fatal(err)
	}
	r := e.runner(t)
	cycle(t, r, t0)
	if !mentions(told(t, e, 0, "support@provider.example"), "scratch") {
		t.Fatal("support was not told of the snapshot of a customer missing from the directory")
	}
	cfg := *e.cfg
	cfg.Customers = append(slices.Clone(cfg.Customers), config.Customer{ID: "umbrella", Name: "Umbrella",
		Contacts: []string{"it@umbrella.example"}, Policy: cfg.PolicyFor("globex")})
	if err := r.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	n := len(e.sink.Messages())
	res := cycle(t, r, t0.Add(time.Hour))
	if committed(res, "scratch") {
		t.Fatal("scratch was committed on support's notice, before its new customer was told")
	}
	if !mentions(told(t, e, n, "it@umbrella.example"), "scratch") {
		t.Error("the new customer was not told of scratch")
	}
}

// A VM with two tags in the owner category is disputed: neither customer is
// told, support is (once per escalate_every), nothing is committed.
func TestDisputedOwner(t *testing.T) {
	e := newEnv(t, "small.yaml")
	e.cfg.Enforcement.Mode = "enforce"
	// web01 is acme's by tag; a globex tag (a consolidate customer) joins it.
	if err := e.sim.AttachTag("web01", "Customer", "globex"); err != nil {
		t.Fatal(err)
	}
	r := e.runner(t)
	res := cycle(t, r, t0)
	for _, s := range []string{"before-upgrade", "after-config"} {
		d := decisionOf(t, res, "web01", s)
		if d.Customer != "" || d.Reason != plan.ReasonOwnerDisputed || !d.EscalateNow || d.CustomerNotice != plan.ActionNone ||
			!strings.Contains(d.Why, `"acme" and "globex"`) {
			t.Errorf("%s: customer %q reason %s escalate %v notice %s why %q; want disputed between acme and globex, support told",
				s, d.Customer, d.Reason, d.EscalateNow, d.CustomerNotice, d.Why)
		}
	}
	for _, to := range []string{"ops@acme.example", "noc@globex.example"} {
		if got := told(t, e, 0, to); mentions(got, "before-upgrade") || mentions(got, "after-config") {
			t.Errorf("%s was told of a disputed VM's snapshot", to)
		}
	}
	if got := told(t, e, 0, "support@provider.example"); !mentions(got, "owner disputed") || !mentions(got, "Customer:  disputed: acme or globex") {
		t.Errorf("support was not told of the dispute and its candidates:\n%s", strings.Join(got, "\n---\n"))
	}
	n := len(e.sink.Messages())
	cycle(t, r, t0.Add(time.Hour))
	if got := told(t, e, n, "support@provider.example"); mentions(got, "owner disputed") {
		t.Error("support was told of the dispute again before escalate_every")
	}
	// Long past deadline + grace and min_notice for either customer.
	res = cycle(t, r, t0.Add(100*time.Hour))
	if committed(res, "before-upgrade") || committed(res, "after-config") {
		t.Fatal("a disputed VM's snapshot was committed")
	}
}

// A create time in the future (2099) counts age from first sight: support
// is told once, and the customer in time, instead of "ok" for ever.
func TestClockSkewCountsFromFirstSight(t *testing.T) {
	e := newEnv(t, "small.yaml")
	if err := e.sim.SetSnapshotCreated("app01", "hotfix-b", time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	r := e.runner(t)
	res := cycle(t, r, t0)
	if d := decisionOf(t, res, "app01", "hotfix-b"); d.Reason != plan.ReasonClockSkew || !d.EscalateNow {
		t.Errorf("first sight: %s escalate %v, want support told of clock skew", d.Reason, d.EscalateNow)
	}
	if !mentions(told(t, e, 0, "support@provider.example"), "2099-01-01T00:00:00Z is in the future") {
		t.Error("support's digest does not name the future create time")
	}
	n := len(e.sink.Messages())
	res = cycle(t, r, t0.Add(time.Hour))
	if d := decisionOf(t, res, "app01", "hotfix-b"); d.EscalateNow || mentions(told(t, e, n, "support@provider.example"), "2099") {
		t.Error("support was told of the clock skew again")
	}
	n = len(e.sink.Messages())
	res = cycle(t, r, t0.Add(25*time.Hour))
	if d := decisionOf(t, res, "app01", "hotfix-b"); d.Verdict.State.String() != "warning" || d.CustomerNotice != plan.ActionWarn {
		t.Errorf("25h after first sight: %s, notice %s; want warning and a first notice", d.Verdict.State, d.CustomerNotice)
	}
	if !mentions(told(t, e, n, "noc@globex.example"), "hotfix-b") {
		t.Error("globex was not told of its skewed snapshot once it aged past warn_after")
	}
}
