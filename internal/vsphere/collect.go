package vsphere

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// tagCacheTTL is how long tag and category names are trusted.
const tagCacheTTL = time.Hour

// Known reports whether the ledger already holds a snapshot, with its
// creator: the creator look-up then skips it, so its cost follows new
// snapshots, not the fleet.
type Known func(facts.Key) bool

// The properties read per type: only what the facts need.
var (
	vmProps = []string{"name", "parent", "parentVApp", "config.instanceUuid", "config.template",
		"runtime.powerState", "runtime.consolidationNeeded", "snapshot", "layoutEx", "customValue", "datastore"}
	containerProps = map[string][]string{
		"Folder":     {"name", "parent"},
		"Datacenter": {"name", "parent"},
		"VirtualApp": {"name", "parentFolder"},
		"Datastore":  {"name", "summary.capacity", "summary.freeSpace"},
	}
)

// inventoryKinds are the object types of the inventory read, VMs first.
var inventoryKinds = []string{"VirtualMachine", "Folder", "Datacenter", "VirtualApp", "Datastore"}

// node is a folder, datacenter or vApp: enough to build inventory paths.
type node struct {
	name   string
	parent types.ManagedObjectReference
	isDC   bool
}

// nodeOf reads a folder, datacenter or vApp retrieved with its name and parent.
func nodeOf(oc types.ObjectContent) node {
	n := node{isDC: oc.Obj.Type == "Datacenter"}
	for _, p := range oc.PropSet {
		switch v := p.Val.(type) {
		case string:
			n.name = v
		case types.ManagedObjectReference:
			n.parent = v
		}
	}
	return n
}

// pendingVM is a VM with snapshots or problems whose path waits for the
// whole inventory: its folders may arrive on a later page.
type pendingVM struct {
	vm     *facts.VM
	parent types.ManagedObjectReference
	ds     []types.ManagedObjectReference
	attrs  map[int32]string
	first  int // index of its first snapshot in the inventory
	count  int
}

// Collect reads every snapshot of this vCenter: one ContainerView and one
// paged RetrievePropertiesEx for VMs, folders, datacenters, vApps, datastores
// and the custom field names; one bulk vAPI call for tags; one event
// collector for creators of snapshots the ledger has not seen.
func (c *Client) Collect(ctx context.Context, known Known) (*facts.Inventory, error) {
	b := c.newBuilder()
	if err := c.retrieve(ctx, b.page); err != nil {
		return nil, fmt.Errorf("vcenter %q: list snapshots: %w", c.Name, err)
	}
	return b.finish(ctx, known)
}

// builder turns the objects of one retrieval (or of a Watcher's copy) into
// an inventory: VMs one at a time, then paths, phantoms, tags and creators
// once every object is known.
type builder struct {
	c          *Client
	inv        *facts.Inventory
	nodes      map[types.ManagedObjectReference]node
	stores     map[types.ManagedObjectReference]facts.Datastore
	fieldNames map[int32]string
	pending    []*pendingVM
	ch         chains
}

func (c *Client) newBuilder() *builder {
	return &builder{c: c, inv: &facts.Inventory{VCenterIDs: map[string]string{c.Name: c.InstanceUUID}},
		nodes: map[types.ManagedObjectReference]node{}, stores: map[types.ManagedObjectReference]facts.Datastore{},
		fieldNames: map[int32]string{}}
}

// page takes one page of a retrieval: containers, datastores and custom
// field names are kept, VMs decoded and added.
func (b *builder) page(objs []types.ObjectContent) error {
	for _, oc := range objs {
		b.object(oc)
	}
	var vms []mo.VirtualMachine
	if err := mo.LoadObjectContent(onlyType(objs, "VirtualMachine"), &vms); err != nil {
		return fmt.Errorf("decode VMs: %w", err)
	}
	for i := range vms {
		b.vm(slim(&vms[i]))
	}
	return nil
}

// object keeps what paths, datastores and custom attributes need from an
// object that is not a VM.
func (b *builder) object(oc types.ObjectContent) {
	switch oc.Obj.Type {
	case "Folder", "Datacenter", "VirtualApp":
		b.nodes[oc.Obj] = nodeOf(oc)
	case "Datastore":
		b.stores[oc.Obj] = datastoreOf(oc)
	case "CustomFieldsManager":
		for _, p := range oc.PropSet {
			if defs, ok := p.Val.(types.ArrayOfCustomFieldDef); ok {
				for _, d := range defs.CustomFieldDef {
					b.fieldNames[d.Key] = d.Name
				}
			}
		}
	}
}

// vm adds one VM.
func (b *builder) vm(s *slimVM) {
	b.inv.VMs++
	if p := b.c.addSlim(b.inv, s, &b.ch); p != nil {
		b.pending = append(b.pending, p)
	}
}

