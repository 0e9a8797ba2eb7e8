package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/failpoint"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// Action is one consolidation attempt. It is written before the vSphere task
// starts and again when it ends, so a restart knows what was in flight.
type Action struct {
	ID       int64
	Key      facts.Key
	VCenter  string // defaults to Key.VCenter
	VM       string // the VM's name
	Snapshot string // the snapshot's name
	Customer string
	Kind     string // "remove" | "consolidate-disks"
	// StartedAt is when the attempt began; TaskID the vSphere task, once known.
	StartedAt  time.Time
	TaskID     string
	FinishedAt time.Time // zero while running
	Result     string    // "" while running | "success" | "error" | "refused" | "abandoned" | "gone"
	Fault      string    // the vSphere fault or refusal, for people
}

// Action results.
const (
	ResultSuccess   = "success"
	ResultError     = "error"
	ResultRefused   = "refused"
	ResultAbandoned = "abandoned"
	// ResultGone: the VM vanished while its task was unfinished, so whether
	// the snapshot was committed is unknown. Support is told; the customer is
	// never told it was committed.
	ResultGone = "gone"
)

var validResults = map[string]bool{ResultSuccess: true, ResultError: true, ResultRefused: true, ResultAbandoned: true, ResultGone: true}

// StartAction records an attempt before its task is started and returns its id.
func (l *Ledger) StartAction(ctx context.Context, a Action) (int64, error) {
	if err := l.writable("start action"); err != nil {
		return 0, err
	}
	if a.Kind != "remove" && a.Kind != "consolidate-disks" {
		return 0, fmt.Errorf("ledger %s: start action on %s: kind %q is not remove or consolidate-disks", l.path, a.Key, a.Kind)
	}
	if a.StartedAt.IsZero() {
		return 0, fmt.Errorf("ledger %s: start action on %s: no StartedAt", l.path, a.Key)
	}
	vc := a.VCenter
	if vc == "" {
		vc = a.Key.VCenter
	}
	k := a.Key
	if err := failpoint.Hit("ledger.start-action"); err != nil {
		return 0, fmt.Errorf("ledger %s: start action on %s: %w", l.path, k, err)
	}
	id, err := l.insertID(ctx, l.db, `
INSERT INTO actions(key, key_vcenter, vm_uuid, snapshot_id, created, vcenter, vm, snapshot, customer, kind, started_at, task_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.String(), k.VCenter, k.VMUUID, k.Snapshot, nanos(k.Created), vc, a.VM, a.Snapshot, a.Customer, a.Kind,
		a.StartedAt.UnixNano(), a.TaskID)
	if err != nil {
		return 0, fmt.Errorf("ledger %s: start action on %s: %w", l.path, k, err)
	}
	return id, nil
}

// SetTask records the vSphere task of a running action, so a restart can
// resume watching it instead of starting a second one.
func (l *Ledger) SetTask(ctx context.Context, id int64, taskID string) error {
	if err := l.writable("set action task"); err != nil {
		return err
	}
	if err := failpoint.Hit("ledger.set-task"); err != nil {
		return fmt.Errorf("ledger %s: set task of action %d: %w", l.path, id, err)
	}
	res, err := l.db.ExecContext(ctx, `UPDATE actions SET task_id = ? WHERE id = ? AND finished_at IS NULL`, taskID, id)
	if err == nil {
		err = oneAction(res)
	}
	if err != nil {
		return fmt.Errorf("ledger %s: set task of action %d: %w", l.path, id, err)
	}
	return nil
}

// FinishAction records the outcome of action id and queues notices, the
// ones that tell of it, in the same transaction: a crash can never leave a
// result recorded but untold, or told but unrecorded.
func (l *Ledger) FinishAction(ctx context.Context, id int64, at time.Time, result, fault string, notices []Notice) error {
	if err := l.writable("finish action"); err != nil {
		return err
	}
	if !validResults[result] {
		return fmt.Errorf("ledger %s: finish action %d: result %q is not success, error, refused, abandoned or gone", l.path, id, result)
	}
	if at.IsZero() {
		return fmt.Errorf("ledger %s: finish action %d: no finish time", l.path, id)
	}
	for i, n := range notices {
		if err := checkNotice(n); err != nil {
			return fmt.Errorf("ledger %s: finish action %d: notice %d: %w", l.path, id, i, err)
		}
	}
	return l.write(ctx, fmt.Sprintf("finish action %d", id), func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
UPDATE actions SET finished_at = ?, result = ?, fault = ? WHERE id = ? AND finished_at IS NULL`,
			at.UnixNano(), result, fault, id)
		if err != nil {
			return err
		}
		if err := oneAction(res); err != nil {
			return err
		}
		if err := l.insertNotices(ctx, tx, notices, at, nil); err != nil {
			return err
		}
		return failpoint.Hit("ledger.finish-action")
	})
}

// oneAction checks that an update touched the one running action it meant.
func oneAction(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return errors.New("no such running action")
	}
	return nil
}

// Running returns the actions started and not finished, oldest first: after
// a restart their tasks are watched again rather than started anew.
func (l *Ledger) Running(ctx context.Context) ([]Action, error) {
	if l.db == nil {
		return nil, nil
	}
	out, err := l.scanActions(ctx, `WHERE finished_at IS NULL ORDER BY started_at, id`)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: running actions: %w", l.path, err)
	}
	return out, nil
}

func (l *Ledger) scanActions(ctx context.Context, where string, args ...any) ([]Action, error) {
	rows, err := l.db.QueryContext(ctx, `
SELECT id, key_vcenter, vm_uuid, snapshot_id, created, vcenter, vm, snapshot, customer, kind,
	started_at, task_id, finished_at, result, fault
FROM actions `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Action
	for rows.Next() {
		var (
			a                            Action
			kvc, uuid, snap              string
			created, started, finishedAt sql.NullInt64
		)
		if err := rows.Scan(&a.ID, &kvc, &uuid, &snap, &created, &a.VCenter, &a.VM, &a.Snapshot, &a.Customer, &a.Kind,
			&started, &a.TaskID, &finishedAt, &a.Result, &a.Fault); err != nil {
			return nil, err
		}
		a.Key = keyOf(kvc, uuid, snap, created)
		a.StartedAt, a.FinishedAt = fromNanos(started), fromNanos(finishedAt)
		out = append(out, a)
	}
	return out, rows.Err()
}

// diskModeRefusal is the refusal sentence and time of a finished action
// that enforce refused for a non-persistent disk, which only enforce can
// see: the planner holds the consolidation back on it (plan.DiskModeRecheck).
func diskModeRefusal(result, fault string, finished sql.NullInt64) (string, time.Time) {
	why, ok := strings.CutPrefix(fault, plan.GuardDiskMode+": ")
	if result != ResultRefused || !ok {
		return "", time.Time{}
	}
	return why, fromNanos(finished)
}
