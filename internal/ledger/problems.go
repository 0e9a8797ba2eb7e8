package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/snapwarden/snapwarden/internal/facts"
	"github.com/snapwarden/snapwarden/internal/plan"
)

// Problems returns what the ledger remembers of problems: the first sight
// of each open one, the last orphan scan of each vCenter, the open orphan
// files those scans found and the disk consolidations run on
// consolidation_needed VMs.
func (l *Ledger) Problems(ctx context.Context) (plan.ProblemHistory, error) {
	h := plan.ProblemHistory{FirstSeen: map[string]time.Time{}, Scans: map[string]time.Time{}, VCenterNames: map[string]string{}}
	if l.db == nil {
		return h, nil
	}
	err := l.read(ctx, "problems", func(tx *sql.Tx) error {
		err := query(ctx, tx, `SELECT key, kind, vcenter, datacenter, datastore, path, size_bytes, detail, first_seen
FROM problems WHERE resolved_at IS NULL`, func(rows *sql.Rows) error {
			var (
				key   string
				p     facts.Problem
				first int64
			)
			if err := rows.Scan(&key, &p.Kind, &p.VCenter, &p.Datacenter, &p.Datastore, &p.Path, &p.SizeBytes, &p.Detail, &first); err != nil {
				return err
			}
			h.FirstSeen[key] = time.Unix(0, first).UTC()
			if p.Kind == facts.OrphanFile {
				h.Orphans = append(h.Orphans, p)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("open problems: %w", err)
		}
		err = query(ctx, tx, `SELECT vcenter, at FROM orphan_scans`, func(rows *sql.Rows) error {
			var (
				vc string
				at int64
			)
			if err := rows.Scan(&vc, &at); err != nil {
				return err
			}
			h.Scans[vc] = time.Unix(0, at).UTC()
			return nil
		})
		if err != nil {
			return fmt.Errorf("orphan scans: %w", err)
		}
		if h.Fixes, err = fixes(ctx, tx); err != nil {
			return fmt.Errorf("disk consolidations: %w", err)
		}
		err = query(ctx, tx, `SELECT id, name FROM vcenters`, func(rows *sql.Rows) error {
			var id, name string
			if err := rows.Scan(&id, &name); err != nil {
				return err
			}
			h.VCenterNames[id] = name
			return nil
		})
		if err != nil {
			return fmt.Errorf("vcenter names: %w", err)
		}
		return nil
	})
	return h, err
}

// renameProblems moves the problems and the orphan scan of a vCenter from
// its old config name to its new one, in Record's transaction, before the
// cycle's problems are written: they are kept by name (the problems' key
// starts with "kind|vcenter|").
func renameProblems(ctx context.Context, tx *sql.Tx, old, name string) error {
	for _, q := range []string{
		// What the new name has already is the live one.
		`DELETE FROM problems WHERE vcenter = ?1 AND kind || '|' || ?2 || substr(key, length(kind) + length(?1) + 2) IN (SELECT key FROM problems WHERE vcenter = ?2)`,
		`UPDATE problems SET key = kind || '|' || ?2 || substr(key, length(kind) + length(?1) + 2), vcenter = ?2 WHERE vcenter = ?1`,
		`DELETE FROM orphan_scans WHERE vcenter = ?1 AND EXISTS (SELECT 1 FROM orphan_scans WHERE vcenter = ?2)`,
		`UPDATE orphan_scans SET vcenter = ?2 WHERE vcenter = ?1`,
	} {
		if _, err := tx.ExecContext(ctx, q, old, name); err != nil {
			return fmt.Errorf("rename the problems of vcenter %s to %s: %w", old, name, err)
		}
	}
	return nil
}

// fixes reads the disk consolidations of consolidation_needed VMs: the
// consolidate-disks actions that name no snapshot (the ones that follow a
// removal name its snapshot), oldest first, folded per VM.
func fixes(ctx context.Context, tx *sql.Tx) (map[facts.Key]plan.FixHistory, error) {
	out := map[facts.Key]plan.FixHistory{}
	err := query(ctx, tx, `SELECT key_vcenter, vm_uuid, task_id, finished_at, result, fault FROM actions
WHERE snapshot_id = '' AND kind = 'consolidate-disks' ORDER BY id`, func(rows *sql.Rows) error {
		var (
			k              facts.Key
			task, res, flt string
			finished       sql.NullInt64
		)
		if err := rows.Scan(&k.VCenter, &k.VMUUID, &task, &finished, &res, &flt); err != nil {
			return err
		}
		h := out[k]
		h.InFlight, h.TaskID = !finished.Valid, task
		if finished.Valid {
			h.DiskModeRefusal, h.DiskModeRefusedAt = diskModeRefusal(res, flt, finished)
		}
		switch res {
		case ResultSuccess:
			h.Attempts, h.LastFault = 0, ""
		case ResultError:
			h.Attempts, h.LastFault = h.Attempts+1, flt
		}
		out[k] = h
		return nil
	})
	return out, err
}

// recordProblems writes one cycle's problems (Record's Problems,
// ProblemVCenters and Scans) in Record's transaction: each is seen at at
// (its first sight kept); the open problems of the vCenters that answered but
// are not among them are resolved; the orphan scans that ran (by vCenter,
// when) are remembered.
func recordProblems(ctx context.Context, tx *sql.Tx, at time.Time, problems []plan.Problem, answered []string,
	scans map[string]time.Time) error {
	stmt, err := tx.PrepareContext(ctx, `
INSERT INTO problems(key, kind, vcenter, datacenter, vm, vm_id, datastore, path, size_bytes, customer, detail,
	first_seen, last_seen, resolved_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
ON CONFLICT(key) DO UPDATE SET
	datacenter = excluded.datacenter,
	vm = excluded.vm,
	datastore = excluded.datastore,
	size_bytes = excluded.size_bytes,
	customer = excluded.customer,
	detail = excluded.detail,
	first_seen = CASE WHEN problems.resolved_at IS NULL THEN problems.first_seen ELSE excluded.first_seen END,
	last_seen = excluded.last_seen,
	resolved_at = NULL`)
	if err != nil {
		return fmt.Errorf("prepare problem upsert: %w", err)
	}
	defer stmt.Close()
	ns := at.UnixNano()
	for _, p := range problems {
		vm, vmID := "", ""
		if p.VM != nil {
			vm, vmID = p.VM.Name, p.VM.MoRef
		}
		if _, err := stmt.ExecContext(ctx, p.Key(), string(p.Kind), p.VCenter, p.Datacenter, vm, vmID, p.Datastore, p.Path,
			p.SizeBytes, p.Customer, p.Detail, p.FirstSeen.UnixNano(), ns); err != nil {
			return fmt.Errorf("problem %s: %w", p.Key(), err)
		}
	}
	for _, vc := range answered {
		if _, err := tx.ExecContext(ctx, `UPDATE problems SET resolved_at = ? WHERE vcenter = ? AND resolved_at IS NULL AND last_seen <> ?`,
			ns, vc, ns); err != nil {
			return fmt.Errorf("resolve problems of %s: %w", vc, err)
		}
	}
	for vc, t := range scans {
		if _, err := tx.ExecContext(ctx, `INSERT INTO orphan_scans(vcenter, at) VALUES (?, ?)
ON CONFLICT(vcenter) DO UPDATE SET at = excluded.at`, vc, t.UnixNano()); err != nil {
			return fmt.Errorf("orphan scan of %s: %w", vc, err)
		}
	}
	return nil
}
