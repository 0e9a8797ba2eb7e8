// Package service owns the long-running process behind `snapwarden serve`:
// cycles on the cron schedule that never overlap, SIGHUP reloads that keep
// the old config when the new one is broken, a safe stop on SIGTERM, systemd
// notifications (READY, STATUS, WATCHDOG, STOPPING) and the HTTP endpoints
// /healthz, /metrics and /report.
//
// The same listener serves the support console (server-rendered pages from
// the ledger and the last cycle's plan; it never starts a cycle) and its JSON
// API, including acknowledgements of escalations. Everything but /healthz and
// /metrics needs a login (auth.go) unless listen is loopback and none is
// configured.
package service
