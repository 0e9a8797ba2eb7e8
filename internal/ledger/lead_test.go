package ledger

import (
	"context"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/pgtest"
)

// lost waits for the lease to end, failing after within.
func lost(t *testing.T, ls *Lease, within time.Duration) {
	t.Helper()
	select {
	case <-ls.Lost():
	case <-time.After(within):
		t.Fatalf("the lease was not lost within %v", within)
	}
}

func TestLeadership(t *testing.T) {
	ctx := context.Background()
	l1, state := openT(t)
	a, err := l1.TryLead(ctx)
	if err != nil || a == nil {
		t.Fatalf("first TryLead = %v, %v", a, err)
	}
	select {
	case <-a.Lost():
		t.Fatal("a fresh lease is lost")
	default:
	}
	if !onPostgres {
		// One writer per file: the lease is Open's lock, lost only at Release.
		a.Release()
		lost(t, a, time.Second)
		return
	}

	l2, err := Open(ctx, state)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if b, err := l2.TryLead(ctx); err != nil || b != nil {
		t.Fatalf("second TryLead while the first holds = %v, %v; want nil, nil", b, err)
	}

	// The leader's connection dies (as at a server restart or a network
	// cut seen by the server): its lease ends within a heartbeat.
	var killed int
	if err := l2.db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
WHERE locktype = 'advisory' AND classid = ?::oid AND objid = hashtext(current_schema())::oid`, lockClassLeader).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminate the leader's session: %d, %v", killed, err)
	}
	lost(t, a, heartbeatEvery+heartbeatTimeout+time.Second)

	b, err := l2.TryLead(ctx)
	if err != nil || b == nil {
		t.Fatalf("TryLead after the leader died = %v, %v", b, err)
	}
	if c, err := l1.TryLead(ctx); err != nil || c != nil {
		t.Fatalf("the old leader leads again = %v, %v", c, err)
	}
	// A clean stop hands over at once.
	b.Release()
	lost(t, b, time.Second)
	c, err := l1.TryLead(ctx)
	if err != nil || c == nil {
		t.Fatalf("TryLead after Release = %v, %v", c, err)
	}
	c.Release()
}

// A PostgreSQL restart cuts every session: the leader loses its lease at
// once, and after the restart an instance leads again within 30 s.
func TestLeadershipAcrossRestart(t *testing.T) {
	if !onPostgres {
		t.Skip("PostgreSQL only")
	}
	ctx := context.Background()
	c := pgtest.Private(t)
	state := c.Schema(t)
	var leds []*Ledger
	for range 2 {
		l, err := Open(ctx, state)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		leds = append(leds, l)
	}
	a, err := leds[0].TryLead(ctx)
	if err != nil || a == nil {
		t.Fatalf("TryLead = %v, %v", a, err)
	}
	restarted := time.Now()
	c.Restart(t)
	lost(t, a, heartbeatEvery+heartbeatTimeout+time.Second)

	var b *Lease
	for b == nil && time.Since(restarted) < 30*time.Second {
		for _, l := range leds {
			if b, _ = l.TryLead(ctx); b != nil {
				break
			}
		}
		time.Sleep(100 * time.Millisecond) // polling, as a standby does
	}
	if b == nil {
		t.Fatal("no one leads 30 s after the restart")
	}
	defer b.Release()
	// The pools reconnect: a broken connection fails one call at most.
	for _, l := range leds {
		if _, err := l.Pending(ctx); err != nil {
			if _, err := l.Pending(ctx); err != nil {
				t.Errorf("after the restart: %v", err)
			}
		}
	}
}

// cutProxy forwards TCP connections to target until cut, after which it
// forwards nothing but keeps the connections open, as a silent network cut
// does.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(p.close)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

func (p *cutProxy) pipe(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if err != nil {
			to.Close()
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if !cut {
			if _, err := to.Write(buf[:n]); err != nil {
				return
			}
		}
	}
}

func (p *cutProxy) setCut() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
}

// close closes every connection, as the server does once its keepalives
// fail.
func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// On a silent network cut the leader's heartbeat times out: the lease is
// lost within heartbeatEvery+heartbeatTimeout, before the server drops the
// session and so before anyone else can lead.
func TestLeadershipNetworkCut(t *testing.T) {
	if !onPostgres {
		t.Skip("PostgreSQL only")
	}
	ctx := context.Background()
	state := stateT(t)
	u, err := url.Parse(state)
	if err != nil {
		t.Fatal(err)
	}
	p := newCutProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	cutState := u.String()

	l1, err := Open(ctx, cutState)
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := Open(ctx, state)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	a, err := l1.TryLead(ctx)
	if err != nil || a == nil {
		t.Fatalf("TryLead = %v, %v", a, err)
	}
	p.setCut()
	lost(t, a, heartbeatEvery+heartbeatTimeout+time.Second)
	if b, err := l2.TryLead(ctx); err != nil || b != nil {
		t.Fatalf("another instance leads while the server still has the old leader's session: %v, %v", b, err)
	}
	p.close() // the server notices the dead peer
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := l2.TryLead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b != nil {
			b.Release()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no one leads after the server dropped the old session")
		}
		time.Sleep(50 * time.Millisecond) // polling, as a standby does
	}
}
