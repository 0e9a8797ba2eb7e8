package notify

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
	"github.com/snapwarden/snapwarden/internal/report"
)

//go:embed templates/*
var embedded embed.FS

// The template files, by the name an override must carry.
const (
	CustomerTextTemplate = "customer.txt.tmpl"
	CustomerHTMLTemplate = "customer.html.tmpl"
	SupportTextTemplate  = "support.txt.tmpl"
	SupportHTMLTemplate  = "support.html.tmpl"
	HeadsUpTextTemplate  = "headsup.txt.tmpl"
	HeadsUpHTMLTemplate  = "headsup.html.tmpl"
)

var templateNames = []string{CustomerTextTemplate, CustomerHTMLTemplate, SupportTextTemplate, SupportHTMLTemplate,
	HeadsUpTextTemplate, HeadsUpHTMLTemplate}

// Customer is the recipient of a customer digest, from the customer directory.
type Customer struct {
	ID       string
	Name     string
	Contacts []string
}

// CustomerDigest is one customer's message of one cycle: every snapshot of
// theirs that needs attention, plus what was done.
type CustomerDigest struct {
	Customer Customer
	// At is the cycle time.
	At time.Time
	// Attention holds the warn/remind notices due (CustomerNotice != ActionNone).
	Attention []plan.Decision
	// Committed holds the snapshots snapwarden committed (consolidated) since
	// the last digest.
	Committed []Committed
	// SupportEmail is where the customer can reply or ask for an exemption.
	SupportEmail string
	// ExemptTag and MaxKeep explain how to ask for an exemption: a
	// keep-until=YYYY-MM-DD marker in the snapshot description, capped at
	// MaxKeep after creation, or the exempt tag on the VM.
	ExemptTag string
	MaxKeep   time.Duration
}

// Committed is a snapshot snapwarden committed (removed with consolidation).
type Committed struct {
	Decision plan.Decision
	At       time.Time
	TaskID   string
}

// SupportDigest is the support desk's message of one cycle.
type SupportDigest struct {
	At time.Time
	// Escalations: overdue (escalate), blocked with reason, stale managed snapshots.
	Escalations []plan.Decision
	// Unowned: notices that had no reachable customer (unknown owner or
	// customer without contacts).
	Unowned []plan.Decision
	// Failures: consolidation tasks that failed.
	Failures  []Failure
	Committed []Committed
	// Problems customers cannot see, first seen this cycle; OpenProblems
	// counts every open one. Support digests only: never a customer's.
	Problems     []plan.Problem
	OpenProblems int
	// Disks are the disk consolidations of consolidation_needed VMs
	// (enforcement.fix_consolidation_needed) that ended.
	Disks []DiskConsolidation
	// Acknowledged counts the escalations left out because support
	// acknowledged them in the console.
	Acknowledged int
	// Undeliverable: contacts whose mail server rejected a notice for good,
	// each listed in one digest.
	Undeliverable []Bounce
}

// Bounce is a contact whose mail server rejected a notice for good.
type Bounce struct {
	Customer string // "" for the support address itself
	Address  string
	Reply    string // the server's reply, e.g. "550 5.1.1 no such user"
	At       time.Time
	// Unreachable is set when the notice reached none of its recipients;
	// Snapshots ("vCenter / VM / snapshot") are then what it was about, so
	// support can pass it on.
	Unreachable bool
	Snapshots   []string
}

// DiskConsolidation is how a ConsolidateVMDisks_Task snapwarden ran on a
// consolidation_needed VM ended.
type DiskConsolidation struct {
	VCenter  string
	VM       string
	Customer string
	At       time.Time
	TaskID   string
	// Result is "consolidated", "failed", "VM gone" or "refused" (a disk in
	// a non-persistent mode; Fault says which).
	Result string
	Fault  string
}

// Failure is a consolidation task that failed.
type Failure struct {
	Decision plan.Decision
	At       time.Time
	TaskID   string
	Fault    string
	Attempts int
}

// LinkFunc returns the self-service links of one snapshot of a customer's,
// valid from at.
type LinkFunc func(customer string, k facts.Key, at time.Time) ([]Link, error)

