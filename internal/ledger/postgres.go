package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// The ledger's SQL is written once, for SQLite, and PostgreSQL gets it through
// a thin dialect layer: placeholders are rebound in the driver (so every
// query, including the ones added later, works on both), new ids come back
// through insertID, and migrations are translated by pgMigration. A test runs
// every migration and the whole ledger suite on both backends.

// IsPostgres tells whether state names a PostgreSQL database rather than a
// SQLite file.
func IsPostgres(state string) bool {
	return strings.HasPrefix(state, "postgres://") || strings.HasPrefix(state, "postgresql://")
}

// Advisory lock class ids (the first key of the two-key form); the second key
// is the hash of the schema, so several snapwarden deployments (or tests) can
// share one database in different schemas without sharing their locks.
const (
	lockClassMigrate = 0x534e5701 // "SNW" 1
	lockClassLeader  = 0x534e5702 // "SNW" 2
)

// openPostgres opens the ledger in the PostgreSQL database named by dsn and,
// for a writer, migrates its schema; several instances may do so at once.
func openPostgres(ctx context.Context, dsn string, readOnly bool) (*Ledger, error) {
	name := redactDSN(dsn)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", name, err)
	}
	db := sql.OpenDB(pgConnector{stdlib.GetConnector(*cfg)})
	db.SetMaxOpenConns(8)
	l := &Ledger{path: name, db: db, pg: true, dsn: dsn, readOnly: readOnly}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ledger %s: connect: %w", name, err)
	}
	if !readOnly {
		err = l.migratePostgres(ctx)
	} else {
		err = l.checkPostgresReader(ctx)
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return l, nil
}

// migratePostgres applies the pending migrations one transaction each, under
// a transaction-level advisory lock: instances starting together queue there
// and the later ones find nothing left to do.
func (l *Ledger) migratePostgres(ctx context.Context) error {
	for {
		done, err := l.migrateOnePostgres(ctx)
		if err != nil || done {
			return err
		}
	}
}

func (l *Ledger) migrateOnePostgres(ctx context.Context) (done bool, err error) {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("ledger %s: migrate: %w", l.path, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err = tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(?, hashtext(current_schema()))`, lockClassMigrate); err != nil {
		return false, fmt.Errorf("ledger %s: migrate: lock: %w", l.path, err)
	}
	if _, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)`); err != nil {
		return false, fmt.Errorf("ledger %s: migrate: %w", l.path, err)
	}
	version, err := pgVersion(ctx, tx)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err = tx.ExecContext(ctx, `INSERT INTO schema_version(version) VALUES (0)`); err != nil {
			return false, fmt.Errorf("ledger %s: migrate: %w", l.path, err)
		}
	case err != nil:
		return false, fmt.Errorf("ledger %s: read schema version: %w", l.path, err)
	case version > len(migrations):
		return false, newerErr(l.path, version)
	case version == len(migrations):
		return true, tx.Commit()
	}
	if _, err = tx.ExecContext(ctx, pgMigration(migrations[version])); err != nil {
		return false, fmt.Errorf("ledger %s: migrate to version %d: %w", l.path, version+1, err)
	}
	if _, err = tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, version+1); err != nil {
		return false, fmt.Errorf("ledger %s: migrate to version %d: %w", l.path, version+1, err)
	}
	if err = tx.Commit(); err != nil {
		return false, fmt.Errorf("ledger %s: migrate to version %d: %w", l.path, version+1, err)
	}
	return false, nil
}

func pgVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	return v, err
}

// checkPostgresReader is OpenReader's version check: a database no writer
// has migrated yet reads as empty, like a missing SQLite file.
func (l *Ledger) checkPostgresReader(ctx context.Context) error {
	var exists bool
	if err := l.db.QueryRowContext(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("ledger %s: open read-only: %w", l.path, err)
	}
	version := 0
	if exists {
		v, err := pgVersion(ctx, l.db)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("ledger %s: open read-only: %w", l.path, err)
		}
		version = v
	}
	switch {
	case version > len(migrations):
		return newerErr(l.path, version)
	case version == 0:
		_ = l.db.Close()
		l.db = nil
	case version < len(migrations):
		return fmt.Errorf("ledger %s: schema version %d is older than this snapwarden's %d: run `snapwarden serve` once to migrate it",
			l.path, version, len(migrations))
	}
	return nil
}

// Redact returns state fit for logs: a file name as is, a PostgreSQL DSN
// without its password.
func Redact(state string) string {
	if IsPostgres(state) {
		return redactDSN(state)
	}
	return state
}

// redactDSN hides the password of a postgres:// URL: the name goes into logs
// and error messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://(unparsable DSN)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// execQuerier is what insertID needs of a *sql.DB or *sql.Tx.
type execQuerier interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
	QueryRowContext(context.Context, string, ...any) *sql.Row
}

// insertID runs the INSERT query and returns the id of the row it added:
// pgx has no LastInsertId, so PostgreSQL reads it back with RETURNING.
func (l *Ledger) insertID(ctx context.Context, q execQuerier, query string, args ...any) (int64, error) {
	if l.pg {
		var id int64
		err := q.QueryRowContext(ctx, query+" RETURNING id", args...).Scan(&id)
		return id, err
	}
	res, err := q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// pgConnector hands out pgx connections whose SQL is rebound from SQLite's
// placeholders to PostgreSQL's.
type pgConnector struct{ driver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{conn.(*stdlib.Conn)}, nil
}

// pgConn is a stdlib.Conn (every optional driver interface promoted) that
// rebinds the SQL it is given.
type pgConn struct{ *stdlib.Conn }

func (c *pgConn) Prepare(query string) (driver.Stmt, error) { return c.Conn.Prepare(rebind(query)) }

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.PrepareContext(ctx, rebind(query))
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if pg, ok := pgStatements[query]; ok {
		query = pg
	}
	return c.Conn.ExecContext(ctx, rebind(query), args)
}

