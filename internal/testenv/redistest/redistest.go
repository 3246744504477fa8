// Package redistest runs real redis-server processes on loopback for
// integration tests: one standalone server (Start), one that speaks only TLS
// (StartTLS), a replica of a server (StartReplica), a Redis Sentinel
// monitoring a master (StartSentinel) or a small Redis Cluster
// (StartCluster), each with its data in the test's temporary folder and
// nothing persisted (--save "" --appendonly no), killed when the test ends.
// StartPersistent starts one that keeps every acknowledged write on disk.
//
// The binaries are Debian's redis-server and redis-cli (`make tools`), looked
// up in /usr/bin, then on PATH. Without them a test is skipped, or fails when
// SILENTAUTH_REQUIRE_INTEGRATION=1 (CI).
//
// A Server can also misbehave on purpose: Stop kills it (kill -9, a crash),
// Restart brings it back on the same port (empty, unless it persists),
// RestartEmpty brings it back without its data whatever it persisted, Pause
// freezes it (SIGSTOP) for a while, like a Redis too slow to answer.
package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/silentauth/silentauth/internal/testenv/toolsdir"

	"github.com/redis/go-redis/v9"

	"github.com/silentauth/silentauth/internal/testenv/testproc"
)

// readyTimeout bounds how long a server may take to answer PING, and a
// cluster to report cluster_state:ok. Both take milliseconds to a second; the
// margin is for a loaded two-core machine running several test binaries.
const readyTimeout = 30 * time.Second

// Server is one redis-server on 127.0.0.1. Its methods are safe for
// concurrent use.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string    // everything after the fixed arguments, kept for Restart
	conf string      // config file, the first argument when set (a sentinel's)
	tls  *tls.Config // clients' configuration of a TLS-only server; nil: plain TCP

	mu     sync.Mutex
	proc   *testproc.Process
	resume *time.Timer // pending SIGCONT of Pause
}

// Start starts a redis-server for t on a free loopback port and kills it when
// t ends. args are extra redis-server arguments ("--maxmemory", "10mb").
// It returns once the server answers PING.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return start(t, &Server{args: args})
}

// start completes s (its test, binary, folder and a free port), launches it
// and kills it when t ends. s holds its arguments, config file and TLS
// configuration.
func start(t testing.TB, s *Server) *Server {
	t.Helper()
	s.t, s.bin = t, binary(t, "redis-server")
	s.dir = t.TempDir()
	t.Cleanup(s.Stop)
	// The free port is found by listening and closing, so another process
	// can take it before redis-server binds: try a few ports.
	var err error
	for range 3 {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.launch(); !errors.Is(err, testproc.ErrExited) {
			break
		}
	}
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Client returns a go-redis client of the server (for inspecting it in a
// test), closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), TLSConfig: s.TLSConfig(), DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server (SIGKILL: no shutdown, like a crash) and waits for
// it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resume != nil {
		s.resume.Stop()
		s.resume = nil
	}
	if s.proc != nil {
		s.proc.Kill()
		s.proc = nil
	}
}

// StartPersistent is Start for a server that loses nothing it acknowledged:
// every write goes to an append-only file in its folder, fsynced before the
// reply (--appendonly yes --appendfsync always), so Stop and Restart bring
// back the same data, as a crashed production Redis with AOF would.
func StartPersistent(t testing.TB, args ...string) *Server {
	t.Helper()
	return Start(t, append([]string{"--appendonly", "yes", "--appendfsync", "always"}, args...)...)
}

// Restart kills the server if it runs and starts it again on the same port,
// and waits until it answers PING. It comes back empty unless it persists
// its data (StartPersistent, or --appendonly yes among its arguments): then
// it reloads it. Clients that were connected see their connections drop.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.launch(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// RestartEmpty is Restart after removing the server's data files (the
// append-only files and the RDB snapshot): it comes back empty whatever it
// persisted, like a Redis whose volume was lost.
func (s *Server) RestartEmpty() {
	s.t.Helper()
	s.Stop()
	for _, name := range []string{"appendonlydir", "appendonly.aof", "dump.rdb"} {
		if err := os.RemoveAll(filepath.Join(s.dir, name)); err != nil {
			s.t.Fatalf("redistest: restart empty: %v", err)
		}
	}
	if err := s.launch(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Pause freezes the server (SIGSTOP) and lets it go on (SIGCONT) after d,
// without blocking the caller: connections and queued commands stay, nothing
// is answered meanwhile, as with a Redis too slow to answer. Commands sent
// during the pause run when it ends.
func (s *Server) Pause(d time.Duration) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		s.t.Fatal("redistest: Pause of a stopped server")
	}
	if s.resume != nil {
		s.resume.Stop()
	}
	p := s.proc
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("redistest: pause: %v", err)
	}
	s.resume = time.AfterFunc(d, func() { _ = p.Signal(syscall.SIGCONT) })
}

