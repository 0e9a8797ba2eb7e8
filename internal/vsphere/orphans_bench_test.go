package vsphere

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkOrphanScan is the cost of one full orphan scan: the retrieval of
// every VM's file list and one SearchDatastoreSubFolders_Task per datastore,
// over the benchmark fleet (each VM a folder with its .vmx and two .vmsn
// files on disk) on one datastore and spread over 20, plus 100 orphan files
// spread over the datastores. It reports calls and checks that every orphan
// is found, on its datastore.
func BenchmarkOrphanScan(b *testing.B) {
	for _, datastores := range []int{1, 20} {
		b.Run(fmt.Sprintf("vms=%d/datastores=%d", benchVMs(), datastores), func(b *testing.B) {
			s := benchFleetOn(b, datastores)
			stores := s.Datastores()
			want := map[string]bool{}
			for i := 0; i < 100; i++ {
				ds := stores[i%len(stores)]
				p := fmt.Sprintf("bench-gone-%03d/bench-gone-%03d-000001-sesparse.vmdk", i, i)
				if err := s.WriteFileOn(ds, p, 1<<30, time.Now().Add(-48*time.Hour)); err != nil {
					b.Fatal(err)
				}
				want["["+ds+"] "+p] = true
			}
			var calls Counter
			c := dial(b, target(s), Options{Counter: &calls})
			b.ReportAllocs()
			start := calls.SOAP()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				orphans, err := c.Orphans(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if len(orphans) != len(want) {
					b.Fatalf("found %d orphans, want the %d written", len(orphans), len(want))
				}
				for _, o := range orphans {
					if !want[o.Path] || o.Path[1:len(o.Datastore)+1] != o.Datastore {
						b.Fatalf("found %s on %s, not one of the orphans written", o.Path, o.Datastore)
					}
				}
			}
			b.ReportMetric(float64(calls.SOAP()-start)/float64(b.N), "calls/op")
		})
	}
}
