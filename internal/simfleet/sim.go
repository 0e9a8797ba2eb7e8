package simfleet

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	// Registers the vAPI endpoints (tags) with the simulator.
	_ "github.com/vmware/govmomi/vapi/simulator"
)

// Options configure Start.
type Options struct {
	Username string
	Password string
	// Now is the clock the fleet's ages count back from; zero means time.Now().
	Now time.Time
	// Dir receives the CA certificate; empty means a temp dir removed on Close.
	Dir string
	// Workers seed VMs in parallel; zero means 16.
	Workers int
}

// Sim is a running simulated vCenter.
type Sim struct {
	// URL is https://127.0.0.1:PORT/sdk, without credentials.
	URL string
	// CAFile is the PEM of the server's self-signed certificate.
	CAFile string
	// Thumbprint is the certificate's SHA-1 thumbprint, as govc prints it.
	Thumbprint string
	Model      *simulator.Model

	server *simulator.Server
	client *govmomi.Client
	tags   *tags.Manager // the seeding session's, for tests that retag VMs
	tmpDir string
	// stores are the datastores, LocalDS_0 first: listed VMs, orphans
	// without a datastore and WriteDatastoreFile use the first.
	stores []types.ManagedObjectReference
	// authzOnce installs Restrict's privilege checks; roles counts its roles.
	authzOnce sync.Once
	roles     atomic.Int32
	// x and wx are the extensions' state (consolidate.go, watch.go).
	x       *extension
	wx      *watchExt
	mu      sync.Mutex
	vms     map[string]types.ManagedObjectReference // by VM name
	sizes   map[string]int64                        // by snapshot moref value
	created map[string]time.Time                    // by snapshot moref value
	vmsn    map[string]string                       // the .vmsn vcsim wrote, by snapshot moref value
	growth  map[string]int64                        // bytes added by Grow, by snapshot moref value
	grows   map[string]types.ManagedObjectReference // VMs with growing snapshots, by snapshot moref value
	extras  map[string]extra                        // by VM moref value
}

// Start builds the fleet in a new simulator and serves it on 127.0.0.1.
func Start(ctx context.Context, f *Fleet, o Options) (*Sim, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Username == "" {
		o.Username, o.Password = "snapwarden@vsphere.local", "snapwarden-demo"
	}
	quietVcsim()
	model := simulator.VPX()
	model.Host, model.Cluster, model.ClusterHost, model.Machine = 0, 1, 1, 0
	model.Datastore = f.datastores()
	if err := model.Create(); err != nil {
		model.Remove() // its temp folder may exist already
		return nil, fmt.Errorf("simulator: create model: %w", err)
	}
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0", User: url.UserPassword(o.Username, o.Password)}
	model.Service.TLS = new(tls.Config)
	model.Service.RegisterEndpoints = true
	s := &Sim{Model: model, vms: map[string]types.ManagedObjectReference{},
		sizes: map[string]int64{}, created: map[string]time.Time{}, vmsn: map[string]string{}, extras: map[string]extra{},
		growth: map[string]int64{}, grows: map[string]types.ManagedObjectReference{}}
	s.installExtensions()
	s.server = model.Service.NewServer()
	s.URL = s.server.URL.Scheme + "://" + s.server.URL.Host + s.server.URL.Path
	if err := s.writeCA(o.Dir); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.build(ctx, f, o); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sim) writeCA(dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "simfleet-")
		if err != nil {
			return err
		}
		dir, s.tmpDir = d, d
	}
	cert := s.server.Certificate()
	host := strings.ReplaceAll(s.server.URL.Host, ":", "_")
	s.CAFile = filepath.Join(dir, "vcenter-"+host+"-ca.pem")
	if err := os.WriteFile(s.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		return fmt.Errorf("simulator: write CA file: %w", err)
	}
	sum := sha1.Sum(cert.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	s.Thumbprint = strings.Join(parts, ":")
	return nil
}

// Close stops the server and removes the simulator's files.
func (s *Sim) Close() {
	if s.client != nil {
		_ = s.client.Logout(context.Background())
	}
	s.server.Close()
	s.Model.Remove()
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
}

// Context is the simulator's own context, for tests that edit its objects.
func (s *Sim) Context() *simulator.Context { return s.Model.Service.Context }

