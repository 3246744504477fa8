package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (the kernel scales its
// internal HZ to it for this ABI).
const clockTicks = 100

// apiToken is the session-API bearer secret every benchmark server is
// started with (SILENTAUTH_API_TOKEN).
const apiToken = "loadtest-session-api-token-0123456789"

// buildBinaries compiles the real server exactly as `make build` does and
// the pass-through baseline (../baseline) into dir.
func buildBinaries(ctx context.Context, root, dir string) (real, baseline string, err error) {
	real, baseline = filepath.Join(dir, "silentauth"), filepath.Join(dir, "baseline")
	for _, b := range []struct{ dir, out, pkg string }{
		{root, real, "./cmd/silentauth"},
		{filepath.Join(root, "bench"), baseline, "./baseline"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", b.out, b.pkg)
		cmd.Dir = b.dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	return real, baseline, nil
}

// repoRoot returns the directory of the silentauth module this harness is
// built against (the replace in bench/go.mod: the repository's root).
func repoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/silentauth/silentauth").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/silentauth/silentauth: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("not inside the bench module (run it with go -C bench)")
	}
	return dir, nil
}

// server is one running silentauth process.
type server struct {
	name  string
	cmd   *exec.Cmd
	addrs map[string]string // listener name → host:port, from its "listening" log lines
	logs  *tail
	done  chan struct{} // closed when the process has exited
	err   error         // Wait's result, set before done is closed
}

// errRefused is a server that exited before it was ready, typically on a
// configuration it does not accept.
type errRefused struct {
	name, reason string
}

func (e *errRefused) Error() string {
	return fmt.Sprintf("%s exited before it was ready: %s", e.name, e.reason)
}

// startServer runs `bin serve --config cfgPath` (the baseline: bin alone,
// cfgPath empty) on free loopback ports and
// waits until it is ready. The ports are chosen here, because a server
// configured with log.level warn never logs its "listening" lines; at the
// default level those lines are parsed as cmd/silentauth's end-to-end
// tests do and must agree. Readiness is the "silentauth ready" line or,
// without it, /readyz answering 200. Its stderr is read continuously (the
// server logs one line per allowed Check at the default level) and only
// the last lines are kept. A port taken meanwhile by another process is
// retried with new ones.
func startServer(ctx context.Context, name, bin, cfgPath string, env ...string) (*server, error) {
	for attempt := 1; ; attempt++ {
		s, err := startServerOnce(ctx, name, bin, cfgPath, env...)
		var refused *errRefused
		if attempt < 3 && errors.As(err, &refused) && strings.Contains(refused.reason, "address already in use") {
			continue
		}
		return s, err
	}
}

func startServerOnce(ctx context.Context, name, bin, cfgPath string, env ...string) (*server, error) {
	s := &server{name: name, addrs: map[string]string{}, logs: newTail(40), done: make(chan struct{})}
	envNames := map[string]string{"grpc": "SILENTAUTH_GRPC_ADDRESS", "public": "SILENTAUTH_PUBLIC_ADDRESS",
		"sessionAPI": "SILENTAUTH_SESSION_API_ADDRESS", "admin": "SILENTAUTH_ADMIN_ADDRESS"}
	var args []string
	if cfgPath != "" {
		args = []string{"serve", "--config", cfgPath}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "SILENTAUTH_API_TOKEN="+apiToken)
	ports, err := freePorts(len(envNames))
	if err != nil {
		return nil, err
	}
	for l, e := range envNames {
		s.addrs[l] = "127.0.0.1:" + strconv.Itoa(ports[0])
		ports = ports[1:]
		cmd.Env = append(cmd.Env, e+"="+s.addrs[l])
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = sysProcAttr()
	s.cmd = cmd
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ready := make(chan struct{})
	readyOnce := sync.OnceFunc(func() { close(ready) })
	var mismatch atomic.Value
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			s.logs.add(line)
			if !bytes.HasPrefix(line, []byte("{")) || !bytes.Contains(line, []byte(`"msg":"`)) {
				continue
			}
			var rec struct{ Msg, Listener, Address string }
			if json.Unmarshal(line, &rec) != nil {
				continue
			}
			switch rec.Msg {
			case "listening":
				if want := s.addrs[rec.Listener]; want != rec.Address {
					mismatch.Store(fmt.Sprintf("%s listens on %s, not %s", rec.Listener, rec.Address, want))
				}
			case "silentauth ready":
				readyOnce()
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		s.err = cmd.Wait()
		close(s.done)
	}()
	go func() {
		// Without the ready line (log.level warn), /readyz says it.
		for {
			select {
			case <-ready:
				return
			case <-s.done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+s.addrs["admin"]+"/readyz", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					readyOnce()
					return
				}
			}
		}
	}()
	select {
	case <-ready:
		if m, ok := mismatch.Load().(string); ok {
			s.kill()
			return nil, fmt.Errorf("%s: %s", name, m)
		}
		return s, nil
	case <-s.done:
		return nil, &errRefused{name: name, reason: s.logs.lastPlain()}
	case <-time.After(30 * time.Second):
		s.kill()
		return nil, fmt.Errorf("%s: not ready after 30s\n%s", name, s.logs)
	case <-ctx.Done():
		s.kill()
		return nil, ctx.Err()
	}
}

// stop sends SIGTERM and waits (the benchmark configurations drain for 0s).
func (s *server) stop() error {
	select {
	case <-s.done:
		return s.err
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.err
	case <-time.After(30 * time.Second):
		s.kill()
		return fmt.Errorf("%s did not stop within 30s of SIGTERM", s.name)
	}
}

func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// alive reports an error if the process has exited.
func (s *server) alive() error {
	select {
	case <-s.done:
		return fmt.Errorf("%s exited: %v\n%s", s.name, s.err, s.logs)
	default:
		return nil
	}
}

// cpu returns the process's user+system CPU time so far, from
// /proc/<pid>/stat (every thread, in clock ticks of 10 ms).
func (s *server) cpu() (time.Duration, error) { return procCPU(s.cmd.Process.Pid) }

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may hold spaces: the fields
	// after the last ')' are state (3), ppid (4), …, utime (14), stime (15).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// machineCPU returns the CPU time all processors have spent busy (user,
// nice, system, irq, softirq, steal), from /proc/stat.
func machineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system [idle iowait] irq softirq steal
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		busy += v
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// rss returns the process's resident set size (VmRSS) in bytes.
func (s *server) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

func (s *server) addr(listener string) string { return s.addrs[listener] }

func (s *server) decisions(ctx context.Context) (map[string]int64, error) {
	return scrapeDecisions(ctx, s.addrs["admin"])
}

// scrapeDecisions returns silentauth_check_decisions_total from an admin
// listener as "decision/reason" → count.
func scrapeDecisions(ctx context.Context, admin string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+admin+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s/metrics: %s", admin, resp.Status)
	}
	return parseDecisions(resp.Body)
}

// parseDecisions reads the Prometheus text format and returns the
// silentauth_check_decisions_total series.
func parseDecisions(r io.Reader) (map[string]int64, error) {
	out := map[string]int64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		labels, ok := strings.CutPrefix(sc.Text(), "silentauth_check_decisions_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(labels, "} ")
		if !ok {
			continue
		}
		var decision, reason string
		for kv := range strings.SplitSeq(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "decision":
				decision = v
			case "reason":
				reason = v
			}
		}
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %w", sc.Text(), err)
		}
		out[decision+"/"+reason] = int64(n)
	}
	return out, sc.Err()
}

// tail keeps the last n lines written to it. Safe for concurrent use.
type tail struct {
	mu    sync.Mutex
	n     int
	lines []string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(line []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == t.n {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, string(line))
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// lastPlain returns the last line that is not a JSON log record: the
// "silentauth: …" error main prints before exiting, or else the last line.
func (t *tail) lastPlain() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := len(t.lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(t.lines[i]); l != "" && !strings.HasPrefix(l, "{") {
			return l
		}
	}
	if len(t.lines) > 0 {
		return t.lines[len(t.lines)-1]
	}
	return "no output"
}
