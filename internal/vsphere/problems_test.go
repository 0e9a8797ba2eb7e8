package vsphere

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// TestProblemsFromCollect: consolidation_needed and phantom_delta come from
// the one collection; a linked clone is no phantom; the deep chain's
// snapshots are all collected (plan judges their depth); the source of a
// linked clone knows the clone shares its disks.
func TestProblemsFromCollect(t *testing.T) {
	s := startSim(t, "problems.yaml")
	var calls Counter
	c := dial(t, target(s), Options{Counter: &calls})
	inv, err := c.Collect(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]facts.Problem{}
	for _, p := range inv.Problems {
		got[string(p.Kind)+" "+p.VM.Name] = p
	}
	if len(inv.Problems) != 2 {
		t.Fatalf("problems = %+v, want consolidation_needed on stuck01 and phantom_delta on phantom01", inv.Problems)
	}
	stuck, ok := got["consolidation_needed stuck01"]
	if !ok || stuck.VCenter != "vc-test" || stuck.Datacenter != "DC0" || stuck.VM.Folder != "/DC0/vm/Customers/acme" ||
		len(stuck.VM.Tags) != 1 {
		t.Errorf("consolidation_needed = %+v (vm %+v)", stuck, stuck.VM)
	}
	ph, ok := got["phantom_delta phantom01"]
	if !ok || ph.Path != "[LocalDS_0] phantom01/phantom01-000001.vmdk" || ph.Datastore != "LocalDS_0" || ph.SizeBytes != 3<<30 {
		t.Errorf("phantom_delta = %+v", ph)
	}
	for _, sn := range inv.Snapshots {
		want := map[string]string{"golden01": "clone01"}[sn.VM.Name]
		if got := strings.Join(sn.VM.SharesDisksWith, ","); got != want {
			t.Errorf("%s shares disks with %q, want %q (clone01 is a linked clone of golden01's snapshot)", sn.VM.Name, got, want)
		}
	}
	if depth := maxDepth(inv, "deep01"); depth != 4 {
		t.Errorf("deep01's deepest snapshot is %d deep, want 4", depth)
	}
	if calls.SOAP() > 20 {
		t.Errorf("%d SOAP calls: problems must come from the one retrieval", calls.SOAP())
	}
}

func maxDepth(inv *facts.Inventory, vm string) int {
	d := 0
	for _, s := range inv.Snapshots {
		if s.VM.Name == vm {
			d = max(d, s.Depth)
		}
	}
	return d
}

// TestOrphans: files on the datastore no VM references are orphans; the
// files of registered VMs (snapshot data, the linked clone's parent
// chain), base disks, digests and files written within the grace are not.
func TestOrphans(t *testing.T) {
	s := startSim(t, "problems.yaml")
	if err := s.WriteDatastoreFile("busy/busy-000001.vmdk", 1<<20, time.Now()); err != nil {
		t.Fatal(err)
	}
	c := dial(t, target(s), Options{})
	orphans, err := c.Orphans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, o := range orphans {
		paths = append(paths, o.Path)
		if o.Kind != facts.OrphanFile || o.VM != nil || o.Datastore != "LocalDS_0" || o.VCenter != "vc-test" || o.Datacenter != "DC0" {
			t.Errorf("orphan = %+v", o)
		}
		if strings.HasSuffix(o.Path, "-sesparse.vmdk") && o.SizeBytes != 5<<30 {
			t.Errorf("%s is %d bytes, want 5 GiB", o.Path, o.SizeBytes)
		}
	}
	sort.Strings(paths)
	want := []string{
		"[LocalDS_0] gone-vm/gone-vm-000001-sesparse.vmdk",
		"[LocalDS_0] gone-vm/gone-vm-000001.vmdk",
		"[LocalDS_0] gone-vm/gone-vm-Snapshot1.vmsn",
	}
	if strings.Join(paths, "\n") != strings.Join(want, "\n") {
		t.Errorf("orphans =\n%s\nwant\n%s", strings.Join(paths, "\n"), strings.Join(want, "\n"))
	}
}

func TestNormalPath(t *testing.T) {
	for in, want := range map[string]string{
		"[LocalDS_0]/gone-vm/a.vmdk":  "[LocalDS_0] gone-vm/a.vmdk", // vcsim
		"[ds1] gone-vm//a.vmdk":       "[ds1] gone-vm/a.vmdk",       // vSphere's "[ds1] gone-vm/" + "/" + name
		"[ds1]/a.vmsn":                "[ds1] a.vmsn",
		"[ds 2] vm one/vm one.vmsn":   "[ds 2] vm one/vm one.vmsn",
		"[ds1]":                       "[ds1] ",
		"not a datastore path/a.vmdk": "not a datastore path/a.vmdk",
	} {
		if got := normalPath(in); got != want {
			t.Errorf("normalPath(%q) = %q, want %q", in, got, want)
		}
	}
}