// VMRef returns the moref of a VM by name.
func (s *Sim) VMRef(name string) (types.ManagedObjectReference, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ref, ok := s.vms[name]
	return ref, ok
}

// VMNames lists the fleet's VMs, sorted.
func (s *Sim) VMNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.vms))
	for n := range s.vms {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// build seeds the inventory through the API, as a vCenter admin would.
func (s *Sim) build(ctx context.Context, f *Fleet, o Options) error {
	u := *s.server.URL
	u.User = url.UserPassword(o.Username, o.Password)
	c, err := govmomi.NewClient(ctx, &u, true)
	if err != nil {
		return fmt.Errorf("simulator: login: %w", err)
	}
	s.client = c
	finder := find.NewFinder(c.Client, true)
	dc, err := finder.DefaultDatacenter(ctx)
	if err != nil {
		return fmt.Errorf("simulator: datacenter: %w", err)
	}
	if f.Datacenter != "" && f.Datacenter != dc.Name() {
		if _, err := dc.ObjectName(ctx); err == nil {
			if t, err := dc.Rename(ctx, f.Datacenter); err == nil {
				_ = t.Wait(ctx)
			}
		}
	}
	finder.SetDatacenter(dc)
	folders, err := dc.Folders(ctx)
	if err != nil {
		return fmt.Errorf("simulator: folders: %w", err)
	}
	pool, err := finder.DefaultResourcePool(ctx)
	if err != nil {
		return fmt.Errorf("simulator: resource pool: %w", err)
	}
	dss, err := finder.DatastoreList(ctx, "*")
	if err != nil {
		return fmt.Errorf("simulator: datastores: %w", err)
	}
	// vcsim numbers them LocalDS_0, LocalDS_1, ...: order by number, so a
	// VM's index picks the same datastore in every run.
	sort.Slice(dss, func(i, j int) bool {
		a, b := dss[i].Name(), dss[j].Name()
		return len(a) < len(b) || len(a) == len(b) && a < b
	})
	names := make([]string, len(dss))
	for i, ds := range dss {
		names[i] = ds.Name()
		s.stores = append(s.stores, ds.Reference())
	}
	b := &builder{sim: s, c: c, root: folders.VmFolder, pool: pool, stores: names, now: o.Now,
		folders: map[string]*object.Folder{"": folders.VmFolder}, dc: dc.Reference()}
	if err := b.prepareMetadata(ctx, f, o); err != nil {
		return err
	}
	vms := f.expand()
	workers := o.Workers
	if workers == 0 {
		workers = 16
	}
	if raceEnabled {
		// vcsim's own objects race when VMs are seeded in parallel (the
		// datastore's VM list); the race detector must see our races only.
		workers = 1
	}
	jobs := make(chan VM)
	errs := make(chan error, len(vms))
	var wg sync.WaitGroup
	for w := 0; w < min(workers, max(len(vms), 1)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for vm := range jobs {
				if err := b.vm(ctx, vm); err != nil {
					errs <- fmt.Errorf("simulator: vm %q: %w", vm.Name, err)
				}
			}
		}()
	}
	for _, vm := range vms {
		jobs <- vm
	}
	close(jobs)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	if err := s.problems(f, o.Now); err != nil {
		return err
	}
	return s.SetDatastoreSpace(int64(f.Datastore.Capacity), int64(f.Datastore.Free))
}

// builder holds what seeding VMs needs.
type builder struct {
	sim      *Sim
	c        *govmomi.Client
	root     *object.Folder
	pool     *object.ResourcePool
	stores   []string // datastore names, by VM.store
	dc       types.ManagedObjectReference
	now      time.Time
	mu       sync.Mutex
	createMu sync.Mutex // serialises CreateVM (a vcsim data race)
	folders  map[string]*object.Folder
	tags     *tags.Manager
	tagIDs   map[string]string // "category/name" -> tag id
	fields   map[string]int32  // custom attribute name -> key
}

