package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/snapwarden/snapwarden/internal/pgtest"
)

// binDirs hold the binaries build compiled; TestMain removes them.
var (
	binMu   sync.Mutex
	binDirs []string
)

// TestMain removes what the tests leave in the temp directory.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range binDirs {
		_ = os.RemoveAll(d)
	}
	pgtest.Stop()
	os.Exit(code)
}

// buildBinary compiles snapwarden once for the tests that run the real process;
// buildFailpointBinary compiles it with the failpoints the crash tests use.
var (
	buildBinary          = sync.OnceValues(func() (string, error) { return build() })
	buildFailpointBinary = sync.OnceValues(func() (string, error) { return build("-tags", "failpoints") })
)

func build(flags ...string) (string, error) {
	dir, err := os.MkdirTemp("", "snapwarden-bin-")
	if err != nil {
		return "", err
	}
	binMu.Lock()
	binDirs = append(binDirs, dir)
	binMu.Unlock()
	bin := filepath.Join(dir, "snapwarden")
	args := append(append([]string{"build"}, flags...), "-o", bin, ".")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", &exec.ExitError{Stderr: out}
	}
	return bin, nil
}

// logWatcher collects the JSON log lines of a process and waits for one.
type logWatcher struct {
	mu    sync.Mutex
	lines []map[string]any
	cond  *sync.Cond
}

func watchLog(r io.Reader) *logWatcher {
	w := &logWatcher{}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"message": sc.Text()}
			}
			w.mu.Lock()
			w.lines = append(w.lines, m)
			w.cond.Broadcast()
			w.mu.Unlock()
		}
		w.mu.Lock()
		w.lines = append(w.lines, map[string]any{"eof": true})
		w.cond.Broadcast()
		w.mu.Unlock()
	}()
	return w
}

// wait returns the first line, from index from on, whose message contains msg.
func (w *logWatcher) wait(t testing.TB, from int, msg string) (map[string]any, int) {
	t.Helper()
	timer := time.AfterFunc(60*time.Second, func() {
		w.mu.Lock()
		w.lines = append(w.lines, map[string]any{"eof": true, "timeout": true})
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := from; ; i++ {
		for i >= len(w.lines) {
			w.cond.Wait()
		}
		if w.lines[i]["eof"] == true {
			t.Fatalf("log ended (or 60 s passed) before %q; log: %v", msg, w.lines)
		}
		if m, _ := w.lines[i]["message"].(string); strings.Contains(m, msg) {
			return w.lines[i], i + 1
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// The real binary: serve runs a cycle, answers /healthz, /metrics and
// /report, keeps running on a broken config at SIGHUP and exits 0 on SIGTERM.
func TestServeBinary(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatalf("go build: %v", err)
	}
	e := newEnv(t, "small.yaml", "")
	good, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	withListen := strings.Replace(string(good), "log: {level: warn, format: json}", "log: {level: info, format: json}\nlisten: 127.0.0.1:0", 1)
	if err := os.WriteFile(e.cfg, []byte(withListen), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "serve", "--config", e.cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	log := watchLog(stderr)

	line, next := log.wait(t, 0, "serving")
	base := "http://" + line["listen"].(string)
	_, next = log.wait(t, next, "last cycle")

	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) {
		t.Errorf("/healthz after a good cycle: %d %s", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{
		`snapwarden_snapshots{customer="acme",state="overdue"} 1`,
		`snapwarden_snapshot_bytes{customer="acme",state="overdue"} 1.073741824e+09`,
		`snapwarden_notices_sent_total{kind="customer"} 2`,
		`snapwarden_cycles_total{result="ok"} 1`,
		"snapwarden_cycle_duration_seconds_count 1",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, body := get(t, base+"/report"); code != 200 || !strings.Contains(body, "before-<wbr>upgrade") {
		t.Errorf("/report: %d, lacks the snapshots", code)
	}
	if n := len(e.sink.Messages()); n != 3 {
		t.Errorf("the first cycle sent %d messages, want 3", n)
	}

	// A broken config at SIGHUP is refused; the service keeps running.
	if err := os.WriteFile(e.cfg, []byte("policy: {deadline: soon}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line, _ = log.wait(t, next, "reload refused")
	if errText, _ := line["error"].(string); !strings.Contains(errText, "snapwarden.yaml") {
		t.Errorf("reload error does not name the file: %v", line)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz after a refused reload: %d", code)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30 s of SIGTERM")
	}
}