// Message is a rendered message before it becomes bytes.
type Message struct {
	To      []string
	Subject string
	Text    string
	HTML    string
	// ReplyTo, when set, becomes the Reply-To header (the support address
	// of a customer digest, so a reply reaches people).
	ReplyTo string
}

// Entry is one snapshot as the templates see it: the facts, verdict and
// decision of a plan.Decision flattened into display fields. Times are UTC;
// names and sentences are on one line (control characters and bidi
// overrides removed); the description keeps its words, without controls or
// bidi overrides.
type Entry struct {
	VCenter     string
	Datacenter  string
	VM          string
	Folder      string
	Snapshot    string
	SnapshotID  string
	Description string
	Creator     string
	// Customer is the owner's id, empty where no ownership rule matched.
	Customer string
	// Owner is Customer, or "unknown owner", or the disputed candidates,
	// with a note when the customer has no reachable contact.
	Owner     string
	Created   time.Time
	Age       time.Duration
	SizeBytes int64
	// Depth is 1 for a root snapshot, 2 for its child, and so on.
	Depth int
	// State and Detail are the verdict: "overdue", "age 50.5h >= deadline 48h".
	State  string
	Detail string
	// Deadline is when the snapshot becomes overdue; ActAt is deadline +
	// grace, when a consolidate policy commits it.
	Deadline time.Time
	ActAt    time.Time
	// Overdue is set when the deadline has passed at the cycle time.
	Overdue bool
	// PolicyAction is what happens after the deadline: escalate or consolidate.
	PolicyAction string
	// Consequence says in plain words what happens at the deadline.
	Consequence string
	// KeepUntilMax is the latest date a keep-until marker can hold this
	// snapshot (created + max_keep).
	KeepUntilMax    time.Time
	ExemptUntil     time.Time
	MalformedMarker string
	// KeepUntilEnded is when the snapshot's keep-until marker stopped
	// holding (zero when it had none that ended); KeepUntilCapped when
	// max_keep ended it before the date written.
	KeepUntilEnded  time.Time
	KeepUntilCapped bool
	// Notice is the customer notice of this cycle: warn, remind or none.
	Notice   string
	Reminder bool
	// NextAction, Due and NextActionAt are the plan's decision; Why explains it.
	NextAction   string
	Due          bool
	NextActionAt time.Time
	Why          string
	// Blocked names the guard that refused a due consolidation.
	Blocked string
	// FillsDatastore and FillsAt are set when the snapshot grows on a
	// datastore forecast to fill before its deadline.
	FillsDatastore string
	FillsAt        time.Time
	// At, TaskID, Fault and Attempts describe a committed or failed task.
	At       time.Time
	TaskID   string
	Fault    string
	Attempts int

	// Links are the self-service links of a customer digest's snapshot;
	// Confirmation is the line confirming the customer's request since the
	// last digest ("" when none).
	Links        []Link
	Confirmation string
}

// CustomerData is what the customer templates are executed with.
type CustomerData struct {
	Customer     Customer
	At           time.Time
	Subject      string
	Attention    []Entry
	Committed    []Entry
	SupportEmail string
	ExemptTag    string
	MaxKeep      time.Duration
	// KeepUntilExample is a date for the keep-until example.
	KeepUntilExample time.Time
}

// SupportData is what the support templates are executed with.
type SupportData struct {
	At          time.Time
	Subject     string
	Escalations []Entry
	Unowned     []Entry
	Failures    []Entry
	Committed   []Entry
	// Undeliverable has its strings on one line; Customer says "support"
	// for the support address.
	Undeliverable []Bounce
	// Problems are the problems first seen this cycle; OpenProblems counts
	// all that are open.
	Problems     []ProblemEntry
	OpenProblems int
	// Disks are the disk consolidations that ended, names on one line.
	Disks []DiskConsolidation
	// Acknowledged counts escalations left out: support has them in hand.
	Acknowledged int
	// Omitted counts the entries of each section left out beyond
	// MaxListed, the least urgent ones: `snapwarden report` lists them all.
	Omitted Counts
}

