package cycle

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	iterations := 250
	if testing.Short() {
		iterations = 20
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
	// One-line templates: what is rendered does not matter here, and the
	// full ones would take most of the time.
	tmpl := t.TempDir()
	for _, name := range []string{notify.CustomerTextTemplate, notify.CustomerHTMLTemplate, notify.SupportTextTemplate, notify.SupportHTMLTemplate} {
		if err := os.WriteFile(filepath.Join(tmpl, name), []byte("{{.Subject}}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rd, err := notify.NewRenderer(tmpl)
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
		p := planner.Decide(inv, l.history(), plan.ProblemHistory{}, nil, now)
		notices, err := Notices(planner.Config, rd, p, nil, nil, now)
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

// churnFleet is what the end-to-end churn test did to small.yaml: who owns
// each VM by each rule (the oracle of ownership) and which notice first
// reached which customer about which snapshot.
type churnFleet struct {
	tags   map[string][]string // VM -> tag names in the Customer category
	attr   map[string]string   // VM -> Customer attribute
	folder map[string]string   // VM -> customer of its folder
	// ident maps a snapshot's current name to the name it was created with
	// (names change by rename); told[ident][customer] is when a notice
	// listing it first reached that customer.
	ident map[string]string
	told  map[string]map[string]time.Time
}

// owners applies the rules in order, as the config lists them.
func (f *churnFleet) owners(vm string) []string {
	if ts := f.tags[vm]; len(ts) > 0 {
		out := slices.Clone(ts)
		slices.Sort(out)
		return slices.Compact(out)
	}
	if a := f.attr[vm]; a != "" {
		return []string{a}
	}
	if c := f.folder[vm]; c != "" {
		return []string{c}
	}
	return nil
}

// TestChurnEndToEnd runs cycle.Runner in enforce mode against vcsim and the
// loopback SMTP sink over a few days of fake clock, handing VMs to other
// customers, tagging them twice, taking, renaming and deleting snapshots
// and adding a customer to the directory between cycles. Every commit must
// follow, by min_notice, a message that reached the VM's owner of that
// moment and listed the snapshot.
func TestChurnEndToEnd(t *testing.T) {
	for _, seed := range []int64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { churnEndToEnd(t, seed) })
	}
}

func churnEndToEnd(t *testing.T, seed int64) {
	rng := rand.New(rand.NewSource(seed))
	e := newEnv(t, "small.yaml")
	e.cfg.Enforcement.Mode = "enforce"
	for i := range e.cfg.Customers {
		e.cfg.Customers[i].Policy.Action = "consolidate"
	}
	r := e.runner(t)
	contact := map[string]string{"ops@acme.example": "acme", "it@initech.example": "initech", "noc@globex.example": "globex",
		"it@umbrella.example": "umbrella"}
	f := &churnFleet{
		tags:   map[string][]string{"web01": {"acme"}, "nosnap01": {"acme"}},
		attr:   map[string]string{"db01": "initech"},
		folder: map[string]string{"web01": "acme", "db01": "initech", "app01": "globex", "nosnap01": "acme"},
		ident:  map[string]string{},
		told:   map[string]map[string]time.Time{},
	}
	name := func(n string) string {
		if id, ok := f.ident[n]; ok {
			return id
		}
		return n
	}
	var created []string // test-made snapshots, "vm/name", deepest last per VM
	customers := []string{"", "acme", "initech", "globex", "umbrella", "nobody"}
	minNotice := e.cfg.Enforcement.MinNotice
	at, commits, reloaded := t0, 0, false
	for step := 0; step < 14; step++ {
		if step > 0 {
			at = at.Add(time.Duration(rng.Intn(10)+3) * time.Hour)
			var err error
			switch rng.Intn(6) {
			case 0: // hand a VM to someone else by its attribute
				vm := []string{"db01", "app01", "lab01"}[rng.Intn(3)]
				c := customers[rng.Intn(len(customers))]
				f.attr[vm] = c
				err = e.sim.SetAttribute(vm, "Customer", c)
			case 1: // tag a VM: a second tag makes a dispute
				vm := []string{"db01", "lab01"}[rng.Intn(2)]
				c := customers[1+rng.Intn(len(customers)-1)]
				f.tags[vm] = append(f.tags[vm], c)
				err = e.sim.AttachTag(vm, "Customer", c)
			case 2, 3: // a customer takes a snapshot
				vm := []string{"web01", "db01", "lab01"}[rng.Intn(3)]
				n := fmt.Sprintf("churn%02dz", step)
				created = append(created, vm+"/"+n)
				err = e.sim.CreateSnapshot(vm, n, at.Add(-time.Duration(rng.Intn(80))*time.Hour), 1<<30)
			case 4: // ... deletes the last one taken, or renames one
				if len(created) == 0 {
					break
				}
				vm, n, _ := strings.Cut(created[len(created)-1], "/")
				created = created[:len(created)-1]
				if rng.Intn(2) == 0 {
					if e.sim.RemoveSnapshot(vm, n) == nil {
						delete(f.told, name(n))
					}
					break
				}
				if e.sim.RenameSnapshot(vm, n, n+"-renamed", "") == nil {
					f.ident[n+"-renamed"] = name(n)
				}
			case 5: // a customer joins the directory
				if reloaded {
					break
				}
				reloaded = true
				cfg := *e.cfg
				cfg.Customers = append(slices.Clone(cfg.Customers), config.Customer{ID: "umbrella", Name: "Umbrella",
					Contacts: []string{"it@umbrella.example"}, Policy: cfg.Customers[2].Policy})
				err = r.Reload(&cfg)
			}
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
		n := len(e.sink.Messages())
		res := cycle(t, r, at)
		for _, o := range res.Outcomes {
			if o.Kind != "remove" || o.Result != "success" {
				continue
			}
			commits++
			vm, snap := o.Decision.Snapshot.VM.Name, name(o.Decision.Snapshot.Name)
			owners := f.owners(vm)
			where := fmt.Sprintf("step %d at %s: %s/%s committed (owners %v)", step, at.Format(time.RFC3339), vm, snap, owners)
			if len(owners) != 1 {
				t.Errorf("%s: the VM has no single owner", where)
				continue
			}
			if first, ok := f.told[snap][owners[0]]; !ok || at.Sub(first) < minNotice {
				t.Errorf("%s: %s was first told at %v (told: %v), not min_notice %s before", where, owners[0], first, ok, minNotice)
			}
		}
		// What reached customers in this cycle, as its recipients read it.
		for _, m := range messages(t, e.sink, n) {
			c, ok := contact[m.to[0]]
			if !ok {
				continue
			}
			text := partOf(t, m, "text/plain")
			for _, line := range strings.Split(text, "\n") {
				s, found := strings.CutPrefix(strings.TrimSpace(line), "Snapshot:")
				if !found {
					continue
				}
				s, _, _ = strings.Cut(strings.TrimSpace(s), " (reminder")
				id := name(strings.TrimSpace(s))
				if f.told[id] == nil {
					f.told[id] = map[string]time.Time{}
				}
				if _, seen := f.told[id][c]; !seen {
					f.told[id][c] = at
				}
			}
		}
	}
	if commits == 0 {
		t.Error("no snapshot was committed: the churn never reached consolidation")
	}
	t.Logf("%d commits", commits)
}
