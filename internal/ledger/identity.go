package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"unicode/utf8"
)

// rekeyVCenters records the config name of each vCenter by instance UUID
// and moves the rows keyed by the name (a ledger from before keys used the
// UUID, or a vCenter first seen without one) to the UUID, in the cycle's
// transaction, so a renamed vCenter keeps its history. The key text starts
// with the vCenter part, so it is rewritten in place.
func rekeyVCenters(ctx context.Context, tx *sql.Tx, ids map[string]string) error {
	// The snapshot keys move under size_samples' foreign key: checked at commit.
	if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
		return fmt.Errorf("re-key vcenters: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(ids)) {
		id := ids[name]
		if id == "" || id == name {
			continue
		}
		var old string
		err := tx.QueryRowContext(ctx, `SELECT name FROM vcenters WHERE id = ?`, id).Scan(&old)
		switch {
		case err == nil && old != name:
			if err := renameProblems(ctx, tx, old, name); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("vcenter %s (%s): %w", name, id, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO vcenters(id, name) VALUES (?, ?)
ON CONFLICT(id) DO UPDATE SET name = excluded.name`, id, name); err != nil {
			return fmt.Errorf("vcenter %s (%s): %w", name, id, err)
		}
		rest := utf8.RuneCountInString(name) + 1 // substr() is 1-based: from the "/" after the name
		for _, q := range []string{
			// A row already under the UUID is the live one.
			`DELETE FROM snapshots WHERE vcenter = ?1 AND ?2 || substr(key, ?3) IN (SELECT key FROM snapshots WHERE vcenter = ?2)`,
			`UPDATE size_samples SET key = ?2 || substr(key, ?3) WHERE key IN (SELECT key FROM snapshots WHERE vcenter = ?1)`,
			`UPDATE snapshots SET key = ?2 || substr(key, ?3), vcenter = ?2 WHERE vcenter = ?1`,
			`UPDATE notice_items SET key = ?2 || substr(key, ?3), vcenter = ?2 WHERE vcenter = ?1`,
			`UPDATE actions SET key = ?2 || substr(key, ?3), key_vcenter = ?2 WHERE key_vcenter = ?1`,
			`UPDATE acks SET key = ?2 || substr(key, ?3), vcenter = ?2 WHERE vcenter = ?1`,
			`UPDATE requests SET key = ?2 || substr(key, ?3), vcenter = ?2 WHERE vcenter = ?1`,
		} {
			if _, err := tx.ExecContext(ctx, q, name, id, rest); err != nil {
				return fmt.Errorf("re-key vcenter %s to %s: %w", name, id, err)
			}
		}
	}
	return nil
}
