package main

import (
	"github.com/silentauth/silentauth/internal/testenv/toolsdir"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ghzRun is one ghz invocation.
type ghzRun struct {
	ghz, protoset, addr string
	dataFile            string
	concurrency         int
	// total caps the requests: the data set's length for a consuming
	// set, so no single-use token is ever sent twice; 0 for no cap.
	total    int
	duration time.Duration
	report   string // where ghz writes its JSON report
}

// ghzReport is the part of ghz's JSON report the harness reads.
type ghzReport struct {
	Count     int64            `json:"count"`
	Total     time.Duration    `json:"total"`
	Rps       float64          `json:"rps"`
	EndReason string           `json:"endReason"`
	Errors    map[string]int   `json:"errorDistribution"`
	Status    map[string]int64 `json:"statusCodeDistribution"`
	Latency   []struct {
		Percentage int           `json:"percentage"`
		Latency    time.Duration `json:"latency"`
	} `json:"latencyDistribution"`

	clientCPU time.Duration // ghz's own user+system time
}

func (r *ghzReport) percentile(p int) time.Duration {
	for _, l := range r.Latency {
		if l.Percentage == p {
			return l.Latency
		}
	}
	return 0
}

// run loads the server for g.duration over ONE HTTP/2 connection with
// g.concurrency workers and returns ghz's report.
//
// ghz v0.120.0 ignores -n when -x is given, so the duration is enforced
// here: -n caps the requests, and an interrupt at the deadline stops the
// run the way ghz's own -z does. With --duration-stop wait, requests in
// flight at the stop complete and are counted: no request is cancelled,
// so any error in the report is a real one.
//
// ghz v0.120.0 also panics ("send on closed channel") when the stop races
// with its own start or finish; the run is then reported as errGhzPanic
// and the caller redoes it whole (with fresh single-use tokens: some may
// have been sent).
func (g ghzRun) run(ctx context.Context) (*ghzReport, error) {
	r, err := g.runOnce(ctx)
	if err != nil && strings.Contains(err.Error(), "send on closed channel") {
		return nil, fmt.Errorf("%w: %v", errGhzPanic, err)
	}
	return r, err
}

var errGhzPanic = errors.New("ghz panicked when stopped")

func (g ghzRun) runOnce(ctx context.Context) (*ghzReport, error) {
	total := g.total
	if total <= 0 {
		total = math.MaxInt32
	}
	args := []string{
		"--insecure", "--protoset", g.protoset, "--call", checkMethod,
		"--binary-file", g.dataFile,
		"--connections", "1", "--concurrency", strconv.Itoa(g.concurrency),
		"--total", strconv.Itoa(total), "--timeout", "10s",
		"--duration-stop", "wait",
		"--format", "json", "--output", g.report,
		g.addr,
	}
	cmd := exec.Command(g.ghz, args...)
	cmd.SysProcAttr = sysProcAttr()
	out := &tailWriter{t: newTail(20)}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ghz: %w", err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() { done <- cmd.Wait(); close(exited) }()
	// The clock starts when ghz has connected: by then it has read its
	// data and installed its interrupt handler (an interrupt before that
	// kills it without a report).
	deadline := make(chan struct{})
	go func() {
		port := g.addr[strings.LastIndexByte(g.addr, ':')+1:]
		start := time.Now()
		for !connected(cmd.Process.Pid, port) {
			if time.Since(start) > time.Minute {
				break // let the deadline stop it anyway
			}
			select {
			case <-exited:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		time.Sleep(g.duration)
		close(deadline)
	}()
	var err error
	select {
	case err = <-done:
	case <-deadline:
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err = <-done:
		case <-time.After(g.duration + 30*time.Second):
			_ = cmd.Process.Kill()
			<-done
			return nil, errors.New("ghz did not stop within 30s of its interrupt")
		}
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("ghz %s: %w\n%s", filepath.Base(g.dataFile), err, out.t)
	}
	b, err := os.ReadFile(g.report)
	if err != nil {
		return nil, fmt.Errorf("ghz report: %w\n%s", err, out.t)
	}
	var r ghzReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("ghz report %s: %w", g.report, err)
	}
	r.clientCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return &r, nil
}

// tailWriter keeps the last lines of a child's output.
type tailWriter struct{ t *tail }

func (w *tailWriter) Write(p []byte) (int, error) {
	w.t.add(p)
	return len(p), nil
}

// findTool returns the path of a tool: in the tools folder of `make
// tools` (package toolsdir), else on PATH.
func findTool(name string) (string, error) {
	p := filepath.Join(toolsdir.Bin(), name)
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found in %s or on PATH (run bench/tools.sh)", name, toolsdir.Bin())
}

// connected reports whether process pid holds an established TCP
// connection to the given loopback port: one of its socket descriptors
// appears in /proc/net/tcp (or tcp6) in state 01 with that remote port.
func connected(pid int, port string) bool {
	p, err := strconv.Atoi(port)
	if err != nil {
		return false
	}
	remote := fmt.Sprintf(":%04X", p)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(link, "socket:["); ok && err == nil {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	if len(inodes) == 0 {
		return false
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			f := strings.Fields(line)
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) > 9 && f[3] == "01" && strings.HasSuffix(f[2], remote) && inodes[f[9]] {
				return true
			}
		}
	}
	return false
}
