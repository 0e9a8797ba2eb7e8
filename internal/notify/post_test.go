package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const hookPath = "/services/T000/B000/s3cr3tt0ken"

// hook serves the webhook with the given status codes in turn (the last
// one repeats) and counts requests.
func hook(t *testing.T, codes ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if r.Method != http.MethodPost || r.URL.Path != hookPath || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		body, _ := io.ReadAll(r.Body)
		if !json.Valid(body) {
			t.Errorf("body is not JSON: %s", body)
		}
		w.WriteHeader(codes[min(i, len(codes)-1)])
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func poster() *Poster {
	return &Poster{Client: &http.Client{Timeout: 5 * time.Second}, Attempts: 3, Backoff: func(int) time.Duration { return 0 }}
}

func noURL(t *testing.T, err error, url string) {
	t.Helper()
	for _, s := range []string{url, hookPath, "s3cr3tt0ken"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains %q", err, s)
		}
	}
}

func TestPostRetriesTransient(t *testing.T) {
	srv, n := hook(t, 500, 500, 200)
	payload, err := renderer(t).Webhook(supportDigest(), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := poster().Post(context.Background(), srv.URL+hookPath, payload); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
}

func TestPostPermanent(t *testing.T) {
	srv, n := hook(t, 400)
	url := srv.URL + hookPath
	err := poster().Post(context.Background(), url, []byte(`{"text":"x"}`))
	if err == nil || !strings.Contains(err.Error(), "support webhook: HTTP 400") {
		t.Fatalf("error %v", err)
	}
	noURL(t, err, url)
	if got := n.Load(); got != 1 {
		t.Errorf("%d attempts for a 400, want 1", got)
	}
}

func TestPostGivesUp(t *testing.T) {
	srv, n := hook(t, 429, 503)
	url := srv.URL + hookPath
	err := poster().Post(context.Background(), url, []byte(`{"text":"x"}`))
	if err == nil || !strings.Contains(err.Error(), "support webhook: HTTP 503") {
		t.Fatalf("error %v", err)
	}
	noURL(t, err, url)
	if got := n.Load(); got != 3 {
		t.Errorf("%d attempts, want 3", got)
	}
}

func TestPostNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + hookPath
	srv.Close()
	err := poster().Post(context.Background(), url, []byte(`{"text":"x"}`))
	if err == nil || !strings.HasPrefix(err.Error(), "support webhook: ") {
		t.Fatalf("error %v", err)
	}
	noURL(t, err, url)

	err = poster().Post(context.Background(), "::not a url "+hookPath, nil)
	if err == nil {
		t.Fatal("bad URL accepted")
	}
	noURL(t, err, "::not a url")
}

func TestPostCanceledDuringBackoff(t *testing.T) {
	srv, n := hook(t, 500)
	ctx, cancel := context.WithCancel(context.Background())
	p := poster()
	p.Backoff = func(int) time.Duration { cancel(); return time.Hour }
	err := p.Post(ctx, srv.URL+hookPath, []byte(`{"text":"x"}`))
	if err == nil || n.Load() != 1 {
		t.Fatalf("error %v after %d attempts", err, n.Load())
	}
	noURL(t, err, srv.URL)
}
