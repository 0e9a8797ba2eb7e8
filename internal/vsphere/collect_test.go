package vsphere

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/simfleet"
)

var now = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

const (
	user = "svc@vsphere.local"
	pass = "s3cret-pw"
)

func startSim(t *testing.T, fleet string) *simfleet.Sim {
	t.Helper()
	return simfleet.ForTest(t, "../../testdata/fleets/"+fleet, simfleet.Options{Username: user, Password: pass, Now: now, Dir: t.TempDir()})
}

func target(s *simfleet.Sim) config.VCenter {
	return config.VCenter{Name: "vc-test", URL: s.URL, Username: user, Password: config.Secret(pass), CAFile: s.CAFile}
}

func dial(t testing.TB, vc config.VCenter, opt Options) *Client {
	t.Helper()
	c, err := Dial(context.Background(), vc, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Logout(context.Background()) })
	return c
}

func TestCollectSmallFleet(t *testing.T) {
	s := startSim(t, "small.yaml")
	var calls Counter
	c := dial(t, target(s), Options{Counter: &calls, PageSize: 2})
	inv, err := c.Collect(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if inv.VMs != 5 {
		t.Errorf("VMs = %d, want the fleet's 5", inv.VMs)
	}
	type want struct {
		vm, folder, creator string
		size                int64
		depth, children     int
		current             bool
		age                 time.Duration
	}
	wants := map[string]want{
		"before-upgrade": {"web01", "/DC0/vm/Customers/acme", "alice@vsphere.local", 1 << 30, 1, 1, false, 50 * time.Hour},
		"after-config":   {"web01", "/DC0/vm/Customers/acme", "bob@vsphere.local", 512 << 20, 2, 1, false, 30 * time.Hour},
		"try-2":          {"web01", "/DC0/vm/Customers/acme", "", 64 << 20, 3, 0, true, 2 * time.Hour},
		"schema-v2":      {"db01", "/DC0/vm/Customers/initech", "carol@vsphere.local", 3 << 30, 1, 0, true, 26 * time.Hour},
		"patch-tuesday":  {"app01", "/DC0/vm/Customers/globex/prod", "", 2 << 30, 1, 2, false, 72 * time.Hour},
		"hotfix-a":       {"app01", "/DC0/vm/Customers/globex/prod", "", 100 << 20, 2, 0, true, 20 * time.Hour},
		"hotfix-b":       {"app01", "/DC0/vm/Customers/globex/prod", "", 1 << 20, 2, 0, false, time.Hour},
		"scratch":        {"lab01", "/DC0/vm/Lab", "", 10 << 20, 1, 0, true, 5 * time.Hour},
	}
	if len(inv.Snapshots) != len(wants) {
		t.Fatalf("got %d snapshots, want %d", len(inv.Snapshots), len(wants))
	}
	for _, sn := range inv.Snapshots {
		w, ok := wants[sn.Name]
		if !ok {
			t.Errorf("unexpected snapshot %q", sn.Name)
			continue
		}
		if sn.VM.Name != w.vm || sn.VM.Folder != w.folder || sn.VM.Path != w.folder+"/"+w.vm {
			t.Errorf("%s: vm %s folder %s path %s, want %s in %s", sn.Name, sn.VM.Name, sn.VM.Folder, sn.VM.Path, w.vm, w.folder)
		}
		if sn.SizeBytes != w.size {
			t.Errorf("%s: size %d, want %d (object.SnapshotSize)", sn.Name, sn.SizeBytes, w.size)
		}
		if sn.Depth != w.depth || sn.Children != w.children || sn.Current != w.current {
			t.Errorf("%s: depth %d children %d current %v, want %d %d %v", sn.Name, sn.Depth, sn.Children, sn.Current, w.depth, w.children, w.current)
		}
		if sn.Creator != w.creator {
			t.Errorf("%s: creator %q, want %q", sn.Name, sn.Creator, w.creator)
		}
		if !sn.Created.Equal(now.Add(-w.age)) {
			t.Errorf("%s: created %s, want %s", sn.Name, sn.Created, now.Add(-w.age))
		}
		if sn.VM.Datacenter != "DC0" || sn.VM.VCenter != "vc-test" || sn.VM.InstanceUUID == "" || sn.ID == "" {
			t.Errorf("%s: identity incomplete: %+v / %+v", sn.Name, sn, *sn.VM)
		}
		if len(sn.VM.Datastores) != 1 || sn.VM.Datastores[0].Capacity != 1<<40 || sn.VM.Datastores[0].Free != 600<<30 {
			t.Errorf("%s: datastores %+v, want one of 1TiB with 600GiB free", sn.Name, sn.VM.Datastores)
		}
		switch sn.VM.Name {
		case "web01":
			if len(sn.VM.Tags) != 1 || sn.VM.Tags[0] != (facts.Tag{Category: "Customer", Name: "acme"}) {
				t.Errorf("web01 tags %+v, want Customer/acme", sn.VM.Tags)
			}
		case "db01":
			if sn.VM.CustomAttributes["Customer"] != "initech" || sn.VM.PowerState != "poweredOff" {
				t.Errorf("db01 attributes %v power %s, want Customer=initech, poweredOff", sn.VM.CustomAttributes, sn.VM.PowerState)
			}
		}
	}
	if calls.SOAP() == 0 || calls.HTTP() < calls.SOAP() {
		t.Errorf("call counter: soap %d http %d", calls.SOAP(), calls.HTTP())
	}
}

// Creators are looked up only for snapshots the ledger has not seen.
func TestCollectSkipsKnownCreators(t *testing.T) {
	s := startSim(t, "small.yaml")
	c := dial(t, target(s), Options{})
	inv, err := c.Collect(context.Background(), func(k facts.Key) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range inv.Snapshots {
		if sn.Creator != "" {
			t.Errorf("%s: creator %q looked up although the ledger knows the snapshot", sn.Name, sn.Creator)
		}
	}
}

// Snapshots removed between cycles disappear, and consolidationNeeded shows.
func TestCollectSeesChanges(t *testing.T) {
	s := startSim(t, "small.yaml")
	c := dial(t, target(s), Options{})
	if err := s.RemoveSnapshot("db01", "schema-v2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConsolidationNeeded("web01", true); err != nil {
		t.Fatal(err)
	}
	inv, err := c.Collect(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range inv.Snapshots {
		if sn.Name == "schema-v2" {
			t.Error("removed snapshot schema-v2 still listed")
		}
		if sn.VM.Name == "web01" && !sn.VM.ConsolidationNeeded {
			t.Error("web01 consolidationNeeded not read")
		}
	}
}

func TestDialErrors(t *testing.T) {
	s := startSim(t, "small.yaml")
	ctx := context.Background()

	wrong := target(s)
	wrong.Password = "nope"
	_, err := Dial(ctx, wrong, Options{})
	if err == nil || !strings.Contains(err.Error(), `vcenter "vc-test"`) || !strings.Contains(err.Error(), "password") {
		t.Errorf("wrong password: %v, want a login error naming the vCenter and the password", err)
	}

	untrusted := target(s)
	untrusted.CAFile = ""
	_, err = Dial(ctx, untrusted, Options{})
	if err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("unverified certificate: %v, want an error pointing at ca_file", err)
	}

	pinned := target(s)
	pinned.CAFile, pinned.Thumbprint = "", s.Thumbprint
	dial(t, pinned, Options{})

	badPin := target(s)
	badPin.CAFile, badPin.Thumbprint = "", strings.Repeat("AB:", 19)+"AB"
	if _, err = Dial(ctx, badPin, Options{}); err == nil {
		t.Error("a wrong thumbprint was accepted")
	}

	insecure := target(s)
	insecure.CAFile, insecure.Insecure = "", true
	dial(t, insecure, Options{})
}

// One vCenter down does not stop the others from reporting.
func TestPoolReportsAFailingVCenter(t *testing.T) {
	s := startSim(t, "small.yaml")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "https://" + ln.Addr().String() + "/sdk"
	ln.Close() // nothing listens there any more

	good := target(s)
	down := config.VCenter{Name: "vc-down", URL: downURL, Username: user, Password: config.Secret(pass), Insecure: true}
	p := NewPool([]config.VCenter{good, down}, Options{Timeout: 5 * time.Second})
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	inv := p.Collect(context.Background(), nil)
	if len(inv.Snapshots) != 8 {
		t.Errorf("got %d snapshots from the healthy vCenter, want 8", len(inv.Snapshots))
	}
	// The error's own field names the vCenter; the message does not again.
	if len(inv.Errors) != 1 || inv.Errors[0].VCenter != "vc-down" || !strings.HasPrefix(inv.Errors[0].Error, "connect 127.0.0.1:") {
		t.Errorf("errors = %+v, want one for vc-down saying what failed, without repeating its name", inv.Errors)
	}
	// The session is kept: a second cycle works without a new login.
	if inv := p.Collect(context.Background(), nil); len(inv.Snapshots) != 8 {
		t.Errorf("second cycle got %d snapshots", len(inv.Snapshots))
	}
}

// A slow vCenter is cut off at CollectTimeout; the others still report.
func TestPoolSlowVCenterDoesNotHoldTheOthers(t *testing.T) {
	fast, slow := startSim(t, "small.yaml"), startSim(t, "small.yaml")
	slowTarget := target(slow)
	slowTarget.Name = "vc-slow"
	p := NewPool([]config.VCenter{target(fast), slowTarget}, Options{CollectTimeout: 2 * time.Second})
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	slow.Model.DelayConfig.Delay = 500 // ms per call: login and collection need several
	inv := p.Collect(context.Background(), nil)
	if len(inv.Snapshots) != 8 || len(inv.Errors) != 1 || inv.Errors[0].VCenter != "vc-slow" ||
		!strings.Contains(inv.Errors[0].Error, "longer than 2s") || strings.Contains(inv.Errors[0].Error, "vc-slow") {
		t.Errorf("got %d snapshots, errors %+v; want vc-test's 8 and vc-slow cut off", len(inv.Snapshots), inv.Errors)
	}
}
