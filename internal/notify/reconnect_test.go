package notify

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/snapwarden/snapwarden/internal/config"
)

// dropProxy forwards TCP to target and drops its first connection when the
// client starts a second mail transaction on it: a server that hangs up on
// an idle connection between two messages.
type dropProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  int
	wg     sync.WaitGroup
}

func startDropProxy(t *testing.T, target string) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *dropProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		first := p.conns == 1
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c, first)
		}()
	}
}

func (p *dropProxy) relay(c net.Conn, first bool) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { _, _ = io.Copy(c, s) }()
	r := bufio.NewReader(c)
	mails := 0
	for {
		line, err := r.ReadString('\n')
		if strings.HasPrefix(strings.ToUpper(line), "MAIL FROM") {
			if mails++; first && mails == 2 {
				return // hang up on the client
			}
		}
		if _, werr := io.WriteString(s, line); werr != nil || err != nil {
			return
		}
	}
}

func TestSendReconnectsWhenDropped(t *testing.T) {
	s := sink(t)
	p := startDropProxy(t, s.Addr())
	port := p.ln.Addr().(*net.TCPAddr).Port
	mr, err := NewMailer(config.SMTP{Host: "127.0.0.1", Port: port, TLS: "none"})
	if err != nil {
		t.Fatal(err)
	}
	out := []Outgoing{{Raw: composed(t, "a@example.com")}, {Raw: composed(t, "b@example.com")}, {Raw: composed(t, "c@example.com")}}
	for i, err := range mr.Send(context.Background(), out) {
		if err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	if n := len(s.Messages()); n != 3 {
		t.Errorf("%d messages arrived, want 3", n)
	}
	if n := s.Connections(); n != 2 {
		t.Errorf("%d connections, want 2 (one drop, one reconnect)", n)
	}
}
