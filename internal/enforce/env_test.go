package enforce_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/cycle"
	"github.com/snapwarden/snapwarden/internal/enforce"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/simfleet"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

// t0 is the fleet's now: snapshot ages count back from it.
var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const (
	user = "svc@vsphere.local"
	pass = "pw"
)

// env is a simulated vCenter, a config whose customer acme consolidates,
// a ledger and a planner: everything a cycle's act stage has.
type env struct {
	dir     string
	sim     *simfleet.Sim
	cfg     *config.Config
	pool    *vsphere.Pool
	led     *ledger.Ledger
	planner *cycle.Planner
}

func newEnv(t *testing.T, fleetFile string) *env {
	t.Helper()
	f, err := simfleet.Load(filepath.Join("testdata", fleetFile))
	if err != nil {
		t.Fatal(err)
	}
	return newEnvFleet(t, f, t0)
}

func newEnvFleet(t *testing.T, f *simfleet.Fleet, now time.Time) *env {
	t.Helper()
	dir := t.TempDir()
	// One VM at a time: vcsim races with itself when one VM is created
	// while another's snapshots are, and these fleets are small.
	sim, err := simfleet.Start(context.Background(), f, simfleet.Options{Username: user, Password: pass, Now: now, Dir: dir, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	// The extensions go in before the first call of the code under test.
	sim.Extend()
	path := filepath.Join(dir, "snapwarden.yaml")
	body := fmt.Sprintf(`state: ledger.db
vcenters:
  - {name: vc-test, url: %q, username: %s, password: %s, ca_file: %s}
policy: {warn_after: 24h, deadline: 48h, reminder_every: 12h, escalate_every: 24h, grace: 12h}
ownership:
  - {tag_category: Customer}
customers:
  - {id: acme, name: ACME Corp, contacts: [ops@acme.example], policy: {action: consolidate}}
  - {id: initech, name: Initech, contacts: [it@initech.example]}
support: {email: support@provider.example}
smtp: {host: 127.0.0.1, port: 2525, from: "snapwarden <noreply@provider.example>", tls: none}
enforcement: {mode: enforce, max_per_run: 100, max_concurrent: 2, min_free_percent: 10, max_attempts: 3, task_timeout: 1m, min_notice: 1h}
`, sim.URL, user, pass, sim.CAFile)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	planner, err := cycle.NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, sim: sim, cfg: cfg, planner: planner}
	e.open(t)
	return e
}

// open starts a "process": a ledger and vCenter sessions.
func (e *env) open(t *testing.T) {
	t.Helper()
	led, err := ledger.Open(context.Background(), filepath.Join(e.dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	pool := vsphere.NewPool(e.cfg.VCenters, vsphere.Options{})
	e.led, e.pool = led, pool
	t.Cleanup(func() { e.close() })
}

// close ends the "process", as a restart does.
func (e *env) close() {
	if e.pool != nil {
		_ = e.pool.Close(context.Background())
		e.pool = nil
	}
	if e.led != nil {
		_ = e.led.Close()
		e.led = nil
	}
}

func (e *env) restart(t *testing.T) {
	t.Helper()
	e.close()
	e.open(t)
}

// collect reads the simulated vCenter as a cycle does.
func (e *env) collect(t *testing.T) *facts.Inventory {
	t.Helper()
	inv, err := cycle.Collect(context.Background(), e.pool, e.led)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Errors) > 0 {
		t.Fatalf("collect: %v", inv.Errors)
	}
	return inv
}

// warn records a cycle at `at` that saw every snapshot and delivered a warn
// notice about each to its customer: what makes History.WarnedAt.
func (e *env) warn(t *testing.T, at time.Time, only func(facts.Snapshot) bool) {
	t.Helper()
	ctx := context.Background()
	inv := e.collect(t)
	rec := ledger.Record{Started: at, Finished: at, Mode: "enforce", Answered: []string{"vc-test"}}
	var items []ledger.Item
	for _, s := range inv.Snapshots {
		rec.Snapshots = append(rec.Snapshots, ledger.Seen{Key: s.Key(), VCenter: s.VM.VCenter, VM: s.VM.Name, VMMoRef: s.VM.MoRef,
			Snapshot: s.Name, SizeBytes: s.SizeBytes})
		if only == nil || only(s) {
			items = append(items, ledger.Item{Key: s.Key(), Action: "warn", Reason: "first-notice"})
		}
	}
	if len(items) > 0 {
		rec.Notices = []ledger.Notice{{MessageID: fmt.Sprintf("<warn-%d@test>", at.UnixNano()), Channel: "email", Kind: "customer",
			Customer: "acme", Recipients: []string{"ops@acme.example"}, Subject: "warn", Body: []byte("warn"), Items: items, CreatedAt: at}}
	}
	if _, err := e.led.Record(ctx, rec); err != nil {
		t.Fatal(err)
	}
	pending, err := e.led.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range pending {
		for _, d := range n.Deliveries {
			if err := e.led.Sending(ctx, n.ID, d.Address, at); err != nil {
				t.Fatal(err)
			}
			if err := e.led.MarkRecipientSent(ctx, n.ID, d.Address, at); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// plan collects and plans at now, as `report` would show it.
func (e *env) plan(t *testing.T, now time.Time) *plan.Plan {
	t.Helper()
	p, err := e.planner.Plan(context.Background(), e.collect(t), e.led, now)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// executor has a fixed clock: no test waits for a deadline.
func (e *env) executor(now time.Time) *enforce.Executor {
	return &enforce.Executor{Pool: e.pool, Ledger: e.led, Log: zerolog.Nop(), Now: func() time.Time { return now }}
}

func settings() enforce.Settings {
	return enforce.Settings{Mode: "enforce", MaxConcurrent: 2, MinFreePercent: 10, TaskTimeout: time.Minute}
}

// due lists "vm/snapshot" of the plan's due consolidations.
func due(p *plan.Plan) []string {
	var out []string
	for _, d := range p.Decisions {
		if d.Action == plan.ActionConsolidate && d.Due {
			out = append(out, d.Snapshot.VM.Name+"/"+d.Snapshot.Name)
		}
	}
	sort.Strings(out)
	return out
}

// present lists "vm/snapshot" of every snapshot vCenter has now.
func (e *env) present(t *testing.T) map[string]facts.Snapshot {
	t.Helper()
	out := map[string]facts.Snapshot{}
	for _, s := range e.collect(t).Snapshots {
		out[s.VM.Name+"/"+s.Name] = s
	}
	return out
}

// actions are the ledger's action events, by "vm/snapshot".
func (e *env) actions(t *testing.T) map[string][]ledger.Event {
	t.Helper()
	evs, err := e.led.Audit(context.Background(), ledger.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]ledger.Event{}
	for _, ev := range evs {
		if ev.Kind == ledger.EventAction {
			out[ev.VM+"/"+ev.Snapshot] = append(out[ev.VM+"/"+ev.Snapshot], ev)
		}
	}
	return out
}

// byName indexes outcomes by "vm/snapshot kind".
func byName(out []enforce.Outcome) map[string]enforce.Outcome {
	m := map[string]enforce.Outcome{}
	for _, o := range out {
		m[o.Decision.Snapshot.VM.Name+"/"+o.Decision.Snapshot.Name+" "+o.Kind] = o
	}
	return m
}

func describe(out []enforce.Outcome) string {
	var b strings.Builder
	for _, o := range out {
		fmt.Fprintf(&b, "\n  %s/%s %s: %s %s %q task=%s fault=%q", o.Decision.Snapshot.VM.Name, o.Decision.Snapshot.Name,
			o.Kind, o.Result, o.Reason, o.Detail, o.TaskID, o.Fault)
	}
	return b.String()
}

// history returns the ledger's History of one snapshot by "vm/snapshot".
func (e *env) history(t *testing.T, p *plan.Plan, name string) plan.History {
	t.Helper()
	hist, err := e.led.History(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range p.Decisions {
		if d.Snapshot.VM.Name+"/"+d.Snapshot.Name == name {
			return hist[d.Snapshot.Key()]
		}
	}
	t.Fatalf("no snapshot %s in the plan", name)
	return plan.History{}
}
