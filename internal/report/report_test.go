package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
)

var update = flag.Bool("update", false, "rewrite golden files")

var (
	testAt        = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	testGenerated = testAt.Add(90 * time.Second)
)

const gib = 1 << 30

// decision builds one decision of a snapshot of vm created age ago.
func decision(vm *facts.VM, id, name string, age time.Duration, size int64, customer string, state policy.State,
	detail string, action plan.Action, due bool, at time.Time) plan.Decision {
	created := testAt.Add(-age)
	return plan.Decision{
		Item: plan.Item{
			Snapshot: facts.Snapshot{
				VM: vm, ID: id, Name: name, Created: created, Depth: 1, SizeBytes: size,
			},
			Customer: customer,
			Verdict: policy.Verdict{
				State: state, Detail: detail, Age: age,
				WarnAt: created.Add(24 * time.Hour), DeadlineAt: created.Add(48 * time.Hour),
				ActAt: created.Add(60 * time.Hour),
			},
		},
		History: plan.History{FirstSeen: created.Add(10 * time.Minute)},
		Action:  action,
		Due:     due,
		At:      at,
	}
}

// testPlan covers every state, hostile names and a vCenter error.
func testPlan() *plan.Plan {
	web := &facts.VM{VCenter: "vc-east", Datacenter: "DC0", Name: "web01", MoRef: "vm-10",
		InstanceUUID: "5003a1b2-0000-0000-0000-000000000010", Folder: "/DC0/vm/Customers/acme", PowerState: "poweredOn"}
	hostile := &facts.VM{VCenter: "vc-east", Datacenter: "DC0", Name: "<script>alert(1)</script>", MoRef: "vm-11",
		InstanceUUID: "5003a1b2-0000-0000-0000-000000000011", Folder: "/DC0/vm/Customers/initech", PowerState: "poweredOff"}
	db := &facts.VM{VCenter: "vc-east", Datacenter: "DC1", Name: "db01", MoRef: "vm-12",
		InstanceUUID: "5003a1b2-0000-0000-0000-000000000012", Folder: "/DC1/vm/Unsorted", PowerState: "poweredOn"}

	escalate := decision(web, "snapshot-1", "before-upgrade", 50*time.Hour+30*time.Minute, gib, "acme",
		policy.StateOverdue, "age 50.5h >= deadline 48h", plan.ActionEscalate, true, testAt)
	escalate.Snapshot.Creator = "alice@vsphere.local"
	escalate.Snapshot.Description = "before the 2.4 upgrade"
	escalate.Reason = plan.ReasonDeadlinePassed
	escalate.Why = "the deadline passed: support takes over"
	escalate.History.CustomerNotices = 2
	escalate.History.LastCustomerNotice = testAt.Add(-14 * time.Hour)
	rate, projected := float64(gib)/3, int64(gib)
	escalate.Growth = plan.SnapshotGrowth{BytesPerHour: &rate, ProjectedAtDeadline: &projected}

	blocked := decision(hostile, "snapshot-2", `=HYPERLINK("http://x")`, 80*time.Hour, 2*gib, "initech",
		policy.StateOverdue, "age 80.0h >= deadline 48h", plan.ActionBlocked, true, testAt)
	blocked.Snapshot.Description = "<img src=x onerror=alert(1)> | `rm -rf` *bold* [link](http://x)"
	blocked.History.Creator = "bob@corp"
	blocked.Reason = plan.ReasonGuardWindow
	blocked.Why = "consolidation is due but outside the maintenance window"

	remind := decision(web, "snapshot-3", "patch\r\nBcc: x", 30*time.Hour, gib, "acme",
		policy.StateWarning, "age 30.0h >= warn_after 24h", plan.ActionRemind, false, testAt.Add(5*time.Hour))
	remind.Snapshot.Depth = 2
	remind.Snapshot.Current = true
	remind.Snapshot.Description = "line one\nline two\x1b[31m red"
	remind.Reason = plan.ReasonNotYetDue
	remind.Why = "a reminder follows 12h after the last notice"

	long := decision(db, "snapshot-4", strings.Repeat("very-long-snapshot-name-", 8)+"12345678", 2*time.Hour, 10<<20, "",
		policy.StateOK, "age 2.0h < warn_after 24h", plan.ActionWarn, false, testAt.Add(22*time.Hour))
	long.Reason = plan.ReasonNotYetDue
	long.Why = "the first notice goes out at warn_after; the owner is unknown, so support is told"

	managed := decision(db, "snapshot-5", "VEEAM BACKUP TEMPORARY SNAPSHOT", 3*time.Hour, 5*gib, "",
		policy.StateManaged, "name matches VEEAM BACKUP TEMPORARY SNAPSHOT*", plan.ActionNone, false, time.Time{})
	managed.Reason = plan.ReasonNothingToDo
	managed.Why = "backup software owns this snapshot"

	exempt := decision(web, "snapshot-6", "golden image", 100*time.Hour, 512, "acme",
		policy.StateExempt, "keep-until=2026-12-20 holds", plan.ActionWarn, false,
		time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC))
	exempt.Snapshot.Description = "keep-until=2026-12-20"
	exempt.Reason = plan.ReasonNotYetDue
	exempt.Why = "the exemption ends on 2026-12-20"

	return &plan.Plan{
		At:   testAt,
		Mode: "dry-run",
		VMs:  4,
		// Deliberately not in report order.
		Decisions: []plan.Decision{long, managed, exempt, remind, escalate, blocked},
		Errors: []facts.VCenterError{{VCenter: "vc-west",
			Error: "Post \"https://vc-west.example.net/sdk\": dial tcp 10.0.0.9:443: connect: connection refused"}},
		Problems: testProblems(web, hostile),
		Datastores: []plan.DatastoreGrowth{
			{VCenter: "vc-east", Name: "ds1", Capacity: 100 * gib, Free: 8 * gib, SnapshotBytes: 4 * gib,
				BytesPerHour: float64(gib) / 3, FullAt: testAt.Add(24 * time.Hour)},
			{VCenter: "vc-east", Name: "ds2", Capacity: 100 * gib, Free: 50 * gib, SnapshotBytes: 5 * gib},
		},
	}
}

