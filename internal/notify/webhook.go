package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// maxWebhookLines caps the entries listed per section in a webhook's text,
// so a bad day does not post a wall of text into a chat channel.
const maxWebhookLines = 20

// webhookPayload is the JSON of a webhook post: Slack reads "text", other
// receivers may read the structured "snapwarden" object.
type webhookPayload struct {
	Text       string          `json:"text"`
	Snapwarden *webhookDetails `json:"snapwarden,omitempty"`
}

type webhookDetails struct {
	At          string           `json:"at"`
	Subject     string           `json:"subject"`
	Escalations []webhookEntry   `json:"escalations"`
	Unowned     []webhookEntry   `json:"unowned"`
	Failures    []webhookEntry   `json:"failures"`
	Committed   []webhookEntry   `json:"committed"`
	Problems    []webhookProblem `json:"problems"`
	// Disks are the disk consolidations of consolidation_needed VMs that ended.
	Disks []webhookDisk `json:"disk_consolidations"`
	// Acknowledged counts escalations left out: support has them in hand.
	Acknowledged int `json:"acknowledged"`
}

// webhookProblem is a problem in the shape of the report's `problems`.
type webhookProblem struct {
	Kind       string `json:"kind"`
	VCenter    string `json:"vcenter"`
	Datacenter string `json:"datacenter"`
	VM         string `json:"vm"`
	Datastore  string `json:"datastore"`
	Path       string `json:"path"`
	SizeBytes  int64  `json:"size_bytes"`
	Customer   string `json:"customer"`
	Detail     string `json:"detail"`
	FirstSeen  string `json:"first_seen"`
}

type webhookDisk struct {
	VCenter  string `json:"vcenter"`
	VM       string `json:"vm"`
	Customer string `json:"customer"`
	Result   string `json:"result"`
	TaskID   string `json:"task_id"`
	At       string `json:"at"`
	Fault    string `json:"fault"`
}

type webhookEntry struct {
	VCenter    string  `json:"vcenter"`
	VM         string  `json:"vm"`
	Folder     string  `json:"folder,omitempty"`
	Snapshot   string  `json:"snapshot"`
	SnapshotID string  `json:"snapshot_id,omitempty"`
	Customer   string  `json:"customer"`
	State      string  `json:"state"`
	Created    string  `json:"created,omitempty"`
	AgeHours   float64 `json:"age_hours"`
	SizeBytes  int64   `json:"size_bytes"`
	Depth      int     `json:"depth,omitempty"`
	Deadline   string  `json:"deadline,omitempty"`
	NextAction string  `json:"next_action"`
	Reason     string  `json:"reason"`
	Why        string  `json:"why,omitempty"`
	Blocked    string  `json:"blocked,omitempty"`
	TaskID     string  `json:"task_id,omitempty"`
	At         string  `json:"at,omitempty"`
	Fault      string  `json:"fault,omitempty"`
	Attempts   int     `json:"attempts,omitempty"`
}

