package simfleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func start(t *testing.T, fleet string) *Sim {
	t.Helper()
	f, err := Load("../../testdata/fleets/" + fleet)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), f, Options{Username: "u@vsphere.local", Password: "pw", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// connect logs in verifying the simulator's certificate with its CA file.
func connect(t *testing.T, s *Sim, user, pass string) (*govmomi.Client, error) {
	t.Helper()
	u, _ := url.Parse(s.URL)
	u.User = url.UserPassword(user, pass)
	sc := soap.NewClient(u, false)
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	sc.DefaultTransport().TLSClientConfig = &tls.Config{RootCAs: pool}
	ctx := context.Background()
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, err
	}
	c := &govmomi.Client{Client: vc, SessionManager: session.NewManager(vc)}
	return c, c.SessionManager.Login(ctx, u.User)
}

func TestFleetInventory(t *testing.T) {
	s := start(t, "small.yaml")
	c, err := connect(t, s, "u@vsphere.local", "pw")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := view.NewManager(c.Client)
	v, err := m.CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		t.Fatal(err)
	}
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name", "snapshot", "layoutEx", "customValue", "runtime.powerState"}, &vms); err != nil {
		t.Fatal(err)
	}
	if len(vms) != 5 {
		t.Fatalf("got %d VMs, want the fleet's 5", len(vms))
	}
	want := map[string]struct {
		size    int64
		age     time.Duration
		current bool
	}{
		"before-upgrade": {1 << 30, 50 * time.Hour, false}, "after-config": {512 << 20, 30 * time.Hour, false},
		"try-2": {64 << 20, 2 * time.Hour, true}, "schema-v2": {3 << 30, 26 * time.Hour, true},
		"patch-tuesday": {2 << 30, 72 * time.Hour, false}, "hotfix-a": {100 << 20, 20 * time.Hour, true},
		"hotfix-b": {1 << 20, time.Hour, false}, "scratch": {10 << 20, 5 * time.Hour, true},
	}
	seen := 0
	for _, vm := range vms {
		if vm.Snapshot == nil {
			continue
		}
		var walk func(list []types.VirtualMachineSnapshotTree, parent *types.ManagedObjectReference)
		walk = func(list []types.VirtualMachineSnapshotTree, parent *types.ManagedObjectReference) {
			for _, n := range list {
				w, ok := want[n.Name]
				if !ok {
					t.Errorf("unexpected snapshot %q", n.Name)
					continue
				}
				seen++
				isCurrent := *vm.Snapshot.CurrentSnapshot == n.Snapshot
				if got := object.SnapshotSize(n.Snapshot, parent, vm.LayoutEx, isCurrent); int64(got) != w.size {
					t.Errorf("%s: object.SnapshotSize = %d, want %d", n.Name, got, w.size)
				}
				if !n.CreateTime.Equal(now.Add(-w.age)) {
					t.Errorf("%s: created %s, want %s", n.Name, n.CreateTime, now.Add(-w.age))
				}
				if isCurrent != w.current {
					t.Errorf("%s: current = %v, want %v", n.Name, isCurrent, w.current)
				}
				ref := n.Snapshot
				walk(n.ChildSnapshotList, &ref)
			}
		}
		walk(vm.Snapshot.RootSnapshotList, nil)
		if vm.Name == "db01" && vm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
			t.Errorf("db01 should be powered off")
		}
		if vm.Name == "db01" && (len(vm.CustomValue) != 1 || vm.CustomValue[0].(*types.CustomFieldStringValue).Value != "initech") {
			t.Errorf("db01 custom attribute Customer=initech missing: %+v", vm.CustomValue)
		}
	}
	if seen != len(want) {
		t.Fatalf("saw %d snapshots, want %d", seen, len(want))
	}

	// Creators come back as task events with the creator's name and the snapshot's time.
	em := event.NewManager(c.Client)
	events, err := em.QueryEvents(ctx, types.EventFilterSpec{EventTypeId: []string{"TaskEvent"}})
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]time.Time{}
	for _, e := range events {
		te := e.(*types.TaskEvent)
		if te.Info.DescriptionId == "VirtualMachine.createSnapshot" {
			users[te.UserName] = te.CreatedTime
		}
	}
	for user, age := range map[string]time.Duration{"alice@vsphere.local": 50 * time.Hour, "bob@vsphere.local": 30 * time.Hour, "carol@vsphere.local": 26 * time.Hour} {
		if at, ok := users[user]; !ok || !at.Equal(now.Add(-age)) {
			t.Errorf("creator %s: event at %s (found %v), want %s", user, at, ok, now.Add(-age))
		}
	}

	// The datastore reports the fleet's space.
	var dss []mo.Datastore
	dv, _ := m.CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"Datastore"}, true)
	if err := dv.Retrieve(ctx, []string{"Datastore"}, []string{"summary"}, &dss); err != nil {
		t.Fatal(err)
	}
	if dss[0].Summary.Capacity != 1<<40 || dss[0].Summary.FreeSpace != 600<<30 {
		t.Errorf("datastore space %d/%d, want 1TiB/600GiB", dss[0].Summary.FreeSpace, dss[0].Summary.Capacity)
	}
}

