// Package simfleet builds a vCenter simulator (govmomi's vcsim) from a fleet
// file: folders, VMs, tags, custom attributes, snapshot trees with ages,
// sizes (a vSphere-shaped layoutEx), descriptions and creators (seeded task
// events), and serves it on 127.0.0.1 over TLS with a real login. It is the
// vCenter of every test, the demo and the benchmarks.
package simfleet
