package vsphere

import (
	"context"
	"os"
	"strings"
	"testing"
)

// vcsim grants everything; with a role that lacks the enforce and scan
// privileges, vCenter's own answer names exactly those.
func TestMissingPrivileges(t *testing.T) {
	s := startSim(t, "small.yaml")
	c := dial(t, target(s), Options{})
	missing, err := c.MissingPrivileges(context.Background())
	if err != nil || len(missing) != 0 {
		t.Fatalf("the administrator lacks %v (%v), want nothing", missing, err)
	}

	if err := s.Restrict(user, "VirtualMachine.State.CreateSnapshot"); err != nil {
		t.Fatal(err)
	}
	missing, err = c.MissingPrivileges(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range missing {
		ids = append(ids, p.ID+"/"+string(p.Use))
	}
	if len(ids) != 2 || ids[0] != "VirtualMachine.State.RemoveSnapshot/enforce" || ids[1] != "Datastore.Browse/datastore scan" {
		t.Fatalf("missing %v, want RemoveSnapshot (enforce) and Datastore.Browse (datastore scan)", ids)
	}

	if err := s.Restrict(user, "VirtualMachine.State.RemoveSnapshot", "Datastore.Browse"); err != nil {
		t.Fatal(err)
	}
	if missing, err = c.MissingPrivileges(context.Background()); err != nil || len(missing) != 0 {
		t.Fatalf("the full role lacks %v (%v)", missing, err)
	}
}

// docs/vcenter-role.md names every privilege check verifies.
func TestPrivilegesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/vcenter-role.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range Privileges {
		if !strings.Contains(string(doc), "`"+p.ID+"`") {
			t.Errorf("docs/vcenter-role.md does not name %s", p.ID)
		}
	}
}