// prepareMetadata creates every tag category, tag and custom attribute the
// fleet uses, once, so VM workers only attach and set.
func (b *builder) prepareMetadata(ctx context.Context, f *Fleet, o Options) error {
	rc := rest.NewClient(b.c.Client)
	if err := rc.Login(ctx, url.UserPassword(o.Username, o.Password)); err != nil {
		return fmt.Errorf("simulator: vapi login: %w", err)
	}
	b.tags = tags.NewManager(rc)
	b.sim.tags = b.tags
	b.tagIDs, b.fields = map[string]string{}, map[string]int32{}
	cfm, err := object.GetCustomFieldsManager(b.c.Client)
	if err != nil {
		return fmt.Errorf("simulator: custom fields: %w", err)
	}
	categories := map[string]string{}
	for _, vm := range f.expand() {
		for cat, name := range vm.Tags {
			if _, ok := categories[cat]; !ok {
				id, err := b.tags.CreateCategory(ctx, &tags.Category{Name: cat, Cardinality: "SINGLE", AssociableTypes: []string{"VirtualMachine"}})
				if err != nil {
					return fmt.Errorf("simulator: tag category %q: %w", cat, err)
				}
				categories[cat] = id
			}
			if _, ok := b.tagIDs[cat+"/"+name]; !ok {
				id, err := b.tags.CreateTag(ctx, &tags.Tag{Name: name, CategoryID: categories[cat]})
				if err != nil {
					return fmt.Errorf("simulator: tag %q: %w", name, err)
				}
				b.tagIDs[cat+"/"+name] = id
			}
		}
		for attr := range vm.Attributes {
			if _, ok := b.fields[attr]; !ok {
				def, err := cfm.Add(ctx, attr, "VirtualMachine", nil, nil)
				if err != nil {
					return fmt.Errorf("simulator: custom attribute %q: %w", attr, err)
				}
				b.fields[attr] = def.Key
			}
		}
	}
	return nil
}

// folder returns (creating as needed) the folder at a path under vm/.
func (b *builder) folder(ctx context.Context, p string) (*object.Folder, error) {
	p = strings.Trim(p, "/")
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.folderLocked(ctx, p)
}

func (b *builder) folderLocked(ctx context.Context, p string) (*object.Folder, error) {
	if f, ok := b.folders[p]; ok {
		return f, nil
	}
	dir := path.Dir(p)
	if dir == "." {
		dir = ""
	}
	parent, err := b.folderLocked(ctx, dir)
	if err != nil {
		return nil, err
	}
	f, err := parent.CreateFolder(ctx, path.Base(p))
	if err != nil {
		return nil, fmt.Errorf("folder %q: %w", p, err)
	}
	b.folders[p] = f
	return f, nil
}

func (b *builder) vm(ctx context.Context, v VM) error {
	folder, err := b.folder(ctx, v.Folder)
	if err != nil {
		return err
	}
	spec := types.VirtualMachineConfigSpec{Name: v.Name, GuestId: string(types.VirtualMachineGuestOsIdentifierOtherGuest),
		NumCPUs: 1, MemoryMB: 128, Files: &types.VirtualMachineFileInfo{VmPathName: "[" + b.stores[v.store] + "]"}}
	// vcsim's CreateVM races with itself on the datastore's VM list (the
	// race detector sees Datastore.resolve copy it while AppendReference
	// grows it), so VMs are created one at a time; the rest runs in parallel.
	b.createMu.Lock()
	ref, err := b.createVM(ctx, folder, spec)
	b.createMu.Unlock()
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	vm := object.NewVirtualMachine(b.c.Client, ref)
	b.sim.mu.Lock()
	b.sim.vms[v.Name] = ref
	b.sim.mu.Unlock()
	if v.Power != "off" {
		t, err := vm.PowerOn(ctx)
		if err == nil {
			err = t.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("power on: %w", err)
		}
	}
	for cat, name := range v.Tags {
		if err := b.tags.AttachTag(ctx, b.tagIDs[cat+"/"+name], ref); err != nil {
			return fmt.Errorf("tag %s/%s: %w", cat, name, err)
		}
	}
	if len(v.Attributes) > 0 {
		cfm, err := object.GetCustomFieldsManager(b.c.Client)
		if err != nil {
			return err
		}
		for attr, val := range v.Attributes {
			if err := cfm.Set(ctx, ref, b.fields[attr], val); err != nil {
				return fmt.Errorf("custom attribute %s: %w", attr, err)
			}
		}
	}
	if len(v.Snapshots) == 0 {
		return nil
	}
	var current types.ManagedObjectReference
	var last types.ManagedObjectReference
	if err := b.snapshots(ctx, vm, v, v.Snapshots, nil, &current, &last); err != nil {
		return err
	}
	if current.Value == "" {
		current = last
	}
	if current != last { // make the named snapshot current
		t, err := vm.RevertToSnapshot(ctx, current.Value, true)
		if err == nil {
			err = t.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("revert to %q: %w", v.Current, err)
		}
	}
	return b.sim.refresh(ref)
}

