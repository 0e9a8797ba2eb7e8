package vsphere

import (
	"context"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator/sim25"
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