// Webhook renders the support digest as a JSON payload. It always has a
// Slack-compatible "text" (with &, < and > escaped as Slack requires, so a VM
// named "<!channel>" pings nobody); unless slack is set it also carries a
// "snapwarden" object with the digest's entries.
func (r *Renderer) Webhook(d SupportDigest, slack bool) ([]byte, error) {
	data := supportData(d)
	p := webhookPayload{Text: webhookText(data)}
	if !slack {
		p.Snapwarden = &webhookDetails{
			At:           rfc3339(data.At),
			Subject:      data.Subject,
			Escalations:  webhookEntries(data.Escalations),
			Unowned:      webhookEntries(data.Unowned),
			Failures:     webhookEntries(data.Failures),
			Committed:    webhookEntries(data.Committed),
			Problems:     make([]webhookProblem, 0, len(data.Problems)),
			Disks:        make([]webhookDisk, 0, len(data.Disks)),
			Acknowledged: data.Acknowledged,
		}
		for _, dc := range data.Disks {
			p.Snapwarden.Disks = append(p.Snapwarden.Disks, webhookDisk{VCenter: dc.VCenter, VM: dc.VM, Customer: dc.Customer,
				Result: dc.Result, TaskID: dc.TaskID, At: rfc3339(dc.At), Fault: dc.Fault})
		}
		for _, e := range data.Problems {
			p.Snapwarden.Problems = append(p.Snapwarden.Problems, webhookProblem{Kind: e.Kind, VCenter: e.VCenter,
				Datacenter: e.Datacenter, VM: e.VM, Datastore: e.Datastore, Path: e.Path, SizeBytes: e.SizeBytes,
				Customer: e.Customer, Detail: e.Detail, FirstSeen: rfc3339(e.FirstSeen)})
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("encode webhook payload: %w", err)
	}
	return buf.Bytes(), nil
}

func webhookEntries(es []Entry) []webhookEntry {
	out := make([]webhookEntry, 0, len(es))
	for _, e := range es {
		out = append(out, webhookEntry{
			VCenter: e.VCenter, VM: e.VM, Folder: e.Folder, Snapshot: e.Snapshot, SnapshotID: e.SnapshotID,
			Customer: e.Customer, State: e.State, Created: rfc3339(e.Created), AgeHours: roundHours(e.Age),
			SizeBytes: e.SizeBytes, Depth: e.Depth, Deadline: rfc3339(e.Deadline), NextAction: e.NextAction,
			Reason: e.Detail, Why: e.Why, Blocked: e.Blocked, TaskID: e.TaskID, At: rfc3339(e.At),
			Fault: e.Fault, Attempts: e.Attempts,
		})
	}
	return out
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// webhookText is the chat message: the subject, then one line per entry.
func webhookText(d SupportData) string {
	var b strings.Builder
	b.WriteString("*" + slackEscape(d.Subject) + "* (" + utc(d.At) + ")")
	if d.Acknowledged > 0 {
		fmt.Fprintf(&b, "\n%d acknowledged %s left out: support has them in hand.", d.Acknowledged, plural(d.Acknowledged, "escalation", "escalations"))
	}
	section := func(title string, es []Entry, line func(Entry) string) {
		if len(es) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n*%s (%d)*", title, len(es))
		for i, e := range es {
			if i == maxWebhookLines {
				fmt.Fprintf(&b, "\n… and %d more", len(es)-i)
				break
			}
			b.WriteString("\n• " + slackEscape(line(e)))
		}
	}
	where := func(e Entry) string {
		return fmt.Sprintf("%s / %s / %s (%s): %s, %s, %s", e.VCenter, e.VM, e.Snapshot, e.Owner, e.State, hoursOf(e.Age), humanSize(e.SizeBytes))
	}
	section("Escalations", d.Escalations, func(e Entry) string {
		s := where(e) + " — " + e.NextAction
		if e.Why != "" {
			s += ": " + e.Why
		}
		if e.Blocked != "" {
			s += " [blocked: " + e.Blocked + "]"
		}
		return s
	})
	section("Unowned", d.Unowned, func(e Entry) string { return where(e) + " — notice " + e.Notice + " has no reachable customer" })
	section("Failures", d.Failures, func(e Entry) string {
		return fmt.Sprintf("%s — task %s, attempt %d: %s", where(e), e.TaskID, e.Attempts, e.Fault)
	})
	section("Committed", d.Committed, func(e Entry) string {
		return fmt.Sprintf("%s / %s / %s (%s, %s) — task %s at %s", e.VCenter, e.VM, e.Snapshot, e.Owner, humanSize(e.SizeBytes), e.TaskID, utc(e.At))
	})
	if len(d.Problems) > 0 {
		fmt.Fprintf(&b, "\n*New problems customers cannot see (%d)*", len(d.Problems))
		for i, p := range d.Problems {
			if i == maxWebhookLines {
				fmt.Fprintf(&b, "\n… and %d more", len(d.Problems)-i)
				break
			}
			where := p.VM
			if p.Path != "" {
				where = strings.TrimPrefix(where+" "+p.Path, " ")
			}
			b.WriteString("\n• " + slackEscape(fmt.Sprintf("%s: %s / %s (%s, %s): %s", p.Kind, p.VCenter, where, p.Owner, humanSize(p.SizeBytes), p.Detail)))
		}
	}
	if len(d.Disks) > 0 {
		fmt.Fprintf(&b, "\n*Disk consolidations (%d)*", len(d.Disks))
		for _, dc := range d.Disks {
			line := fmt.Sprintf("%s / %s (%s): %s, task %s at %s", dc.VCenter, dc.VM, dc.Customer, dc.Result, dc.TaskID, utc(dc.At))
			if dc.Fault != "" {
				line += ": " + dc.Fault
			}
			b.WriteString("\n• " + slackEscape(line))
		}
	}
	return b.String()
}

// slackEscape escapes the three characters Slack's message format reserves.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
