package service

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/cycle"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/policy"
	"github.com/snapwarden/snapwarden/internal/report"
)

// The console's pages are html/template files and its stylesheet and script
// static files, all embedded: no build chain, and the strict CSP below holds
// because nothing is inline.
//
//go:embed templates static
var consoleFiles embed.FS

// consoleCSP allows only the console's own script, styles and fetches.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// pages are the console's templates, each the layout with its own content.
var pages = func() map[string]*template.Template {
	link := func(href string, name string) template.HTML {
		return template.HTML(`<a href="`+template.HTMLEscapeString(href)+`">`) + report.Breakable(name) + "</a>"
	}
	funcs := template.FuncMap{
		"wbr":          report.Breakable,
		"utc":          func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
		"minutes":      report.Minutes,
		"ago":          ago,
		"vmURL":        vmURL,
		"customerURL":  customerURL,
		"vmName":       func(d report.Display) template.HTML { return link(vmURL(d.VCenter, d.VMUUID), d.VM) },
		"customerName": func(d report.Display) template.HTML { return link(customerURL(d.Customer), d.Customer) },
		"problemVM":    func(d report.ProblemDisplay) template.HTML { return link(vmURL(d.VCenter, d.VMID), d.VM) },
	}
	layout := template.Must(template.Must(template.New("layout.html").Funcs(funcs).ParseFS(consoleFiles, "templates/layout.html")).
		Parse(report.RowsTemplate + report.ProblemsTemplate))
	out := map[string]*template.Template{}
	for _, name := range []string{"overview", "snapshots", "customer", "vm"} {
		out[name] = template.Must(template.Must(layout.Clone()).ParseFS(consoleFiles, "templates/"+name+".html"))
	}
	return out
}()

// ago renders how long an escalation has waited: "5m", "3h 10m", "2d 4h".
func ago(d time.Duration) string {
	d = max(d, 0).Round(time.Minute)
	days, hours, mins := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	}
	return fmt.Sprintf("%dm", mins)
}

func vmURL(vcenter, vmID string) string {
	return "/vms/" + url.PathEscape(vcenter) + "/" + url.PathEscape(vmID)
}

func customerURL(id string) string { return "/customers/" + url.PathEscape(id) }

// handler is a console handler; user is who is logged in.
type handler func(w http.ResponseWriter, r *http.Request, user string)

// consoleRoutes registers the console's pages, static files and API, all
// behind the login.
func (s *Service) consoleRoutes(mux *http.ServeMux) {
	static, _ := fs.Sub(consoleFiles, "static")
	files := http.FileServerFS(static)
	mux.HandleFunc("GET /static/", s.login(func(w http.ResponseWriter, r *http.Request, _ string) {
		http.StripPrefix("/static/", files).ServeHTTP(w, r)
	}))
	// The report's stylesheet first, so the console's tables look like the report's.
	css, _ := fs.ReadFile(consoleFiles, "static/console.css")
	css = append([]byte(report.Stylesheet), css...)
	mux.HandleFunc("GET /static/console.css", s.login(func(w http.ResponseWriter, r *http.Request, _ string) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		_, _ = w.Write(css)
	}))
	mux.HandleFunc("GET /{$}", s.login(s.overviewPage))
	mux.HandleFunc("GET /snapshots", s.login(s.snapshotsPage))
	mux.HandleFunc("GET /customers/{id}", s.login(s.customerPage))
	mux.HandleFunc("GET /vms/{vcenter}/{vm}", s.login(s.vmPage))
	mux.HandleFunc("GET /report", s.login(s.report))
	mux.HandleFunc("GET /api/v1/report", s.login(s.apiReport))
	mux.HandleFunc("GET /api/v1/escalations", s.login(s.apiEscalations))
	mux.HandleFunc("POST /api/v1/escalations/ack", s.login(s.apiAck))
	mux.HandleFunc("GET /api/v1/history", s.login(s.apiHistory))
}

// login lets h run for a logged-in user and answers 401 to anyone else.
// Every console response gets headers that keep it out of frames, caches
// and other sites' referrers.
func (s *Service) login(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		a := s.auth
		s.mu.Unlock()
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", consoleCSP)
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("Cache-Control", "no-store")
		user, ok := a.user(r)
		if !ok {
			a.challenge(w)
			return
		}
		h(w, r, user)
	}
}

