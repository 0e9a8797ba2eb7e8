package vsphere

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/simfleet"
)

// benchVMs is the fleet size of the benchmarks; SNAPWARDEN_BENCH_VMS
// overrides it (make bench runs 1,000 and 10,000).
func benchVMs() int {
	if n, err := strconv.Atoi(os.Getenv("SNAPWARDEN_BENCH_VMS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// benchSims are the benchmarks' simulated fleets, by datastore count, each
// started once per run and shared by every benchmark that asks for it.
var (
	benchMu   sync.Mutex
	benchSims = map[int]*benchSim{}
)

type benchSim struct {
	once sync.Once
	sim  *simfleet.Sim
	err  error
}

// TestMain removes the benchmarks' shared simulators, which no single
// benchmark owns, so no govcsim-* folder is left in the temp directory.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, bs := range benchSims {
		if bs.sim != nil {
			bs.sim.Close()
		}
	}
	os.Exit(code)
}

// benchFleet starts one generated fleet (two snapshots per VM, one
// datastore) for every benchmark of the run: seeding 1,000 VMs takes
// seconds, 10,000 minutes.
func benchFleet(b *testing.B) *simfleet.Sim {
	return benchFleetOn(b, 1)
}

// benchFleetOn is benchFleet with its VMs spread over that many datastores.
func benchFleetOn(b *testing.B, datastores int) *simfleet.Sim {
	b.Helper()
	benchMu.Lock()
	bs := benchSims[datastores]
	if bs == nil {
		bs = &benchSim{}
		benchSims[datastores] = bs
	}
	benchMu.Unlock()
	bs.once.Do(func() {
		f := &simfleet.Fleet{Datacenter: "DC0", Generate: &simfleet.Generate{VMs: benchVMs(), SnapshotsPerVM: 2, Customers: 100, Seed: 1,
			Datastores: datastores}}
		f.Datastore.Capacity, f.Datastore.Free = 100<<40, 60<<40
		bs.sim, bs.err = simfleet.Start(context.Background(), f, simfleet.Options{Username: user, Password: pass, Now: now})
		if bs.err != nil {
			return
		}
		// One untimed collection first, and the seeding's garbage collected,
		// so the first benchmark does not pay for what the others do not.
		var c *Client
		if c, bs.err = Dial(context.Background(), target(bs.sim), Options{}); bs.err == nil {
			_, bs.err = c.Collect(context.Background(), nil)
			_ = c.Logout(context.Background())
		}
		runtime.GC()
	})
	if bs.err != nil {
		b.Fatal(bs.err)
	}
	return bs.sim
}

// withDelay adds vCenter latency to every call for the benchmark's duration.
func withDelay(b *testing.B, s *simfleet.Sim, ms int) {
	if ms == 0 {
		return
	}
	s.Model.DelayConfig.Delay = ms
	b.Cleanup(func() { s.Model.DelayConfig.Delay = 0 })
}

var delays = []int{0, 2}

// BenchmarkFloor is the least vCenter must do: one ContainerView and one
// RetrievePropertiesEx of the same VM properties, nothing else.
func BenchmarkFloor(b *testing.B) {
	s := benchFleet(b)
	for _, ms := range delays {
		b.Run(fmt.Sprintf("vms=%d/delay=%dms", benchVMs(), ms), func(b *testing.B) {
			withDelay(b, s, ms)
			var calls Counter
			c := dial(b, target(s), Options{Counter: &calls})
			ctx := context.Background()
			base := calls.SOAP()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m := view.NewManager(c.vim)
				v, err := m.CreateContainerView(ctx, c.vim.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
				if err != nil {
					b.Fatal(err)
				}
				var vms []mo.VirtualMachine
				if err := v.Retrieve(ctx, []string{"VirtualMachine"}, vmProps, &vms); err != nil {
					b.Fatal(err)
				}
				_ = v.Destroy(ctx)
				if len(vms) != benchVMs() {
					b.Fatalf("got %d VMs", len(vms))
				}
			}
			b.ReportMetric(float64(calls.SOAP()-base)/float64(b.N), "calls/op")
		})
	}
}

// BenchmarkCollect is snapwarden's whole collection: inventory, folders,
// datastores, custom attributes, tags and creators (all snapshots new, the
// worst case; known=all is the steady state of a running service).
func BenchmarkCollect(b *testing.B) {
	s := benchFleet(b)
	for _, ms := range delays {
		for _, known := range []bool{false, true} {
			b.Run(fmt.Sprintf("vms=%d/delay=%dms/ledger-knows=%v", benchVMs(), ms, known), func(b *testing.B) {
				withDelay(b, s, ms)
				var calls Counter
				c := dial(b, target(s), Options{Counter: &calls})
				var k Known
				if known {
					k = func(facts.Key) bool { return true }
				}
				base := calls.HTTP()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					inv, err := c.Collect(context.Background(), k)
					if err != nil {
						b.Fatal(err)
					}
					if inv.VMs != benchVMs() || len(inv.Snapshots) != 2*benchVMs() {
						b.Fatalf("got %d VMs, %d snapshots", inv.VMs, len(inv.Snapshots))
					}
				}
				b.ReportMetric(float64(calls.HTTP()-base)/float64(b.N), "calls/op")
			})
		}
	}
}

// BenchmarkPerVM reads snapshots VM by VM, the way PowerCLI's Get-Snapshot
// and a loop of `govc snapshot.tree` do: the comparison, not a way to use.
func BenchmarkPerVM(b *testing.B) {
	s := benchFleet(b)
	for _, ms := range delays {
		b.Run(fmt.Sprintf("vms=%d/delay=%dms", benchVMs(), ms), func(b *testing.B) {
			var calls Counter
			c := dial(b, target(s), Options{Counter: &calls})
			ctx := context.Background()
			m := view.NewManager(c.vim)
			v, err := m.CreateContainerView(ctx, c.vim.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
			if err != nil {
				b.Fatal(err)
			}
			refs, err := v.Find(ctx, []string{"VirtualMachine"}, nil)
			if err != nil {
				b.Fatal(err)
			}
			withDelay(b, s, ms)
			pc := property.DefaultCollector(c.vim)
			base := calls.SOAP()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, ref := range refs {
					var vm mo.VirtualMachine
					if err := pc.RetrieveOne(ctx, ref, vmProps, &vm); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(calls.SOAP()-base)/float64(b.N), "calls/op")
		})
	}
}
