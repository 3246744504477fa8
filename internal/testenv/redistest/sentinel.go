package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/silentauth/silentauth/internal/testenv/testproc"
)

// failoverTimeout bounds how long a sentinel may take to see a replica or to
// complete a failover. Both take about a second (a sentinel asks a master
// for its replicas when it connects, and every replica for INFO once a
// second during a failover); the margin is for a loaded machine.
const failoverTimeout = 20 * time.Second

// Sentinel timings: a master that answers nothing for downAfter is down,
// and a failover that has not completed within failoverTimeoutMillis is
// abandoned, so a failover takes seconds, not minutes.
const (
	downAfterMillis       = "1000"
	failoverTimeoutMillis = "5000"
)

// StartReplica starts a redis-server for t that replicates master
// (--replicaof; master must be a plain, not a TLS, server) and returns once
// its link to master is up (INFO replication: master_link_status:up), that
// is once it holds master's data as of its first sync. args are extra
// redis-server arguments.
func StartReplica(t testing.TB, master *Server, args ...string) *Server {
	t.Helper()
	r := start(t, &Server{args: append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)}, args...)})
	err := testproc.Poll(t.Context(), readyTimeout, func(ctx context.Context) error {
		info, err := r.ask(ctx, "INFO", "replication")
		if err == nil && !strings.Contains(info, "master_link_status:up") {
			err = fmt.Errorf("link to master %s is not up yet", master.Addr())
		}
		return err
	}, r.process(), master.process())
	if err != nil {
		t.Fatalf("redistest: replica %s: %v", r.Addr(), err)
	}
	return r
}

// WaitReplicated waits until replica has applied every write that master
// had taken when WaitReplicated was called: the replica's replication
// offset (slave_repl_offset) reaches the master's (master_repl_offset).
func WaitReplicated(t testing.TB, master, replica *Server) {
	t.Helper()
	ctx := t.Context()
	want, err := replOffset(ctx, master, "master_repl_offset")
	if err != nil {
		t.Fatalf("redistest: offset of master %s: %v", master.Addr(), err)
	}
	err = testproc.Poll(ctx, readyTimeout, func(ctx context.Context) error {
		got, err := replOffset(ctx, replica, "slave_repl_offset")
		if err == nil && got < want {
			err = fmt.Errorf("replica at offset %d, master at %d", got, want)
		}
		return err
	}, replica.process(), master.process())
	if err != nil {
		t.Fatalf("redistest: replica %s: %v", replica.Addr(), err)
	}
}

// replOffset reads field, a replication offset, from s's INFO replication.
func replOffset(ctx context.Context, s *Server, field string) (int64, error) {
	info, err := s.ask(ctx, "INFO", "replication")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in INFO replication", field)
}

// Sentinel is a redis-server in sentinel mode (a Server: Addr, Stop and
// Pause apply) that monitors one master under Name. Its methods end the
// test that started it on failure, as Restart does.
type Sentinel struct {
	*Server
	Name string
	c    *redis.SentinelClient
}

// StartSentinel starts a Redis Sentinel for t that monitors master under
// name with quorum 1 (it decides alone), takes the master for down after
// one second without an answer and gives a failover five seconds. Its
// config file, which a sentinel rewrites as it learns, is in t's temporary
// folder. It returns once the sentinel is connected to master and names it
// as name's master (SENTINEL MASTER: flags "master"). args are extra
// redis-server arguments.
func StartSentinel(t testing.TB, name string, master *Server, args ...string) *Sentinel {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	lines := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d 1\n"+
		"sentinel down-after-milliseconds %[1]s %[3]s\n"+
		"sentinel failover-timeout %[1]s %[4]s\n",
		name, master.port, downAfterMillis, failoverTimeoutMillis)
	if err := os.WriteFile(conf, []byte(lines), 0o600); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Sentinel{Server: start(t, &Server{conf: conf, args: append([]string{"--sentinel"}, args...)}), Name: name}
	s.c = redis.NewSentinelClient(&redis.Options{Addr: s.Addr(), DisableIdentity: true})
	t.Cleanup(func() { _ = s.c.Close() })
	s.wait("connected to master "+master.Addr(), func(ctx context.Context) error {
		m, err := s.c.Master(ctx, name).Result()
		switch {
		case err != nil:
		case m["flags"] != "master":
			err = fmt.Errorf("master flags %q", m["flags"])
		case m["ip"] != "127.0.0.1" || m["port"] != strconv.Itoa(master.port):
			err = fmt.Errorf("master at %s:%s", m["ip"], m["port"])
		}
		return err
	}, master)
	return s
}

// MasterAddr is the host:port the sentinel names as its master now
// (SENTINEL GET-MASTER-ADDR-BY-NAME).
func (s *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	addr, err := s.c.GetMasterAddrByName(ctx, s.Name).Result()
	if err != nil {
		return "", err
	}
	if len(addr) != 2 {
		return "", fmt.Errorf("master address %q", addr)
	}
	return net.JoinHostPort(addr[0], addr[1]), nil
}

// WaitReplica waits until the sentinel could promote replica: it has found
// it (from the master's INFO), is connected to it, has read its INFO, and
// the replica's link to the master is up.
func (s *Sentinel) WaitReplica(replica *Server) {
	s.t.Helper()
	s.wait("replica "+replica.Addr()+" known", func(ctx context.Context) error {
		replicas, err := s.c.Replicas(ctx, s.Name).Result()
		if err != nil {
			return err
		}
		for _, r := range replicas {
			if r["ip"] != "127.0.0.1" || r["port"] != strconv.Itoa(replica.port) {
				continue
			}
			if r["flags"] != "slave" || r["runid"] == "" || r["master-link-status"] != "ok" {
				return fmt.Errorf("replica flags %q, run id %q, master link %q", r["flags"], r["runid"], r["master-link-status"])
			}
			return nil
		}
		return errors.New("replica not listed yet")
	}, replica)
}

// Failover has the sentinel fail over now (SENTINEL FAILOVER), the master
// being up or not: it promotes a replica, which WaitReplica should have
// made known. It returns once the failover has started; WaitMaster sees it
// complete.
func (s *Sentinel) Failover() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), readyTimeout)
	defer cancel()
	if err := s.c.Failover(ctx, s.Name).Err(); err != nil {
		s.t.Fatalf("redistest: sentinel %s: failover of %s: %v", s.Addr(), s.Name, err)
	}
}

// WaitMaster waits until the sentinel names want as its master, after a
// failover say.
func (s *Sentinel) WaitMaster(want *Server) {
	s.t.Helper()
	s.wait("master "+want.Addr(), func(ctx context.Context) error {
		addr, err := s.MasterAddr(ctx)
		if err == nil && addr != want.Addr() {
			err = fmt.Errorf("master is %s", addr)
		}
		return err
	}, want)
}

// wait polls ready for up to failoverTimeout, and ends the test if it is
// not ready by then or the sentinel or one of others exits.
func (s *Sentinel) wait(what string, ready func(context.Context) error, others ...*Server) {
	s.t.Helper()
	procs := []*testproc.Process{s.process()}
	for _, o := range others {
		procs = append(procs, o.process())
	}
	if err := testproc.Poll(s.t.Context(), failoverTimeout, ready, procs...); err != nil {
		s.t.Fatalf("redistest: sentinel %s: %s: %v", s.Addr(), what, err)
	}
}