// ProblemEntry is one problem as the support templates see it; names are on
// one line.
type ProblemEntry struct {
	Kind       string
	VCenter    string
	Datacenter string
	VM         string // "" for an orphan file
	Datastore  string
	Path       string // "" for a problem of the whole VM
	SizeBytes  int64
	Customer   string // the owner's id, "" where unknown
	Owner      string // the customer, or "unknown owner"
	Detail     string
	FirstSeen  time.Time
}

// Counts is a number per section of the support digest.
type Counts struct{ Escalations, Unowned, Failures, Committed, Problems int }

// MaxListed is how many entries a support digest lists per section. A desk
// reads a few hundred lines, not a fleet; a first cycle over thousands of
// overdue snapshots would otherwise make a message no server accepts.
const MaxListed = 100

// Renderer renders messages from its templates. It is safe for concurrent use.
type Renderer struct {
	customerText *texttemplate.Template
	customerHTML *htmltemplate.Template
	supportText  *texttemplate.Template
	supportHTML  *htmltemplate.Template
	headsUpText  *texttemplate.Template
	headsUpHTML  *htmltemplate.Template

	// Links, when set, adds self-service links to customer digests.
	Links LinkFunc
}

// NewRenderer loads the embedded templates and, when dir != "", overrides
// any of them with a same-named file in dir. A template that does not parse,
// or fails on sample data, is an error naming the file; so is a *.tmpl file
// in dir that is none of the known templates (a misspelt override would
// otherwise be ignored silently).
func NewRenderer(dir string) (*Renderer, error) {
	sources := map[string]string{}
	origin := map[string]string{}
	for _, name := range templateNames {
		b, err := embedded.ReadFile("templates/" + name)
		if err != nil {
			return nil, fmt.Errorf("embedded template %s: %w", name, err)
		}
		sources[name], origin[name] = string(b), "embedded template "+name
	}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("templates dir %s: %w", dir, err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".tmpl") {
				continue
			}
			if _, known := sources[name]; !known {
				return nil, fmt.Errorf("template %s: unknown template name (use one of %s)",
					filepath.Join(dir, name), strings.Join(templateNames, ", "))
			}
			path := filepath.Join(dir, name)
			b, err := os.ReadFile(path)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("template %s: %w", path, err)
			}
			if err == nil {
				sources[name], origin[name] = string(b), "template "+path
			}
		}
	}
	r := &Renderer{}
	var err error
	if r.customerText, err = parseText(CustomerTextTemplate, sources, origin); err != nil {
		return nil, err
	}
	if r.supportText, err = parseText(SupportTextTemplate, sources, origin); err != nil {
		return nil, err
	}
	if r.customerHTML, err = parseHTML(CustomerHTMLTemplate, sources, origin); err != nil {
		return nil, err
	}
	if r.supportHTML, err = parseHTML(SupportHTMLTemplate, sources, origin); err != nil {
		return nil, err
	}
	if r.headsUpText, err = parseText(HeadsUpTextTemplate, sources, origin); err != nil {
		return nil, err
	}
	if r.headsUpHTML, err = parseHTML(HeadsUpHTMLTemplate, sources, origin); err != nil {
		return nil, err
	}
	if err := r.selfTest(origin); err != nil {
		return nil, err
	}
	return r, nil
}

func parseText(name string, src, origin map[string]string) (*texttemplate.Template, error) {
	t, err := texttemplate.New(name).Funcs(texttemplate.FuncMap(funcs)).Parse(src[name])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", origin[name], err)
	}
	return t, nil
}

func parseHTML(name string, src, origin map[string]string) (*htmltemplate.Template, error) {
	t, err := htmltemplate.New(name).Funcs(htmltemplate.FuncMap(funcs)).Parse(src[name])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", origin[name], err)
	}
	return t, nil
}

