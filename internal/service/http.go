package service

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/snapwarden/snapwarden/internal/report"
)

func (s *Service) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.consoleRoutes(mux)
	return mux
}

// healthz is 200 when the last cycle succeeded and is recent: finished within
// two schedule intervals (plus slack for a long cycle), or on a standby that
// reaches the ledger. It names the role: "leader" or "standby".
func (s *Service) healthz(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	last, lastErr, done, sched, role, campaignErr := s.last, s.lastErr, s.lastDone, s.sched, s.role, s.campaignErr
	s.mu.Unlock()
	now := s.opt.Now()
	body := map[string]any{"status": "ok", "role": role}
	code := http.StatusOK
	switch {
	case role == roleStandby && campaignErr != "":
		body["status"], code = "standby: cannot reach the ledger: "+campaignErr, http.StatusServiceUnavailable
		last = nil
	case role == roleStandby:
		// A standby is healthy while it serves and could take over: it runs
		// no cycles, and its last one (from when it led) says nothing of
		// the leader's.
		body["status"] = "standby: another instance leads"
		last = nil
	case last == nil && lastErr == nil:
		body["status"], code = "starting: no cycle finished yet", http.StatusServiceUnavailable
	case lastErr != nil:
		body["status"], code = "last cycle failed: "+lastErr.Error(), http.StatusServiceUnavailable
	case !last.OK():
		body["status"], code = "last cycle had errors: "+last.Summary(), http.StatusServiceUnavailable
	default:
		next := sched.Next(done)
		interval := sched.Next(next).Sub(next)
		if now.Sub(done) > 2*interval+5*time.Minute {
			body["status"], code = "stale: last cycle finished at "+done.UTC().Format(time.RFC3339), http.StatusServiceUnavailable
		}
	}
	if last != nil {
		body["last_cycle"] = last.Started.UTC().Format(time.RFC3339)
		body["summary"] = last.Summary()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// report serves the HTML report of the last cycle's plan.
func (s *Service) report(w http.ResponseWriter, _ *http.Request, _ string) {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	if last == nil || last.Plan == nil {
		http.Error(w, "no cycle has finished yet", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The report is one self-contained file: its stylesheet is inline.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	if err := report.Render(w, report.HTML, last.Plan, report.Options{GeneratedAt: last.Started}); err != nil {
		s.opt.Log.Error().Err(err).Msg("rendering /report")
	}
}
