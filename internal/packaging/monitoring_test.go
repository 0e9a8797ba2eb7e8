package packaging

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/cycle"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/service"
)

var (
	alertsFile     = filepath.Join(root, "configs", "prometheus", "alerts.yaml")
	alertTestsFile = filepath.Join(root, "configs", "prometheus", "alerts_test.yaml")
	dashboardFile  = filepath.Join(root, "configs", "grafana", "snapwarden.json")
)

// awaited are metrics the rules and the dashboard use before the service
// exports them; they may be missing from /metrics, every other name may not.
var awaited = map[string]string{
	"snapwarden_leader": "1 on the instance holding the PostgreSQL leader lock (high availability)",
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	return rf
}

// The alerts the issue asks for, each with a severity, a summary and a
// description, each proven by a firing case in alerts_test.yaml; promtool
// (Debian's prometheus package) parses the rules and runs those tests.
func TestAlertRules(t *testing.T) {
	rf := readRules(t)
	var names []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			if r.Alert == "" || strings.TrimSpace(r.Expr) == "" {
				t.Errorf("group %s: a rule without alert name or expr: %+v", g.Name, r)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", r.Alert)
			}
		}
	}
	want := []string{"SnapwardenConsolidationFailures", "SnapwardenMetricsMissing", "SnapwardenNoLeader", "SnapwardenNoSuccessfulCycle",
		"SnapwardenNoticesFailing", "SnapwardenOutboxBacklogGrowing", "SnapwardenOverdueBytes", "SnapwardenVCenterErrors"}
	sort.Strings(names)
	if !slices.Equal(names, want) {
		t.Errorf("alerts %q, want %q", names, want)
	}

	tests, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	var tf struct {
		Tests []struct {
			Alerts []struct {
				Name string `yaml:"alertname"`
				Exp  []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(tests, &tf); err != nil {
		t.Fatalf("%s: %v", alertTestsFile, err)
	}
	fires := map[string]bool{}
	for _, tc := range tf.Tests {
		for _, a := range tc.Alerts {
			fires[a.Name] = fires[a.Name] || len(a.Exp) > 0
		}
	}
	for _, n := range names {
		if !fires[n] {
			t.Errorf("%s: no case in %s where it fires", n, alertTestsFile)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install --no-install-recommends prometheus; .ci/run does): the rules are not parsed nor unit-tested")
	}
	for _, args := range [][]string{{"check", "rules", alertsFile}, {"test", "rules", alertTestsFile}} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	return d
}

// The dashboard shows what the issue lists, every panel on the chosen
// Prometheus, within Grafana's 24-column grid, with a query.
func TestDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q uid %q: both needed", d.Title, d.UID)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] || !vars["job"] {
		t.Errorf("template variables %v, want datasource and job", vars)
	}
	ids := map[int]bool{}
	titles := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		titles[p.Title] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %q, want the ${datasource} variable", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" || !strings.Contains(q.Expr, `job=~"$job"`) {
				t.Errorf("panel %q query %s: empty or not filtered by $job: %q", p.Title, q.RefID, q.Expr)
			}
		}
	}
	for i, a := range d.Panels {
		for _, b := range d.Panels[:i] {
			ga, gb := a.GridPos, b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				t.Errorf("panels %q and %q overlap: %+v %+v", a.Title, b.Title, ga, gb)
			}
		}
	}
	for _, want := range []string{"Cycles by result", "Cycle duration", "Snapshots by state", "Bytes by state", "Notices sent",
		"Notices failed", "Outbox backlog", "Consolidations by result"} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
}

var metricRE = regexp.MustCompile(`\bsnapwarden_[a-z0-9_]+`)

// Every snapwarden_* name in the rules and the dashboard is served on
// /metrics (or awaited), so renaming a metric breaks this test, not an alert
// in production.
func TestMonitoringMetricsExist(t *testing.T) {
	used := map[string][]string{}
	note := func(expr, where string) {
		for _, m := range metricRE.FindAllString(expr, -1) {
			if !slices.Contains(used[m], where) {
				used[m] = append(used[m], where)
			}
		}
	}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			note(r.Expr, "alert "+r.Alert)
		}
	}
	d := readDashboard(t)
	for _, p := range d.Panels {
		for _, q := range p.Targets {
			note(q.Expr, "panel "+p.Title)
		}
	}
	for _, v := range d.Templating.List {
		note(v.Definition, "variable "+v.Name)
	}
	if len(used) < 10 {
		t.Fatalf("only %d metric names found in the rules and the dashboard: %v", len(used), used)
	}
	served := scrapeMetricNames(t, func(served map[string]bool) bool {
		for m := range used {
			if !served[m] && awaited[m] == "" {
				return false
			}
		}
		return true
	})
	for m, where := range used {
		switch {
		case served[m]:
		case awaited[m] != "":
			t.Logf("%s (%s) is not served yet; used by %s", m, awaited[m], strings.Join(where, ", "))
		default:
			t.Errorf("%s is not served on /metrics but %s use it", m, strings.Join(where, ", "))
		}
	}
	for m := range awaited {
		if served[m] {
			t.Logf("%s is served now: remove it from awaited", m)
		}
	}
}

// oneOfEach is a cycle result that puts a value in every series the service
// exports, so each labelled family shows on /metrics.
type oneOfEach struct{}

func (oneOfEach) Cycle(_ context.Context, now time.Time) (*cycle.Result, error) {
	return &cycle.Result{
		Started: now,
		Plan:    &plan.Plan{At: now, VCenters: 2, Decisions: []plan.Decision{{}}, Errors: []facts.VCenterError{{VCenter: "vc-east", Error: "down"}}},
		Sent:    map[string]int{"warn": 1},
		Failed:  map[string]int{"warn": 1},
		Actions: map[string]int{"error": 1},
	}, nil
}
func (oneOfEach) Reload(*config.Config) error { return nil }
func (oneOfEach) Close(context.Context) error { return nil }

// scrapeMetricNames runs the service and returns the names on its /metrics
// (a histogram's with _bucket, _sum and _count) once done says they are all
// there, or after 10 seconds: families show before the first cycle ends
// (counters start at zero), so no single name says the cycle was observed.
func scrapeMetricNames(t *testing.T, done func(map[string]bool) bool) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	stopped := make(chan error, 1)
	cfg := &config.Config{File: "snapwarden.yaml", Schedule: "@every 1h", Listen: "127.0.0.1:0"}
	go func() {
		stopped <- service.Serve(ctx, cfg, oneOfEach{}, service.Options{Log: zerolog.Nop(), Ready: func(a string) { addr <- a }})
	}()
	defer func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a + "/metrics"
	case err := <-stopped:
		t.Fatalf("serve: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		names := metricNames(t, url)
		if done(names) || time.Now().After(deadline) {
			return names
		}
		time.Sleep(10 * time.Millisecond) // polling for the first cycle's series, not waiting for a deadline
	}
}

func metricNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(res.Body, 1<<20))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		names[f[2]] = true
		if f[3] == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f[2]+s] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}
