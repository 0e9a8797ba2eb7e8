package ledger

import (
	"context"
	"database/sql"
	"fmt"
)

// read runs fn in a read-only transaction, so that the several queries of
// one answer see the ledger at one moment: SQLite's snapshot, REPEATABLE
// READ on PostgreSQL (pgConn.BeginTx). fn's errors are wrapped with the
// ledger and what is read.
func (l *Ledger) read(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("ledger %s: %s: begin: %w", l.path, what, err)
	}
	// Nothing to commit: rolling back ends the read.
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return fmt.Errorf("ledger %s: %s: %w", l.path, what, err)
	}
	return nil
}

// write runs fn in a transaction and commits it when fn returns nil; when
// fn fails nothing it wrote is kept. fn's errors are wrapped with the ledger
// and what is written.
func (l *Ledger) write(ctx context.Context, what string, fn func(*sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ledger %s: %s: begin: %w", l.path, what, err)
	}
	// Rollback after Commit is a no-op.
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return fmt.Errorf("ledger %s: %s: %w", l.path, what, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ledger %s: %s: commit: %w", l.path, what, err)
	}
	return nil
}
