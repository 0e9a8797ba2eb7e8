// Package service owns the long-running process behind `snapwarden serve`:
// cycles on the cron schedule that never overlap, SIGHUP reloads that keep
// the old config when the new one is broken, a safe stop on SIGTERM, systemd
// notifications (READY, STATUS, WATCHDOG, STOPPING) and the HTTP endpoints
// /healthz, /metrics and /report.
package service
