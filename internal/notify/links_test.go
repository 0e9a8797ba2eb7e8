package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// Self-service links appear per snapshot in both parts, escaped in HTML,
// with the confirmation of a request made since the last digest.
func TestCustomerLinks(t *testing.T) {
	r := renderer(t)
	d := customerDigest()
	var asked []facts.Key
	r.Links = func(customer string, k facts.Key, at time.Time) ([]Link, error) {
		asked = append(asked, k)
		return []Link{{Label: "Keep it 24 h longer", URL: "https://snapshots.example/s/" + k.Snapshot + "?a=1&b=2"}}, nil
	}
	d.Attention[0].History.Requests = []plan.Request{{Action: plan.RequestExtend, At: d.At.Add(-time.Hour), Customer: d.Attention[0].Customer}}
	d.Attention[0].History.LastCustomerNotice = d.At.Add(-2 * time.Hour)
	msg, err := r.Customer(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != len(d.Attention) {
		t.Fatalf("links asked for %d snapshots, want %d", len(asked), len(d.Attention))
	}
	first := d.Attention[0].Snapshot.ID
	for part, want := range map[string][]string{
		msg.Text: {"Keep it 24 h longer: https://snapshots.example/s/" + first + "?a=1&b=2", "you asked us to keep it longer"},
		msg.HTML: {`<a href="https://snapshots.example/s/` + first + `?a=1&amp;b=2"`, "you asked us to keep it longer"},
	} {
		for _, w := range want {
			if !strings.Contains(part, w) {
				t.Errorf("digest lacks %q:\n%s", w, part)
			}
		}
	}
	// A heads-up carries the same links.
	hu, err := r.HeadsUp(HeadsUp{Customer: d.Customer, At: d.At, Snapshots: d.Attention[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hu.Text, "Keep it 24 h longer: https://snapshots.example/s/"+first) {
		t.Errorf("heads-up lacks the link:\n%s", hu.Text)
	}
	r.Links = nil
	msg, err = r.Customer(customerDigest())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(msg.Text+msg.HTML, "/s/") {
		t.Error("links without public_url")
	}
}