// selfTest executes every template once on sample data, so a template that
// names a missing field fails at start rather than in the middle of a cycle.
func (r *Renderer) selfTest(origin map[string]string) error {
	e := Entry{VCenter: "vc", VM: "vm", Snapshot: "s", Owner: "c", State: "overdue", Depth: 2, Notice: "warn", Blocked: "guard-window",
		FillsDatastore: "ds", Links: []Link{{Label: "Keep it 24 h longer", URL: "https://example.com/s/t"}}, Confirmation: "c"}
	c := CustomerData{Customer: Customer{ID: "c", Name: "C", Contacts: []string{"c@example.com"}},
		Attention: []Entry{e}, Committed: []Entry{e}, SupportEmail: "s@example.com", ExemptTag: "t", MaxKeep: time.Hour}
	s := SupportData{Escalations: []Entry{e}, Unowned: []Entry{e}, Failures: []Entry{e}, Committed: []Entry{e},
		Problems: []ProblemEntry{{Kind: "orphan_file", VCenter: "vc", Path: "[ds] f-000001.vmdk", Owner: "unknown owner"}}, OpenProblems: 1,
		Disks: []DiskConsolidation{{VCenter: "vc", VM: "vm", Customer: "c", TaskID: "task-1", Result: "failed", Fault: "f"}}}
	h := HeadsUpData{Customer: c.Customer, SupportEmail: "s@example.com",
		Snapshots: []HeadsUpEntry{{Entry: e}}}
	var buf bytes.Buffer
	checks := []struct {
		name string
		run  func() error
	}{
		{CustomerTextTemplate, func() error { return r.customerText.Execute(&buf, c) }},
		{CustomerHTMLTemplate, func() error { return r.customerHTML.Execute(&buf, c) }},
		{SupportTextTemplate, func() error { return r.supportText.Execute(&buf, s) }},
		{SupportHTMLTemplate, func() error { return r.supportHTML.Execute(&buf, s) }},
		{HeadsUpTextTemplate, func() error { return r.headsUpText.Execute(&buf, h) }},
		{HeadsUpHTMLTemplate, func() error { return r.headsUpHTML.Execute(&buf, h) }},
	}
	for _, ch := range checks {
		buf.Reset()
		if err := ch.run(); err != nil {
			return fmt.Errorf("%s: %w", origin[ch.name], err)
		}
	}
	return nil
}

// Customer renders one customer's digest. The subject is built only from
// provider-controlled data (counts and the customer's name), never from VM or
// snapshot names.
func (r *Renderer) Customer(d CustomerDigest) (Message, error) {
	who := oneLine(d.Customer.Name)
	if who == "" {
		who = oneLine(d.Customer.ID)
	}
	to := cleanAddrs(d.Customer.Contacts)
	if len(to) == 0 {
		return Message{}, fmt.Errorf("customer digest for %q: the customer has no contacts", d.Customer.ID)
	}
	var subject string
	switch n, m := len(d.Attention), len(d.Committed); {
	case n > 0:
		subject = fmt.Sprintf("[snapwarden] %d VM %s your attention (%s)", n, plural(n, "snapshot needs", "snapshots need"), who)
	case m > 0:
		subject = fmt.Sprintf("[snapwarden] %d VM %s committed (%s)", m, plural(m, "snapshot was", "snapshots were"), who)
	default:
		return Message{}, fmt.Errorf("customer digest for %q: nothing to report", d.Customer.ID)
	}
	data := CustomerData{
		Customer:         Customer{ID: d.Customer.ID, Name: who, Contacts: to},
		At:               d.At.UTC(),
		Subject:          subject,
		SupportEmail:     oneLine(d.SupportEmail),
		ExemptTag:        d.ExemptTag,
		MaxKeep:          d.MaxKeep,
		KeepUntilExample: d.At.UTC().Add(7 * 24 * time.Hour),
	}
	if d.MaxKeep > 0 && d.MaxKeep < 7*24*time.Hour {
		data.KeepUntilExample = d.At.UTC().Add(d.MaxKeep)
	}
	for _, dec := range d.Attention {
		e := entryOf(dec, d.At, d.MaxKeep)
		e.Confirmation = dec.Confirmation()
		links, err := r.links(d.Customer.ID, dec, d.At)
		if err != nil {
			return Message{}, fmt.Errorf("customer digest for %q: %w", d.Customer.ID, err)
		}
		e.Links = links
		data.Attention = append(data.Attention, e)
	}
	sortEntries(data.Attention, true)
	for _, c := range d.Committed {
		e := entryOf(c.Decision, d.At, d.MaxKeep)
		e.At, e.TaskID = c.At.UTC(), c.TaskID
		data.Committed = append(data.Committed, e)
	}
	sortEntries(data.Committed, false)
	var text, html bytes.Buffer
	if err := r.customerText.Execute(&text, data); err != nil {
		return Message{}, fmt.Errorf("render %s for customer %q: %w", CustomerTextTemplate, d.Customer.ID, err)
	}
	if err := r.customerHTML.Execute(&html, data); err != nil {
		return Message{}, fmt.Errorf("render %s for customer %q: %w", CustomerHTMLTemplate, d.Customer.ID, err)
	}
	return Message{To: to, Subject: subject, Text: text.String(), HTML: html.String(), ReplyTo: data.SupportEmail}, nil
}