func (b *builder) createVM(ctx context.Context, folder *object.Folder, spec types.VirtualMachineConfigSpec) (types.ManagedObjectReference, error) {
	task, err := folder.CreateVM(ctx, spec, b.pool, nil)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	return taskResult(ctx, task)
}

// taskResult waits for a task that returns a moref. A cancelled wait returns
// neither result nor error, so the context is checked too.
func taskResult(ctx context.Context, t *object.Task) (types.ManagedObjectReference, error) {
	info, err := t.WaitForResult(ctx)
	if err == nil && info == nil {
		err = ctx.Err()
	}
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	ref, ok := info.Result.(types.ManagedObjectReference)
	if !ok {
		return ref, fmt.Errorf("task %s returned %T, not a moref", t.Reference().Value, info.Result)
	}
	return ref, nil
}

// snapshots creates a tree depth first: each child is taken while its parent
// is current, reverting to the parent before each later sibling.
func (b *builder) snapshots(ctx context.Context, vm *object.VirtualMachine, v VM, list []Snap, parent *types.ManagedObjectReference,
	current, last *types.ManagedObjectReference) error {
	for i, sn := range list {
		if i > 0 && parent != nil {
			t, err := vm.RevertToSnapshot(ctx, parent.Value, true)
			if err == nil {
				err = t.Wait(ctx)
			}
			if err != nil {
				return fmt.Errorf("revert to parent of %q: %w", sn.Name, err)
			}
		}
		if i > 0 && parent == nil {
			// A second root needs the VM's disk back at its base: vcsim has no
			// such revert, so a later root is taken over the first tree's
			// current state. Fleets list one root per VM.
			return fmt.Errorf("snapshot %q: only one root snapshot per VM is supported", sn.Name)
		}
		t, err := vm.CreateSnapshot(ctx, sn.Name, sn.Description, sn.Memory, sn.Quiesced)
		if err != nil {
			return fmt.Errorf("snapshot %q: %w", sn.Name, err)
		}
		ref, err := taskResult(ctx, t)
		if err != nil {
			return fmt.Errorf("snapshot %q: %w", sn.Name, err)
		}
		created := b.now.Add(-time.Duration(sn.Age))
		b.sim.mu.Lock()
		b.sim.sizes[ref.Value] = int64(sn.Size)
		b.sim.created[ref.Value] = created
		if sn.Growth > 0 {
			b.sim.growth[ref.Value], b.sim.grows[ref.Value] = int64(sn.Growth), vm.Reference()
		}
		b.sim.mu.Unlock()
		if sn.Creator != "" {
			b.sim.postCreator(vm.Reference(), v.Name, b.dc, sn.Creator, created)
		}
		if sn.Name == v.Current && v.Current != "" {
			*current = ref
		}
		*last = ref
		if err := b.snapshots(ctx, vm, v, sn.Children, &ref, current, last); err != nil {
			return err
		}
	}
	return nil
}

// postCreator records the creating task's event as vCenter would have, with
// the creator's user name and the snapshot's create time.
func (s *Sim) postCreator(vm types.ManagedObjectReference, vmName string, dc types.ManagedObjectReference, user string, at time.Time) {
	ctx := s.Context()
	em := ctx.Map.EventManager()
	ev := &types.TaskEvent{
		Info: types.TaskInfo{DescriptionId: "VirtualMachine.createSnapshot", Entity: &vm, EntityName: vmName,
			State: types.TaskInfoStateSuccess, QueueTime: at, Name: "CreateSnapshot_Task"},
	}
	ev.Vm = &types.VmEventArgument{EntityEventArgument: types.EntityEventArgument{Name: vmName}, Vm: vm}
	ev.Datacenter = &types.DatacenterEventArgument{Datacenter: dc}
	ctx.WithLock(em, func() {
		em.PostEvent(ctx, &types.PostEvent{EventToPost: ev})
		// PostEvent stamps the session's user and the wall clock; the stored
		// event is this value, so set what vCenter would have recorded.
		ev.UserName, ev.CreatedTime = user, at
	})
}

