package notify

import (
	"encoding/json"
	"strings"
	"testing"
)

// Escalations support acknowledged are counted in every form of the digest.
func TestAcknowledgedCounted(t *testing.T) {
	d := supportDigest()
	d.Acknowledged = 2
	r := renderer(t)
	m, err := r.Support(d, []string{"support@provider.example"})
	if err != nil {
		t.Fatal(err)
	}
	const line = "2 acknowledged escalations are left out"
	if !strings.Contains(m.Text, line) || !strings.Contains(m.HTML, line) {
		t.Errorf("the support email does not count the acknowledged escalations:\n%s", m.Text)
	}
	b, err := r.Webhook(d, false)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Text       string `json:"text"`
		Snapwarden struct {
			Acknowledged int `json:"acknowledged"`
		} `json:"snapwarden"`
	}
	if err := json.Unmarshal(b, &p); err != nil || p.Snapwarden.Acknowledged != 2 ||
		!strings.Contains(p.Text, "2 acknowledged escalations left out") {
		t.Errorf("webhook = %s (%v)", b, err)
	}
}
