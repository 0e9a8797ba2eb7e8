package notify

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/snapwarden/snapwarden/internal/plan"
)

// HeadsUp is one customer's heads-up: snapshots of theirs that just
// appeared. It is not a warning and states no commit time: consolidation
// waits for min_notice after the first warning, as always.
type HeadsUp struct {
	Customer     Customer
	At           time.Time
	SupportEmail string
	Snapshots    []plan.Decision
	// Links returns the self-service links of a snapshot (keep, commit)
	// when that feature is configured; nil leaves them out of the message.
	Links func(plan.Decision) []Link
}

// Link is one self-service action a message offers; URL is signed by its
// maker and shown as is.
type Link struct {
	Label string
	URL   string
}

// HeadsUpEntry is one snapshot of a heads-up as the templates see it.
type HeadsUpEntry struct {
	Entry
	Links []Link
}

// HeadsUpData is what the heads-up templates are executed with.
type HeadsUpData struct {
	Customer     Customer
	At           time.Time
	Subject      string
	SupportEmail string
	Snapshots    []HeadsUpEntry
}

// HeadsUp renders a heads-up. As for digests, the subject holds only the
// count and the customer's name, never a VM or snapshot name.
func (r *Renderer) HeadsUp(d HeadsUp) (Message, error) {
	who := oneLine(d.Customer.Name)
	if who == "" {
		who = oneLine(d.Customer.ID)
	}
	to := cleanAddrs(d.Customer.Contacts)
	if len(to) == 0 {
		return Message{}, fmt.Errorf("heads-up for %q: the customer has no contacts", d.Customer.ID)
	}
	n := len(d.Snapshots)
	if n == 0 {
		return Message{}, fmt.Errorf("heads-up for %q: no snapshot", d.Customer.ID)
	}
	data := HeadsUpData{
		Customer:     Customer{ID: d.Customer.ID, Name: who, Contacts: to},
		At:           d.At.UTC(),
		Subject:      fmt.Sprintf("[snapwarden] %d new VM %s (%s)", n, plural(n, "snapshot", "snapshots"), who),
		SupportEmail: oneLine(d.SupportEmail),
	}
	for _, dec := range d.Snapshots {
		he := HeadsUpEntry{Entry: entryOf(dec, d.At, 0)}
		if d.Links != nil {
			he.Links = d.Links(dec)
		}
		data.Snapshots = append(data.Snapshots, he)
	}
	sort.SliceStable(data.Snapshots, func(i, j int) bool {
		a, b := data.Snapshots[i], data.Snapshots[j]
		if !a.Deadline.Equal(b.Deadline) {
			return a.Deadline.Before(b.Deadline)
		}
		return a.VM+"/"+a.Snapshot < b.VM+"/"+b.Snapshot
	})
	var text, html bytes.Buffer
	if err := r.headsUpText.Execute(&text, data); err != nil {
		return Message{}, fmt.Errorf("render %s for customer %q: %w", HeadsUpTextTemplate, d.Customer.ID, err)
	}
	if err := r.headsUpHTML.Execute(&html, data); err != nil {
		return Message{}, fmt.Errorf("render %s for customer %q: %w", HeadsUpHTMLTemplate, d.Customer.ID, err)
	}
	return Message{To: to, Subject: data.Subject, Text: text.String(), HTML: html.String(), ReplyTo: data.SupportEmail}, nil
}
