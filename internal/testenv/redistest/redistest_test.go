package redistest

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStopRestart(t *testing.T) {
	s := Start(t)
	ctx := t.Context()
	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for param, want := range map[string]string{"save": "", "appendonly": "no"} { // nothing persisted
		if got := c.ConfigGet(ctx, param).Val()[param]; got != want {
			t.Fatalf("CONFIG GET %s = %q, want %q", param, got, want)
		}
	}
	addr := s.Addr()

	s.Stop()
	if _, err := command(ctx, addr, "PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Stop() // again: nothing to do

	s.Restart()
	if s.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", s.Addr(), addr)
	}
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after a restart: %v, want redis.Nil (empty)", err)
	}
}

// A persistent server comes back from a crash with every write it
// acknowledged; RestartEmpty brings it back without them.
func TestPersistentRestart(t *testing.T) {
	s := StartPersistent(t)
	ctx := t.Context()
	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Restart() // kill -9 first: only what was fsynced survives
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET after a restart: %q, %v; want the value written before the crash", got, err)
	}
	s.RestartEmpty()
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after RestartEmpty: %v, want redis.Nil (empty)", err)
	}
	if err := c.Set(ctx, "k2", "v2", 0).Err(); err != nil { // still persisting
		t.Fatal(err)
	}
	s.Restart()
	if got, err := c.Get(ctx, "k2").Result(); err != nil || got != "v2" {
		t.Fatalf("GET after a restart following RestartEmpty: %q, %v", got, err)
	}
}

func TestPause(t *testing.T) {
	s := Start(t)
	ctx := t.Context()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), ReadTimeout: 100 * time.Millisecond, MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	s.Pause(time.Second)
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered during the pause")
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("no answer after the pause")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	ctx := t.Context()
	if len(c.Addrs()) != 3 {
		t.Fatalf("Addrs = %v", c.Addrs())
	}
	for _, n := range c.Nodes {
		info, err := command(ctx, n.Addr(), "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
			t.Fatalf("CLUSTER INFO of %s: %v\n%s", n.Addr(), err, info)
		}
	}
	cc := c.Client(t)
	for _, k := range []string{"a", "b", "c", "d", "e", "f"} {
		if err := cc.Set(ctx, k, k, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
}

func TestTLS(t *testing.T) {
	s := StartTLS(t)
	ctx := t.Context()
	if err := s.Client(t).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over TLS: %v", err)
	}
	if _, err := command(ctx, s.Addr(), "PING"); err == nil {
		t.Fatal("PING in plain TCP answered by a TLS-only server")
	}
	if got := s.Client(t).ConfigGet(ctx, "port").Val()["port"]; got != "0" {
		t.Fatalf("CONFIG GET port = %q, want the plain port off", got)
	}
	c := s.TLSConfig()
	c.RootCAs = x509.NewCertPool() // no CA at all
	if _, err := commandOver(ctx, s.Addr(), c, "PING"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("PING trusting another CA: %v, want a certificate error", err)
	}
	if Start(t).TLSConfig() != nil {
		t.Fatal("a plain server has a TLS configuration")
	}
}

func TestSentinelFailover(t *testing.T) {
	master := Start(t)
	ctx := t.Context()
	if err := master.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	replica := StartReplica(t, master)
	if got := replica.Client(t).Get(ctx, "k").Val(); got != "v" {
		t.Fatalf("replica GET k = %q, want v", got)
	}
	sentinel := StartSentinel(t, "mymaster", master)
	if addr, err := sentinel.MasterAddr(ctx); err != nil || addr != master.Addr() {
		t.Fatalf("MasterAddr = %s, %v; want %s", addr, err, master.Addr())
	}
	if err := master.Client(t).Set(ctx, "k2", "v2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	WaitReplicated(t, master, replica)
	if got := replica.Client(t).Get(ctx, "k2").Val(); got != "v2" {
		t.Fatalf("replica GET k2 = %q after WaitReplicated, want v2", got)
	}

	began := time.Now()
	sentinel.WaitReplica(replica)
	sentinel.Failover()
	sentinel.WaitMaster(replica)
	t.Logf("failover in %v", time.Since(began).Round(time.Millisecond))
	if err := replica.Client(t).Set(ctx, "k3", "v3", 0).Err(); err != nil {
		t.Fatalf("SET on the promoted replica: %v", err)
	}
}
