package session_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/store/storetest"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

// The provider rules across backends are in storetest (RunSession); these
// tests pin their timing, in synctest's time.

const lease = time.Second

// providerLogin starts a family whose provider tokens are due now.
func providerLogin(t *testing.T, m *session.Manager, p *storetest.FakeProvider) session.Issued {
	t.Helper()
	is, err := m.StartLogin(t.Context(), session.Login{
		Subject: "alice", Provider: p.Issue(), ProviderSID: "sid-1", ProviderRefreshAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func TestStartLogin(t *testing.T) {
	fx := newFixture(lt)
	at := epoch.Add(5 * time.Minute)
	is, err := fx.m.StartLogin(t.Context(), session.Login{
		Subject: "alice", Policy: "shop", Claims: map[string]any{"email": "a@example.com"},
		Provider: []byte("sealed"), ProviderSID: "sid-1", ProviderRefreshAt: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	f := fx.stored(t, is.Family.ID)
	if string(f.Provider) != "sealed" || f.ProviderSID != "sid-1" || !f.ProviderRefreshAt.Equal(at) || f.Policy != "shop" ||
		f.Claims.JSON() != `{"email":"a@example.com"}` || !f.LeaseUntil.IsZero() || f.Generation != 1 {
		t.Fatalf("stored family %+v", f)
	}
	plain, err := fx.m.Start(t.Context(), "bob", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := fx.stored(t, plain.Family.ID); f.Provider != nil || f.ProviderSID != "" || !f.ProviderRefreshAt.IsZero() {
		t.Fatalf("Start stored provider fields: %+v", f)
	}
	if _, err := fx.m.StartLogin(t.Context(), session.Login{Provider: []byte("x")}); err == nil {
		t.Fatal("StartLogin without a subject succeeded")
	}
}

// A provider that never answers is given up when the lease ends, exactly:
// the lease is released, the family otherwise unchanged, and the next
// refresh works.
func TestProviderCallBoundedByLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &storetest.FakeProvider{Block: make(chan struct{})}
		mem := memstore.New(nil)
		m := session.New(mem, lt, nil, session.WithProvider(p, lease))
		s0 := providerLogin(t, m, p)
		start := time.Now()
		_, err := m.Refresh(t.Context(), s0.RefreshToken, "")
		if !errors.Is(err, session.ErrProviderUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Refresh = %v, want ErrProviderUnavailable (the provider's timeout is not the caller's)", err)
		}
		if took := time.Since(start); took != lease {
			t.Fatalf("gave up after %v, want the lease, %v", took, lease)
		}
		m.Wait()
		f, _ := mem.Get(t.Context(), s0.Family.ID)
		if f.Version != 3 || !f.LeaseUntil.IsZero() || f.Generation != 1 || string(f.Provider) != "rt-0" {
			t.Fatalf("family: version %d, lease %v, generation %d, provider %q; want the lease taken and released, nothing else", f.Version, f.LeaseUntil, f.Generation, f.Provider)
		}
		if m.Failing() {
			t.Fatal("a provider outage marked the store failing")
		}
		p.Block = nil
		if s1, err := m.Refresh(t.Context(), s0.RefreshToken, ""); err != nil || !s1.Rotated || p.Reuses() != 0 {
			t.Fatalf("next Refresh = rotated %t, %v, %d reuses", s1.Rotated, err, p.Reuses())
		}
	})
}

// A request meeting another replica's lease waits within its own
// deadline: ErrProviderUnavailable at the deadline (the store is not
// failing), and after the holder's commit, the same successor.
func TestProviderWaiterBoundedByDeadline(t *testing.T) {
	for _, sf := range []bool{true, false} {
		t.Run(fmt.Sprint("singleflight=", sf), func(t *testing.T) { testProviderWaiterBoundedByDeadline(t, sf) })
	}
}

func testProviderWaiterBoundedByDeadline(t *testing.T, sf bool) {
	synctest.Test(t, func(t *testing.T) {
		p := &storetest.FakeProvider{Delay: 2 * time.Second}
		mem := memstore.New(nil)
		a := session.New(mem, lt, nil, session.WithProvider(p, 5*time.Second))
		b := session.New(mem, lt, nil, session.WithProvider(p, 5*time.Second))
		if !sf {
			session.NoSingleflight(b)
		}
		s0 := providerLogin(t, a, p)
		holder := make(chan session.Issued, 1)
		go func() {
			is, err := a.Refresh(context.Background(), s0.RefreshToken, "")
			if err != nil {
				t.Errorf("holder: %v", err)
			}
			holder <- is
		}()
		synctest.Wait() // the holder is in the provider call

		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := b.Refresh(ctx, s0.RefreshToken, "")
		if !errors.Is(err, session.ErrProviderUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("waiter = %v, want ErrProviderUnavailable with its deadline", err)
		}
		if took := time.Since(start); took != 500*time.Millisecond || b.Failing() {
			t.Fatalf("waiter gave up after %v, store failing %t; want 500ms, not failing", took, b.Failing())
		}
		is, err := b.Refresh(t.Context(), s0.RefreshToken, "")
		if err != nil || is.Rotated || is.RefreshToken != (<-holder).RefreshToken {
			t.Fatalf("waiter without deadline = rotated %t, %v; want the holder's successor", is.Rotated, err)
		}
		if took := time.Since(start); took < 2*time.Second || took > 2*time.Second+25*time.Millisecond {
			t.Fatalf("waiter got it %v after the start, want within a poll (25ms) of the commit at 2s", took)
		}
		if p.Calls() != 1 || p.Reuses() != 0 {
			t.Fatalf("%d provider calls, %d reuses; want 1, 0", p.Calls(), p.Reuses())
		}
	})
}

// refresherFunc is a ProviderRefresher of a function.
type refresherFunc func(ctx context.Context, f *store.Family) ([]byte, time.Time, error)

func (r refresherFunc) RefreshProvider(ctx context.Context, f *store.Family) ([]byte, time.Time, error) {
	return r(ctx, f)
}

// A holder that outlives its lease (its provider ignores the deadline)
// while another replica takes over: the first commit wins, the late
// holder's tokens are dropped, and both requests end with the same
// successor.
//
// The late holder's answer may also be the provider refusing the tokens it
// presented, spent meanwhile by the replica that took over: that does not
// revoke the session either.
func TestProviderFirstCommitWins(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error // the late holder's answer
	}{
		{"late tokens dropped", nil},
		{"late refusal ignored", fmt.Errorf("invalid_grant: %w", session.ErrProviderGrant)},
	} {
		t.Run(tc.name, func(t *testing.T) { testProviderFirstCommitWins(t, tc.err) })
	}
}

func testProviderFirstCommitWins(t *testing.T, lateErr error) {
	synctest.Test(t, func(t *testing.T) {
		mem := memstore.New(nil)
		slow := refresherFunc(func(context.Context, *store.Family) ([]byte, time.Time, error) {
			time.Sleep(2 * lease) // a provider that ignores the context
			if lateErr != nil {
				return nil, time.Time{}, lateErr
			}
			return []byte("from-slow"), time.Now().Add(time.Hour), nil
		})
		fast := refresherFunc(func(context.Context, *store.Family) ([]byte, time.Time, error) {
			return []byte("from-fast"), time.Now().Add(time.Hour), nil
		})
		a := session.New(mem, lt, nil, session.WithProvider(slow, lease))
		b := session.New(mem, lt, nil, session.WithProvider(fast, lease))
		s0, err := a.StartLogin(t.Context(), session.Login{Subject: "alice", Provider: []byte("from-login"), ProviderRefreshAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		late := make(chan session.Issued, 1)
		go func() {
			is, err := a.Refresh(context.Background(), s0.RefreshToken, "")
			if err != nil {
				t.Errorf("late holder: %v", err)
			}
			late <- is
		}()
		synctest.Wait()
		time.Sleep(lease) // a's lease has run out
		taken, err := b.Refresh(t.Context(), s0.RefreshToken, "")
		if err != nil || !taken.Rotated {
			t.Fatalf("take-over = rotated %t, %v", taken.Rotated, err)
		}
		is := <-late
		if is.RefreshToken != taken.RefreshToken || is.Rotated {
			t.Fatalf("late holder = rotated %t, same %t; want the first commit's successor", is.Rotated, is.RefreshToken == taken.RefreshToken)
		}
		f, _ := mem.Get(t.Context(), s0.Family.ID)
		if string(f.Provider) != "from-fast" || f.Generation != 2 || !f.LeaseUntil.IsZero() || !f.RevokedAt.IsZero() {
			t.Fatalf("family: provider %q, generation %d, lease %v, revoked %v; want the first commit, live", f.Provider, f.Generation, f.LeaseUntil, f.RevokedAt)
		}
	})
}

// A lease-holding commit that meets an unrelated change (a confirmation
// of the current secret) merges it and commits on top.
func TestProviderCommitMergesUnrelatedChange(t *testing.T) {
	fx := newFixture(lt)
	p := &storetest.FakeProvider{Now: fx.clk.Now, RefreshAfter: time.Hour, Started: make(chan struct{}, 1), Block: make(chan struct{})}
	m := session.New(fx.st, lt, fx.clk.Now, session.WithProvider(p, lease))
	s0, err := m.StartLogin(t.Context(), session.Login{Subject: "alice", Provider: p.Issue(), ProviderRefreshAt: epoch})
	if err != nil {
		t.Fatal(err)
	}
	// An older generation, so that a confirmation has something to set.
	f := fx.stored(t, s0.Family.ID)
	g := f.Clone()
	g.CurrentSeen, g.Version = false, f.Version+1
	if err := fx.mem.Swap(t.Context(), f.Version, g); err != nil {
		t.Fatal(err)
	}
	done := make(chan session.Issued, 1)
	go func() {
		is, err := m.Refresh(t.Context(), s0.RefreshToken, "")
		if err != nil {
			t.Errorf("Refresh: %v", err)
		}
		done <- is
	}()
	<-p.Started
	if err := fx.m.Confirm(t.Context(), s0.RefreshToken); err != nil { // bumps the version under the lease
		t.Fatal(err)
	}
	close(p.Block)
	is := <-done
	if !is.Rotated {
		t.Fatal("not rotated")
	}
	f = fx.stored(t, s0.Family.ID)
	if string(f.Provider) != "rt-1" || f.Generation != 2 || !f.LeaseUntil.IsZero() || f.Version != 5 {
		t.Fatalf("family: provider %q, generation %d, lease %v, version %d; want the commit on top of the confirmation", f.Provider, f.Generation, f.LeaseUntil, f.Version)
	}
	if fx.st.conflicts.Load() != 1 {
		t.Fatalf("%d conflicts, want the one the confirmation caused", fx.st.conflicts.Load())
	}
}

// BenchmarkRefreshWithProvider measures a rotation that refreshes the
// provider tokens (a fake provider answering at once), beside
// BenchmarkRefresh's plain rotation: the lease and the commit are two
// swaps instead of one.
func BenchmarkRefreshWithProvider(b *testing.B) {
	for _, provider := range []bool{false, true} {
		b.Run(fmt.Sprint("provider=", provider), func(b *testing.B) {
			clk := fakeclock.New(epoch)
			p := &storetest.FakeProvider{Now: clk.Now} // due again at once
			m := session.New(memstore.New(clk.Now), lt, clk.Now, session.WithProvider(p, lease))
			ctx := context.Background()
			l := session.Login{Subject: "alice", Claims: map[string]any{"email": "ada@example.com"}}
			if provider {
				l.Provider, l.ProviderRefreshAt = p.Issue(), epoch
			}
			is, err := m.StartLogin(ctx, l)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if is, err = m.Refresh(ctx, is.RefreshToken, ""); err != nil || !is.Rotated {
					b.Fatal(err)
				}
			}
			if provider && (p.Calls() < int64(b.N) || !bytes.HasPrefix(is.Family.Provider, []byte("rt-"))) {
				b.Fatalf("%d provider calls for %d rotations", p.Calls(), b.N)
			}
		})
	}
}
