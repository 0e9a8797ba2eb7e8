package simfleet

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/snapwarden/snapwarden/internal/config"
)

// Fleet is one simulated vCenter, as written in a fleet file.
type Fleet struct {
	Datacenter string    `yaml:"datacenter"`
	Datastore  Space     `yaml:"datastore"`
	VMs        []VM      `yaml:"vms"`
	Generate   *Generate `yaml:"generate"`
	// Orphans are files left on the datastore that no VM references.
	Orphans []Orphan `yaml:"orphans"`
}

// Orphan is a file written on the datastore: what a failed task or an
// unregistered VM leaves behind. It is sparse: its size costs no disk.
type Orphan struct {
	// Path is relative to the datastore's root, e.g. "gone-vm/gone-vm-000001.vmdk".
	Path string `yaml:"path"`
	Size Size   `yaml:"size"`
	// Age is how long ago the file was last written; default 2 days.
	Age Duration `yaml:"age"`
	// Datastore names the datastore that holds the file; default the first.
	Datastore string `yaml:"datastore"`
}

// CloneSource names the snapshot a linked clone's disk is a child of.
type CloneSource struct {
	VM       string `yaml:"vm"`
	Snapshot string `yaml:"snapshot"`
}

// Space is a datastore's capacity and free space.
type Space struct {
	Capacity Size `yaml:"capacity"`
	Free     Size `yaml:"free"`
}

// VM is one virtual machine of the fleet.
type VM struct {
	Name string `yaml:"name"`
	// Folder is the path under the datacenter's vm folder, e.g. "Customers/acme".
	Folder     string            `yaml:"folder"`
	Power      string            `yaml:"power"` // on | off
	Tags       map[string]string `yaml:"tags"`  // category -> tag name
	Attributes map[string]string `yaml:"attributes"`
	Snapshots  []Snap            `yaml:"snapshots"`
	// Current names the current snapshot; default the last in document order.
	Current string `yaml:"current"`
	// ConsolidationNeeded sets runtime.consolidationNeeded, as a removal that
	// left the VM on its deltas does.
	ConsolidationNeeded bool `yaml:"consolidation_needed"`
	// PhantomDelta is the size of a delta the VM's disk runs on although it
	// has no snapshot (a "phantom snapshot").
	PhantomDelta Size `yaml:"phantom_delta"`
	// LinkedCloneOf makes the VM a linked clone: its disk is a child of
	// that snapshot's disk chain of another VM of the fleet.
	LinkedCloneOf *CloneSource `yaml:"linked_clone_of"`

	// store is the index of the datastore that holds the VM's files: the
	// first for listed VMs, spread over all for generated ones.
	store int
}

// Snap is one snapshot and its children.
type Snap struct {
	Name        string   `yaml:"name"`
	Age         Duration `yaml:"age"`
	Size        Size     `yaml:"size"`
	Description string   `yaml:"description"`
	Creator     string   `yaml:"creator"`
	Memory      bool     `yaml:"memory"`
	Quiesced    bool     `yaml:"quiesced"`
	Children    []Snap   `yaml:"children"`
	// Growth is added to the snapshot's size at every Sim.Grow (a cycle,
	// in tests): a snapshot whose delta fills its datastore.
	Growth Size `yaml:"growth"`
}

// Generate appends synthetic VMs, for tests and benchmarks at scale.
type Generate struct {
	VMs            int   `yaml:"vms"`
	SnapshotsPerVM int   `yaml:"snapshots_per_vm"`
	Customers      int   `yaml:"customers"`
	Seed           int64 `yaml:"seed"`
	// Datastores spreads the generated VMs over that many datastores
	// (LocalDS_0, LocalDS_1, ...), VM i on datastore i mod Datastores;
	// default 1. Listed VMs stay on the first.
	Datastores int `yaml:"datastores"`
}

// Duration is a Go duration that also accepts days ("3d", "2d12h").
type Duration time.Duration

// UnmarshalYAML reads "50h", "90m", "3d" or "2d12h".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := config.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// Size is a byte count written as a number or with an IEC unit ("1GiB").
type Size int64

var sizeRE = regexp.MustCompile(`^\s*([0-9.]+)\s*([KMGT]i?B|B)?\s*$`)

// UnmarshalYAML reads "1073741824", "512MiB", "1.5GiB".
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	m := sizeRE.FindStringSubmatch(n.Value)
	if m == nil {
		return fmt.Errorf("line %d: %q is not a size such as 512MiB or 2GiB", n.Line, n.Value)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return fmt.Errorf("line %d: %q: %w", n.Line, n.Value, err)
	}
	mult := map[string]float64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[m[2]]
	*s = Size(f * mult)
	return nil
}