// testProblems has one problem of each kind: a new one, older ones, a
// hostile VM name and an orphan file whose name is a formula.
func testProblems(web, hostile *facts.VM) []plan.Problem {
	return []plan.Problem{
		{Problem: facts.Problem{Kind: facts.ConsolidationNeeded, VCenter: "vc-east", Datacenter: "DC0", VM: hostile,
			Detail: "runtime.consolidationNeeded is set"}, Customer: "initech", FirstSeen: testAt.Add(-30 * time.Hour),
			Fix: plan.Fix{Action: plan.ActionConsolidate, Due: true, At: testAt, Why: "consolidate the VM's disks (ConsolidateVMDisks_Task)"}},
		{Problem: facts.Problem{Kind: facts.PhantomDelta, VCenter: "vc-east", Datacenter: "DC0", VM: web, Datastore: "ds1",
			Path: "[ds1] web01/web01-000002.vmdk", SizeBytes: 3 * gib, Detail: "no snapshot, but the disk runs on 1 delta file"},
			Customer: "acme", FirstSeen: testAt},
		{Problem: facts.Problem{Kind: facts.OrphanFile, VCenter: "vc-east", Datacenter: "DC0", Datastore: "ds1",
			Path: "[ds1] gone/=cmd|' /C calc'!A0-000001.vmdk", SizeBytes: 5 * gib, Detail: "no registered VM references this file"},
			FirstSeen: testAt.Add(-100 * time.Hour)},
		{Problem: facts.Problem{Kind: facts.ChainTooDeep, VCenter: "vc-east", Datacenter: "DC0", VM: web, SizeBytes: 2 * gib,
			Detail: "snapshot \"patch\" is 4 deep, more than max_depth 3"}, Customer: "acme", FirstSeen: testAt.Add(-2 * time.Hour)},
	}
}

