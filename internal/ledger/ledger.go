package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapwarden/snapwarden/internal/facts"

	// The pure-Go SQLite driver keeps snapwarden a single static binary.
	_ "modernc.org/sqlite"
)

// busyTimeoutMS is how long a statement waits for another connection's lock
// (a reader checkpointing, say) before failing with SQLITE_BUSY.
const busyTimeoutMS = 10000

// Ledger is an open ledger database. A Ledger from Open is the single writer;
// one from OpenReader only reads. Its methods are safe for concurrent use.
type Ledger struct {
	path     string
	db       *sql.DB  // nil for a reader of a ledger that does not exist yet
	lock     *os.File // the held advisory lock; nil for readers
	readOnly bool
	// pg is set for a PostgreSQL ledger; dsn is then its connection string
	// (path is the DSN without its password, for messages).
	pg  bool
	dsn string
	// campaign is a standby's connection for TryLead, kept between tries.
	campaignMu sync.Mutex
	campaign   *pgx.Conn
}

// Open opens the ledger at path for writing, creating it (and its parent
// directory) if missing and migrating its schema to the current version.
// It takes an exclusive advisory lock on path+".lock" so two snapwarden
// processes never send the same notices or act twice on one snapshot; a
// second Open of the same file fails at once, even within one process.
//
// A postgres:// path opens the ledger in that PostgreSQL database instead:
// several instances may share it, so no lock is taken here; the one that
// acts is the one holding Lead's leadership.
func Open(ctx context.Context, path string) (*Ledger, error) {
	if path == "" {
		return nil, errors.New("ledger: no path: set state: to the ledger file")
	}
	if IsPostgres(path) {
		return openPostgres(ctx, path, false)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ledger %s: create directory: %w", path, err)
	}
	lock, err := acquireLock(path)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		releaseLock(lock)
		return nil, fmt.Errorf("ledger %s: open: %w", path, err)
	}
	// One connection serialises the writer's statements: within this process
	// two write transactions can then never race for SQLite's write lock, and
	// readers in other processes are not blocked thanks to WAL.
	db.SetMaxOpenConns(1)
	db.SetConnMaxIdleTime(0)
	l := &Ledger{path: path, db: db, lock: lock}
	if err := l.init(ctx); err != nil {
		_ = db.Close()
		releaseLock(lock)
		return nil, err
	}
	return l, nil
}

// OpenReader opens the ledger at path read-only and without the writer's
// lock, for `report` and `history` while `serve` runs. A missing file is no
// error: a fresh install has no ledger yet, so the returned Ledger answers
// every read as empty.
func OpenReader(ctx context.Context, path string) (*Ledger, error) {
	if path == "" {
		return nil, errors.New("ledger: no path: set state: to the ledger file")
	}
	if IsPostgres(path) {
		return openPostgres(ctx, path, true)
	}
	l := &Ledger{path: path, readOnly: true}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return l, nil
	} else if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("ledger %s: open read-only: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("ledger %s: open read-only: %w", path, err)
	}
	switch {
	case version > len(migrations):
		_ = db.Close()
		return nil, newerErr(path, version)
	case version == 0:
		// A writer created the file but has not committed the schema yet:
		// as good as no ledger at all.
		_ = db.Close()
		return l, nil
	case version < len(migrations):
		_ = db.Close()
		return nil, fmt.Errorf("ledger %s: schema version %d is older than this snapwarden's %d: run `snapwarden serve` (or stop it and start the new version) once to migrate it",
			path, version, len(migrations))
	}
	l.db = db
	return l, nil
}

// Close releases the database and, for the writer, the lock.
func (l *Ledger) Close() error {
	var err error
	l.campaignMu.Lock()
	if l.campaign != nil {
		_ = l.campaign.Close(context.Background())
		l.campaign = nil
	}
	l.campaignMu.Unlock()
	if l.db != nil {
		if e := l.db.Close(); e != nil {
			err = fmt.Errorf("ledger %s: close: %w", l.path, e)
		}
		l.db = nil
	}
	if l.lock != nil {
		releaseLock(l.lock)
		l.lock = nil
	}
	return err
}

