package service

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/report"
)

// Bounds of an acknowledgement: a note says what support is doing about it,
// and no acknowledgement silences an escalation for longer than maxAckFor.
const (
	maxNoteLen = 500
	maxAckFor  = 30 * 24 * time.Hour
	maxAckBody = 16 << 10
)

// apiReport serves the JSON report of the last cycle (the report contract).
func (s *Service) apiReport(w http.ResponseWriter, r *http.Request, _ string) {
	last := s.lastResult()
	if last == nil || last.Plan == nil {
		apiError(w, http.StatusServiceUnavailable, "no cycle has finished yet")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := report.Render(w, report.JSON, last.Plan, report.Options{GeneratedAt: last.Started}); err != nil {
		s.opt.Log.Error().Err(err).Msg("rendering /api/v1/report")
	}
}

// apiEscalations serves the escalation queue of the last cycle.
func (s *Service) apiEscalations(w http.ResponseWriter, r *http.Request, _ string) {
	q, err := s.escalations(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

// ackRequest is the body of POST /api/v1/escalations/ack.
type ackRequest struct {
	VCenter    string `json:"vcenter"`
	SnapshotID string `json:"snapshot_id"`
	Note       string `json:"note"`
	Until      string `json:"until"`
}

// apiAck records an acknowledgement by user. Only a JSON body is accepted:
// a cross-site HTML form cannot send one, and a cross-site fetch with one
// needs a CORS preflight this server never grants.
func (s *Service) apiAck(w http.ResponseWriter, r *http.Request, user string) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		apiError(w, http.StatusUnsupportedMediaType, "the body must be application/json")
		return
	}
	if s.opt.Ledger == nil {
		apiError(w, http.StatusServiceUnavailable, "no ledger to record acknowledgements in")
		return
	}
	var req ackRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAckBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		apiError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	now := s.opt.Now()
	until, err := time.Parse(time.RFC3339, req.Until)
	note := strings.TrimSpace(report.Clean(req.Note))
	switch {
	case req.VCenter == "" || req.SnapshotID == "":
		apiError(w, http.StatusBadRequest, "vcenter and snapshot_id are required")
		return
	case err != nil:
		apiError(w, http.StatusBadRequest, fmt.Sprintf("until %q is not an RFC3339 time such as 2026-11-30T18:00:00Z", req.Until))
		return
	case !until.After(now) || until.Sub(now) > maxAckFor:
		apiError(w, http.StatusBadRequest, fmt.Sprintf("until must be after now and at most %d days ahead", maxAckFor/(24*time.Hour)))
		return
	case note == "":
		apiError(w, http.StatusBadRequest, "note is required: say what support is doing about it")
		return
	}
	note = report.Truncate(note, maxNoteLen)
	q, err := s.escalations(r.Context())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	for _, e := range q {
		if e.VCenter != req.VCenter || e.SnapshotID != req.SnapshotID {
			continue
		}
		a := ledger.Ack{Key: e.key, State: e.State, By: user, Note: note, At: now, Until: until.UTC()}
		if err := s.opt.Ledger.Acknowledge(r.Context(), a); err != nil {
			s.serverError(w, r, err)
			return
		}
		s.opt.Log.Info().Str("user", user).Str("vcenter", e.VCenter).Str("snapshot_id", e.SnapshotID).
			Time("until", a.Until).Msg("escalation acknowledged")
		e.Acknowledged = ackViewOf(a)
		writeJSON(w, http.StatusOK, e)
		return
	}
	apiError(w, http.StatusNotFound, fmt.Sprintf("no escalation of snapshot %q on vCenter %q in the last cycle", req.SnapshotID, req.VCenter))
}

// apiHistory serves what `history --format json` prints. since is a
// duration back from now (48h, 7d) or an RFC3339 time.
func (s *Service) apiHistory(w http.ResponseWriter, r *http.Request, _ string) {
	f, err := s.historyFilter(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	events, err := s.audit(r, f)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	if events == nil {
		events = []ledger.Event{}
	}
	writeJSON(w, http.StatusOK, events)
}

// historyFilter reads vm, customer and since from the query.
func (s *Service) historyFilter(r *http.Request) (ledger.Filter, error) {
	q := r.URL.Query()
	f := ledger.Filter{VM: q.Get("vm"), Customer: q.Get("customer")}
	if since := q.Get("since"); since != "" {
		if t, err := time.Parse(time.RFC3339, since); err == nil {
			f.Since = t
		} else if d, err := config.ParseDuration(since); err == nil {
			f.Since = s.opt.Now().Add(-d)
		} else {
			return f, fmt.Errorf("since %q: want a duration such as 48h or 7d, or an RFC3339 time", since)
		}
	}
	return f, nil
}

// audit reads the ledger's trail; without a ledger there is none.
func (s *Service) audit(r *http.Request, f ledger.Filter) ([]ledger.Event, error) {
	if s.opt.Ledger == nil {
		return nil, nil
	}
	return s.opt.Ledger.Audit(r.Context(), f)
}

// serverError logs err once, here at the edge, and answers 500 without
// details (they may name files or the database).
func (s *Service) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.opt.Log.Error().Err(err).Str("path", r.URL.Path).Msg("console request failed")
	apiError(w, http.StatusInternalServerError, "internal error: see the service log")
}

func apiError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