var goldenFiles = map[Format]string{Table: "report.txt", JSON: "report.json", CSV: "report.csv", Markdown: "report.md",
	HTML: "report.html"}

func render(t testing.TB, f Format, p *plan.Plan, opt Options) string {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, f, p, opt); err != nil {
		t.Fatalf("Render(%s): %v", f, err)
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	for f, name := range goldenFiles {
		t.Run(f.String(), func(t *testing.T) {
			got := render(t, f, testPlan(), Options{GeneratedAt: testGenerated})
			path := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/report -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from %s (run go test ./internal/report -update and review the diff):\n%s",
					f, path, got)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for _, f := range []Format{Table, JSON, CSV, Markdown, HTML} {
		got, err := ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f.String(), got, err)
		}
	}
	if got, err := ParseFormat("md"); err != nil || got != Markdown {
		t.Errorf(`ParseFormat("md") = %v, %v`, got, err)
	}
	_, err := ParseFormat("xml")
	if err == nil {
		t.Fatal(`ParseFormat("xml") succeeded`)
	}
	for _, name := range []string{"table", "json", "csv", "markdown", "html"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if err := Render(&bytes.Buffer{}, Format(42), testPlan(), Options{}); err == nil {
		t.Error("Render with an unknown format succeeded")
	}
}

func TestTableWidth(t *testing.T) {
	for _, width := range []int{0, 120, 80, 40} {
		limit := width
		if limit == 0 {
			limit = 120
		}
		out := render(t, Table, testPlan(), Options{Width: width})
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if n := utf8.RuneCountInString(line); n > limit {
				t.Errorf("width %d: line has %d runes: %q", width, n, line)
			}
			if strings.ContainsAny(line, "\r\t\x1b") {
				t.Errorf("width %d: line has control characters: %q", width, line)
			}
		}
	}
	out := strings.Join(strings.Fields(render(t, Table, testPlan(), Options{})), " ")
	for _, want := range []string{"…", "escalate now", "remind in 5h", "warn 12-20 00:00", "50.5h", "3.3d",
		"1.0 GiB", "6 snapshots: 2 overdue (3.0 GiB)", "; 1 vCenter error", "error: vcenter vc-west: "} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestEmpty(t *testing.T) {
	for _, p := range []*plan.Plan{nil, {At: testAt}} {
		if out := render(t, Table, p, Options{}); out != "no snapshots\n" {
			t.Errorf("empty table = %q", out)
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(render(t, JSON, p, Options{})), &doc); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"snapshots", "errors"} {
			if _, ok := doc[key].([]any); !ok {
				t.Errorf("empty JSON %s = %#v, want an array", key, doc[key])
			}
		}
	}
}

// contractRow is a snapshot of the JSON report contract.
type contractRow struct {
	VCenter      string  `json:"vcenter"`
	Datacenter   string  `json:"datacenter"`
	VM           string  `json:"vm"`
	VMUUID       string  `json:"vm_uuid"`
	Folder       string  `json:"folder"`
	Snapshot     string  `json:"snapshot"`
	SnapshotID   string  `json:"snapshot_id"`
	Description  string  `json:"description"`
	Created      string  `json:"created"`
	AgeHours     float64 `json:"age_hours"`
	SizeBytes    int64   `json:"size_bytes"`
	Depth        int     `json:"depth"`
	Customer     string  `json:"customer"`
	Creator      string  `json:"creator"`
	State        string  `json:"state"`
	Reason       string  `json:"reason"`
	Deadline     string  `json:"deadline"`
	NextAction   string  `json:"next_action"`
	NextActionAt string  `json:"next_action_at"`
}