// Load reads a fleet file.
func Load(path string) (*Fleet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet %s: %w", path, err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("fleet %s: %w", path, err)
	}
	return f, nil
}

// Parse reads a fleet; unknown keys are errors.
func Parse(data []byte) (*Fleet, error) {
	var f Fleet
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if f.Datacenter == "" {
		f.Datacenter = "DC0"
	}
	if f.Datastore.Capacity == 0 {
		f.Datastore = Space{Capacity: 4 << 40, Free: 2 << 40}
	}
	seen := map[string]bool{}
	for i, vm := range f.VMs {
		if vm.Name == "" {
			return nil, fmt.Errorf("vms[%d]: name is required", i)
		}
		key := vm.Folder + "/" + vm.Name
		if seen[key] {
			return nil, fmt.Errorf("vms[%d]: VM %q appears twice in folder %q", i, vm.Name, vm.Folder)
		}
		seen[key] = true
		if vm.Power != "" && vm.Power != "on" && vm.Power != "off" {
			return nil, fmt.Errorf("vm %q: power must be on or off, got %q", vm.Name, vm.Power)
		}
		if vm.Current != "" && !hasSnap(vm.Snapshots, vm.Current) {
			return nil, fmt.Errorf("vm %q: current snapshot %q is not in its tree", vm.Name, vm.Current)
		}
		if (vm.PhantomDelta > 0 || vm.LinkedCloneOf != nil) && len(vm.Snapshots) > 0 {
			return nil, fmt.Errorf("vm %q: phantom_delta and linked_clone_of are for VMs without snapshots", vm.Name)
		}
	}
	for _, vm := range f.VMs {
		if c := vm.LinkedCloneOf; c != nil && !slices.ContainsFunc(f.VMs, func(src VM) bool {
			return src.Name == c.VM && hasSnap(src.Snapshots, c.Snapshot)
		}) {
			return nil, fmt.Errorf("vm %q: linked_clone_of: no VM %q with a snapshot %q in the fleet", vm.Name, c.VM, c.Snapshot)
		}
	}
	if g := f.Generate; g != nil && g.Datastores < 0 {
		return nil, fmt.Errorf("generate: datastores must be 1 or more, got %d", g.Datastores)
	}
	for i, o := range f.Orphans {
		if o.Path == "" || path.IsAbs(o.Path) || strings.Contains(o.Path, "..") {
			return nil, fmt.Errorf("orphans[%d]: path %q must be relative to the datastore, without ..", i, o.Path)
		}
		if o.Age == 0 {
			f.Orphans[i].Age = Duration(48 * time.Hour)
		}
	}
	return &f, nil
}

func hasSnap(list []Snap, name string) bool {
	for _, s := range list {
		if s.Name == name || hasSnap(s.Children, name) {
			return true
		}
	}
	return false
}

// datastores is how many datastores the fleet's simulator has.
func (f *Fleet) datastores() int {
	if f.Generate == nil {
		return 1
	}
	return max(f.Generate.Datastores, 1)
}

// expand returns the fleet's VMs plus the generated ones.
func (f *Fleet) expand() []VM {
	vms := append([]VM(nil), f.VMs...)
	g := f.Generate
	if g == nil || g.VMs == 0 {
		return vms
	}
	customers := max(g.Customers, 1)
	for i := 0; i < g.VMs; i++ {
		c := fmt.Sprintf("cust-%03d", (i+int(g.Seed))%customers)
		vm := VM{Name: fmt.Sprintf("gen-%05d", i), Folder: "Customers/" + c, Power: "on", store: i % f.datastores()}
		switch i % 3 { // spread ownership over the three rule kinds
		case 0:
			vm.Tags = map[string]string{"Customer": c}
		case 1:
			vm.Attributes = map[string]string{"Customer": c}
		}
		// A chain whose ages spread over every state, deterministic from the index.
		var chain *Snap
		for j := g.SnapshotsPerVM - 1; j >= 0; j-- {
			s := Snap{
				Name: fmt.Sprintf("snap-%d", j+1),
				Age:  Duration(time.Duration((i*7+int(g.Seed)*13)%96+2*(g.SnapshotsPerVM-j)) * time.Hour),
				Size: Size(int64(1+(i+j)%50) << 26),
			}
			if chain != nil {
				s.Children = []Snap{*chain}
			}
			chain = &s
		}
		if chain != nil {
			vm.Snapshots = []Snap{*chain}
		}
		vms = append(vms, vm)
	}
	return vms
}
