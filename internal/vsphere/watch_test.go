package vsphere

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
)

// flatten renders an inventory in a stable order, each snapshot with its
// VM, so two inventories compare as text.
func flatten(t *testing.T, inv *facts.Inventory) string {
	t.Helper()
	type row struct {
		VM *facts.VM
		S  facts.Snapshot
	}
	var rows []string
	for _, s := range inv.Snapshots {
		b, err := json.Marshal(row{s.VM, s})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, string(b))
	}
	for _, p := range inv.Problems {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, string(b))
	}
	slices.Sort(rows)
	return fmt.Sprintf("vms=%d\n%s", inv.VMs, strings.Join(rows, "\n"))
}

// TestWatcherPatchedEqualsFullRead churns the fleet at random and checks
// after every round that the watcher's patched inventory is what a full
// read returns, and that it reported each new snapshot.
func TestWatcherPatchedEqualsFullRead(t *testing.T) {
	t.Run("vcsim", func(t *testing.T) { testWatcherPatched(t, false) })
	// The benchmarks' collector must be as right as vcsim's.
	t.Run("fast", func(t *testing.T) { testWatcherPatched(t, true) })
}

func testWatcherPatched(t *testing.T, fast bool) {
	s := startSim(t, "problems.yaml")
	if fast {
		s.FastWait()
	}
	c := dial(t, target(s), Options{})
	ctx := context.Background()
	w, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	check := func(round int) {
		t.Helper()
		got, err := w.Inventory(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.Collect(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := flatten(t, got), flatten(t, want); g != w {
			t.Fatalf("round %d: patched inventory differs from a full read:\n%s", round, lineDiff(g, w))
		}
	}
	check(0)

	rng := rand.New(rand.NewSource(7))
	names := s.VMNames()
	taken := 0
	for round := 1; round <= 12; round++ {
		made := map[string]string{} // snapshot -> VM, of this round
		for i := 0; i < 3; i++ {
			vm := names[rng.Intn(len(names))]
			switch rng.Intn(5) {
			case 0, 1:
				taken++
				name := fmt.Sprintf("churn-%d", taken)
				if err := s.CreateSnapshot(vm, name, now.Add(-time.Duration(taken)*time.Minute), int64(taken)<<20); err != nil {
					t.Fatal(err)
				}
				made[name] = vm
			case 2:
				if snaps := snapshotNames(t, c, vm); len(snaps) > 0 {
					gone := snaps[rng.Intn(len(snaps))]
					if err := s.RemoveSnapshot(vm, gone); err != nil {
						t.Fatal(err)
					}
					delete(made, gone) // born and gone between two polls: nothing to tell

				}
			case 3:
				if err := s.SetConsolidationNeeded(vm, rng.Intn(2) == 0); err != nil {
					t.Fatal(err)
				}
			case 4:
				if err := s.SetAttribute(vm, "Customer", fmt.Sprintf("cust-%d", rng.Intn(3))); err != nil {
					t.Fatal(err)
				}
			}
		}
		ch, err := w.Poll(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ch.NewSnapshots) != len(made) {
			t.Errorf("round %d: %d new snapshots reported (%v), %d taken on %v", round, len(ch.NewSnapshots), ch.NewSnapshots, len(made), made)
		}
		check(round)
	}

	// A VM that goes: the linked clone, whose chain links its source's
	// files, so the source's phantom judgement must change with it.
	ref, ok := s.VMRef("clone01")
	if !ok {
		t.Fatal("clone01 not in the fleet")
	}
	vm := object.NewVirtualMachine(c.vim, ref)
	if task, err := vm.PowerOff(ctx); err == nil {
		_ = task.Wait(ctx)
	}
	task, err := vm.Destroy(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	ch, err := w.Poll(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Left != 1 {
		t.Errorf("%d VMs left the view, want clone01", ch.Left)
	}
	check(13)
}

// TestWatcherResizesFromLayoutAlone: a running delta that grew changes the
// VM's layoutEx alone (vCenter sends it so; the simulator sends the tree
// with it, so the update is made here from two real reads). The copy, which
// keeps no snapshot tree, resizes the snapshots it holds without reading
// the VM again, to what a fresh read derives.
func TestWatcherResizesFromLayoutAlone(t *testing.T) {
	s := startSim(t, "growth.yaml")
	c := dial(t, target(s), Options{})
	ctx := context.Background()
	w, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	ref, ok := s.VMRef("grow01")
	if !ok {
		t.Fatal("grow01 not in the fleet")
	}
	read := func() *mo.VirtualMachine {
		var vms []mo.VirtualMachine
		if err := property.DefaultCollector(c.vim).Retrieve(ctx, []types.ManagedObjectReference{ref}, vmProps, &vms); err != nil {
			t.Fatal(err)
		}
		return &vms[0]
	}
	before := slim(read())
	if err := s.Grow(); err != nil {
		t.Fatal(err)
	}
	grown := read()
	var ch Changes
	w.apply(types.ObjectUpdate{Kind: types.ObjectUpdateKindModify, Obj: ref,
		ChangeSet: []types.PropertyChange{{Name: "layoutEx", Op: types.PropertyChangeOpAssign, Val: *grown.LayoutEx}}}, &ch)
	if w.stale[ref] {
		t.Error("grow01 is to be read again after a layoutEx change alone")
	}
	got, want := w.vms[ref], slim(grown)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("patched copy of grow01:\n%+v\nwant what a fresh read derives:\n%+v", got, want)
	}
	if reflect.DeepEqual(before.snapshots, want.snapshots) {
		t.Error("the growth changed no size: the test tests nothing")
	}
}

// lineDiff lists the lines only in the patched (-) or only in the full
// read (+).
func lineDiff(patched, full string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	p, f := in(patched), in(full)
	var out []string
	for l := range p {
		if !f[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range f {
		if !p[l] {
			out = append(out, "+ "+l)
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// snapshotNames lists a VM's snapshots through a full read.
func snapshotNames(t *testing.T, c *Client, vm string) []string {
	t.Helper()
	inv, err := c.Collect(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range inv.Snapshots {
		if s.VM.Name == vm {
			out = append(out, s.Name)
		}
	}
	return out
}

// TestPoolWatchedCycles is serve's use: the first cycle reads in full, a
// wait between cycles reports a new snapshot, and the next cycle costs a
// handful of calls yet equals a full read.
func TestPoolWatchedCycles(t *testing.T) {
	s := startSim(t, "small.yaml")
	var calls Counter
	p := NewPool([]config.VCenter{target(s)}, Options{Watch: true, Counter: &calls})
	ctx := context.Background()
	defer func() { _ = p.Close(ctx) }()
	first := p.Collect(ctx, nil)
	if len(first.Errors) > 0 || len(first.Snapshots) != 8 {
		t.Fatalf("first cycle: %d snapshots, errors %v", len(first.Snapshots), first.Errors)
	}
	if err := s.CreateSnapshot("db01", "between", now, 1<<20); err != nil {
		t.Fatal(err)
	}
	seen := p.Wait(ctx, 5*time.Second)
	if len(seen["vc-test"]) != 1 {
		t.Fatalf("wait between cycles saw %v, want db01's new snapshot", seen)
	}
	if err := s.RemoveSnapshot("web01", "try-2"); err != nil {
		t.Fatal(err)
	}
	before := calls.SOAP() + calls.HTTP()
	got := p.Collect(ctx, nil)
	steady := calls.SOAP() + calls.HTTP() - before
	c := dial(t, target(s), Options{})
	want, err := c.Collect(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := flatten(t, got), flatten(t, want); g != w {
		t.Fatalf("watched cycle differs from a full read:\n%s", lineDiff(g, w))
	}
	// One wait, one tag read (plus its session check), the creators of the
	// one new snapshot: nothing grows with the fleet.
	if steady > 10 {
		t.Errorf("steady cycle made %d vCenter calls, want at most 10", steady)
	}
	t.Logf("steady cycle: %d calls", steady)

	// Taken just before a cycle, seen by the cycle's read: the next wait
	// reports it all the same, at once.
	if err := s.CreateSnapshot("lab01", "just-before", now, 1<<20); err != nil {
		t.Fatal(err)
	}
	p.Collect(ctx, nil)
	began := time.Now()
	if seen := p.Wait(ctx, 30*time.Second); len(seen["vc-test"]) != 1 || time.Since(began) > 10*time.Second {
		t.Errorf("the wait after a cycle reported %v after %s, want lab01's new snapshot at once", seen, time.Since(began))
	}
}

// TestPoolResync: when vCenter no longer knows the watcher's version
// (InvalidCollectorVersion, injected: vcsim never sends it), the cycle
// reads everything again instead of failing or trusting a stale copy.
func TestPoolResync(t *testing.T) {
	s := startSim(t, "small.yaml")
	p := NewPool([]config.VCenter{target(s)}, Options{Watch: true})
	ctx := context.Background()
	defer func() { _ = p.Close(ctx) }()
	if inv := p.Collect(ctx, nil); len(inv.Errors) > 0 {
		t.Fatal(inv.Errors)
	}
	if err := s.CreateSnapshot("lab01", "after-resync", now, 1<<20); err != nil {
		t.Fatal(err)
	}
	s.FailWait(new(types.InvalidCollectorVersion))
	got := p.Collect(ctx, nil)
	if len(got.Errors) > 0 {
		t.Fatalf("a lost version failed the cycle: %v", got.Errors)
	}
	want, err := dial(t, target(s), Options{}).Collect(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := flatten(t, got), flatten(t, want); g != w {
		t.Fatalf("cycle after a resync differs from a full read:\n%s", lineDiff(g, w))
	}
}

// TestCycleInterruptsWait: a cycle due while a wait between cycles is in
// flight cancels it on vCenter's side instead of waiting it out, and the
// watcher survives for the next wait.
func TestCycleInterruptsWait(t *testing.T) {
	s := startSim(t, "small.yaml")
	p := NewPool([]config.VCenter{target(s)}, Options{Watch: true})
	ctx := context.Background()
	defer func() { _ = p.Close(ctx) }()
	if inv := p.Collect(ctx, nil); len(inv.Errors) > 0 {
		t.Fatal(inv.Errors)
	}
	waited := make(chan map[string][]string)
	go func() { waited <- p.Wait(ctx, 60*time.Second) }()
	time.Sleep(200 * time.Millisecond) // let the wait reach vcsim; a cycle may come at any time
	began := time.Now()
	if inv := p.Collect(ctx, nil); len(inv.Errors) > 0 {
		t.Fatal(inv.Errors)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("the cycle waited %s for the wait between cycles", took)
	}
	<-waited
	if err := s.CreateSnapshot("lab01", "later", now, 1<<20); err != nil {
		t.Fatal(err)
	}
	if got := p.Wait(ctx, 5*time.Second); len(got["vc-test"]) != 1 {
		t.Errorf("after an interrupted wait the watcher saw %v, want lab01's new snapshot", got)
	}
}
