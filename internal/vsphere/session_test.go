package vsphere

import (
	"context"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator/sim25"

	"github.com/snapwarden/snapwarden/internal/config"
)

// TestSessionsOutliveTheIdleTimeout: with vCenter's session idle timeout
// shorter than the pause between cycles, both sessions (SOAP and the vAPI
// one that reads tags) are kept alive, so the next collection works. The
// simulator's idle sweep runs on real time, hence the short real pause.
func TestSessionsOutliveTheIdleTimeout(t *testing.T) {
	s := startSim(t, "small.yaml")
	ctx := context.Background()
	admin := dial(t, target(s), Options{})
	const idle = 300 * time.Millisecond
	if err := sim25.SetSessionTimeout(ctx, admin.vim, idle); err != nil {
		t.Fatal(err)
	}
	c := dial(t, target(s), Options{KeepAlive: idle / 4})
	time.Sleep(4 * idle) // the pause between two cycles, several idle timeouts long
	inv, err := c.Collect(ctx, nil)
	if err != nil {
		t.Fatalf("collect after an idle pause: %v", err)
	}
	tagged := 0
	for _, sn := range inv.Snapshots {
		if len(sn.VM.Tags) > 0 {
			tagged++
		}
	}
	if tagged == 0 {
		t.Errorf("no tags read after the pause")
	}
}

// TestVCenterIdentity: snapshots carry the vCenter's instance UUID as the
// vCenter part of their keys, and the pool finds a vCenter by it (the
// ledger's actions name vCenters so).
func TestVCenterIdentity(t *testing.T) {
	s := startSim(t, "small.yaml")
	ctx := context.Background()
	p := NewPool([]config.VCenter{target(s)}, Options{})
	t.Cleanup(func() { _ = p.Close(ctx) })
	inv := p.Collect(ctx, nil)
	id := inv.VCenterIDs["vc-test"]
	if id == "" || id == "vc-test" || len(inv.Snapshots) == 0 {
		t.Fatalf("instance UUID %q of vc-test, %d snapshots", id, len(inv.Snapshots))
	}
	for _, sn := range inv.Snapshots {
		if sn.VM.VCenter != "vc-test" || sn.Key().VCenter != id {
			t.Errorf("%s: vcenter %q key %q, want the name for people and the UUID in the key", sn.Name, sn.VM.VCenter, sn.Key().VCenter)
		}
	}
	if c, err := p.Client(ctx, id); err != nil || c.Name != "vc-test" {
		t.Errorf("Client by instance UUID: %v, %v", c, err)
	}
	if _, err := p.Client(ctx, "vc-gone"); err == nil {
		t.Errorf("Client of an unknown vCenter succeeded")
	}
}