// pgStatements are SQLite statements with a PostgreSQL twin. Deferring the
// foreign keys works because pgMigration makes them DEFERRABLE.
var pgStatements = map[string]string{
	"PRAGMA defer_foreign_keys = ON": "SET CONSTRAINTS ALL DEFERRED",
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(query), args)
}

// BeginTx gives read-only transactions a snapshot (REPEATABLE READ), as
// SQLite's are: History and Pending read several tables and must see them
// at one moment. Writers keep READ COMMITTED, where concurrent writers wait
// for each other instead of failing.
func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly && opts.Isolation == driver.IsolationLevel(sql.LevelDefault) {
		opts.Isolation = driver.IsolationLevel(sql.LevelRepeatableRead)
	}
	return c.Conn.BeginTx(ctx, opts)
}

// rebind turns SQLite placeholders into PostgreSQL's: ?NNN becomes $NNN and
// each bare ? the next $n. Quoted strings, identifiers, comments and
// dollar-quoted bodies are copied untouched.
func rebind(q string) string {
	if !strings.ContainsRune(q, '?') {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(q[i+1:], c)
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+2])
			i += j + 1
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+1])
			i += j
		case c == '$' && strings.HasPrefix(q[i:], "$$"):
			j := strings.Index(q[i+2:], "$$")
			if j < 0 {
				b.WriteString(q[i:])
				return b.String()
			}
			b.WriteString(q[i : i+j+4])
			i += j + 3
		case c == '?':
			j := i + 1
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			if j > i+1 {
				b.WriteString("$" + q[i+1:j])
				i = j - 1
			} else {
				n++
				fmt.Fprintf(&b, "$%d", n)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

var (
	pgTrigger = regexp.MustCompile(`(?is)CREATE TRIGGER (\w+) (AFTER|BEFORE) (INSERT|DELETE|UPDATE(?: OF [\w, ]+?)?) ON (\w+)\s+(?:WHEN (.*?)\s+)?BEGIN\s+(.*?)\s*END;`)
	pgTable   = regexp.MustCompile(`(?s)CREATE TABLE (\w+) \((.*?)\n\);`)
	pgRowID   = regexp.MustCompile(`\bINTEGER PRIMARY KEY\b`)
	pgInteger = regexp.MustCompile(`\bINTEGER\b`)
	pgBlob    = regexp.MustCompile(`\bBLOB\b`)
	// pgJSONEach matches SQLite's json_each(t.column) alias, read for its value.
	pgJSONEach = regexp.MustCompile(`\bjson_each\((\w+\.\w+)\) (\w+)`)
	// pgForeign matches a foreign key and its ON DELETE clause, if any.
	pgForeign = regexp.MustCompile(`(?i)\bREFERENCES \w+\s*\([\w, ]+\)(?: ON DELETE (?:CASCADE|SET NULL|RESTRICT|NO ACTION))?`)
)

// pgMigration translates a SQLite migration to PostgreSQL:
//   - INTEGER is 64-bit in SQLite (times are nanoseconds): BIGINT;
//   - an INTEGER PRIMARY KEY is SQLite's rowid: an identity column;
//   - a table without one gets a rowid identity column, since queries order
//     by SQLite's implicit rowid (insertion order);
//   - BLOB is BYTEA;
//   - json_each(t.c) r (a JSON array of strings, read as r.value) is
//     json_array_elements_text;
//   - foreign keys are DEFERRABLE (still checked per statement unless a
//     transaction defers them, as SQLite's defer_foreign_keys does);
//   - a trigger's body moves into a PL/pgSQL function, its WHEN onto the
//     trigger.
func pgMigration(m string) string {
	m = pgTrigger.ReplaceAllStringFunc(m, func(t string) string {
		p := pgTrigger.FindStringSubmatch(t)
		name, when, event, table, cond, body := p[1], p[2], p[3], p[4], p[5], p[6]
		if cond != "" {
			cond = " WHEN (" + cond + ")"
		}
		return fmt.Sprintf("CREATE FUNCTION %[1]s_fn() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n%[2]s\nRETURN NULL;\nEND $$;\n"+
			"CREATE TRIGGER %[1]s %[3]s %[4]s ON %[5]s FOR EACH ROW%[6]s EXECUTE FUNCTION %[1]s_fn();",
			name, body, when, event, table, cond)
	})
	m = pgTable.ReplaceAllStringFunc(m, func(t string) string {
		if pgRowID.MatchString(t) {
			return pgRowID.ReplaceAllString(t, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
		}
		return strings.Replace(t, "(", "(\n\trowid BIGINT GENERATED ALWAYS AS IDENTITY,", 1)
	})
	m = pgJSONEach.ReplaceAllString(m, "json_array_elements_text(${1}::json) AS ${2}(value)")
	m = pgForeign.ReplaceAllString(m, "$0 DEFERRABLE INITIALLY IMMEDIATE")
	m = pgInteger.ReplaceAllString(m, "BIGINT")
	return pgBlob.ReplaceAllString(m, "BYTEA")
}