// contract is the JSON report contract of docs/report.md.
type contract struct {
	GeneratedAt string        `json:"generated_at"`
	At          string        `json:"at"`
	Mode        string        `json:"mode"`
	Snapshots   []contractRow `json:"snapshots"`
	Summary     struct {
		Total        int              `json:"total"`
		ByState      map[string]int   `json:"by_state"`
		BytesByState map[string]int64 `json:"bytes_by_state"`
	} `json:"summary"`
	Errors []facts.VCenterError `json:"errors"`
}

var contractKeys = []string{"vcenter", "datacenter", "vm", "vm_uuid", "folder", "snapshot", "snapshot_id",
	"description", "created", "age_hours", "size_bytes", "depth", "customer", "creator", "state", "reason",
	"deadline", "next_action", "next_action_at"}

func TestJSONContract(t *testing.T) {
	out := []byte(render(t, JSON, testPlan(), Options{GeneratedAt: testGenerated}))
	var c contract
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	if c.GeneratedAt != "2026-11-24T12:01:30Z" || c.At != "2026-11-24T12:00:00Z" || c.Mode != "dry-run" {
		t.Errorf("header = %q %q %q", c.GeneratedAt, c.At, c.Mode)
	}
	if len(c.Snapshots) != 6 || c.Summary.Total != 6 {
		t.Fatalf("%d snapshots, total %d", len(c.Snapshots), c.Summary.Total)
	}
	if c.Summary.ByState["overdue"] != 2 || c.Summary.BytesByState["overdue"] != 3*gib {
		t.Errorf("summary = %+v", c.Summary)
	}
	if len(c.Errors) != 1 || c.Errors[0].VCenter != "vc-west" {
		t.Errorf("errors = %+v", c.Errors)
	}
	first := c.Snapshots[0]
	want := contractRow{VCenter: "vc-east", Datacenter: "DC0", VM: "<script>alert(1)</script>",
		VMUUID: "5003a1b2-0000-0000-0000-000000000011", Folder: "/DC0/vm/Customers/initech",
		Snapshot: `=HYPERLINK("http://x")`, SnapshotID: "snapshot-2",
		Description: "<img src=x onerror=alert(1)> | `rm -rf` *bold* [link](http://x)",
		Created:     "2026-11-21T04:00:00Z", AgeHours: 80, SizeBytes: 2 * gib, Depth: 1, Customer: "initech",
		Creator: "bob@corp", State: "overdue", Reason: "age 80.0h >= deadline 48h", Deadline: "2026-11-23T04:00:00Z",
		NextAction: "blocked", NextActionAt: "2026-11-24T12:00:00Z"}
	if first != want {
		t.Errorf("first row =\n%+v\nwant\n%+v", first, want)
	}

	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"generated_at", "at", "mode", "snapshots", "summary", "errors"} {
		if _, ok := doc[key]; !ok {
			t.Errorf("report lacks %q", key)
		}
	}
	for key := range doc["summary"].(map[string]any) {
		if !slices.Contains([]string{"total", "by_state", "bytes_by_state"}, key) {
			t.Errorf("summary has unexpected key %q", key)
		}
	}
	for i, s := range doc["snapshots"].([]any) {
		row := s.(map[string]any)
		for _, key := range contractKeys {
			if _, ok := row[key]; !ok {
				t.Errorf("snapshot %d lacks %q", i, key)
			}
		}
	}
	if row := doc["snapshots"].([]any)[4].(map[string]any); row["state"] != "managed" || row["next_action_at"] != "" ||
		row["customer"] != "" || row["creator"] != "" {
		t.Errorf("managed row = %v", row)
	}
	if bytes.Contains(out, []byte("<script>")) {
		t.Error("JSON holds a raw <script>")
	}
}