// lastResult is the last cycle's result; nil before the first one.
func (s *Service) lastResult() *cycle.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// escalation is one item of the queue support works from: a snapshot
// support has been told of (or is told of this cycle) and still must act on.
type escalation struct {
	VCenter    string `json:"vcenter"`
	SnapshotID string `json:"snapshot_id"`
	VM         string `json:"vm"`
	Snapshot   string `json:"snapshot"`
	Customer   string `json:"customer"`
	// Reason is the plan's reason: deadline-passed, managed-stale or the
	// guard that blocks a consolidation (guard-window, ...).
	Reason string `json:"reason"`
	// Since is when support was first told (RFC3339).
	Since        string   `json:"since"`
	Acknowledged *ackView `json:"acknowledged"`

	// For the pages.
	VMID  string        `json:"-"`
	State string        `json:"-"`
	Age   time.Duration `json:"-"`
	Why   string        `json:"-"`
	key   facts.Key
}

// ackView is an acknowledgement that holds, as the API shows it.
type ackView struct {
	By    string `json:"by"`
	Note  string `json:"note"`
	At    string `json:"at"`
	Until string `json:"until"`
}

func ackViewOf(a ledger.Ack) *ackView {
	return &ackView{By: a.By, Note: a.Note, At: a.At.UTC().Format(time.RFC3339), Until: a.Until.UTC().Format(time.RFC3339)}
}

// queued reports whether support has d in hand: escalated now, escalated in
// an earlier cycle and still overdue, or a blocked consolidation support
// was told of.
func queued(d *plan.Decision) bool {
	switch {
	case d.EscalateNow:
		return true
	case d.Action == plan.ActionEscalate:
		return d.History.Escalations > 0 && (d.Verdict.State == policy.StateOverdue || d.Verdict.State == policy.StateManaged)
	case d.Action == plan.ActionBlocked:
		return d.History.BlockedReason != ""
	}
	return false
}

// escalations is the queue of the last cycle's plan, oldest first, with the
// acknowledgements that hold now.
func (s *Service) escalations(ctx context.Context) ([]escalation, error) {
	out := []escalation{}
	last := s.lastResult()
	if last == nil || last.Plan == nil {
		return out, nil
	}
	now := s.opt.Now()
	acks, since := map[facts.Key]ledger.Ack{}, map[facts.Key]time.Time{}
	if s.opt.Ledger != nil {
		var err error
		if acks, err = s.opt.Ledger.Acks(ctx, now); err != nil {
			return nil, err
		}
		if since, err = s.opt.Ledger.EscalatedSince(ctx); err != nil {
			return nil, err
		}
	}
	for i := range last.Plan.Decisions {
		d := &last.Plan.Decisions[i]
		if !queued(d) {
			continue
		}
		k := d.Snapshot.Key()
		reason := plan.ReasonDeadlinePassed
		switch {
		case d.Action == plan.ActionBlocked:
			reason = d.Reason
		case d.Verdict.State == policy.StateManaged:
			reason = plan.ReasonManagedStale
		}
		first, told := since[k]
		if !told {
			first = last.Plan.At // told in the last cycle, not yet in the ledger's view
		}
		// The name for people (and the API); the key's vCenter is its instance UUID.
		e := escalation{VCenter: d.Snapshot.VM.VCenter, SnapshotID: d.Snapshot.ID, VM: d.Snapshot.VM.Name, Snapshot: d.Snapshot.Name,
			Customer: d.Customer, Reason: reason.String(), Since: first.UTC().Format(time.RFC3339),
			VMID: d.Snapshot.VM.InstanceUUID, State: d.Verdict.State.String(), Age: now.Sub(first).Round(time.Minute),
			Why: d.Why, key: k}
		if a, ok := acks[k]; ok && a.Holds(e.State, now) {
			e.Acknowledged = ackViewOf(a)
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b escalation) int {
		return cmp.Or(cmp.Compare(a.Since, b.Since), cmp.Compare(a.VCenter, b.VCenter), cmp.Compare(a.SnapshotID, b.SnapshotID))
	})
	return out, nil
}

