package vsphere

import (
	"context"
	"fmt"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// Use is what snapwarden needs a privilege for, which decides whether its
// absence matters for a given config.
type Use string

const (
	// UseRead is needed by every command: report, run and serve read the
	// inventory, tags, custom attributes, tasks and events.
	UseRead Use = "read"
	// UseEnforce is needed only with enforcement.mode: enforce.
	UseEnforce Use = "enforce"
	// UseScan is needed by the datastore scans that find orphaned snapshot
	// files; without it those scans fail and nothing else does.
	UseScan Use = "datastore scan"
)

// Privilege is one vCenter privilege snapwarden's service account needs.
// docs/vcenter-role.md explains each and how to build the role.
type Privilege struct {
	ID  string
	Use Use
	Why string
}

// Privileges is the least-privilege role, in the order of docs/vcenter-role.md.
// Reading tags (vAPI), custom attributes, tasks and events needs nothing more
// than System.Read on the objects; vCenter grants System.Anonymous and
// System.View to every user.
var Privileges = []Privilege{
	{"System.Read", UseRead, "read VMs, snapshot trees, datastores, tags, custom attributes, tasks and events"},
	{"VirtualMachine.State.RemoveSnapshot", UseEnforce, "commit a snapshot (RemoveSnapshot_Task) and consolidate a VM's disks (ConsolidateVMDisks_Task)"},
	{"Datastore.Browse", UseScan, "search datastores for snapshot files no VM references"},
}

// MissingPrivileges asks vCenter which of Privileges the logged-in session
// lacks on the root folder, where the role is meant to be granted (with
// propagation to every object below). vCenter answers from the roles and
// permissions it holds, groups included, so this is what will happen, not
// a guess from role names.
func (c *Client) MissingPrivileges(ctx context.Context) ([]Privilege, error) {
	us, err := c.sm.UserSession(ctx)
	if err != nil || us == nil {
		if err == nil {
			err = fmt.Errorf("no session")
		}
		return nil, fmt.Errorf("vcenter %q: privileges: read the session: %w", c.Name, err)
	}
	sc := c.vim.ServiceContent
	if sc.AuthorizationManager == nil {
		return nil, fmt.Errorf("vcenter %q: privileges: no authorization manager", c.Name)
	}
	ids := make([]string, len(Privileges))
	for i, p := range Privileges {
		ids[i] = p.ID
	}
	res, err := methods.HasPrivilegeOnEntities(ctx, c.vim, &types.HasPrivilegeOnEntities{
		This: *sc.AuthorizationManager, Entity: []types.ManagedObjectReference{sc.RootFolder},
		SessionId: us.Key, PrivId: ids,
	})
	if err != nil {
		return nil, fmt.Errorf("vcenter %q: privileges of %s: %w", c.Name, us.UserName, err)
	}
	granted := map[string]bool{}
	for _, ep := range res.Returnval {
		for _, pa := range ep.PrivAvailability {
			granted[pa.PrivId] = pa.IsGranted
		}
	}
	var missing []Privilege
	for _, p := range Privileges {
		if !granted[p.ID] {
			missing = append(missing, p)
		}
	}
	return missing, nil
}
