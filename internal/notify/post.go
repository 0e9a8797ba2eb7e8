package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Poster posts JSON payloads to a webhook, retrying transient failures
// (network errors, HTTP 429 and 5xx) with backoff; other 4xx answers are
// permanent. The zero value is usable: http.DefaultClient with a timeout of
// its own per attempt, 3 attempts, exponential backoff from 1s.
type Poster struct {
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
	// Attempts is the most requests one Post makes; below 1 means 3.
	Attempts int
	// Backoff is the pause before attempt n+1 after attempt n (n from 1);
	// nil means 1s, 2s, 4s, ... capped at 30s. A 429's Retry-After, when
	// longer and at most a minute, is honoured instead.
	Backoff func(attempt int) time.Duration
}

// PostTimeout bounds one webhook request when the Poster's Client has no
// timeout of its own.
const PostTimeout = 15 * time.Second

// HTTPError is a webhook's non-2xx answer.
type HTTPError struct {
	StatusCode int
}

// Error says "support webhook: HTTP 500 Internal Server Error"; never the
// URL, which holds a token.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("support webhook: HTTP %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// Temporary reports whether the answer may change on a later try.
func (e *HTTPError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// Post sends payload as application/json to url. Errors never contain the
// URL: they say "support webhook: HTTP 500 ..." or
// "support webhook: connect: ...".
func (p *Poster) Post(ctx context.Context, rawURL string, payload []byte) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("support webhook: the URL is not a valid http(s) URL")
	}
	attempts := p.Attempts
	if attempts < 1 {
		attempts = 3
	}
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	var last error
	for n := 1; n <= attempts; n++ {
		var retryAfter time.Duration
		retryAfter, last = p.once(ctx, client, u, payload)
		if last == nil {
			return nil
		}
		var he *HTTPError
		if errors.As(last, &he) && !he.Temporary() {
			return last
		}
		if ctx.Err() != nil || n == attempts {
			break
		}
		wait := p.backoff(n)
		if retryAfter > wait && retryAfter <= time.Minute {
			wait = retryAfter
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("support webhook: %w (last error: %v)", ctx.Err(), last)
			case <-t.C:
			}
		}
	}
	if attempts > 1 {
		return fmt.Errorf("%w (after %d attempts)", last, attempts)
	}
	return last
}

func (p *Poster) backoff(n int) time.Duration {
	if p.Backoff != nil {
		return p.Backoff(n)
	}
	d := time.Second << (n - 1)
	if d > 30*time.Second || d <= 0 {
		d = 30 * time.Second
	}
	return d
}

// once makes one request; it returns the Retry-After of a 429, if any.
func (p *Poster) once(ctx context.Context, client *http.Client, u *url.URL, payload []byte) (time.Duration, error) {
	if client.Timeout == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, PostTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(payload))
	if err != nil {
		return 0, fmt.Errorf("support webhook: build request: %w", scrub(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "snapwarden")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("support webhook: %w", scrub(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	var wait time.Duration
	if resp.StatusCode == http.StatusTooManyRequests {
		if s, err := time.ParseDuration(resp.Header.Get("Retry-After") + "s"); err == nil && s > 0 {
			wait = s
		}
	}
	return wait, &HTTPError{StatusCode: resp.StatusCode}
}

// scrub removes the URL from net/http's errors (*url.Error carries it),
// keeping the operation's cause.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