// eachSnapshot calls fn for every node of a snapshot tree, parents first.
func eachSnapshot(list []types.VirtualMachineSnapshotTree, fn func(*types.VirtualMachineSnapshotTree)) {
	for i := range list {
		fn(&list[i])
		eachSnapshot(list[i].ChildSnapshotList, fn)
	}
}

// refresh re-applies create times and the layoutEx sizes of one VM; vcsim
// rebuilds layoutEx from disk after a removal, so this runs after every change.
func (s *Sim) refresh(ref types.ManagedObjectReference) error {
	ctx := s.Context()
	obj, ok := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return fmt.Errorf("vm %s not in the simulator", ref.Value)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx.WithLock(obj, func() {
		if obj.Snapshot == nil {
			// Without snapshots vcsim's own layout stands, unless the fleet
			// declared a phantom delta or a linked clone.
			if ex, ok := s.extras[ref.Value]; ok {
				le := layout(obj, s.sizes, s.vmsn, ex)
				ctx.Update(obj, []types.PropertyChange{{Name: "layoutEx", Val: le}})
				obj.LayoutEx = le
			} else if obj.LayoutEx != nil {
				// vcsim rebuilt it without telling the property
				// collector: a watcher would keep the files of the
				// removed snapshots (a linked clone's base among them).
				ctx.Update(obj, []types.PropertyChange{{Name: "layoutEx", Val: obj.LayoutEx}})
			}
			return
		}
		eachSnapshot(obj.Snapshot.RootSnapshotList, func(n *types.VirtualMachineSnapshotTree) {
			if t, ok := s.created[n.Snapshot.Value]; ok {
				n.CreateTime = t
			}
		})
		if obj.LayoutEx != nil {
			names := map[int32]string{}
			for _, f := range obj.LayoutEx.File {
				names[f.Key] = f.Name
			}
			for _, sl := range obj.LayoutEx.Snapshot {
				if _, ok := s.vmsn[sl.Key.Value]; !ok && names[sl.DataKey] != "" {
					s.vmsn[sl.Key.Value] = names[sl.DataKey]
				}
			}
		}
		le := layout(obj, s.sizes, s.vmsn, s.extras[ref.Value])
		ctx.Update(obj, []types.PropertyChange{
			{Name: "snapshot", Val: obj.Snapshot},
			{Name: "snapshot.rootSnapshotList", Val: obj.Snapshot.RootSnapshotList},
			{Name: "layoutEx", Val: le},
		})
		obj.LayoutEx = le
	})
	return nil
}

// SetSnapshotCreated changes a snapshot's create time, as if it had been
// taken then (tests move time this way instead of waiting).
func (s *Sim) SetSnapshotCreated(vmName, snapshot string, t time.Time) error {
	ref, snap, err := s.findSnapshot(vmName, snapshot)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.created[snap.Value] = t
	s.mu.Unlock()
	return s.refresh(ref)
}

// RemoveSnapshot removes a snapshot through the API, as a customer would
// (commit: removeChildren=false, consolidate=true).
func (s *Sim) RemoveSnapshot(vmName, snapshot string) error {
	ref, snap, err := s.findSnapshot(vmName, snapshot)
	if err != nil {
		return err
	}
	ctx := context.Background()
	consolidate := true
	t, err := object.NewVirtualMachine(s.client.Client, ref).RemoveSnapshot(ctx, snap.Value, false, &consolidate)
	if err == nil {
		err = t.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("vm %q: remove snapshot %q: %w", vmName, snapshot, err)
	}
	return s.refresh(ref)
}

// Refresh re-applies the fleet's create times and sizes to a VM after a
// change made through the API by the code under test.
func (s *Sim) Refresh(vmName string) error {
	ref, ok := s.VMRef(vmName)
	if !ok {
		return fmt.Errorf("vm %q not in the fleet", vmName)
	}
	return s.refresh(ref)
}