// links returns a snapshot's self-service links, none while links are off.
func (r *Renderer) links(customer string, d plan.Decision, at time.Time) ([]Link, error) {
	if r.Links == nil {
		return nil, nil
	}
	return r.Links(customer, d.Snapshot.Key(), at)
}

// Support renders the support desk's digest for the addresses in to;
// replies go to the first of them.
func (r *Renderer) Support(d SupportDigest, to []string) (Message, error) {
	to = cleanAddrs(to)
	if len(to) == 0 {
		return Message{}, errors.New("support digest: no recipient address")
	}
	data := supportData(d)
	var text, html bytes.Buffer
	if err := r.supportText.Execute(&text, data); err != nil {
		return Message{}, fmt.Errorf("render %s: %w", SupportTextTemplate, err)
	}
	if err := r.supportHTML.Execute(&html, data); err != nil {
		return Message{}, fmt.Errorf("render %s: %w", SupportHTMLTemplate, err)
	}
	// A desk member's reply goes to the desk, not to the no-reply sender.
	return Message{To: to, Subject: data.Subject, Text: text.String(), HTML: html.String(), ReplyTo: to[0]}, nil
}

func supportData(d SupportDigest) SupportData {
	data := SupportData{At: d.At.UTC(), Subject: supportSubject(d), Acknowledged: d.Acknowledged}
	data.Escalations, data.Omitted.Escalations = listed(d.Escalations, d.At)
	data.Unowned, data.Omitted.Unowned = listed(d.Unowned, d.At)
	for _, f := range d.Failures {
		e := entryOf(f.Decision, d.At, 0)
		e.At, e.TaskID, e.Fault, e.Attempts = f.At.UTC(), oneLine(f.TaskID), oneLine(f.Fault), f.Attempts
		data.Failures = append(data.Failures, e)
	}
	for _, c := range d.Committed {
		e := entryOf(c.Decision, d.At, 0)
		e.At, e.TaskID = c.At.UTC(), c.TaskID
		data.Committed = append(data.Committed, e)
	}
	for _, p := range d.Problems {
		data.Problems = append(data.Problems, problemEntry(p))
	}
	data.OpenProblems = max(d.OpenProblems, len(d.Problems))
	for _, dc := range d.Disks {
		data.Disks = append(data.Disks, DiskConsolidation{VCenter: oneLine(dc.VCenter), VM: oneLine(dc.VM),
			Customer: oneLine(dc.Customer), At: dc.At.UTC(), TaskID: oneLine(dc.TaskID), Result: dc.Result, Fault: oneLine(dc.Fault)})
	}
	for _, b := range d.Undeliverable {
		c := Bounce{Customer: oneLine(b.Customer), Address: oneLine(b.Address), Reply: oneLine(b.Reply), At: b.At.UTC(), Unreachable: b.Unreachable}
		if c.Customer == "" {
			c.Customer = "support"
		}
		for _, sn := range b.Snapshots {
			c.Snapshots = append(c.Snapshots, oneLine(sn))
		}
		data.Undeliverable = append(data.Undeliverable, c)
	}
	sortEntries(data.Failures, false)
	sortEntries(data.Committed, false)
	data.Failures, data.Omitted.Failures = capped(data.Failures)
	data.Committed, data.Omitted.Committed = capped(data.Committed)
	if len(data.Problems) > MaxListed {
		data.Problems, data.Omitted.Problems = data.Problems[:MaxListed], len(data.Problems)-MaxListed
	}
	return data
}

