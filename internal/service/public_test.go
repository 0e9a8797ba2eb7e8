package service

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/selfservice"
)

// serve starts the public listener on self_service.listen beside the
// console, and the two share no path.
func TestPublicListener(t *testing.T) {
	keys, err := selfservice.NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{File: "snapwarden.yaml", Schedule: "@every 1h", Listen: "127.0.0.1:0",
		SelfService: config.SelfService{Listen: "127.0.0.1:0"}}
	r := newRunner()
	console, public := make(chan string, 1), make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, cfg, r, Options{Log: zerolog.Nop(), Now: func() time.Time { return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) },
			StopGrace: time.Minute, Ready: func(a string) { console <- a }, PublicReady: func(a string) { public <- a },
			Public: selfservice.NewHandler(selfservice.Options{Keys: keys})})
	}()
	t.Cleanup(func() {
		cancel()
		close(r.release)
		<-done
	})
	pub, con := "http://"+<-public, "http://"+<-console
	for _, tc := range []struct {
		url  string
		code int
	}{
		{pub + "/s/not-a-token", http.StatusForbidden},
		{pub + "/healthz", http.StatusNotFound},
		{pub + "/metrics", http.StatusNotFound},
		{pub + "/report", http.StatusNotFound},
		{con + "/s/not-a-token", http.StatusNotFound},
	} {
		if code, body := get(t, tc.url); code != tc.code {
			t.Errorf("GET %s: %d, want %d: %s", tc.url, code, tc.code, body)
		}
	}
}