// jsonKeyOrder returns the keys of the first snapshot in the order of the JSON.
func jsonKeyOrder(t *testing.T, out string) []string {
	t.Helper()
	var doc struct {
		Snapshots []json.RawMessage `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(doc.Snapshots[0]))
	var keys []string
	dec.Token() // {
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestCSV(t *testing.T) {
	records, err := csv.NewReader(strings.NewReader(render(t, CSV, testPlan(), Options{}))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 13 {
		t.Fatalf("%d records, want a header, 6 rows, a blank record, the problems' header and 4 problems", len(records))
	}
	if records[8][0] != "kind" || records[12][0] != "chain_too_deep" || records[11][6] != `[ds1] gone/=cmd|' /C calc'!A0-000001.vmdk` {
		t.Errorf("problems in CSV = %v", records[7:])
	}
	keys := jsonKeyOrder(t, render(t, JSON, testPlan(), Options{}))
	if !slices.Equal(records[0], keys) {
		t.Errorf("header = %v\nJSON keys = %v", records[0], keys)
	}
	if !slices.Equal(records[0][:len(contractKeys)], contractKeys) {
		t.Errorf("header does not start with the contract fields: %v", records[0])
	}
	for _, rec := range records[1:] {
		for _, cell := range rec {
			if cell != "" && strings.ContainsAny(cell[:1], "=+-@\t\r") {
				t.Errorf("cell %q starts a formula", cell)
			}
			if strings.ContainsAny(cell, "\r\n\x1b") {
				t.Errorf("cell %q holds control characters", cell)
			}
		}
	}
	if records[1][5] != `'=HYPERLINK("http://x")` {
		t.Errorf("snapshot cell = %q", records[1][5])
	}
}

