package redisstore_test

import (
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/store/redisstore"
	"github.com/silentauth/silentauth/authz/store/storetest"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

// The rotation a refresh costs, end to end through session.Manager: on
// Redis a GET and an EVALSHA over loopback, in memory a map under a mutex.
// Both in one file so one run reports them side by side:
//
//	go test -run '^$' -bench Refresh -benchmem ./authz/store/redisstore

func BenchmarkRefreshMemory(b *testing.B) { benchRefresh(b, memstore.New(nil)) }

func BenchmarkRefreshRedis(b *testing.B) { benchRefresh(b, redisBench(b)) }

func BenchmarkRefreshMemoryParallel(b *testing.B) { benchRefreshParallel(b, memstore.New(nil)) }

func BenchmarkRefreshRedisParallel(b *testing.B) { benchRefreshParallel(b, redisBench(b)) }

// A rotation that also refreshes the provider tokens (a fake provider
// answering at once, due again at once): the lease and the commit make it
// a GET and two EVALSHAs.
func BenchmarkRefreshWithProviderMemory(b *testing.B) { benchRefreshProvider(b, memstore.New(nil)) }

func BenchmarkRefreshWithProviderRedis(b *testing.B) { benchRefreshProvider(b, redisBench(b)) }

func benchRefreshProvider(b *testing.B, st store.Store) {
	p := &storetest.FakeProvider{}
	m := session.New(st, session.Lifetimes{}, nil, session.WithProvider(p, 0))
	s, err := m.StartLogin(b.Context(), session.Login{
		Subject: "00u1abcd2EFGH3ijk4l5", Claims: map[string]any{"email": "ada@example.com", "groups": []any{"eng"}},
		Provider: p.Issue(), ProviderSID: "08a8684b-db88-4b73-90a9-3cd1661f5466", ProviderRefreshAt: time.Now(),
	})
	if err != nil {
		b.Fatal(err)
	}
	rt := s.RefreshToken
	b.ReportAllocs()
	for b.Loop() {
		s, err := m.Refresh(b.Context(), rt, "")
		if err != nil || !s.Rotated {
			b.Fatal(err)
		}
		rt = s.RefreshToken
	}
	if p.Calls() < int64(b.N) || p.Reuses() != 0 {
		b.Fatalf("%d provider calls, %d reuses for %d rotations", p.Calls(), p.Reuses(), b.N)
	}
}

func redisBench(b *testing.B) store.Store {
	srv := redistest.Start(b)
	return open(b, redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}})
}

// chain starts a family and rotates it until it holds the 16 secret hashes
// of a long-lived session: the steady state a refresh sees.
func chain(b *testing.B, m *session.Manager) string {
	s, err := m.Start(b.Context(), "00u1abcd2EFGH3ijk4l5", "", map[string]any{"email": "ada@example.com", "groups": []any{"eng"}})
	if err != nil {
		b.Fatal(err)
	}
	for range 16 {
		if s, err = m.Refresh(b.Context(), s.RefreshToken, ""); err != nil {
			b.Fatal(err)
		}
	}
	return s.RefreshToken
}

// benchRefresh rotates one chain: every op refreshes the token the last
// one issued.
func benchRefresh(b *testing.B, st store.Store) {
	m := session.New(st, session.Lifetimes{}, nil)
	rt := chain(b, m)
	b.ReportAllocs()
	for b.Loop() {
		s, err := m.Refresh(b.Context(), rt, "")
		if err != nil {
			b.Fatal(err)
		}
		rt = s.RefreshToken
	}
}

// benchRefreshParallel rotates one chain per goroutine, 8 per CPU: a store
// behind a network round trip needs more than GOMAXPROCS callers in flight.
func benchRefreshParallel(b *testing.B, st store.Store) {
	m := session.New(st, session.Lifetimes{}, nil)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		rt := chain(b, m)
		for pb.Next() {
			s, err := m.Refresh(b.Context(), rt, "")
			if err != nil {
				b.Error(err)
				return
			}
			rt = s.RefreshToken
		}
	})
}
