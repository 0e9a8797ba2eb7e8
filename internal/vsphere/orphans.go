package vsphere

import (
	"context"
	"fmt"
	slashpath "path" // the package's path() builds inventory paths
	"regexp"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"golang.org/x/sync/errgroup"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// orphanPatterns narrow the datastore search to delta and snapshot files;
// orphanRE is the exact rule (a "-??????" pattern also matches "-digest").
var (
	orphanPatterns = []string{"*-??????.vmdk", "*-delta.vmdk", "*-sesparse.vmdk", "*.vmsn"}
	orphanRE       = regexp.MustCompile(`(-\d{6}\.vmdk|-delta\.vmdk|-sesparse\.vmdk|\.vmsn)$`)
)

// searchParallel bounds the datastore searches one scan runs at once.
const searchParallel = 4

// orphanGrace spares files written recently: a snapshot being taken or a
// VM being registered has files that its layoutEx may not list yet.
const orphanGrace = time.Hour

// Orphans searches every accessible datastore of the vCenter for delta and
// snapshot files that no registered VM's layoutEx (templates included)
// references: what a failed task or an unregistered VM left behind. It
// costs one retrieval plus one SearchDatastoreSubFolders_Task per datastore,
// searchParallel of them at a time.
func (c *Client) Orphans(ctx context.Context) ([]facts.Problem, error) {
	used := map[string]bool{}
	type store struct {
		name    string
		browser types.ManagedObjectReference
	}
	var stores []store
	nodes := map[types.ManagedObjectReference]node{}
	parents := map[string]types.ManagedObjectReference{}
	props := []types.PropertySpec{
		{Type: "VirtualMachine", PathSet: []string{"layoutEx.file"}},
		{Type: "Datastore", PathSet: []string{"name", "browser", "summary.accessible", "parent"}},
		{Type: "Folder", PathSet: containerProps["Folder"]},
		{Type: "Datacenter", PathSet: containerProps["Datacenter"]},
	}
	err := c.retrieveView(ctx, []string{"VirtualMachine", "Datastore", "Folder", "Datacenter"}, props, nil, func(objs []types.ObjectContent) error {
		for _, oc := range objs {
			switch oc.Obj.Type {
			case "VirtualMachine":
				for _, p := range oc.PropSet {
					if files, ok := p.Val.(types.ArrayOfVirtualMachineFileLayoutExFileInfo); ok {
						for _, f := range files.VirtualMachineFileLayoutExFileInfo {
							used[normalPath(f.Name)] = true
						}
					}
				}
			case "Datastore":
				var ds mo.Datastore
				if err := mo.LoadObjectContent([]types.ObjectContent{oc}, &ds); err != nil {
					return fmt.Errorf("decode datastore %s: %w", oc.Obj.Value, err)
				}
				if ds.Summary.Accessible && ds.Browser.Value != "" {
					stores = append(stores, store{name: ds.Name, browser: ds.Browser})
					if ds.Parent != nil {
						parents[ds.Name] = *ds.Parent
					}
				}
			default:
				nodes[oc.Obj] = nodeOf(oc)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vcenter %q: list VM files: %w", c.Name, err)
	}
	// A search of a big datastore takes vCenter a while: a few run at once,
	// so a vCenter with many datastores is scanned within collect.timeout.
	found := make([][]dsFile, len(stores))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(searchParallel)
	for i, ds := range stores {
		g.Go(func() error {
			var err error
			if found[i], err = c.searchDatastore(gctx, ds.browser, ds.name); err != nil {
				return fmt.Errorf("vcenter %q: search datastore %s: %w", c.Name, ds.name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []facts.Problem
	for i, ds := range stores {
		_, dc := path(nodes, parents[ds.name])
		for _, f := range found[i] {
			if used[f.path] || time.Since(f.modified) < orphanGrace {
				continue
			}
			out = append(out, facts.Problem{Kind: facts.OrphanFile, VCenter: c.Name, Datacenter: dc, Datastore: ds.name,
				Path: f.path, SizeBytes: f.size,
				Detail: "no registered VM or template references this file: left by a failed task or an unregistered VM; last written " +
					f.modified.UTC().Format(time.RFC3339)})
		}
	}
	return out, nil
}

// dsFile is one file a datastore search found.
type dsFile struct {
	path     string // normalised datastore path
	size     int64
	modified time.Time
}

// searchDatastore lists the delta and snapshot files of one datastore, in
// every folder.
func (c *Client) searchDatastore(ctx context.Context, browser types.ManagedObjectReference, name string) ([]dsFile, error) {
	res, err := methods.SearchDatastoreSubFolders_Task(ctx, c.vim, &types.SearchDatastoreSubFolders_Task{
		This: browser, DatastorePath: "[" + name + "]",
		SearchSpec: &types.HostDatastoreBrowserSearchSpec{
			MatchPattern: orphanPatterns,
			Details:      &types.FileQueryFlags{FileType: true, FileSize: true, Modification: true},
		},
	})
	if err != nil {
		return nil, err
	}
	info, err := object.NewTask(c.vim, res.Returnval).WaitForResult(ctx)
	if err != nil {
		return nil, err
	}
	results, ok := info.Result.(types.ArrayOfHostDatastoreBrowserSearchResults)
	if !ok {
		return nil, fmt.Errorf("search returned %T", info.Result)
	}
	var out []dsFile
	for _, r := range results.HostDatastoreBrowserSearchResults {
		for _, bf := range r.File {
			f := bf.GetFileInfo()
			if _, folder := bf.(*types.FolderFileInfo); folder || !orphanRE.MatchString(f.Path) {
				continue
			}
			d := dsFile{path: normalPath(r.FolderPath + "/" + f.Path), size: f.FileSize}
			if f.Modification != nil {
				d.modified = *f.Modification
			}
			out = append(out, d)
		}
	}
	return out, nil
}

// normalPath writes a datastore path the way layoutEx does: "[ds] dir/file".
// vSphere's browser answers "[ds] dir/" or "[ds]" for folders, vcsim
// "[ds]/dir"; joined with a file name and cleaned, all become one form.
func normalPath(p string) string {
	if !strings.HasPrefix(p, "[") {
		return p
	}
	i := strings.IndexByte(p, ']')
	if i < 0 {
		return p
	}
	rest := strings.TrimLeft(p[i+1:], " /")
	if rest != "" {
		rest = slashpath.Clean(rest)
	}
	return p[:i+1] + " " + rest
}
