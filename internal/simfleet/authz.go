package simfleet

import (
	"context"
	"fmt"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// Restrict gives user, on the root folder (propagating to everything), a new
// role with only the privileges privs (vCenter adds System.Anonymous, View
// and Read to every role), through the API as an administrator would. It
// also makes the simulator answer HasPrivilegeOnEntities from the roles and
// permissions it stores, as vCenter does: vcsim itself grants everything.
func (s *Sim) Restrict(user string, privs ...string) error {
	ctx := context.Background()
	s.authzOnce.Do(func() {
		sctx := s.Context()
		orig := sctx.Map.Get(*s.client.ServiceContent.AuthorizationManager).(*simulator.AuthorizationManager)
		sctx.Map.Put(&permissionAuthz{AuthorizationManager: orig})
	})
	am := object.NewAuthorizationManager(s.client.Client)
	name := fmt.Sprintf("restricted-%d", s.roles.Add(1))
	if _, err := am.AddRole(ctx, name, privs); err != nil {
		return fmt.Errorf("simulator: add role %s: %w", name, err)
	}
	roles, err := am.RoleList(ctx)
	if err != nil {
		return fmt.Errorf("simulator: list roles: %w", err)
	}
	role := roles.ByName(name) // vcsim's AddAuthorizationRole returns no id
	if role == nil {
		return fmt.Errorf("simulator: role %s not created", name)
	}
	root := s.client.ServiceContent.RootFolder
	err = am.SetEntityPermissions(ctx, root, []types.Permission{{Entity: &root, Principal: user, RoleId: role.RoleId, Propagate: true}})
	if err != nil {
		return fmt.Errorf("simulator: set permission for %s: %w", user, err)
	}
	return nil
}

// permissionAuthz answers privilege checks from the stored permissions of
// the caller's user on the entity and its parents.
type permissionAuthz struct {
	*simulator.AuthorizationManager
	mu sync.Mutex
}

func (m *permissionAuthz) HasPrivilegeOnEntities(ctx *simulator.Context, req *types.HasPrivilegeOnEntities) soap.HasFault {
	m.mu.Lock()
	defer m.mu.Unlock()
	user := ctx.Session.UserName
	var res []types.EntityPrivilege
	for _, e := range req.Entity {
		body := m.AuthorizationManager.RetrieveEntityPermissions(ctx, &types.RetrieveEntityPermissions{Entity: e, Inherited: true})
		have := map[string]bool{}
		for _, p := range body.(*methods.RetrieveEntityPermissionsBody).Res.Returnval {
			if p.Principal != user || p.Group {
				continue
			}
			if r := object.AuthorizationRoleList(m.RoleList).ById(p.RoleId); r != nil {
				for _, id := range r.Privilege {
					have[id] = true
				}
			}
		}
		ep := types.EntityPrivilege{Entity: e}
		for _, id := range req.PrivId {
			ep.PrivAvailability = append(ep.PrivAvailability, types.PrivilegeAvailability{PrivId: id, IsGranted: have[id]})
		}
		res = append(res, ep)
	}
	return &methods.HasPrivilegeOnEntitiesBody{Res: &types.HasPrivilegeOnEntitiesResponse{Returnval: res}}
}