// Path returns the ledger's file name (or its DSN without password), for logs.
func (l *Ledger) Path() string { return l.path }

// dsn builds the modernc.org/sqlite data source name. The "file:" URI form
// lets SQLite take mode=ro; _pragma values run on every new connection, so
// each pooled connection gets the same settings.
func dsn(path string, readOnly bool) string {
	r := strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")
	q := []string{"_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")"}
	if readOnly {
		q = append(q, "mode=ro", "_pragma=query_only(1)")
	} else {
		// synchronous=NORMAL is durable enough in WAL mode (a power cut
		// may lose the last commit, never corrupt the file) and much faster.
		// temp_store=MEMORY keeps the statement journal (each upsert with
		// its trigger needs one) off disk: it was a tenth of Record's time.
		// The page cache lives outside Go's heap and its memory limit, and
		// is kept once filled: 8 MiB, not more, since at 32 MiB it held a
		// 20,000-snapshot ledger whole and was a seventh of serve's peak
		// RSS, while Record of 20,000 snapshots took no longer at 8
		// (BenchmarkRecord20000; the OS's file cache serves the rest).
		q = append(q, "_pragma=foreign_keys(1)", "_pragma=synchronous(NORMAL)", "_pragma=temp_store(MEMORY)",
			"_pragma=cache_size(-8192)", "_txlock=immediate")
	}
	return "file:" + r.Replace(path) + "?" + strings.Join(q, "&")
}

// acquireLock takes the writer's lock file without waiting: a second writer
// must fail loudly, not queue behind the first.
func acquireLock(path string) (*os.File, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ledger %s: open lock file: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid := "unknown"
			if b, rerr := os.ReadFile(name); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
				pid = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("ledger %s is in use by another snapwarden process (pid %s): stop it first, or point state: at another file", path, pid)
		}
		return nil, fmt.Errorf("ledger %s: lock %s: %w", path, name, err)
	}
	// The pid is only for the message above; the lock itself is the flock.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

func releaseLock(f *os.File) {
	// Closing the descriptor drops the flock; the file stays, since removing
	// it would race with a process that just opened it.
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	_ = f.Close()
}

// init switches the file to WAL and applies pending migrations.
func (l *Ledger) init(ctx context.Context) error {
	var mode string
	if err := l.db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		return fmt.Errorf("ledger %s: set WAL: %w", l.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("ledger %s: journal mode is %q, not wal (is the file on a network filesystem?)", l.path, mode)
	}
	return l.migrate(ctx)
}

// migrate applies every migration after the file's user_version, each in its
// own transaction together with the version bump, so a crash mid-upgrade
// leaves a consistent older version to retry from.
func (l *Ledger) migrate(ctx context.Context) error {
	var version int
	if err := l.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("ledger %s: read schema version: %w", l.path, err)
	}
	if version > len(migrations) {
		return newerErr(l.path, version)
	}
	for i := version; i < len(migrations); i++ {
		err := l.write(ctx, fmt.Sprintf("migrate to version %d", i+1), func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			// PRAGMA takes no bound parameters; i+1 is our own integer.
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func newerErr(path string, version int) error {
	return fmt.Errorf("ledger %s has schema version %d, newer than this snapwarden knows (%d): upgrade snapwarden, or point state: at another file",
		path, version, len(migrations))
}

// writable refuses writes through a reader before SQLite would, with a
// message that says why.
func (l *Ledger) writable(op string) error {
	if l.readOnly || l.db == nil {
		return fmt.Errorf("ledger %s: %s: opened read-only", l.path, op)
	}
	return nil
}

// nanos stores a time; the zero time is stored as NULL because UnixNano of
// the zero time is undefined.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos. time.Unix(...).UTC() yields exactly
// the representation facts.Snapshot.Key builds (UTC, no monotonic reading),
// so keys compare equal with ==.
func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// keyOf rebuilds a facts.Key from its stored parts.
func keyOf(vcenter, vmUUID, snapshot string, created sql.NullInt64) facts.Key {
	return facts.Key{VCenter: vcenter, VMUUID: vmUUID, Snapshot: snapshot, Created: fromNanos(created)}
}