// problems applies what the fleet declares beyond snapshots, once every VM
// exists (a linked clone needs its source's chain): consolidation needed,
// phantom deltas, linked clones, and orphan files on the datastore.
func (s *Sim) problems(f *Fleet, now time.Time) error {
	for _, v := range f.VMs {
		if v.ConsolidationNeeded {
			if err := s.SetConsolidationNeeded(v.Name, true); err != nil {
				return err
			}
		}
		if v.PhantomDelta == 0 && v.LinkedCloneOf == nil {
			continue
		}
		ref, _ := s.VMRef(v.Name)
		ex := extra{phantom: int64(v.PhantomDelta)}
		if c := v.LinkedCloneOf; c != nil {
			chain, err := s.chainOf(c.VM, c.Snapshot)
			if err != nil {
				return fmt.Errorf("simulator: vm %q: linked clone: %w", v.Name, err)
			}
			ex.parent = chain
		}
		s.mu.Lock()
		s.extras[ref.Value] = ex
		s.mu.Unlock()
		if err := s.refresh(ref); err != nil {
			return err
		}
	}
	for _, o := range f.Orphans {
		ds := o.Datastore
		if ds == "" {
			ds = s.Datastores()[0]
		}
		if err := s.WriteFileOn(ds, o.Path, int64(o.Size), now.Add(-time.Duration(o.Age))); err != nil {
			return err
		}
	}
	return nil
}

// chainOf returns the disk chain of a VM's snapshot, file by file, from the
// VM's layoutEx: what a linked clone of that snapshot runs on.
func (s *Sim) chainOf(vmName, snapshot string) ([][]diskFile, error) {
	ref, snap, err := s.findSnapshot(vmName, snapshot)
	if err != nil {
		return nil, err
	}
	ctx := s.Context()
	obj := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	var chain [][]diskFile
	ctx.WithLock(obj, func() {
		files := map[int32]types.VirtualMachineFileLayoutExFileInfo{}
		for _, f := range obj.LayoutEx.File {
			files[f.Key] = f
		}
		for _, sl := range obj.LayoutEx.Snapshot {
			if sl.Key != snap || len(sl.Disk) == 0 {
				continue
			}
			for _, unit := range sl.Disk[0].Chain {
				var link []diskFile
				for _, k := range unit.FileKey {
					link = append(link, diskFile{name: files[k].Name, kind: files[k].Type, size: files[k].Size})
				}
				chain = append(chain, link)
			}
		}
	})
	if chain == nil {
		return nil, fmt.Errorf("vm %q: snapshot %q has no disk chain", vmName, snapshot)
	}
	return chain, nil
}

// Datastores names the simulator's datastores, LocalDS_0 first.
func (s *Sim) Datastores() []string {
	ctx := s.Context()
	names := make([]string, len(s.stores))
	for i, ref := range s.stores {
		names[i] = ctx.Map.Get(ref).(*simulator.Datastore).Name
	}
	return names
}

// DatastoreDir is the folder on disk that holds the first datastore.
func (s *Sim) DatastoreDir() string {
	return s.datastoreDir(s.stores[0])
}

func (s *Sim) datastoreDir(ref types.ManagedObjectReference) string {
	ds := s.Context().Map.Get(ref).(*simulator.Datastore)
	return ds.Info.GetDatastoreInfo().Url
}

// WriteDatastoreFile writes a sparse file of size bytes at rel (a path
// under the first datastore's root), last written at modified: an orphan
// file.
func (s *Sim) WriteDatastoreFile(rel string, size int64, modified time.Time) error {
	return s.WriteFileOn(s.Datastores()[0], rel, size, modified)
}

// WriteFileOn is WriteDatastoreFile on the named datastore.
func (s *Sim) WriteFileOn(datastore, rel string, size int64, modified time.Time) error {
	i := slices.Index(s.Datastores(), datastore)
	if i < 0 {
		return fmt.Errorf("simulator: datastore file %s: no datastore %q (the simulator has %s)", rel, datastore, strings.Join(s.Datastores(), ", "))
	}
	p := filepath.Join(s.datastoreDir(s.stores[i]), filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("simulator: datastore file %s: %w", rel, err)
	}
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("simulator: datastore file %s: %w", rel, err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(p, modified, modified)
	}
	if err != nil {
		return fmt.Errorf("simulator: datastore file %s: %w", rel, err)
	}
	return nil
}

// Grow adds each growing snapshot's declared growth to its size, as the
// writes of one cycle would.
func (s *Sim) Grow() error {
	s.mu.Lock()
	vms := map[types.ManagedObjectReference]bool{}
	for id, by := range s.growth {
		s.sizes[id] += by
		vms[s.grows[id]] = true
	}
	s.mu.Unlock()
	for ref := range vms {
		if err := s.refresh(ref); err != nil {
			return err
		}
	}
	return nil
}