// process is the running process, nil once stopped.
func (s *Server) process() *testproc.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// ask sends one command to s (see command), over TLS to a TLS server.
func (s *Server) ask(ctx context.Context, args ...string) (string, error) {
	return commandOver(ctx, s.Addr(), s.tls, args...)
}

// launch starts the process on s.port and waits until it answers PING.
func (s *Server) launch() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var args []string
	if s.conf != "" {
		args = append(args, s.conf)
	}
	port := []string{"--port", strconv.Itoa(s.port)}
	if s.tls != nil { // TLS only: the plain port is off
		port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port)}
	}
	args = append(args, "--bind", "127.0.0.1")
	args = append(args, port...)
	args = append(args,
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		// A master would wait 5 s for more replicas before it starts
		// a sync.
		"--repl-diskless-sync-delay", "0",
		"--daemonize", "no",
		"--logfile", "",
	)
	args = append(args, s.args...)
	p, err := testproc.Start("redis-server", filepath.Join(s.dir, "redis.log"), exec.Command(s.bin, args...))
	if err != nil {
		return err
	}
	err = testproc.Poll(context.Background(), readyTimeout, func(ctx context.Context) error {
		reply, err := s.ask(ctx, "PING")
		switch {
		case err != nil && strings.HasPrefix(err.Error(), "NOAUTH "):
			return nil // answering, behind --requirepass
		case err == nil && reply != "PONG":
			err = fmt.Errorf("PING answered %q", reply)
		}
		return err
	}, p)
	if err != nil {
		p.Kill()
		return fmt.Errorf("redis-server on port %d: %w\n%s", s.port, err, p.Tail(20))
	}
	s.proc = p
	return nil
}

// Cluster is a Redis Cluster of masters without replicas, every node a
// Server on loopback.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts n redis-server processes in cluster mode, joins them
// with `redis-cli --cluster create` (the 16384 slots spread over n masters,
// no replicas) and waits until every node reports cluster_state:ok. Redis
// needs at least 3 masters for a cluster.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	cli := binary(t, "redis-cli")
	c := &Cluster{}
	for i := range n {
		busPort, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		c.Nodes = append(c.Nodes, Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)),
			// Explicit bus port: the default (port+10000) may be taken or
			// beyond 65535.
			"--cluster-port", strconv.Itoa(busPort),
			"--cluster-node-timeout", "5000",
		))
	}
	ctx, cancel := context.WithTimeout(t.Context(), readyTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, node := range c.Nodes {
		err := testproc.Poll(ctx, readyTimeout, func(ctx context.Context) error {
			info, err := command(ctx, node.Addr(), "CLUSTER", "INFO")
			if err == nil && !strings.Contains(info, "cluster_state:ok") {
				err = errors.New("cluster_state is not ok yet")
			}
			return err
		}, node.proc)
		if err != nil {
			t.Fatalf("redistest: cluster node %s: %v", node.Addr(), err)
		}
	}
	return c
}

// Addrs lists the nodes' host:port.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Client returns a go-redis cluster client (for inspecting the cluster in a
// test), closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DisableIdentity: true})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// binary finds name where `make tools` puts it (package toolsdir), or ends t:
// skipped, or failed when SILENTAUTH_REQUIRE_INTEGRATION=1.
func binary(t testing.TB, name string) string {
	t.Helper()
	return toolsdir.Need(t, name)
}

// freePort asks the kernel for a free loopback port. The listener is closed
// before the server binds, so another process could take the port in between;
// Start then tries another.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
