//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Env names the failpoint to trigger, as name:N or name:N:fail.
const Env = "SNAPWARDEN_FAILPOINT"

var (
	mu    sync.Mutex
	hits  = map[string]int{}
	point = parse(os.Getenv(Env))
)

type spec struct {
	name string
	n    int
	fail bool
}

func parse(s string) spec {
	parts := strings.Split(s, ":")
	if len(parts) < 2 {
		return spec{}
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 1 {
		panic(fmt.Sprintf("%s=%q: want name:N or name:N:fail", Env, s))
	}
	return spec{name: parts[0], n: n, fail: len(parts) > 2 && parts[2] == "fail"}
}

// Hit counts a hit of name; at the configured hit it kills the process
// (SIGKILL: no deferred call, no flush, like a power cut of the process),
// or from then on returns an error, as a full disk would.
func Hit(name string) error {
	if name != point.name {
		return nil
	}
	mu.Lock()
	hits[name]++
	n := hits[name]
	mu.Unlock()
	switch {
	case n < point.n:
		return nil
	case point.fail:
		return fmt.Errorf("failpoint %s: database or disk is full", name)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
