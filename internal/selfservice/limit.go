package selfservice

import (
	"sync"
	"time"
)

// maxClients bounds the limiter's memory: beyond it, buckets that are full
// again (idle clients) are dropped, and while every tracked client is still
// active a new one is refused, so a flood from many addresses cannot grow
// the map (nor make every request scan it: a prune runs at most once a second).
const maxClients = 10000

// Limiter is a token bucket per client address.
type Limiter struct {
	rate  float64 // tokens a second
	burst float64

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastPrune time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// NewLimiter allows each client rate requests a second, in bursts of burst.
func NewLimiter(rate float64, burst int) *Limiter {
	return &Limiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// Allow takes a token from the client's bucket at now, if there is one.
func (l *Limiter) Allow(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[client]
	if b == nil {
		if len(l.buckets) >= maxClients && now.Sub(l.lastPrune) >= time.Second {
			l.prune(now)
			l.lastPrune = now
		}
		if len(l.buckets) >= maxClients {
			return false
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[client] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune drops the buckets that have refilled: their clients are idle.
func (l *Limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
