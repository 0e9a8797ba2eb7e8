package notify

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/notify -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test ./internal/notify -update and review the diff)\n--- got ---\n%s", path, got)
	}
}

func renderer(t *testing.T) *Renderer {
	t.Helper()
	r, err := NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCustomerGolden(t *testing.T) {
	m, err := renderer(t).Customer(customerDigest())
	if err != nil {
		t.Fatal(err)
	}
	if want := "[snapwarden] 3 VM snapshots need your attention (ACME Corp)"; m.Subject != want {
		t.Errorf("subject %q, want %q", m.Subject, want)
	}
	if strings.Join(m.To, ",") != "ops@acme.example,cto@acme.example" || m.ReplyTo != "support@provider.example" {
		t.Errorf("to %v reply-to %q", m.To, m.ReplyTo)
	}
	golden(t, "customer.txt", []byte(m.Text))
	golden(t, "customer.html", []byte(m.HTML))
}

func TestSupportGolden(t *testing.T) {
	m, err := renderer(t).Support(supportDigest(), []string{"support@provider.example"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[snapwarden] support: 3 escalations, 1 unowned, 1 failed task, 1 snapshot committed, 2 new problems, 2 disk consolidations, 2 undeliverable contacts"; m.Subject != want {
		t.Errorf("subject %q, want %q", m.Subject, want)
	}
	golden(t, "support.txt", []byte(m.Text))
	golden(t, "support.html", []byte(m.HTML))
}

func TestWebhookGolden(t *testing.T) {
	r := renderer(t)
	b, err := r.Webhook(supportDigest(), false)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "webhook.json", b)
	var p struct {
		Text       string `json:"text"`
		Snapwarden struct {
			At          string           `json:"at"`
			Escalations []map[string]any `json:"escalations"`
			Problems    []map[string]any `json:"problems"`
		} `json:"snapwarden"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.Text == "" || p.Snapwarden.At != "2026-11-24T12:00:00Z" || len(p.Snapwarden.Escalations) != 3 {
		t.Fatalf("payload %s", b)
	}
	for _, k := range []string{"vcenter", "vm", "snapshot", "customer", "state", "age_hours", "size_bytes", "next_action", "reason"} {
		if _, ok := p.Snapwarden.Escalations[0][k]; !ok {
			t.Errorf("escalation lacks %q: %v", k, p.Snapwarden.Escalations[0])
		}
	}
	if len(p.Snapwarden.Problems) != 2 || p.Snapwarden.Problems[1]["kind"] != "orphan_file" ||
		p.Snapwarden.Problems[1]["path"] != "[ds1] gone-vm/gone-vm-000001-sesparse.vmdk" {
		t.Errorf("problems = %v", p.Snapwarden.Problems)
	}
}

func TestWebhookSlackHasOnlyText(t *testing.T) {
	d := supportDigest()
	d.Escalations[0].Snapshot.VM = vm("<!channel> & <script>", "acme")
	b, err := renderer(t).Webhook(d, true)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if len(p) != 1 || p["text"] == nil {
		t.Fatalf("slack payload has keys other than text: %s", b)
	}
	text := p["text"].(string)
	if strings.Contains(text, "<!channel>") || strings.Contains(text, "<script>") || !strings.Contains(text, "&lt;!channel&gt; &amp; &lt;script&gt;") {
		t.Errorf("slack text not escaped: %s", text)
	}
}

func TestCustomerSubjectCommittedOnly(t *testing.T) {
	d := customerDigest()
	d.Attention = nil
	d.Committed = append(d.Committed, d.Committed[0])
	m, err := renderer(t).Customer(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[snapwarden] 2 VM snapshots were committed (ACME Corp)"; m.Subject != want {
		t.Errorf("subject %q, want %q", m.Subject, want)
	}
	if strings.Contains(m.Text, "need your attention") || !strings.Contains(m.Text, "Committed since our last message") {
		t.Errorf("committed-only text:\n%s", m.Text)
	}
	d.Committed = d.Committed[:1]
	d.Customer.Name = "Evil\r\nBcc: victim@example.com"
	m, err = renderer(t).Customer(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[snapwarden] 1 VM snapshot was committed (Evil Bcc: victim@example.com)"; m.Subject != want {
		t.Errorf("subject %q, want %q", m.Subject, want)
	}
}

func TestCustomerErrors(t *testing.T) {
	r := renderer(t)
	d := customerDigest()
	d.Attention, d.Committed = nil, nil
	if _, err := r.Customer(d); err == nil {
		t.Error("empty digest rendered")
	}
	d = customerDigest()
	d.Customer.Contacts = []string{" "}
	if _, err := r.Customer(d); err == nil {
		t.Error("digest without contacts rendered")
	}
	if _, err := r.Support(supportDigest(), nil); err == nil {
		t.Error("support digest without recipient rendered")
	}
}

func TestTemplateOverride(t *testing.T) {
	dir := t.TempDir()
	custom := "Hi {{.Customer.Name}}: {{len .Attention}} to look at. {{range .Attention}}[{{.VM}} {{size .SizeBytes}}]{{end}}\n"
	if err := os.WriteFile(filepath.Join(dir, CustomerTextTemplate), []byte(custom), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := NewRenderer(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Customer(customerDigest())
	if err != nil {
		t.Fatal(err)
	}
	if want := "Hi ACME Corp: 3 to look at. [web01 1.5 GiB][app01 700 MiB][db01 12 GiB]\n"; m.Text != want {
		t.Errorf("override text %q, want %q", m.Text, want)
	}
	if !strings.Contains(m.HTML, "What a snapshot is") {
		t.Error("the HTML template was not the embedded one")
	}
}

func TestTemplateOverrideErrors(t *testing.T) {
	cases := map[string]string{
		CustomerTextTemplate: "Hello {{.Customer.Name",  // does not parse
		SupportHTMLTemplate:  "<p>{{.NoSuchField}}</p>", // parses, fails on data
		"custmer.txt.tmpl":   "typo in the name",
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := NewRenderer(dir)
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v does not name %s", err, path)
			}
		})
	}
	if _, err := NewRenderer(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing templates dir is no error")
	}
}

func TestHelpers(t *testing.T) {
	sizes := map[int64]string{0: "0 bytes", 1: "1 byte", 1023: "1023 bytes", 1024: "1 KiB", 3 * gib / 2: "1.5 GiB", 12 * gib: "12 GiB", 5 << 40: "5 TiB"}
	for b, want := range sizes {
		if got := humanSize(b); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", b, got, want)
		}
	}
	ages := map[string]string{"0s": "0 minutes", "1m": "1 minute", "90m": "1 hour 30 minutes", "2h": "2 hours", "24h": "1 day", "50h30m": "2 days 2 hours", "-5m": "0 minutes"}
	for in, want := range ages {
		d, _ := time.ParseDuration(in)
		if got := humanAge(d); got != want {
			t.Errorf("humanAge(%s) = %q, want %q", in, got, want)
		}
	}
	if got := hoursOf(50*3600e9 + 30*60e9); got != "50.5h" {
		t.Errorf("hoursOf = %q", got)
	}
	if got := daysOf(336 * 3600e9); got != "14 days" {
		t.Errorf("daysOf = %q", got)
	}
}

// A first cycle over a large fleet escalates thousands of snapshots: the
// support digest lists the most urgent MaxListed per section and counts the rest.
func TestSupportDigestIsCapped(t *testing.T) {
	rd, err := NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	one := supportDigest().Escalations[0]
	d := SupportDigest{At: cycleAt}
	for i := 0; i < MaxListed+50; i++ {
		d.Escalations = append(d.Escalations, one)
	}
	msg, err := rd.Support(d, []string{"support@provider.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Subject, "150 escalations") {
		t.Errorf("subject %q does not count all 150", msg.Subject)
	}
	for part, body := range map[string]string{"text": msg.Text, "html": msg.HTML} {
		if !strings.Contains(body, "50 more") {
			t.Errorf("%s part does not say 50 more are left out", part)
		}
		if n := strings.Count(body, one.Snapshot.Name); n > MaxListed+5 {
			t.Errorf("%s part lists the snapshot %d times, want at most %d", part, n, MaxListed)
		}
	}
	if !strings.Contains(msg.Text, "ESCALATIONS (150)") {
		t.Error("text part heading does not count all 150")
	}
}

// TestSupportSubjectSaysWhatItHolds: a digest of commits only is titled by
// its commits, not "0 escalations, 0 unowned, 0 failures".
func TestSupportSubjectSaysWhatItHolds(t *testing.T) {
	d := supportDigest()
	d.Escalations, d.Unowned, d.Failures, d.Problems, d.Undeliverable, d.Disks = nil, nil, nil, nil, nil, nil
	m, err := renderer(t).Support(d, []string{"support@provider.example"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[snapwarden] support: 1 snapshot committed"; m.Subject != want {
		t.Errorf("subject %q, want %q", m.Subject, want)
	}
	if want := "[snapwarden] support: 3 escalations, 1 unowned, 1 failed task, 1 snapshot committed, 2 new problems, 2 disk consolidations, 2 undeliverable contacts"; supportSubject(supportDigest()) != want {
		t.Errorf("subject %q, want %q", supportSubject(supportDigest()), want)
	}
}

// TestCustomerToldTheMarkerEnded: a keep-until marker that expired, or was
// cut short by max_keep, is explained to the customer, not only to support.
func TestCustomerToldTheMarkerEnded(t *testing.T) {
	d := customerDigest()
	ended := cycleAt.Add(-3 * time.Hour)
	d.Attention[0].Verdict.KeepUntilEnded, d.Attention[0].Verdict.KeepUntilCapped = ended, true
	d.Attention[1].Verdict.KeepUntilEnded = ended
	m, err := renderer(t).Customer(d)
	if err != nil {
		t.Fatal(err)
	}
	for part, body := range map[string]string{"text": strings.Join(strings.Fields(m.Text), " "), "html": m.HTML} {
		if n := strings.Count(body, "keep-until marker ended 2026-11-24 09:00 UTC"); n != 2 {
			t.Errorf("the %s part tells of %d ended markers, want 2:\n%s", part, n, body)
		}
		if n := strings.Count(body, "cut short by the limit of 14 days after creation"); n != 1 {
			t.Errorf("the %s part tells of %d capped markers, want 1", part, n)
		}
		if !strings.Contains(body, "it counts by its age again") {
			t.Errorf("the %s part does not say what follows", part)
		}
	}
}

// TestCustomerSaysDatastoreFillsFirst: a snapshot whose datastore fills
// before its deadline says so, in both parts, and only for that snapshot.
func TestCustomerSaysDatastoreFillsFirst(t *testing.T) {
	m, err := renderer(t).Customer(customerDigest())
	if err != nil {
		t.Fatal(err)
	}
	for part, body := range map[string]string{"text": m.Text, "html": m.HTML} {
		if n := strings.Count(body, "Urgent"); n != 1 {
			t.Errorf("%s part says Urgent %d times, want once (db01/pre-patch only)", part, n)
		}
		if !strings.Contains(body, "ds-gold-01") || !strings.Contains(body, "2026-11-25 08:00 UTC") {
			t.Errorf("%s part does not name the datastore and when it fills", part)
		}
	}
}
