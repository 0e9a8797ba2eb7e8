package ledger

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lease timing on PostgreSQL. The leader's heartbeat notices a lost
// connection within heartbeatEvery+heartbeatTimeout; the server drops a
// vanished leader's session (and so its lock) only after its TCP keepalives
// fail (leaderKeepalive), and a new leader waits takeoverDelay after taking
// the lock before it acts. So an old leader has stopped acting before a new
// one starts, and a takeover after the leader's death takes at most
// keepalive + the standbys' poll interval + takeoverDelay (about 20 s).
const (
	heartbeatEvery   = 1 * time.Second
	heartbeatTimeout = 2 * time.Second
	takeoverDelay    = 2 * (heartbeatEvery + heartbeatTimeout)
	// leaderKeepalive is the server side keepalive of the leader's session:
	// idle 4 s, then 3 probes 2 s apart.
	leaderKeepalive = "SET tcp_keepalives_idle = 4; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"
)

// Lease is the leadership: the right to run cycles, deliver the outbox and
// act on snapshots. Lost is closed when it ends, and whoever acts under it
// must stop at once.
type Lease struct {
	lost    chan struct{}
	release func()
	once    sync.Once
}

// Lost is closed when the lease ends: connection lost, or Release.
func (ls *Lease) Lost() <-chan struct{} { return ls.lost }

// Release gives the leadership up (at a clean stop).
func (ls *Lease) Release() { ls.once.Do(ls.release) }

// TakeoverDelay is how long a new leader must wait before acting, so that a
// previous leader that lost its connection has noticed and stopped.
func (l *Ledger) TakeoverDelay() time.Duration {
	if l.pg {
		return takeoverDelay
	}
	return 0
}

// TryLead takes the leadership if no one holds it, without waiting; it
// returns nil and no error when another instance leads. A SQLite ledger has
// one writer already (Open's file lock): its leadership is never lost.
//
// On PostgreSQL the leadership is a session-level advisory lock held on a
// connection of its own (not one of the pool's, which may be swapped or
// closed under us), checked every heartbeatEvery.
func (l *Ledger) TryLead(ctx context.Context) (*Lease, error) {
	if err := l.writable("lead"); err != nil {
		return nil, err
	}
	if !l.pg {
		ls := &Lease{lost: make(chan struct{})}
		ls.release = func() { close(ls.lost) }
		return ls, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A standby keeps its campaign connection between tries rather than
	// opening one every poll (a connection each 2 s fills a server log).
	l.campaignMu.Lock()
	conn := l.campaign
	l.campaign = nil
	l.campaignMu.Unlock()
	if conn == nil || conn.IsClosed() {
		var err error
		if conn, err = pgx.Connect(cctx, l.dsn); err != nil {
			return nil, fmt.Errorf("ledger %s: leadership: connect: %w", l.path, err)
		}
		if _, err = conn.Exec(cctx, leaderKeepalive); err != nil {
			_ = conn.Close(context.Background())
			return nil, fmt.Errorf("ledger %s: leadership: %w", l.path, err)
		}
	}
	var got bool
	if err := conn.QueryRow(cctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, lockClassLeader).Scan(&got); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("ledger %s: leadership: %w", l.path, err)
	}
	if !got {
		l.campaignMu.Lock()
		if l.campaign == nil && l.db != nil {
			l.campaign, conn = conn, nil
		}
		l.campaignMu.Unlock()
		if conn != nil {
			_ = conn.Close(context.Background())
		}
		return nil, nil
	}
	stop, closed := make(chan struct{}), make(chan struct{})
	ls := &Lease{lost: make(chan struct{})}
	// Release returns once the session is closed, so a standby may take
	// over at once.
	ls.release = func() { close(stop); <-closed }
	go func() {
		defer close(closed)
		// Closing the session releases the lock; a closed or broken
		// connection has lost it already.
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), heartbeatTimeout)
			defer cancel()
			_ = conn.Close(cctx)
		}()
		// Those acting under the lease hear of its end first, before the
		// (perhaps slow, on a cut network) close.
		defer close(ls.lost)
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				// Unlock before closing: the server ends a closed
				// session in its own time, and a standby should find
				// the lock free as soon as Release returns.
				uctx, cancel := context.WithTimeout(context.Background(), heartbeatTimeout)
				_, _ = conn.Exec(uctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, lockClassLeader)
				cancel()
				return
			case <-t.C:
			}
			hctx, cancel := context.WithTimeout(context.Background(), heartbeatTimeout)
			// Asking for the lock itself, not just SELECT 1: a session
			// that survived while its lock was taken away (an admin's
			// pg_advisory_unlock_all) would answer a plain ping.
			var held bool
			err := conn.QueryRow(hctx, `SELECT count(*) > 0 FROM pg_locks
WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND classid = $1::oid AND objid = hashtext(current_schema())::oid`,
				lockClassLeader).Scan(&held)
			cancel()
			if err != nil || !held {
				return
			}
		}
	}()
	return ls, nil
}
