package vsphere

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkOrphanScan is the cost of one full orphan scan: the retrieval of
// every VM's file list and one SearchDatastoreSubFolders_Task, over the
// benchmark fleet (each VM a folder with its .vmx and two .vmsn files on
// disk) plus 100 orphan files. It reports calls and the orphans found.
func BenchmarkOrphanScan(b *testing.B) {
	s := benchFleet(b)
	for i := 0; i < 100; i++ {
		p := fmt.Sprintf("bench-gone-%03d/bench-gone-%03d-000001-sesparse.vmdk", i, i)
		if err := s.WriteDatastoreFile(p, 1<<30, time.Now().Add(-48*time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	var calls Counter
	c := dial(b, target(s), Options{Counter: &calls})
	b.Run(fmt.Sprintf("vms=%d", benchVMs()), func(b *testing.B) {
		b.ReportAllocs()
		start := calls.SOAP()
		found := 0
		for i := 0; i < b.N; i++ {
			orphans, err := c.Orphans(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			found = len(orphans)
		}
		if found != 100 {
			b.Fatalf("found %d orphans, want the 100 written", found)
		}
		b.ReportMetric(float64(calls.SOAP()-start)/float64(b.N), "calls/op")
	})
}