// problemEntry flattens a problem for the templates (the plan sorted them).
func problemEntry(p plan.Problem) ProblemEntry {
	e := ProblemEntry{Kind: string(p.Kind), VCenter: oneLine(p.VCenter), Datacenter: oneLine(p.Datacenter),
		Datastore: oneLine(p.Datastore), Path: oneLine(p.Path), SizeBytes: p.SizeBytes,
		Customer: oneLine(p.Customer), Owner: oneLine(p.Customer), Detail: oneLine(p.Detail), FirstSeen: utcOrZero(p.FirstSeen)}
	if p.VM != nil {
		e.VM = oneLine(p.VM.Name)
	}
	if e.Owner == "" {
		e.Owner = "unknown owner"
	}
	return e
}

// capped keeps the first MaxListed entries (the list is sorted most urgent
// first) and says how many it left out.
// listed turns the decisions a support digest lists into entries, in the
// digest's order (sortEntries by place), and counts those left out beyond
// MaxListed. Only the listed ones become entries: a first cycle over a large
// fleet escalates thousands of snapshots, and an Entry for each was a
// seventh of that cycle's peak heap.
func listed(decs []plan.Decision, at time.Time) ([]Entry, int) {
	if len(decs) == 0 {
		return nil, 0
	}
	places := make([]place, len(decs))
	order := make([]int, len(decs))
	for i := range decs {
		places[i], order[i] = placeOf(&decs[i]), i
	}
	sort.SliceStable(order, func(i, j int) bool { return places[order[i]].before(places[order[j]]) })
	n := min(len(order), MaxListed)
	out := make([]Entry, n)
	for i, k := range order[:n] {
		out[i] = entryOf(decs[k], at, 0)
	}
	return out, len(decs) - n
}

func capped(es []Entry) ([]Entry, int) {
	if len(es) <= MaxListed {
		return es, 0
	}
	return es[:MaxListed], len(es) - MaxListed
}

// supportSubject names what the digest holds and leaves out what it does
// not: a digest of commits only is no "0 escalations, 0 unowned, 0 failures".
func supportSubject(d SupportDigest) string {
	var parts []string
	for _, c := range []struct {
		n         int
		one, many string
	}{
		{len(d.Escalations), "escalation", "escalations"},
		{len(d.Unowned), "unowned", "unowned"},
		{len(d.Failures), "failed task", "failed tasks"},
		{len(d.Committed), "snapshot committed", "snapshots committed"},
		{len(d.Problems), "new problem", "new problems"},
		{len(d.Disks), "disk consolidation", "disk consolidations"},
		{len(d.Undeliverable), "undeliverable contact", "undeliverable contacts"},
	} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, plural(c.n, c.one, c.many)))
		}
	}
	if len(parts) == 0 {
		return "[snapwarden] support: nothing to report"
	}
	return "[snapwarden] support: " + strings.Join(parts, ", ")
}

