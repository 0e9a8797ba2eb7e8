// Package packaging builds snapwarden's Debian package with nfpm: the binary,
// the hardened systemd unit (pointed at /usr/bin), the sysusers.d entry for
// the snapwarden user, the example config as a conffile, an empty root-only
// directory for LoadCredential= passwords, the docs, and the Prometheus rules
// and Grafana dashboard as examples. `make deb` runs it through ./mkdeb; its
// tests check the result with dpkg-deb and systemd-analyze, and check the
// alert rules and the dashboard against the service's metrics.
package packaging
