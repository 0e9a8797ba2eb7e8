package vsphere

import (
	"context"
	"fmt"
	"time"

	"github.com/vmware/govmomi/event"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// creatorSlack is how far a creating task's event may lie from the
// snapshot's create time: the event is stamped when the task is queued, the
// snapshot when the host takes it.
const creatorSlack = 10 * time.Minute

// eventPage is the number of events read per ReadNextEvents call.
const eventPage = 1000

// known asks the ledger about k, also under this vCenter's config name: a
// ledger from before keys used the instance UUID is re-keyed only when the
// cycle is recorded.
func (c *Client) known(known Known, k facts.Key) bool {
	if known(k) {
		return true
	}
	k.VCenter = c.Name
	return known(k)
}

// creators fills in the creator of every snapshot the ledger does not know,
// from the VirtualMachine.createSnapshot(Ex) task events: one event collector
// over the time span of the new snapshots, read in pages. vCenter has no
// snapshot-created event, and it purges events after about 30 days, so an
// unknown creator stays empty.
func (c *Client) creators(ctx context.Context, snaps []facts.Snapshot, known Known) error {
	want := map[string][]int{} // VM moref -> indexes of snapshots to match
	var begin, end time.Time
	for i := range snaps {
		s := &snaps[i]
		if known != nil && c.known(known, s.Key()) {
			continue
		}
		want[s.VM.MoRef] = append(want[s.VM.MoRef], i)
		if begin.IsZero() || s.Created.Before(begin) {
			begin = s.Created
		}
		if s.Created.After(end) {
			end = s.Created
		}
	}
	if len(want) == 0 {
		return nil
	}
	begin, end = begin.Add(-creatorSlack), end.Add(creatorSlack)
	m := event.NewManager(c.vim)
	hc, err := m.CreateCollectorForEvents(ctx, types.EventFilterSpec{
		Entity:      &types.EventFilterSpecByEntity{Entity: c.vim.ServiceContent.RootFolder, Recursion: types.EventFilterSpecRecursionOptionAll},
		Time:        &types.EventFilterSpecByTime{BeginTime: &begin, EndTime: &end},
		EventTypeId: []string{"TaskEvent"},
	})
	if err != nil {
		return fmt.Errorf("create event collector: %w", err)
	}
	defer func() { _ = hc.Destroy(context.WithoutCancel(ctx)) }()

	best := map[int]time.Duration{}
	for {
		page, err := hc.ReadNextEvents(ctx, eventPage)
		if err != nil {
			return fmt.Errorf("read events: %w", err)
		}
		for _, be := range page {
			te, ok := be.(*types.TaskEvent)
			if !ok || te.Vm == nil {
				continue
			}
			if d := te.Info.DescriptionId; d != "VirtualMachine.createSnapshot" && d != "VirtualMachine.createSnapshotEx" {
				continue
			}
			user := te.UserName
			if r, ok := te.Info.Reason.(*types.TaskReasonUser); ok && user == "" {
				user = r.UserName
			}
			for _, i := range want[te.Vm.Vm.Value] {
				diff := snaps[i].Created.Sub(te.CreatedTime).Abs()
				if prev, seen := best[i]; diff <= creatorSlack && (!seen || diff < prev) {
					best[i] = diff
					snaps[i].Creator = user
				}
			}
		}
		if len(page) < eventPage {
			return nil
		}
	}
}
