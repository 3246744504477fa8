package redistest

import (
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