// finish resolves paths, datastores and attribute names, judges phantom
// deltas and shared disk files, and reads tags and the creators of snapshots known does not hold.
func (b *builder) finish(ctx context.Context, known Known) (*facts.Inventory, error) {
	c, inv := b.c, b.inv
	inv.Problems = append(inv.Problems, b.ch.phantoms()...)
	b.ch.shared()
	for _, p := range b.pending {
		p.vm.Folder, p.vm.Datacenter = path(b.nodes, p.parent)
		p.vm.Path = p.vm.Folder + "/" + p.vm.Name
		for _, ref := range p.ds {
			if d, ok := b.stores[ref]; ok {
				p.vm.Datastores = append(p.vm.Datastores, d)
			}
		}
		if len(p.attrs) > 0 {
			p.vm.CustomAttributes = make(map[string]string, len(p.attrs))
			for k, v := range p.attrs {
				if name, ok := b.fieldNames[k]; ok {
					p.vm.CustomAttributes[name] = v
				}
			}
		}
	}
	for i := range inv.Problems {
		pr := &inv.Problems[i]
		pr.VCenter, pr.Datacenter = c.Name, pr.VM.Datacenter
	}
	if err := c.tags(ctx, b.pending); err != nil {
		return nil, fmt.Errorf("vcenter %q: read tags: %w", c.Name, err)
	}
	if err := c.creators(ctx, inv.Snapshots, known); err != nil {
		return nil, fmt.Errorf("vcenter %q: read snapshot creators: %w", c.Name, err)
	}
	return inv, nil
}

// retrieve runs the one paged PropertyCollector retrieval and hands each page
// to fn, so a page's layoutEx can be reduced to sizes and dropped before the
// next one arrives.
func (c *Client) retrieve(ctx context.Context, fn func([]types.ObjectContent) error) error {
	props, extra := c.watchedProps(inventoryKinds)
	return c.retrieveView(ctx, inventoryKinds, props, extra, fn)
}

// retrieveView reads props of every inventory object of the kinds through
// one ContainerView, plus the extra objects, paged, handing each page to fn.
func (c *Client) retrieveView(ctx context.Context, kinds []string, props []types.PropertySpec, extra []types.ObjectSpec,
	fn func([]types.ObjectContent) error) error {
	sc := c.vim.ServiceContent
	cv, err := methods.CreateContainerView(ctx, c.vim, &types.CreateContainerView{
		This: *sc.ViewManager, Container: sc.RootFolder, Recursive: true, Type: kinds,
	})
	if err != nil {
		return fmt.Errorf("create container view: %w", err)
	}
	view := cv.Returnval
	defer func() {
		// A view left behind costs vCenter memory until the session ends.
		_, _ = methods.DestroyView(context.WithoutCancel(ctx), c.vim, &types.DestroyView{This: view})
	}()

	objects := append([]types.ObjectSpec{{
		Obj: view, Skip: types.NewBool(true),
		SelectSet: []types.BaseSelectionSpec{&types.TraversalSpec{Type: "ContainerView", Path: "view"}},
	}}, extra...)
	req := types.RetrievePropertiesEx{
		This:    sc.PropertyCollector,
		SpecSet: []types.PropertyFilterSpec{{ObjectSet: objects, PropSet: props}},
		Options: types.RetrieveOptions{MaxObjects: int32(c.opt.PageSize)},
	}
	res, err := methods.RetrievePropertiesEx(ctx, c.vim, &req)
	if err != nil {
		return fmt.Errorf("retrieve properties: %w", err)
	}
	for page := res.Returnval; page != nil; {
		if err := fn(page.Objects); err != nil {
			return err
		}
		if page.Token == "" {
			break
		}
		next, err := methods.ContinueRetrievePropertiesEx(ctx, c.vim, &types.ContinueRetrievePropertiesEx{This: sc.PropertyCollector, Token: page.Token})
		if err != nil {
			return fmt.Errorf("continue retrieve properties: %w", err)
		}
		page = &next.Returnval
	}
	return nil
}

// datastoreOf reads a datastore's name and space from its properties.
func datastoreOf(oc types.ObjectContent) facts.Datastore {
	d := facts.Datastore{MoRef: oc.Obj.Value}
	for _, p := range oc.PropSet {
		switch p.Name {
		case "name":
			d.Name, _ = p.Val.(string)
		case "summary.capacity":
			d.Capacity, _ = p.Val.(int64)
		case "summary.freeSpace":
			d.Free, _ = p.Val.(int64)
		}
	}
	return d
}

func onlyType(objs []types.ObjectContent, t string) []types.ObjectContent {
	out := objs[:0:0]
	for _, oc := range objs {
		if oc.Obj.Type == t {
			out = append(out, oc)
		}
	}
	return out
}

// addVM is addSlim for a decoded VM.
func (c *Client) addVM(inv *facts.Inventory, m *mo.VirtualMachine, ch *chains) *pendingVM {
	return c.addSlim(inv, slim(m), ch)
}

