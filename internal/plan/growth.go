package plan

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// GrowthWindow is how far back size samples count for a growth rate.
const GrowthWindow = 24 * time.Hour

// Sample is a snapshot's size at one time, as the ledger recorded it.
type Sample struct {
	At    time.Time
	Bytes int64
}

// SnapshotGrowth is a snapshot's growth forecast. Both are nil without a
// rate: fewer than two samples in GrowthWindow.
type SnapshotGrowth struct {
	BytesPerHour *float64
	// ProjectedAtDeadline is the size at the deadline at that rate (the
	// size now when the rate is not positive or the deadline has passed).
	ProjectedAtDeadline *int64
}

// DatastoreGrowth is a datastore holding snapshots and its forecast.
type DatastoreGrowth struct {
	VCenter       string
	Name          string
	Capacity      int64
	Free          int64
	SnapshotBytes int64
	// BytesPerHour is the sum of its snapshots' rates (shrinking ones count
	// against growing ones).
	BytesPerHour float64
	// FullAt is when the free space runs out at that rate; zero when the
	// datastore is not filling.
	FullAt time.Time
}

// Growth forecasts every snapshot's growth from its size samples (by key;
// the collected size at p.At counts as the newest sample) and each
// datastore's from its snapshots', into p. A snapshot that grows on a
// datastore forecast to fill before the snapshot's deadline is escalated
// now (ReasonDatastoreFillsFirst, at escalate_every like any escalation),
// and its owner, never told before, gets a first notice that says so. A
// shrinking or constant snapshot is never escalated for growth. Pure.
func Growth(p *Plan, samples map[facts.Key][]Sample) {
	now := p.At
	stores := map[[2]string]*DatastoreGrowth{}
	var order []*DatastoreGrowth
	for i := range p.Decisions {
		d := &p.Decisions[i]
		s := &d.Snapshot
		rate, ok := rateOf(samples[s.Key()], Sample{At: now, Bytes: s.SizeBytes}, now)
		if ok {
			projected := s.SizeBytes
			if left := d.Verdict.DeadlineAt.Sub(now); left > 0 && rate > 0 {
				projected += int64(rate * left.Hours())
			}
			d.Growth = SnapshotGrowth{BytesPerHour: &rate, ProjectedAtDeadline: &projected}
		}
		if s.VM == nil || len(s.VM.Datastores) == 0 {
			continue
		}
		// The snapshot's files live with the VM's: its first datastore.
		ds := s.VM.Datastores[0]
		id := [2]string{s.VM.VCenter, ds.Name}
		g := stores[id]
		if g == nil {
			g = &DatastoreGrowth{VCenter: s.VM.VCenter, Name: ds.Name, Capacity: ds.Capacity, Free: ds.Free}
			stores[id] = g
			order = append(order, g)
		}
		g.SnapshotBytes += s.SizeBytes
		if ok {
			g.BytesPerHour += rate
		}
	}
	for _, g := range order {
		if g.BytesPerHour > 0 {
			hours := float64(max(g.Free, 0)) / g.BytesPerHour
			g.FullAt = now.Add(time.Duration(hours * float64(time.Hour))).Truncate(time.Second)
		}
	}
	for i := range p.Decisions {
		d := &p.Decisions[i]
		s := &d.Snapshot
		if d.Growth.BytesPerHour == nil || *d.Growth.BytesPerHour <= 0 || s.VM == nil || len(s.VM.Datastores) == 0 {
			continue
		}
		g := stores[[2]string{s.VM.VCenter, s.VM.Datastores[0].Name}]
		if g.FullAt.IsZero() || !g.FullAt.Before(d.Verdict.DeadlineAt) || d.Due && (d.Action == ActionConsolidate || d.Action == ActionBlocked) {
			continue
		}
		d.FillsFirst = g
		d.escalation(now, ReasonDatastoreFillsFirst, fmt.Sprintf("datastore %s is forecast to fill at %s, before the deadline (%s free, growing %s an hour)",
			g.Name, g.FullAt.UTC().Format(time.RFC3339), IEC(g.Free), IEC(int64(g.BytesPerHour))))
		if d.Reachable && d.History.CustomerNotices == 0 && d.CustomerNotice == ActionNone {
			d.CustomerNotice = ActionWarn
		}
	}
	p.Datastores = make([]DatastoreGrowth, 0, len(order))
	for _, g := range order {
		p.Datastores = append(p.Datastores, *g)
	}
	slices.SortFunc(p.Datastores, func(a, b DatastoreGrowth) int {
		return cmp.Or(cmp.Compare(a.VCenter, b.VCenter), cmp.Compare(a.Name, b.Name))
	})
}

// rateOf is the growth in bytes an hour from the size at the start of the
// window (or the first sample in it) to the current size; false without a
// sample before now. The ledger samples a size only when it changes, so the
// last sample before the window is the size at its start.
func rateOf(samples []Sample, current Sample, now time.Time) (float64, bool) {
	start := now.Add(-GrowthWindow)
	var first Sample
	for _, s := range samples {
		if !s.At.Before(now) {
			continue
		}
		if s.At.Before(start) {
			s.At = start
		}
		if first.At.IsZero() || s.At.Before(first.At) || s.At.Equal(first.At) && s.At.Equal(start) {
			first = s
		}
	}
	hours := current.At.Sub(first.At).Hours()
	if first.At.IsZero() || hours <= 0 {
		return 0, false
	}
	return float64(current.Bytes-first.Bytes) / hours, true
}
