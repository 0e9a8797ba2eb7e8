package vsphere_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/cycle"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/policy"
	"github.com/snapwarden/snapwarden/internal/report"
	"github.com/snapwarden/snapwarden/internal/vsphere"
)

// BenchmarkReport is `snapwarden report` end to end against the floor's
// simulated fleet: login (SOAP and vAPI), collection with tags, custom
// attributes and creators, the ledger's reads, evaluation, planning, the JSON
// rendering, and logout. Compare with BenchmarkFloor of the same run.
func BenchmarkReport(b *testing.B) {
	sim := vsphere.BenchFleet(b)
	vc := vsphere.BenchTarget(sim)
	cfg := &config.Config{File: "bench", VCenters: []config.VCenter{vc}, Policy: policy.Default(),
		Ownership: []config.OwnershipRule{{TagCategory: "Customer"}, {CustomAttribute: "Customer"},
			{FolderRegex: `/Customers/(?P<customer>[^/]+)/`}}}
	cfg.Enforcement.Mode = "dry-run"
	planner, err := cycle.NewPlanner(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	state := filepath.Join(b.TempDir(), "ledger.db")

	// A ledger that has seen every snapshot, as in steady state.
	{
		led, err := ledger.Open(ctx, state)
		if err != nil {
			b.Fatal(err)
		}
		pool := vsphere.NewPool(cfg.VCenters, vsphere.Options{})
		inv := pool.Collect(ctx, nil)
		_ = pool.Close(ctx)
		seen := make([]ledger.Seen, len(inv.Snapshots))
		for i, s := range inv.Snapshots {
			seen[i] = ledger.Seen{Key: s.Key(), VCenter: s.VM.VCenter, VM: s.VM.Name, Snapshot: s.Name, Creator: s.Creator, SizeBytes: s.SizeBytes}
		}
		if _, err := led.Record(ctx, ledger.Record{Started: time.Now(), Snapshots: seen, Answered: []string{vc.Name}}); err != nil {
			b.Fatal(err)
		}
		led.Close()
	}

	b.Run(fmt.Sprintf("vms=%d", vsphere.BenchVMs()), func(b *testing.B) {
		var calls vsphere.Counter
		for i := 0; i < b.N; i++ {
			led, err := ledger.OpenReader(ctx, state)
			if err != nil {
				b.Fatal(err)
			}
			pool := vsphere.NewPool(cfg.VCenters, vsphere.Options{Counter: &calls})
			inv, err := cycle.Collect(ctx, pool, led)
			if err != nil || len(inv.Errors) > 0 {
				b.Fatalf("collect: %v %v", err, inv.Errors)
			}
			p, err := planner.Plan(ctx, inv, led, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if err := report.Render(io.Discard, report.JSON, p, report.Options{}); err != nil {
				b.Fatal(err)
			}
			_ = pool.Close(ctx)
			led.Close()
			if len(p.Decisions) != 2*vsphere.BenchVMs() {
				b.Fatalf("%d decisions", len(p.Decisions))
			}
		}
		b.ReportMetric(float64(calls.HTTP())/float64(b.N), "calls/op")
	})
}