// entryOf flattens a decision for the templates. maxKeep is the fallback
// when the decision's policy has none.
func entryOf(d plan.Decision, at time.Time, maxKeep time.Duration) Entry {
	s, v := d.Snapshot, d.Verdict
	pl := placeOf(&d)
	e := Entry{
		VCenter:         pl.vcenter,
		VM:              pl.vm,
		Snapshot:        pl.snapshot,
		SnapshotID:      s.ID,
		Description:     report.Clean(s.Description),
		Creator:         oneLine(d.Creator()),
		Customer:        oneLine(d.Customer),
		Created:         pl.created,
		Age:             v.Age,
		SizeBytes:       s.SizeBytes,
		Depth:           s.Depth,
		State:           v.State.String(),
		Detail:          oneLine(v.Detail),
		Deadline:        utcOrZero(v.DeadlineAt),
		ActAt:           utcOrZero(v.ActAt),
		Overdue:         !v.DeadlineAt.IsZero() && !at.Before(v.DeadlineAt),
		PolicyAction:    string(d.Policy.Action),
		ExemptUntil:     utcOrZero(v.ExemptUntil),
		MalformedMarker: oneLine(v.MalformedMarker),
		KeepUntilEnded:  utcOrZero(v.KeepUntilEnded),
		KeepUntilCapped: v.KeepUntilCapped,
		Notice:          d.CustomerNotice.String(),
		Reminder:        d.CustomerNotice == plan.ActionRemind,
		NextAction:      d.Action.String(),
		Due:             d.Due,
		NextActionAt:    utcOrZero(d.At),
		Why:             oneLine(d.Why),
	}
	if s.VM != nil {
		e.Datacenter, e.Folder = oneLine(s.VM.Datacenter), oneLine(s.VM.Folder)
	}
	switch {
	case len(d.Disputed) > 0:
		e.Owner = "disputed: " + oneLine(strings.Join(d.Disputed, " or "))
	case d.Customer == "":
		e.Owner = "unknown owner"
	case !d.Reachable:
		e.Owner = e.Customer + " (no reachable contact)"
	default:
		e.Owner = e.Customer
	}
	if d.Action == plan.ActionBlocked {
		e.Blocked = d.Reason.String()
	}
	if f := d.FillsFirst; f != nil {
		e.FillsDatastore, e.FillsAt = oneLine(f.Name), utcOrZero(f.FullAt)
	}
	keep := d.Policy.MaxKeep
	if keep <= 0 {
		keep = maxKeep
	}
	if keep > 0 && !s.Created.IsZero() {
		e.KeepUntilMax = s.Created.UTC().Add(keep)
	}
	e.Consequence = consequence(d, at)
	return e
}

// consequence says in plain words what happens when the deadline comes. A
// snapshot to be committed names the plan's earliest commit time, which
// counts min_notice from the first notice that reached the customer: this
// notice, when it is the first, states the time its own delivery sets.
func consequence(d plan.Decision, at time.Time) string {
	if d.Policy.Action == policy.ActionConsolidate && !d.CommitAt.IsZero() {
		return "it will be committed automatically, no earlier than " + utc(d.CommitAt) + "."
	}
	return "our support team will contact you."
}

// sortEntries orders entries by deadline (byDeadline) or by place, then by
// VM and create time, for a stable, readable message.
func sortEntries(es []Entry, byDeadline bool) {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := &es[i], &es[j]
		if byDeadline && !a.Deadline.Equal(b.Deadline) {
			return a.Deadline.Before(b.Deadline)
		}
		return a.place().before(b.place())
	})
}

// place is where an entry sorts by place: its vCenter, VM, create time and
// snapshot name, as the entry shows them.
type place struct {
	vcenter, vm string
	created     time.Time
	snapshot    string
}

// placeOf is the place of a decision's entry, without the rest of the entry.
func placeOf(d *plan.Decision) place {
	s := &d.Snapshot
	p := place{created: s.Created.UTC(), snapshot: oneLine(s.Name)}
	if s.VM != nil {
		p.vcenter, p.vm = oneLine(s.VM.VCenter), oneLine(s.VM.Name)
	}
	return p
}

func (e *Entry) place() place {
	return place{vcenter: e.VCenter, vm: e.VM, created: e.Created, snapshot: e.Snapshot}
}

func (a place) before(b place) bool {
	if a.vcenter != b.vcenter {
		return a.vcenter < b.vcenter
	}
	if a.vm != b.vm {
		return a.vm < b.vm
	}
	if !a.created.Equal(b.created) {
		return a.created.Before(b.created)
	}
	return a.snapshot < b.snapshot
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// oneLine makes a name safe to show: control characters (CR, LF, C1) become
// spaces and bidi overrides go (report.Clean, the one sanitiser of names
// customers control, so "exe.\u202Efdp" cannot pass for another name in
// either part of an email), then spaces are collapsed and trimmed: for
// anything that may end up in a header or a one-line summary.
func oneLine(s string) string {
	return strings.Join(strings.Fields(report.Clean(s)), " ")
}

func cleanAddrs(in []string) []string {
	var out []string
	for _, a := range in {
		if a = oneLine(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