// pageData is what every console page gets; each page fills its part.
type pageData struct {
	Title, Nav, User string
	// Cycle describes the last cycle; Problem is set when it failed or
	// none finished yet.
	Cycle, Problem string
	Mode           string

	States      []report.StateTotal
	Total       int
	TotalSize   string
	Escalations []escalation
	Errors      []facts.VCenterError
	Problems    []report.ProblemDisplay
	Rows        []report.Display
	Events      []ledger.Event
	// AckUntil are the choices of the acknowledge form, as absolute times
	// from the server's clock.
	AckUntil []choice

	Filter    snapshotFilter
	StateList []string
	VCenters  []string
	Customers []config.Customer

	Customer config.Customer
	Known    bool // Customer is in the directory
	VMName   string
	VCenter  string
}

type choice struct{ Label, Value string }

// ackChoices are how long the acknowledge form offers.
var ackChoices = []struct {
	label string
	d     time.Duration
}{{"for 4 hours", 4 * time.Hour}, {"for 1 day", 24 * time.Hour}, {"for 3 days", 72 * time.Hour}, {"for 7 days", 7 * 24 * time.Hour}}

// snapshotFilter is the /snapshots query.
type snapshotFilter struct{ State, Customer, VCenter, Q string }

// newPage fills in the parts every page shows.
func (s *Service) newPage(title, nav, user string) (*pageData, *plan.Plan) {
	s.mu.Lock()
	last, lastErr, cfg := s.last, s.lastErr, s.cfg
	s.mu.Unlock()
	pd := &pageData{Title: title, Nav: nav, User: user, Mode: cfg.Enforcement.Mode}
	now := s.opt.Now()
	for _, c := range ackChoices {
		pd.AckUntil = append(pd.AckUntil, choice{Label: c.label, Value: now.Add(c.d).UTC().Format(time.RFC3339)})
	}
	switch {
	case lastErr != nil:
		pd.Problem = "The last cycle failed: " + lastErr.Error()
	case last == nil || last.Plan == nil:
		pd.Problem = "No cycle has finished yet: the pages fill in after the first one."
	}
	if last == nil || last.Plan == nil {
		return pd, nil
	}
	pd.Cycle = last.Summary()
	return pd, last.Plan
}

