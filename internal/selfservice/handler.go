package selfservice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// Prefix is the only path the public listener serves; the console's paths
// never start with it.
const Prefix = "/s/"

// maxBody caps a request body: the form posts nothing.
const maxBody = 1 << 10

//go:embed templates/page.html.tmpl
var pageFS embed.FS

var page = template.Must(template.ParseFS(pageFS, "templates/page.html.tmpl"))

// css is the pages' only style; the CSP allows exactly it by its hash, so
// no other inline style or script can run.
const css = `body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f8fa}` +
	`main{max-width:36rem;margin:0 auto;padding:1.25rem;background:#fff;min-height:100vh;box-sizing:border-box}` +
	`.provider{color:#57606a;margin:0 0 .5rem}h1{font-size:1.4rem;margin:0 0 1rem}` +
	`dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem .75rem;margin:0 0 1rem}dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}` +
	`button{font:inherit;font-weight:600;width:100%;padding:.9rem;border:0;border-radius:.4rem;background:#0550ae;color:#fff;cursor:pointer}` +
	`button:focus{outline:3px solid #fb8500;outline-offset:2px}`

var csp = func() string {
	sum := sha256.Sum256([]byte(css))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

// Store is what the handler needs of the ledger.
type Store interface {
	RequestTarget(ctx context.Context, vcenter, snapshotID string, created time.Time) (ledger.Target, bool, error)
	RequestDone(ctx context.Context, token string) (time.Time, error)
	RecordRequest(ctx context.Context, r ledger.CustomerRequest) (bool, error)
}

// Options configure the public handler.
type Options struct {
	Keys  *Keys
	Store Store
	// Provider names the provider on every page.
	Provider   string
	ExtendBy   time.Duration
	MaxExtends int
	// Commit accepts "commit it now" links.
	Commit bool
	Log    zerolog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Limiter limits requests per client address; nil means a default
	// of 1 a second with bursts of 20.
	Limiter *Limiter
}

// Handler serves the self-service pages.
type Handler struct{ opt Options }

// NewHandler returns the public listener's handler.
func NewHandler(opt Options) *Handler {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Limiter == nil {
		opt.Limiter = NewLimiter(1, 20)
	}
	if opt.Provider == "" {
		opt.Provider = "Your hosting provider"
	}
	return &Handler{opt: opt}
}

// Server wraps h with the timeouts a listener open to the internet needs.
func Server(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
}

// view is what the page template shows.
type view struct {
	Provider, Title, VM, Snapshot, Button string
	Created                               time.Time
	Text                                  []string
	CSS                                   template.CSS
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	if !h.opt.Limiter.Allow(clientIP(r), h.opt.Now()) {
		hd.Set("Retry-After", "10")
		h.render(w, http.StatusTooManyRequests, view{Title: "Too many requests", Text: []string{"Please wait a few seconds and try again."}})
		return
	}
	token, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok || token == "" || strings.Contains(token, "/") {
		h.render(w, http.StatusNotFound, view{Title: "Page not found"})
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		hd.Set("Allow", "GET, HEAD, POST")
		h.render(w, http.StatusMethodNotAllowed, view{Title: "Method not allowed"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		h.render(w, http.StatusRequestEntityTooLarge, view{Title: "Request too large"})
		return
	}
	h.serveToken(w, r, token)
}

func (h *Handler) serveToken(w http.ResponseWriter, r *http.Request, token string) {
	ctx, now := r.Context(), h.opt.Now()
	c, err := h.opt.Keys.Verify(token, now)
	switch {
	case errors.Is(err, ErrExpired):
		h.render(w, http.StatusGone, view{Title: "This link has expired",
			Text: []string{"Links in our emails work for a limited time. Please use the links in our latest email, or reply to it."}})
		return
	case err != nil:
		h.render(w, http.StatusForbidden, view{Title: "This link is not valid",
			Text: []string{"The link may have been cut or changed on its way. Please use the links in our latest email, or reply to it."}})
		return
	}
	t, found, err := h.opt.Store.RequestTarget(ctx, c.VCenter, c.SnapshotID, c.Created)
	if err != nil {
		h.fail(w, err)
		return
	}
	if !found || !t.Open {
		h.render(w, http.StatusNotFound, view{Title: "This snapshot is gone",
			Text: []string{"The snapshot no longer exists in vSphere: it was committed or reverted already. There is nothing left to do."}})
		return
	}
	v := view{VM: t.VM, Snapshot: t.Snapshot, Created: t.Key.Created}
	if t.Customer != c.Customer {
		v.Title = "This link is no longer yours to use"
		v.Text = []string{"The VM now belongs to another customer, so this link no longer acts. Please reply to our email if this is wrong."}
		h.render(w, http.StatusForbidden, v)
		return
	}
	digest := Digest(token)
	done, err := h.opt.Store.RequestDone(ctx, digest)
	if err != nil {
		h.fail(w, err)
		return
	}
	if !done.IsZero() {
		v.Title = "Already done"
		v.Text = []string{"We received this request on " + done.UTC().Format("2006-01-02 15:04 UTC") + ". Nothing more to do."}
		h.render(w, http.StatusOK, v)
		return
	}
	if refusal := h.refusal(c.Action, t); refusal != "" {
		v.Title, v.Text = "Not possible", []string{refusal}
		h.render(w, http.StatusConflict, v)
		return
	}
	if r.Method != http.MethodPost {
		// GET and HEAD change nothing: mail scanners fetch every link.
		v.Title, v.Text, v.Button = label(c.Action, h.opt.ExtendBy)+"?", h.explain(c.Action), label(c.Action, h.opt.ExtendBy)
		h.render(w, http.StatusOK, v)
		return
	}
	first, err := h.opt.Store.RecordRequest(ctx, ledger.CustomerRequest{Token: digest, Key: t.Key, Customer: c.Customer,
		Action: c.Action, At: now, Remote: clientIP(r)})
	if err != nil {
		h.fail(w, err)
		return
	}
	if !first {
		v.Title, v.Text = "Already done", []string{"We received this request before. Nothing more to do."}
		h.render(w, http.StatusOK, v)
		return
	}
	h.opt.Log.Info().Str("customer", c.Customer).Str("action", string(c.Action)).Str("vcenter", c.VCenter).
		Str("snapshot_id", c.SnapshotID).Msg("self-service request recorded")
	v.Title, v.Text = "Thank you", []string{h.done(c.Action)}
	h.render(w, http.StatusOK, v)
}

// refusal says why the action cannot be taken, or "" when it can.
func (h *Handler) refusal(a plan.RequestAction, t ledger.Target) string {
	switch {
	case a == plan.RequestCommit && !h.opt.Commit:
		return "Committing from this page is not offered. Please commit the snapshot in vSphere, or reply to our email."
	case a == plan.RequestExtend && t.Extends >= h.opt.MaxExtends:
		return "This snapshot was extended as often as we allow. If you need it longer, please reply to our email."
	}
	return ""
}

func (h *Handler) explain(a plan.RequestAction) []string {
	switch a {
	case plan.RequestExtend:
		return []string{"We will move the snapshot's deadline by " + hours(h.opt.ExtendBy) + ", and what happens at the deadline with it.",
			"Nothing changes until you press the button."}
	case plan.RequestCommit:
		return []string{"We will commit (delete) the snapshot soon, in our next maintenance run: the changes made since it was taken are kept in the VM's disk, and you can no longer revert to it.",
			"Nothing changes until you press the button."}
	default:
		return []string{"We will tell our support team that this snapshot's VM is not yours, and send you no more emails about it.",
			"Nothing changes until you press the button."}
	}
}

func (h *Handler) done(a plan.RequestAction) string {
	switch a {
	case plan.RequestExtend:
		return "The deadline moves by " + hours(h.opt.ExtendBy) + ". Our next email shows the new deadline."
	case plan.RequestCommit:
		return "We commit the snapshot in our next maintenance run and tell you when it is done."
	default:
		return "Our support team will check who owns this VM. You will get no more emails about this snapshot."
	}
}

func (h *Handler) fail(w http.ResponseWriter, err error) {
	h.opt.Log.Error().Err(err).Msg("self-service request failed")
	h.render(w, http.StatusServiceUnavailable, view{Title: "Please try again later",
		Text: []string{"We could not handle your request just now. Please try again in a few minutes."}})
}

func (h *Handler) render(w http.ResponseWriter, status int, v view) {
	v.Provider, v.CSS = h.opt.Provider, template.CSS(css)
	var buf bytes.Buffer
	if err := page.Execute(&buf, v); err != nil {
		h.opt.Log.Error().Err(err).Msg("self-service page")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// clientIP is the address the rate limit counts. Behind a reverse proxy on
// the same host (a loopback peer), the last X-Forwarded-For hop is the
// client: the proxy appends it and a client cannot forge it.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if last := strings.TrimSpace(parts[len(parts)-1]); net.ParseIP(last) != nil {
				return last
			}
		}
	}
	return host
}