// addSlim appends the VM's snapshots to the inventory, sized from its
// layoutEx, and its consolidation_needed problem. It returns nil for a VM
// that needs nothing more: a template, or a VM without snapshots or
// problems. Every VM's disk chains go to ch, which judges phantom deltas
// once all are read.
func (c *Client) addSlim(inv *facts.Inventory, s *slimVM, ch *chains) *pendingVM {
	if s.hasConfig && s.template {
		ch.add(s, nil, false) // a template's disks can be a linked clone's base
		return nil
	}
	vm := &facts.VM{VCenter: c.Name, VCenterID: c.InstanceUUID, Name: s.name, MoRef: s.self.Value,
		PowerState: string(s.power), ConsolidationNeeded: s.consolidation}
	snapshots := len(s.snapshots) > 0
	if !ch.add(s, vm, snapshots) && !snapshots && !vm.ConsolidationNeeded {
		return nil
	}
	vm.InstanceUUID = s.uuid
	if vm.ConsolidationNeeded {
		inv.Problems = append(inv.Problems, facts.Problem{Kind: facts.ConsolidationNeeded, VM: vm, SizeBytes: deltaBytes(s.disks),
			Detail: "runtime.consolidationNeeded is set: the VM runs on delta files a removal left behind; Consolidate the VM's disks"})
	}
	p := &pendingVM{vm: vm, ds: s.datastore, first: len(inv.Snapshots)}
	switch {
	case s.parent != nil:
		p.parent = *s.parent
	case s.parentVApp != nil:
		p.parent = *s.parentVApp
	}
	for _, cv := range s.customValue {
		if s, ok := cv.(*types.CustomFieldStringValue); ok {
			if p.attrs == nil {
				p.attrs = map[int32]string{}
			}
			p.attrs[s.Key] = s.Value
		}
	}
	for _, t := range s.snapshots {
		inv.Snapshots = append(inv.Snapshots, facts.Snapshot{
			VM: vm, ID: t.id, Name: t.name, Description: t.description, Created: t.created, Quiesced: t.quiesced,
			Memory: t.memory, Depth: t.depth, Children: t.children, Current: t.id == s.current, SizeBytes: t.size,
		})
	}
	p.count = len(inv.Snapshots) - p.first
	return p
}

// path walks up from a VM's parent to the root folder and returns the folder
// path ("/DC0/vm/Customers/acme") and the datacenter's name.
func path(nodes map[types.ManagedObjectReference]node, ref types.ManagedObjectReference) (string, string) {
	var parts []string
	dc := ""
	for i := 0; i < 256; i++ { // a cycle in a broken inventory must not hang a cycle
		n, ok := nodes[ref]
		if !ok || n.parent.Value == "" { // the root folder has no parent and no place in paths
			break
		}
		if n.isDC && dc == "" {
			dc = n.name
		}
		parts = append(parts, n.name)
		ref = n.parent
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return "/" + strings.Join(parts, "/"), dc
}

// tags reads the tags of every VM with snapshots in one bulk vAPI call, and
// resolves tag and category names only for ids not seen before.
func (c *Client) tags(ctx context.Context, vms []*pendingVM) error {
	if len(vms) == 0 {
		return nil
	}
	refs := make([]mo.Reference, len(vms))
	byRef := make(map[string]*facts.VM, len(vms))
	for i, p := range vms {
		refs[i] = types.ManagedObjectReference{Type: "VirtualMachine", Value: p.vm.MoRef}
		byRef[p.vm.MoRef] = p.vm
	}
	m := tags.NewManager(c.rest)
	attached, err := m.ListAttachedTagsOnObjects(ctx, refs)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Names are cached, but not for ever: a renamed tag must not keep routing
	// notices to its old customer.
	if time.Since(c.tagsAt) > tagCacheTTL {
		c.tagCache, c.categorys, c.tagsAt = map[string]tagInfo{}, map[string]string{}, time.Now()
	}
	for _, a := range attached {
		vm := byRef[a.ObjectID.Reference().Value]
		if vm == nil {
			continue
		}
		for _, id := range a.TagIDs {
			info, err := c.tag(ctx, m, id)
			if err != nil {
				return err
			}
			vm.Tags = append(vm.Tags, facts.Tag{Category: info.category, Name: info.name})
		}
		sort.Slice(vm.Tags, func(i, j int) bool {
			return vm.Tags[i].Category+"/"+vm.Tags[i].Name < vm.Tags[j].Category+"/"+vm.Tags[j].Name
		})
	}
	return nil
}

// tag resolves a tag id through the cache; c.mu is held.
func (c *Client) tag(ctx context.Context, m *tags.Manager, id string) (tagInfo, error) {
	if info, ok := c.tagCache[id]; ok {
		return info, nil
	}
	t, err := m.GetTag(ctx, id)
	if err != nil {
		return tagInfo{}, fmt.Errorf("tag %s: %w", id, err)
	}
	cat, ok := c.categorys[t.CategoryID]
	if !ok {
		cg, err := m.GetCategory(ctx, t.CategoryID)
		if err != nil {
			return tagInfo{}, fmt.Errorf("tag category %s: %w", t.CategoryID, err)
		}
		cat = cg.Name
		c.categorys[t.CategoryID] = cat
	}
	info := tagInfo{category: cat, name: t.Name}
	c.tagCache[id] = info
	return info, nil
}