// render writes a page; a template error is logged (the page is cut short,
// never half-escaped).
func (s *Service) render(w http.ResponseWriter, r *http.Request, name string, pd *pageData) {
	var b bytes.Buffer
	if err := pages[name].ExecuteTemplate(&b, "layout.html", pd); err != nil {
		s.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}

// displays renders the rows of p that keep passes, for the pages.
func displays(p *plan.Plan, opt report.Options, keep func(*report.Row) bool) []report.Display {
	var out []report.Display
	if p == nil {
		return out
	}
	for _, row := range report.Rows(p, opt) {
		if keep == nil || keep(&row) {
			out = append(out, report.DisplayRow(row, p.At))
		}
	}
	return out
}

// overviewPage: counts by state, the escalation queue, problems.
func (s *Service) overviewPage(w http.ResponseWriter, r *http.Request, user string) {
	pd, p := s.newPage("Overview", "overview", user)
	if p != nil {
		pd.States, pd.Total, pd.TotalSize = report.Totals(report.Rows(p, report.Options{}))
		pd.Errors = p.Errors
		pd.Problems = report.DisplayProblems(p, report.Options{})
	}
	q, err := s.escalations(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	pd.Escalations = q
	s.render(w, r, "overview", pd)
}

// snapshotsPage lists the last cycle's snapshots, filtered by state,
// customer, vCenter and text.
func (s *Service) snapshotsPage(w http.ResponseWriter, r *http.Request, user string) {
	pd, p := s.newPage("Snapshots", "snapshots", user)
	q := r.URL.Query()
	f := snapshotFilter{State: q.Get("state"), Customer: q.Get("customer"), VCenter: q.Get("vcenter"), Q: strings.TrimSpace(q.Get("q"))}
	pd.Filter = f
	for _, st := range []policy.State{policy.StateOverdue, policy.StateWarning, policy.StateOK, policy.StateManaged, policy.StateExempt} {
		pd.StateList = append(pd.StateList, st.String())
	}
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	for _, vc := range cfg.VCenters {
		pd.VCenters = append(pd.VCenters, vc.Name)
	}
	pd.Customers = cfg.Customers
	opt := report.Options{Customer: f.Customer}
	if st, err := policy.ParseState(f.State); err == nil {
		opt.States = []policy.State{st}
	}
	text := strings.ToLower(f.Q)
	pd.Rows = displays(p, opt, func(row *report.Row) bool {
		if f.VCenter != "" && row.VCenter != f.VCenter {
			return false
		}
		if text == "" {
			return true
		}
		for _, v := range []string{row.VM, row.Snapshot, row.SnapshotID, row.Folder, row.Description, row.Customer, row.Creator} {
			if strings.Contains(strings.ToLower(v), text) {
				return true
			}
		}
		return false
	})
	s.render(w, r, "snapshots", pd)
}

// customerPage: one customer's snapshots, escalations and recent trail.
func (s *Service) customerPage(w http.ResponseWriter, r *http.Request, user string) {
	id := r.PathValue("id")
	pd, p := s.newPage("Customer "+id, "customers", user)
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	pd.Customer, pd.Known = cfg.Customer(id)
	if !pd.Known {
		pd.Customer = config.Customer{ID: id}
	}
	pd.Rows = displays(p, report.Options{Customer: id}, nil)
	if p != nil {
		pd.Problems = report.DisplayProblems(p, report.Options{Customer: id})
	}
	if !pd.Known && len(pd.Rows) == 0 {
		http.NotFound(w, r)
		return
	}
	q, err := s.escalations(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	for _, e := range q {
		if e.Customer == id {
			pd.Escalations = append(pd.Escalations, e)
		}
	}
	pd.Events, err = s.audit(r, ledger.Filter{Customer: id, Since: s.opt.Now().Add(-30 * 24 * time.Hour)})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	slices.Reverse(pd.Events) // newest first
	s.render(w, r, "customer", pd)
}

// vmPage is the timeline of one VM (by vCenter and instance UUID, which
// survive renames): its snapshots now, and every snapshot seen, notice,
// acknowledgement and action in the ledger.
func (s *Service) vmPage(w http.ResponseWriter, r *http.Request, user string) {
	vc, id := r.PathValue("vcenter"), r.PathValue("vm")
	pd, p := s.newPage("VM", "snapshots", user)
	pd.VCenter = vc
	pd.Rows = displays(p, report.Options{}, func(row *report.Row) bool { return row.VCenter == vc && row.VMUUID == id })
	events, err := s.audit(r, ledger.Filter{VCenter: vc, VMID: id})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	// Problems name a VM by moref ("vm-42"): a VM with snapshots is
	// redirected to its timeline by instance UUID, which survives
	// re-registration; one without shows its problems.
	moref := id
	if p != nil {
		for _, d := range p.Decisions {
			vm := d.Snapshot.VM
			switch {
			case vm == nil || vm.VCenter != vc:
			case vm.InstanceUUID == id:
				moref = vm.MoRef
			case vm.MoRef == id && vm.InstanceUUID != "" && len(events) == 0:
				http.Redirect(w, r, vmURL(vc, vm.InstanceUUID), http.StatusFound)
				return
			}
		}
		for _, pr := range report.DisplayProblems(p, report.Options{}) {
			if pr.VCenter == vc && pr.VMID == moref {
				pd.Problems = append(pd.Problems, pr)
			}
		}
	}
	pd.Events = events
	switch {
	case len(pd.Rows) > 0:
		pd.VMName = pd.Rows[0].VM
	case len(events) > 0:
		pd.VMName = events[len(events)-1].VM
	case len(pd.Problems) > 0:
		pd.VMName = pd.Problems[0].VM
	default:
		http.NotFound(w, r)
		return
	}
	pd.Title = "VM " + pd.VMName
	q, err := s.escalations(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	for _, e := range q {
		if e.VCenter == vc && e.VMID == id {
			pd.Escalations = append(pd.Escalations, e)
		}
	}
	s.render(w, r, "vm", pd)
}
