package cycle

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/config"
	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/notify"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// churnConfig is the fleet's config; withD adds customer d, as a provider
// adds a customer to the directory while snapwarden runs.
func churnConfig(t testing.TB, withD bool) *config.Config {
	t.Helper()
	body := `vcenters: [{name: vc1, url: "https://vc1.example.net/sdk", username: svc, password: pw}]
support: {email: support@provider.example}
policy: {warn_after: 24h, deadline: 48h, reminder_every: 12h, escalate_every: 24h, grace: 12h}
ownership:
  - {tag_category: Customer}
  - {custom_attribute: Customer}
  - {folder_regex: '/Customers/(?P<customer>[^/]+)/'}
enforcement: {mode: enforce, min_notice: 24h}
customers:
  - {id: a, name: A, contacts: [ops@a.example], policy: {action: consolidate}}
  - {id: b, name: B, contacts: [ops@b.example], policy: {action: consolidate, warn_after: 2h, deadline: 4h, grace: 0s}}
  - {id: c, name: C, contacts: [ops@c.example]}
`
	if withD {
		body += "  - {id: d, name: D, contacts: [ops@d.example], policy: {action: consolidate, warn_after: 1h, deadline: 2h, grace: 0s}}\n"
	}
	path := filepath.Join(t.TempDir(), "churn.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// churnVM is one VM of the model. owners is who the test made it belong
// to, through one ownership rule; two owners make a dispute.
type churnVM struct {
	facts.VM
	owners []string
	snaps  []facts.Snapshot
}

// churnLedger is the ledger as the planner reads it: every notice queued,
// with its delivery, and each snapshot's first sight and last owner.
type churnLedger struct {
	notices   []*ledger.Notice
	firstSeen map[facts.Key]time.Time
	owner     map[facts.Key]string
}

// history aggregates the notices as the ledger's History does, from the
// same vocabulary (kinds, item actions and reasons).
func (l *churnLedger) history() map[facts.Key]plan.History {
	out := map[facts.Key]plan.History{}
	for k, first := range l.firstSeen {
		out[k] = plan.History{FirstSeen: first, Owner: l.owner[k], ByCustomer: map[string]plan.Notices{}}
	}
	for _, n := range l.notices {
		for _, it := range n.Items {
			h, ok := out[it.Key]
			if !ok {
				continue
			}
			switch it.Action {
			case ledger.ItemWarn, ledger.ItemRemind:
				if n.Kind == ledger.KindSupport {
					h.Relayed.Count++
					h.Relayed.Last = n.CreatedAt
					break
				}
				c := h.ByCustomer[n.Customer]
				c.Count++
				c.Last = n.CreatedAt
				if !n.SentAt.IsZero() && (c.FirstDelivered.IsZero() || n.SentAt.Before(c.FirstDelivered)) {
					c.FirstDelivered = n.SentAt
				}
				h.ByCustomer[n.Customer] = c
			case ledger.ItemEscalate, ledger.ItemManagedStale, ledger.ItemUnowned:
				h.Escalations++
				h.LastEscalation = n.CreatedAt
				h.SkewReported = h.SkewReported || it.Reason == plan.ReasonClockSkew.String()
			case ledger.ItemBlocked:
				h.BlockedReason = it.Reason
			}
			out[it.Key] = h
		}
	}
	return out
}

// deliver tries every notice not yet delivered; each gets through with
// probability 2/3, as a flaky SMTP server would let it.
func (l *churnLedger) deliver(rng *rand.Rand, now time.Time) {
	for _, n := range l.notices {
		if n.SentAt.IsZero() && rng.Intn(3) > 0 {
			n.SentAt = now
		}
	}
}

// firstDelivered is the oracle: when a notice of kind customer naming key
// first reached customer (zero: never), read from the notices themselves.
func (l *churnLedger) firstDelivered(key facts.Key, customer string) time.Time {
	var first time.Time
	for _, n := range l.notices {
		if n.Kind != ledger.KindCustomer || n.Customer != customer || n.SentAt.IsZero() {
			continue
		}
		for _, it := range n.Items {
			if it.Key == key && (first.IsZero() || n.SentAt.Before(first)) {
				first = n.SentAt
			}
		}
	}
	return first
}

// TestChurnNeverRemovesWithoutNotice moves VMs between customers (by tag,
// attribute and folder), tags them twice, renames, deletes and re-creates
// snapshots, stamps some in 2099 and adds a customer to the directory,
// between cycles on a fake clock with a flaky mail server. Through the real
// Evaluate, Build and Notices, with a model of the ledger, it checks that a
// snapshot is committed only when the owner the test gave it was told, by a
// notice naming it, at least min_notice before, and never before the
// earliest commit time that notice stated.
func TestChurnNeverRemovesWithoutNotice(t *testing.T) {
	iterations := 150
	if testing.Short() {
		iterations = 30
	}
	cfgs := []*config.Config{churnConfig(t, false), churnConfig(t, true)}
	planners := make([]*Planner, len(cfgs))
	for i, cfg := range cfgs {
		p, err := NewPlanner(cfg)
		if err != nil {
			t.Fatal(err)
		}
		planners[i] = p
	}
	rd, err := notify.NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	minNotice := cfgs[0].Enforcement.MinNotice
	commits := 0
	for seed := int64(1); seed <= int64(iterations); seed++ {
		commits += churnRun(t, seed, planners, rd, minNotice)
		if t.Failed() {
			t.Fatalf("seed %d failed", seed)
		}
	}
	// The property means little if nothing is ever committed.
	if commits < iterations {
		t.Errorf("only %d commits in %d runs: the churn does not reach consolidation", commits, iterations)
	}
	t.Logf("%d runs, %d commits", iterations, commits)
}

func churnRun(t *testing.T, seed int64, planners []*Planner, rd *notify.Renderer, minNotice time.Duration) int {
	rng := rand.New(rand.NewSource(seed))
	now := t0
	nextID := 0
	newSnap := func(vm *churnVM) {
		nextID++
		created := now.Add(-time.Duration(rng.Intn(150)) * time.Hour)
		if rng.Intn(20) == 0 {
			created = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
		}
		vm.snaps = append(vm.snaps, facts.Snapshot{ID: fmt.Sprintf("snapshot-%d", nextID), Name: fmt.Sprintf("s%d", nextID),
			Created: created, SizeBytes: 1 << 30})
	}
	ownerSets := [][]string{nil, {"a"}, {"b"}, {"c"}, {"d"}, {"x"}, {"a", "b"}, {"b", "d"}}
	// own gives vm its owners through one rule, clearing the others.
	own := func(vm *churnVM, owners []string) {
		vm.owners = owners
		vm.Tags, vm.CustomAttributes = nil, nil
		vm.Folder = "/DC0/vm/Lab"
		rule := rng.Intn(3)
		if len(owners) > 1 {
			rule = 0 // two owners: two tags in the owner category
		}
		for _, o := range owners {
			switch rule {
			case 0:
				vm.Tags = append(vm.Tags, facts.Tag{Category: "Customer", Name: o})
			case 1:
				vm.CustomAttributes = map[string]string{"Customer": o}
			case 2:
				vm.Folder = "/DC0/vm/Customers/" + o
			}
		}
		vm.Path = vm.Folder + "/" + vm.Name
	}
	vms := make([]*churnVM, 4)
	for i := range vms {
		vm := &churnVM{VM: facts.VM{VCenter: "vc1", Name: fmt.Sprintf("vm%d", i), InstanceUUID: fmt.Sprintf("uuid-%d", i),
			Datastores: []facts.Datastore{{Name: "ds1", Capacity: 1 << 40, Free: 1 << 39}}}}
		own(vm, ownerSets[rng.Intn(len(ownerSets))])
		for n := rng.Intn(3) + 1; n > 0; n-- {
			newSnap(vm)
		}
		vms[i] = vm
	}
	l := &churnLedger{firstSeen: map[facts.Key]time.Time{}, owner: map[facts.Key]string{}}
	// stated is the earliest commit time the first notice to each owner named.
	type told struct {
		key      facts.Key
		customer string
	}
	stated := map[told]time.Time{}
	withD := false
	commits := 0

	for step := 0; step < 30; step++ {
		now = now.Add(time.Duration(rng.Intn(12)+1) * time.Hour)
		// Churn between cycles.
		for _, vm := range vms {
			switch rng.Intn(10) {
			case 0, 1:
				own(vm, ownerSets[rng.Intn(len(ownerSets))])
			case 2:
				if len(vm.snaps) > 0 {
					i := rng.Intn(len(vm.snaps))
					vm.snaps = slices.Delete(vm.snaps, i, i+1)
				}
			case 3:
				newSnap(vm)
			case 4:
				if len(vm.snaps) > 0 { // the same id, another create time: another snapshot
					vm.snaps[0].Created = now.Add(-time.Duration(rng.Intn(100)) * time.Hour)
				}
			case 5:
				if len(vm.snaps) > 0 {
					vm.snaps[0].Name += "-renamed"
				}
			}
		}
		if !withD && rng.Intn(15) == 0 {
			withD = true
		}
		planner := planners[0]
		if withD {
			planner = planners[1]
		}

		inv := &facts.Inventory{VMs: len(vms)}
		for _, vm := range vms {
			for _, s := range vm.snaps {
				s.VM = &vm.VM
				inv.Snapshots = append(inv.Snapshots, s)
			}
		}
		p := planner.Decide(inv, l.history(), now)
		notices, err := Notices(planner.Config, rd, p, now)
		if err != nil {
			t.Fatal(err)
		}
		byKey := map[facts.Key]*churnVM{}
		for _, vm := range vms {
			for _, s := range vm.snaps {
				s.VM = &vm.VM
				byKey[s.Key()] = vm
			}
		}
		for i := range notices {
			n := &notices[i]
			l.notices = append(l.notices, n)
			// A customer hears only of VMs that are theirs alone.
			for _, it := range n.Items {
				if vm := byKey[it.Key]; n.Kind == ledger.KindCustomer && (len(vm.owners) != 1 || vm.owners[0] != n.Customer) {
					t.Errorf("seed %d step %d: customer %q was told of %s/%s, owned by %v", seed, step, n.Customer, vm.Name, it.Key.Snapshot, vm.owners)
				}
			}
		}
		for _, d := range p.Decisions {
			k := d.Snapshot.Key()
			if _, ok := l.firstSeen[k]; !ok {
				l.firstSeen[k] = now
			}
			l.owner[k] = d.Customer
			if d.CustomerNotice != plan.ActionNone && d.Reachable {
				if _, ok := stated[told{k, d.Customer}]; !ok {
					stated[told{k, d.Customer}] = d.CommitAt
				}
			}
		}
		l.deliver(rng, now)

		// Act: every due consolidation, checked against the owner the test
		// gave the VM and the notices actually delivered.
		for _, d := range p.Decisions {
			if d.Action != plan.ActionConsolidate || !d.Due {
				continue
			}
			var vm *churnVM
			for _, v := range vms {
				if &v.VM == d.Snapshot.VM {
					vm = v
				}
			}
			k := d.Snapshot.Key()
			where := fmt.Sprintf("seed %d step %d at %s: %s/%s (owners %v, decided for %q)", seed, step, now.Format(time.RFC3339),
				vm.Name, d.Snapshot.Name, vm.owners, d.Customer)
			if len(vm.owners) != 1 || vm.owners[0] != d.Customer {
				t.Errorf("%s: committed, but the VM has no single owner or another one", where)
				continue
			}
			owner := vm.owners[0]
			first := l.firstDelivered(k, owner)
			switch {
			case first.IsZero():
				t.Errorf("%s: committed, but no notice naming it ever reached %s", where, owner)
			case now.Sub(first) < minNotice:
				t.Errorf("%s: committed %s after the first notice reached %s, less than min_notice %s", where, now.Sub(first), owner, minNotice)
			case now.Before(stated[told{k, owner}]):
				t.Errorf("%s: committed before the time the first notice stated, %s", where, stated[told{k, owner}])
			}
			commits++
			vm.snaps = slices.DeleteFunc(vm.snaps, func(s facts.Snapshot) bool { return s.ID == d.Snapshot.ID })
		}
	}
	return commits
}