// SetConsolidationNeeded sets runtime.consolidationNeeded of a VM.
func (s *Sim) SetConsolidationNeeded(vmName string, v bool) error {
	ref, ok := s.VMRef(vmName)
	if !ok {
		return fmt.Errorf("vm %q not in the fleet", vmName)
	}
	ctx := s.Context()
	obj := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	ctx.WithLock(obj, func() {
		obj.Runtime.ConsolidationNeeded = v
		ctx.Update(obj, []types.PropertyChange{{Name: "runtime.consolidationNeeded", Val: v}})
	})
	return nil
}

// SetDiskMode sets the mode (persistent, independent_persistent,
// independent_nonpersistent, ...) of the VM's virtual disk, as reconfiguring
// it in the vSphere Client would. A fleet VM's layout names one disk (key
// 2000) that its device list may lack: it is added then.
func (s *Sim) SetDiskMode(vmName, mode string) error {
	ref, ok := s.VMRef(vmName)
	if !ok {
		return fmt.Errorf("vm %q not in the fleet", vmName)
	}
	ctx := s.Context()
	obj := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	ctx.WithLock(obj, func() {
		var backing *types.VirtualDiskFlatVer2BackingInfo
		for _, dev := range obj.Config.Hardware.Device {
			if disk, ok := dev.(*types.VirtualDisk); ok {
				if b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && backing == nil {
					backing = b
				}
			}
		}
		if backing == nil {
			backing = &types.VirtualDiskFlatVer2BackingInfo{VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{
				FileName: vmDir(obj) + obj.Name + ".vmdk"}}
			obj.Config.Hardware.Device = append(obj.Config.Hardware.Device, &types.VirtualDisk{
				VirtualDevice: types.VirtualDevice{Key: 2000, DeviceInfo: &types.Description{Label: "Hard disk 1", Summary: "16 GB"},
					Backing: backing},
				CapacityInKB: 16 << 20,
			})
		}
		backing.DiskMode = mode
		ctx.Update(obj, []types.PropertyChange{{Name: "config.hardware.device", Val: obj.Config.Hardware.Device}})
	})
	return nil
}

// SetDatastoreSpace sets the capacity and free space every datastore
// reports.
func (s *Sim) SetDatastoreSpace(capacity, free int64) error {
	ctx := s.Context()
	for _, ref := range s.stores {
		ds, ok := ctx.Map.Get(ref).(*simulator.Datastore)
		if !ok {
			return fmt.Errorf("datastore %s not in the simulator", ref.Value)
		}
		ctx.WithLock(ds, func() {
			ds.Summary.Capacity, ds.Summary.FreeSpace = capacity, free
			ds.Info.GetDatastoreInfo().FreeSpace = free
			ctx.Update(ds, []types.PropertyChange{{Name: "summary", Val: ds.Summary}})
		})
	}
	return nil
}

// SetDatastoreFree changes only the free space, of every datastore.
func (s *Sim) SetDatastoreFree(free int64) error {
	ds := s.Context().Map.Get(s.stores[0]).(*simulator.Datastore)
	return s.SetDatastoreSpace(ds.Summary.Capacity, free)
}

func (s *Sim) findSnapshot(vmName, snapshot string) (types.ManagedObjectReference, types.ManagedObjectReference, error) {
	ref, ok := s.VMRef(vmName)
	if !ok {
		return ref, ref, fmt.Errorf("vm %q not in the fleet", vmName)
	}
	var vm mo.VirtualMachine
	if err := s.client.RetrieveOne(context.Background(), ref, []string{"snapshot"}, &vm); err != nil {
		return ref, ref, err
	}
	if vm.Snapshot != nil {
		var found *types.ManagedObjectReference
		eachSnapshot(vm.Snapshot.RootSnapshotList, func(n *types.VirtualMachineSnapshotTree) {
			if n.Name == snapshot && found == nil {
				found = &n.Snapshot
			}
		})
		if found != nil {
			return ref, *found, nil
		}
	}
	return ref, ref, fmt.Errorf("vm %q has no snapshot %q", vmName, snapshot)
}