func TestWrongPasswordIsALoginFailure(t *testing.T) {
	s := start(t, "small.yaml")
	_, err := connect(t, s, "u@vsphere.local", "wrong")
	if err == nil || !strings.Contains(err.Error(), "Login failure") {
		t.Fatalf("got %v, want a login failure", err)
	}
}

func TestMutations(t *testing.T) {
	s := start(t, "small.yaml")
	if err := s.SetSnapshotCreated("lab01", "scratch", now.Add(-100*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveSnapshot("web01", "after-config"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConsolidationNeeded("web01", true); err != nil {
		t.Fatal(err)
	}
	c, err := connect(t, s, "u@vsphere.local", "pw")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, check := range map[string]func(mo.VirtualMachine){
		"lab01": func(vm mo.VirtualMachine) {
			if got := vm.Snapshot.RootSnapshotList[0].CreateTime; !got.Equal(now.Add(-100 * time.Hour)) {
				t.Errorf("scratch created %s after SetSnapshotCreated", got)
			}
		},
		"web01": func(vm mo.VirtualMachine) {
			root := vm.Snapshot.RootSnapshotList[0]
			if len(root.ChildSnapshotList) != 1 || root.ChildSnapshotList[0].Name != "try-2" {
				t.Errorf("after removing after-config, try-2 should hang off the root: %+v", root.ChildSnapshotList)
			}
			ref := root.Snapshot
			if got := object.SnapshotSize(root.ChildSnapshotList[0].Snapshot, &ref, vm.LayoutEx, true); got != 64<<20 {
				t.Errorf("try-2 size after the removal = %d, want %d (layoutEx re-injected)", got, 64<<20)
			}
			if !vm.Runtime.ConsolidationNeeded {
				t.Error("consolidationNeeded not set")
			}
		},
	} {
		ref, _ := s.VMRef(name)
		var vm mo.VirtualMachine
		if err := c.RetrieveOne(ctx, ref, []string{"snapshot", "layoutEx", "runtime"}, &vm); err != nil {
			t.Fatal(err)
		}
		check(vm)
	}
}

// A generated fleet spread over datastores: every VM's files, in layoutEx
// and on disk, are on its own datastore, each datastore is searchable, and
// orphans land on the datastore named.
func TestGeneratedFleetSpreadsOverDatastores(t *testing.T) {
	f, err := Parse([]byte(`
datastore: {capacity: 1TiB, free: 600GiB}
generate: {vms: 6, snapshots_per_vm: 2, customers: 2, seed: 1, datastores: 3}
orphans:
  - {path: gone/gone-000001.vmdk, size: 1GiB, datastore: LocalDS_2}
  - {path: left/left.vmsn, size: 1MiB}
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), f, Options{Username: "u@vsphere.local", Password: "pw", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	stores := []string{"LocalDS_0", "LocalDS_1", "LocalDS_2"}
	if got := s.Datastores(); !slices.Equal(got, stores) {
		t.Fatalf("datastores %v, want %v", got, stores)
	}
	if err := s.WriteFileOn("LocalDS_9", "x/x.vmsn", 1, now); err == nil {
		t.Error("WriteFileOn an unknown datastore succeeded")
	}
	c, err := connect(t, s, "u@vsphere.local", "pw")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := view.NewManager(c.Client)
	v, err := m.CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"VirtualMachine", "Datastore"}, true)
	if err != nil {
		t.Fatal(err)
	}
	var dss []mo.Datastore
	if err := v.Retrieve(ctx, []string{"Datastore"}, []string{"name", "browser", "summary"}, &dss); err != nil {
		t.Fatal(err)
	}
	dsName := map[types.ManagedObjectReference]string{}
	for _, ds := range dss {
		dsName[ds.Self] = ds.Name
		if ds.Summary.Capacity != 1<<40 || ds.Summary.FreeSpace != 600<<30 {
			t.Errorf("%s: space %d/%d, want 600GiB free of 1TiB", ds.Name, ds.Summary.FreeSpace, ds.Summary.Capacity)
		}
	}
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name", "datastore", "layoutEx.file"}, &vms); err != nil {
		t.Fatal(err)
	}
	if len(vms) != 6 {
		t.Fatalf("got %d VMs, want 6", len(vms))
	}
	// Every file a search finds, by datastore: the VMs' .vmsn and the orphans.
	found := map[string][]string{}
	for _, ds := range dss {
		b := object.NewHostDatastoreBrowser(c.Client, ds.Browser)
		task, err := b.SearchDatastoreSubFolders(ctx, "["+ds.Name+"]", &types.HostDatastoreBrowserSearchSpec{MatchPattern: []string{"*.vmsn", "*-??????.vmdk"}})
		if err != nil {
			t.Fatal(err)
		}
		info, err := task.WaitForResult(ctx)
		if err != nil {
			t.Fatalf("search %s: %v", ds.Name, err)
		}
		for _, r := range info.Result.(types.ArrayOfHostDatastoreBrowserSearchResults).HostDatastoreBrowserSearchResults {
			for _, f := range r.File {
				if _, dir := f.(*types.FolderFileInfo); !dir {
					found[ds.Name] = append(found[ds.Name], path.Base(r.FolderPath)+"/"+f.GetFileInfo().Path)
				}
			}
		}
	}
	for _, vm := range vms {
		var i int
		if _, err := fmt.Sscanf(vm.Name, "gen-%05d", &i); err != nil {
			t.Fatal(err)
		}
		want := stores[i%3]
		if len(vm.Datastore) != 1 || dsName[vm.Datastore[0]] != want {
			t.Errorf("%s: datastore %v, want %s", vm.Name, vm.Datastore, want)
		}
		vmsn := 0
		for _, f := range vm.LayoutEx.File {
			if !strings.HasPrefix(f.Name, "["+want+"] "+vm.Name+"/") {
				t.Errorf("%s: layoutEx file %s not in its folder on %s", vm.Name, f.Name, want)
			}
			if strings.HasSuffix(f.Name, ".vmsn") {
				vmsn++
				if rel := f.Name[len("["+want+"] "):]; !slices.Contains(found[want], rel) {
					t.Errorf("%s: %s is not on %s: a search there found %v", vm.Name, f.Name, want, found[want])
				}
			}
		}
		if vmsn != 2 {
			t.Errorf("%s: %d .vmsn files in layoutEx, want 2", vm.Name, vmsn)
		}
	}
	if !slices.Contains(found["LocalDS_2"], "gone/gone-000001.vmdk") || !slices.Contains(found["LocalDS_0"], "left/left.vmsn") {
		t.Errorf("orphans not on their datastores: %v", found)
	}
}