func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+1": "'=1+1", "+1": "'+1", "-1": "'-1", "@SUM(A1)": "'@SUM(A1)", "\t=1": "' =1", "\r\n=1": "' =1",
		"plain": "plain", "a=b": "a=b", "": "",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMarkdown(t *testing.T) {
	out := render(t, Markdown, testPlan(), Options{})
	for _, bad := range []string{"<script>", "<img", "\r", "\x1b", "[link]"} {
		if strings.Contains(out, bad) {
			t.Errorf("Markdown holds %q", bad)
		}
	}
	for _, want := range []string{"# snapwarden report", `\<script\>alert(1)\</script\>`, "patch Bcc: x"} {
		if !strings.Contains(out, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	// Every snapshot line has 13 unescaped pipes, as its header.
	_, table, _ := strings.Cut(out, "## Snapshots\n\n")
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != 8 {
		t.Fatalf("snapshot table has %d lines, want 8:\n%s", len(lines), table)
	}
	for _, line := range lines {
		if n := strings.Count(line, "|") - strings.Count(line, `\|`); n != 13 {
			t.Errorf("line has %d cell separators: %q", n, line)
		}
	}
}

func TestHTML(t *testing.T) {
	out := render(t, HTML, testPlan(), Options{GeneratedAt: testGenerated})
	for _, bad := range []string{"<script", "<img", "<a ", "href", "\r", "\x1b"} {
		if strings.Contains(out, bad) {
			t.Errorf("HTML holds %q", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/<wbr>script&gt;", `class="state-overdue"`,
		`class="state-exempt"`, "vc-west", "keep-until=2026-12-20", "outside the maintenance window", "<style>"} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if out := render(t, HTML, &plan.Plan{At: testAt}, Options{}); !strings.Contains(out, "no snapshots") {
		t.Error("empty HTML lacks no snapshots")
	}
}

func TestFilters(t *testing.T) {
	p := testPlan()
	rows := Rows(p, Options{Customer: "acme"})
	if len(rows) != 3 {
		t.Errorf("customer acme: %d rows, want 3", len(rows))
	}
	for _, r := range rows {
		if r.Customer != "acme" {
			t.Errorf("customer filter kept %q", r.Customer)
		}
	}
	rows = Rows(p, Options{States: []policy.State{policy.StateOverdue, policy.StateManaged}})
	if len(rows) != 3 {
		t.Errorf("overdue+managed: %d rows, want 3", len(rows))
	}
	for _, r := range rows {
		if r.State != "overdue" && r.State != "managed" {
			t.Errorf("state filter kept %q", r.State)
		}
	}
	if rows := Rows(p, Options{Customer: "acme", States: []policy.State{policy.StateWarning}}); len(rows) != 1 ||
		rows[0].SnapshotID != "snapshot-3" {
		t.Errorf("acme warning rows = %+v", rows)
	}
	var c contract
	out := render(t, JSON, p, Options{Customer: "initech"})
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if c.Summary.Total != 1 || len(c.Snapshots) != 1 || c.Summary.ByState["overdue"] != 1 || len(c.Summary.ByState) != 1 {
		t.Errorf("initech summary = %+v", c.Summary)
	}
}

func TestSortOrder(t *testing.T) {
	var ids []string
	for _, r := range Rows(testPlan(), Options{}) {
		ids = append(ids, r.State+"/"+r.SnapshotID)
	}
	want := []string{"overdue/snapshot-2", "overdue/snapshot-1", "warning/snapshot-3", "ok/snapshot-4",
		"managed/snapshot-5", "exempt/snapshot-6"}
	if !slices.Equal(ids, want) {
		t.Errorf("order = %v, want %v", ids, want)
	}

	// Within a state: due first, then support actions, then oldest.
	vm := &facts.VM{VCenter: "vc", Name: "vm"}
	p := &plan.Plan{At: testAt, Decisions: []plan.Decision{
		decision(vm, "a", "a", 60*time.Hour, 1, "", policy.StateOverdue, "", plan.ActionRemind, false, testAt.Add(time.Hour)),
		decision(vm, "b", "b", 50*time.Hour, 1, "", policy.StateOverdue, "", plan.ActionEscalate, false, testAt.Add(time.Hour)),
		decision(vm, "c", "c", 49*time.Hour, 1, "", policy.StateOverdue, "", plan.ActionRemind, true, testAt),
		decision(vm, "d", "d", 70*time.Hour, 1, "", policy.StateOverdue, "", plan.ActionRemind, false, testAt.Add(time.Hour)),
	}}
	ids = ids[:0]
	for _, r := range Rows(p, Options{}) {
		ids = append(ids, r.SnapshotID)
	}
	if want := []string{"c", "b", "d", "a"}; !slices.Equal(ids, want) {
		t.Errorf("order = %v, want %v", ids, want)
	}
}

func TestText(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 512: "512 B", 1536: "1.5 KiB", 3 * gib / 2: "1.5 GiB"} {
		if got := plan.IEC(n); got != want {
			t.Errorf("IEC(%d) = %q, want %q", n, got, want)
		}
	}
	for h, want := range map[float64]string{50.5: "50.5h", 72: "72.0h", 76.8: "3.2d"} {
		if got := ageText(h); got != want {
			t.Errorf("ageText(%v) = %q, want %q", h, got, want)
		}
	}
	if got := Clean("a\r\nb\tc\x1b[31m\u202eevil"); got != "a b c [31mevil" {
		t.Errorf("clean = %q", got)
	}
	if got := Truncate("héllo wörld", 6); got != "héllo…" {
		t.Errorf("truncate = %q", got)
	}
	for _, l := range wrap(strings.Repeat("word ", 50), 30) {
		if utf8.RuneCountInString(l) > 30 {
			t.Errorf("wrapped line %q is too long", l)
		}
	}
}

// benchPlan has vms VMs with two snapshots each.
func benchPlan(vms int) *plan.Plan {
	p := &plan.Plan{At: testAt, Mode: "dry-run", VMs: vms}
	states := []policy.State{policy.StateOK, policy.StateWarning, policy.StateOverdue, policy.StateExempt, policy.StateManaged}
	for i := range vms {
		vm := &facts.VM{VCenter: fmt.Sprintf("vc-%d", i%3), Datacenter: "DC0", Name: fmt.Sprintf("vm-%04d", i),
			InstanceUUID: fmt.Sprintf("uuid-%d", i), Folder: "/DC0/vm/Customers/c" + fmt.Sprint(i%40), PowerState: "poweredOn"}
		for j := range 2 {
			d := decision(vm, fmt.Sprintf("snapshot-%d", 2*i+j), fmt.Sprintf("snap %d of %d", j, i),
				time.Duration(i%100+j)*time.Hour, int64(i+1)<<20, fmt.Sprintf("c%d", i%40), states[(i+j)%len(states)],
				"age detail", plan.Action((i+j)%6), i%7 == 0, testAt.Add(time.Duration(i%50)*time.Hour))
			d.Snapshot.Depth = j + 1
			p.Decisions = append(p.Decisions, d)
		}
	}
	return p
}

func benchmarkRender(b *testing.B, f Format) {
	p := benchPlan(1000)
	b.ReportAllocs()
	for b.Loop() {
		if err := Render(io.Discard, f, p, Options{GeneratedAt: testGenerated}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderJSON1000(b *testing.B)  { benchmarkRender(b, JSON) }
func BenchmarkRenderTable1000(b *testing.B) { benchmarkRender(b, Table) }

// docs/report.md documents every key the JSON form emits, every state,
// next action and action reason: a key or reason added without its line
// fails here.
func TestJSONDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/report.md")
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(render(t, JSON, testPlan(), Options{GeneratedAt: testGenerated})), &top); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(top["snapshots"], &rows); err != nil || len(rows) == 0 {
		t.Fatal(err)
	}
	names := []string{}
	for k := range top {
		names = append(names, k)
	}
	for k := range rows[0] {
		names = append(names, k)
	}
	for _, s := range stateOrder {
		names = append(names, s.String())
	}
	for a := plan.ActionNone; !strings.HasPrefix(a.String(), "action("); a++ {
		names = append(names, a.String())
	}
	for r := plan.ReasonNothingToDo; !strings.HasPrefix(r.String(), "reason("); r++ {
		names = append(names, r.String())
	}
	for _, n := range names {
		if !strings.Contains(string(doc), "`"+n+"`") {
			t.Errorf("docs/report.md does not document `%s`", n)
		}
	}
}

var problemKeys = []string{"kind", "vcenter", "datacenter", "vm", "vm_id", "datastore", "path", "size_bytes",
	"customer", "detail", "first_seen", "fix", "fix_why"}

func TestProblems(t *testing.T) {
	out := render(t, JSON, testPlan(), Options{GeneratedAt: testGenerated})
	var doc struct {
		Problems []map[string]any `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Problems) != 4 {
		t.Fatalf("%d problems, want 4", len(doc.Problems))
	}
	for i, p := range doc.Problems {
		if len(p) != len(problemKeys) {
			t.Errorf("problem %d has keys %v, want %v", i, p, problemKeys)
		}
		for _, k := range problemKeys {
			if _, ok := p[k]; !ok {
				t.Errorf("problem %d lacks %q", i, k)
			}
		}
	}
	if p := doc.Problems[2]; p["kind"] != "orphan_file" || p["vm"] != "" || p["size_bytes"] != float64(5*gib) ||
		p["first_seen"] != "2026-11-20T08:00:00Z" {
		t.Errorf("orphan = %v", p)
	}

	// A customer's report keeps only that customer's problems (never an
	// orphan file, which no customer owns).
	if err := json.Unmarshal([]byte(render(t, JSON, testPlan(), Options{Customer: "acme"})), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Problems) != 2 || doc.Problems[0]["customer"] != "acme" || doc.Problems[1]["customer"] != "acme" {
		t.Errorf("acme's problems = %v", doc.Problems)
	}
	for _, f := range []Format{Table, Markdown, HTML} {
		got := render(t, f, testPlan(), Options{Customer: "nobody"})
		if strings.Contains(got, "problems customers cannot see") || strings.Contains(got, "Problems customers cannot see") {
			t.Errorf("%s shows a problems section without problems:\n%s", f, got)
		}
	}
	if html := render(t, HTML, testPlan(), Options{}); strings.Contains(html, "<script>") {
		t.Error("HTML holds a raw <script> from a problem's VM name")
	}
}
