package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/mailsink"
	"github.com/snapwarden/snapwarden/internal/pgtest"
	"github.com/snapwarden/snapwarden/internal/simfleet"
)

// failoverFleet has two overdue snapshots of a customer whose policy is to
// consolidate them (one at a time, the default), and one of a customer only
// warned.
const failoverFleet = `datacenter: DC0
datastore: {capacity: 1TiB, free: 600GiB}
vms:
  - {name: web01, folder: Customers/acme, tags: {Customer: acme}, snapshots: [{name: old-a, age: 720h, size: 1GiB}]}
  - {name: web02, folder: Customers/acme, tags: {Customer: acme}, snapshots: [{name: old-b, age: 720h, size: 1GiB}]}
  - {name: db01, folder: Customers/initech, tags: {Customer: initech}, snapshots: [{name: old-c, age: 720h, size: 1GiB}]}
`

// cluster is a simulated vCenter, an SMTP sink and a config for serve
// instances sharing one PostgreSQL ledger.
type cluster struct {
	bin, cfg, state string
	sim             *simfleet.Sim
	sink            *mailsink.Sink
}

func newCluster(t testing.TB, extra string) *cluster {
	t.Helper()
	state := pgtest.Schema(t)
	bin, err := buildBinary()
	if err != nil {
		t.Fatalf("go build: %v", err)
	}
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.yaml")
	if err := os.WriteFile(fleet, []byte(failoverFleet), 0o600); err != nil {
		t.Fatal(err)
	}
	sim := simfleet.ForTest(t, fleet, simfleet.Options{Username: "svc@vsphere.local", Password: "pw-123", Now: t0, Dir: dir})
	sink, err := mailsink.Start(mailsink.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	if err := os.WriteFile(filepath.Join(dir, "vc.password"), []byte("pw-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{bin: bin, cfg: filepath.Join(dir, "snapwarden.yaml"), state: state, sim: sim, sink: sink}
	body := fmt.Sprintf(`state: %q
listen: 127.0.0.1:0
schedule: "@every 2s"
log: {level: info, format: json}
vcenters:
%spolicy: {warn_after: 24h, deadline: 48h, reminder_every: 12h, escalate_every: 24h, grace: 12h}
ownership:
  - {tag_category: Customer}
customers:
  - {id: acme, name: ACME Corp, contacts: [ops@acme.example], policy: {action: consolidate}}
  - {id: initech, name: Initech, contacts: [it@initech.example]}
support: {email: support@provider.example}
smtp: {host: 127.0.0.1, port: %d, from: "snapwarden <noreply@provider.example>", tls: none}
%s`, state, vcenterYAML("vc-test", sim.URL, "ca_file: "+sim.CAFile), sink.Port, extra)
	if err := os.WriteFile(c.cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// proc is one running `serve`.
type proc struct {
	cmd  *exec.Cmd
	log  *logWatcher
	base string
}

func (c *cluster) start(t testing.TB) *proc {
	t.Helper()
	cmd := exec.Command(c.bin, "serve", "--config", c.cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	p := &proc{cmd: cmd, log: watchLog(stderr)}
	t.Cleanup(func() {
		if t.Failed() {
			p.log.mu.Lock()
			defer p.log.mu.Unlock()
			for _, l := range p.log.lines {
				t.Logf("pid %d: %v", cmd.Process.Pid, l)
			}
		}
	})
	line, _ := p.log.wait(t, 0, "serving")
	p.base = "http://" + line["listen"].(string)
	return p
}

// httpClient gives up on a process that does not answer (a killed one).
var httpClient = &http.Client{Timeout: 2 * time.Second}

// role asks /healthz; "" when the process does not answer.
func (p *proc) role() string {
	res, err := httpClient.Get(p.base + "/healthz")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	switch {
	case strings.Contains(b.String(), `"role":"leader"`):
		return "leader"
	case strings.Contains(b.String(), `"role":"standby"`):
		return "standby"
	}
	return ""
}

// waitLeader waits up to within for one of procs to say it leads.
func waitLeader(t testing.TB, within time.Duration, procs ...*proc) *proc {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for _, p := range procs {
			if p.role() == "leader" {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond) // polling /healthz
	}
	t.Fatalf("no instance leads within %v", within)
	return nil
}

// until polls cond every 100 ms for up to within.
func until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond) // polling the ledger
	}
}

// Two serve processes share a PostgreSQL ledger. The leader is killed (-9)
// while a consolidation runs, another is due and so is the notice telling
// the customer; the standby takes over
// within 30 s, resumes the consolidations instead of starting them again,
// and delivers every notice exactly once.
func TestFailover(t *testing.T) {
	c := newCluster(t, "enforcement: {mode: enforce, min_notice: 1s}\n")
	for _, vm := range []string{"web01", "web02"} {
		if err := c.sim.SlowRemove(vm, 8*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	a, b := c.start(t), c.start(t)
	leader := waitLeader(t, 30*time.Second, a, b)
	standby := a
	if leader == a {
		standby = b
	}
	if r := standby.role(); r != "standby" {
		t.Fatalf("the other instance is %q, want standby", r)
	}
	// A one-off cycle beside the leader would act twice: refused.
	if _, stderr, code := runCLI(t, "run", "--config", c.cfg); code == 0 || !strings.Contains(stderr, "another snapwarden instance leads") {
		t.Errorf("run beside a leader: exit %d\n%s", code, stderr)
	}

	led, err := ledger.OpenReader(ctx, c.state)
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	// Kill the leader while a removal runs (its task recorded), the other
	// one still due.
	until(t, 60*time.Second, "a consolidation in flight", func() bool {
		run, err := led.Running(ctx)
		return err == nil && len(run) == 1 && run[0].TaskID != ""
	})
	if err := leader.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitLeader(t, 30*time.Second, standby)
	t.Logf("takeover in %v", time.Since(killed).Round(time.Millisecond))

	// The new leader watches the tasks to their end and tells the customer.
	until(t, 60*time.Second, "consolidations finished and every notice delivered", func() bool {
		run, err1 := led.Running(ctx)
		pend, err2 := led.Pending(ctx)
		return err1 == nil && err2 == nil && len(run) == 0 && len(pend) == 0 &&
			c.sim.Removals("web01") > 0 && c.sim.Removals("web02") > 0
	})
	for _, vm := range []string{"web01", "web02"} {
		if n := c.sim.Removals(vm); n != 1 {
			t.Errorf("%s: %d removals, want 1", vm, n)
		}
	}

	// Every notice of the ledger reached the sink once.
	conn, err := pgx.Connect(ctx, c.state)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT message_id, state, kind FROM notices WHERE channel = 'email'`)
	if err != nil {
		t.Fatal(err)
	}
	queued := map[string]string{}
	kinds := map[string]int{}
	for rows.Next() {
		var id, state, kind string
		if err := rows.Scan(&id, &state, &kind); err != nil {
			t.Fatal(err)
		}
		queued[id] = state
		kinds[kind]++
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	delivered := map[string]int{}
	for _, m := range c.sink.Messages() {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		delivered[msg.Header.Get("Message-Id")]++
	}
	for id, state := range queued {
		if state != ledger.StateSent || delivered[id] != 1 {
			t.Errorf("notice %s: %s, delivered %d times; want sent once", id, state, delivered[id])
		}
	}
	for id, n := range delivered {
		if _, ok := queued[id]; !ok {
			t.Errorf("delivered %s (%d times), which the ledger never queued", id, n)
		}
	}
	if kinds[ledger.KindAction] == 0 {
		t.Errorf("no customer was told of a consolidation: %v", kinds)
	}
}

// BenchmarkTakeover kills the leader (-9) once per iteration, between and
// during cycles, and reports how long until the standby leads (its /healthz
// says so); a new standby replaces the dead leader. -benchtime 10x for the
// README's figure.
func BenchmarkTakeover(b *testing.B) {
	c := newCluster(b, "")
	procs := []*proc{c.start(b), c.start(b)}
	leader := waitLeader(b, 30*time.Second, procs...)
	var total, worst time.Duration
	n := 0
	for b.Loop() {
		standby := procs[0]
		if standby == leader {
			standby = procs[1]
		}
		if err := leader.cmd.Process.Kill(); err != nil {
			b.Fatal(err)
		}
		killed := time.Now()
		waitLeader(b, 30*time.Second, standby)
		took := time.Since(killed)
		total, worst, n = total+took, max(worst, took), n+1
		leader, procs = standby, []*proc{standby, c.start(b)}
	}
	b.ReportMetric(total.Seconds()/float64(n), "s/takeover")
	b.ReportMetric(worst.Seconds(), "s-worst")
}
