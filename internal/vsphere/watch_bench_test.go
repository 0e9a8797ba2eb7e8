package vsphere

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
)

// BenchmarkWatchedCycle is serve's steady cycle with a Watcher: 1% of the
// VMs got a new snapshot since the last cycle, the ledger knows every
// other snapshot. Compare with BenchmarkFloor of the same run. The
// simulator answers waits with simfleet.FastWait (fresh reads of the
// changed objects only, as vCenter costs): vcsim's own collector re-reads
// the whole filter per update. copy-MiB is the heap the Watcher's copy of
// the inventory holds (the simulator shares the process, so RSS would not
// tell). The snapshots it takes are removed at the end.
func BenchmarkWatchedCycle(b *testing.B) {
	s := benchFleet(b)
	s.FastWait()
	ctx := context.Background()
	var calls Counter
	var heap runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heap)
	before := heap.HeapAlloc
	p := NewPool([]config.VCenter{target(s)}, Options{Watch: true, Counter: &calls, FullEvery: 1 << 30})
	b.Cleanup(func() { _ = p.Close(ctx) })
	full := p.Collect(ctx, nil)
	if len(full.Errors) > 0 {
		b.Fatal(full.Errors)
	}
	runtime.GC()
	runtime.ReadMemStats(&heap)
	copyMiB := (float64(heap.HeapAlloc) - float64(before)) / (1 << 20)
	seen := map[facts.Key]bool{}
	remember := func(inv *facts.Inventory) {
		for i := range inv.Snapshots {
			seen[inv.Snapshots[i].Key()] = true
		}
	}
	remember(full)
	known := func(k facts.Key) bool { return seen[k] }
	names := s.VMNames()
	changed := len(names) / 100
	made := 0
	type taken struct{ vm, name string }
	var all []taken
	take := func(vm, name string) error {
		all = append(all, taken{vm, name})
		return s.CreateSnapshot(vm, name, now, 1<<20)
	}
	// The benchmarks of package vsphere_test run next on the same fleet.
	b.Cleanup(func() {
		for i := len(all) - 1; i >= 0; i-- {
			if err := s.RemoveSnapshot(all[i].vm, all[i].name); err != nil {
				b.Error(err)
			}
		}
	})

	b.Run(fmt.Sprintf("vms=%d/changed=1%%", benchVMs()), func(b *testing.B) {
		var spent int64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			for j := 0; j < changed; j++ {
				made++
				if err := take(names[(made*97)%len(names)], fmt.Sprintf("steady-%d", made)); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
			base := calls.SOAP() + calls.HTTP()
			inv := p.Collect(ctx, known)
			spent += calls.SOAP() + calls.HTTP() - base
			b.StopTimer()
			if len(inv.Errors) > 0 || len(inv.Snapshots) != len(full.Snapshots)+made {
				b.Fatalf("errors %v, %d snapshots, want %d", inv.Errors, len(inv.Snapshots), len(full.Snapshots)+made)
			}
			remember(inv)
			b.StartTimer()
		}
		b.ReportMetric(float64(spent)/float64(b.N), "calls/op")
		b.ReportMetric(copyMiB, "copy-MiB")
	})

	// How long from a snapshot's creation until a wait between cycles
	// reports it (the heads-up's trigger).
	b.Run(fmt.Sprintf("vms=%d/notice", benchVMs()), func(b *testing.B) {
		var worst time.Duration
		for i := 0; i < b.N; i++ {
			made++
			began := time.Now()
			errc := make(chan error, 1)
			vm, name := names[(made*97)%len(names)], fmt.Sprintf("notice-%d", made)
			all = append(all, taken{vm, name})
			go func() { errc <- s.CreateSnapshot(vm, name, now, 1<<20) }()
			var got []string
			for len(got) == 0 && time.Since(began) < time.Minute {
				got = p.Wait(ctx, 20*time.Second)["vc-test"]
			}
			took := time.Since(began)
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			if len(got) == 0 {
				b.Fatalf("no new snapshot reported within a minute")
			}
			worst = max(worst, took)
		}
		b.ReportMetric(float64(worst.Milliseconds()), "worst-notice-ms")
	})
}
