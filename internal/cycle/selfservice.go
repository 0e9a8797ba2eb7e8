package cycle

import (
	"fmt"
	"net/http"
	"net/mail"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/notify"
	"github.com/snapwarden/snapwarden/internal/selfservice"
)

// selfService prepares the links of the customer digests and the public
// handler from cfg; both nil when self_service.public_url is unset. The
// key file is read here, so a reload picks up a rotated key for the links
// and the listener at once.
func (r *Runner) selfService(cfg *config.Config) (notify.LinkFunc, *selfservice.Handler, error) {
	ss := cfg.SelfService
	if !ss.Enabled() {
		return nil, nil, nil
	}
	keys, err := selfservice.LoadKeys(ss.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cfg.File, err)
	}
	linker := &selfservice.Linker{Keys: keys, PublicURL: ss.PublicURL, TTL: ss.LinkTTL, ExtendBy: ss.ExtendBy, Commit: ss.Commit}
	links := func(customer string, k facts.Key, at time.Time) ([]notify.Link, error) {
		ls, err := linker.Links(customer, k, at)
		out := make([]notify.Link, len(ls))
		for i, l := range ls {
			out[i] = notify.Link{Label: l.Label, URL: l.URL}
		}
		return out, err
	}
	h := selfservice.NewHandler(selfservice.Options{Keys: keys, Store: r.ledger, Provider: provider(cfg.SMTP.From),
		ExtendBy: ss.ExtendBy, MaxExtends: ss.MaxExtends, Commit: ss.Commit, Log: r.log, Now: r.now, Limiter: r.limiter})
	return links, h, nil
}

// provider is the name the public pages show: the display name of
// smtp.from, which customers already see on the digests.
func provider(from string) string {
	if a, err := mail.ParseAddress(from); err == nil && a.Name != "" {
		return a.Name
	}
	return ""
}

// Public is the self-service listener's handler (nil when links are off at
// start). It serves with the config of the last Reload; a reload that turns
// links on after a start without them leaves them off until the restart
// that starts the listener.
func (r *Runner) Public() http.Handler {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.public == nil {
		return nil
	}
	r.serving = true
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		h := r.public
		r.mu.Unlock()
		if h == nil {
			http.NotFound(w, req)
			return
		}
		h.ServeHTTP(w, req)
	})
}
