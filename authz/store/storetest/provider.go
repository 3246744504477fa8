package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

// FakeProvider is a session.ProviderRefresher modelling an identity
// provider with strict one-time refresh tokens: a family's sealed tokens
// are its provider refresh token in clear ("rt-0", "rt-1", …); each
// refresh consumes the token it is given and issues the next. A token used
// a second time is a reuse the provider sees (Reuses counts them; the
// answer is invalid_grant, ErrProviderGrant), as is one it never issued.
// Set the fields before use; the methods are safe for concurrent use.
type FakeProvider struct {
	// Delay is how long a refresh takes (the timer honours the context,
	// so synctest drives it).
	Delay time.Duration
	// Now gives the time RefreshAt is counted from (time.Now if nil).
	Now func() time.Time
	// RefreshAfter is when the new tokens are due, from Now (0: due at
	// once again).
	RefreshAfter time.Duration
	// Fail, when it returns an error, fails the call instead (before the
	// token is consumed): an outage, or ErrProviderGrant for a dead grant.
	Fail func() error
	// Started, if set, receives a value when a call begins.
	Started chan struct{}
	// Block, if set, holds every call until it is closed or the call's
	// context ends (then the call fails with the context's error).
	Block chan struct{}

	calls, reuses atomic.Int64
	mu            sync.Mutex
	issued        map[string]bool // token → consumed
	next          int
}

// Issue returns a fresh provider refresh token, as the provider's token
// endpoint does at login: the Provider bytes of a new family.
func (p *FakeProvider) Issue() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return []byte(p.issueLocked())
}

func (p *FakeProvider) issueLocked() string {
	if p.issued == nil {
		p.issued = make(map[string]bool)
	}
	rt := fmt.Sprint("rt-", p.next)
	p.next++
	p.issued[rt] = false
	return rt
}

// Calls is how many refreshes were asked for.
func (p *FakeProvider) Calls() int64 { return p.calls.Load() }

// Reuses is how many refreshes presented a consumed or unknown token.
func (p *FakeProvider) Reuses() int64 { return p.reuses.Load() }

// RefreshProvider implements session.ProviderRefresher.
func (p *FakeProvider) RefreshProvider(ctx context.Context, f *store.Family) ([]byte, time.Time, error) {
	p.calls.Add(1)
	if p.Started != nil {
		p.Started <- struct{}{}
	}
	if p.Block != nil {
		select {
		case <-p.Block:
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		}
	}
	if p.Delay > 0 {
		t := time.NewTimer(p.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, time.Time{}, ctx.Err()
		}
	}
	if p.Fail != nil {
		if err := p.Fail(); err != nil {
			return nil, time.Time{}, err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rt := string(f.Provider)
	if consumed, ok := p.issued[rt]; !ok || consumed {
		p.reuses.Add(1)
		return nil, time.Time{}, fmt.Errorf("fake provider: refresh token %q reused: invalid_grant: %w", rt, session.ErrProviderGrant)
	}
	p.issued[rt] = true
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	return []byte(p.issueLocked()), now().Add(p.RefreshAfter), nil
}

var errOutage = errors.New("fake provider: 503 service unavailable")

// providerLease is the lease RunSession's provider tests use.
const providerLease = 10 * time.Second

// startLogin starts a family by provider login, its provider tokens due
// after due.
func startLogin(ctx context.Context, m *session.Manager, p *FakeProvider, now time.Time, due time.Duration) (session.Issued, error) {
	return m.StartLogin(ctx, session.Login{
		Subject: "alice", Claims: map[string]any{"email": "ada@example.com"},
		Provider: p.Issue(), ProviderSID: "sid-1", ProviderRefreshAt: now.Add(due),
	})
}

// leaseSeenStore counts the reads that found a family under a lease.
type leaseSeenStore struct {
	store.Store
	leased atomic.Int64
}

func (s *leaseSeenStore) Get(ctx context.Context, id string) (*store.Family, error) {
	f, err := s.Store.Get(ctx, id)
	if err == nil && !f.LeaseUntil.IsZero() {
		s.leased.Add(1)
	}
	return f, err
}

// newProviderManager is one replica refreshing provider tokens with p.
func newProviderManager(st store.Store, clk func() time.Time, p *FakeProvider) *session.Manager {
	return session.New(st, lifetimes, clk, session.WithProvider(p, providerLease))
}

// testProviderRefreshOnceAcrossReplicas: 50 requests carrying the same
// due token, spread over two replicas, while the provider takes 75 ms.
// Exactly one calls the provider; every request gets the same successor;
// the provider never sees a refresh token twice.
func testProviderRefreshOnceAcrossReplicas(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	const n = 50
	p := &FakeProvider{Delay: 75 * time.Millisecond, Now: clk.Now, RefreshAfter: 5 * time.Minute}
	seen := &leaseSeenStore{Store: st}
	replicas := []*session.Manager{newProviderManager(seen, clk.Now, p), newProviderManager(seen, clk.Now, p)}
	s0, err := startLogin(t.Context(), replicas[0], p, clk.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	successor, rotated := refreshAtOnce(t, n, s0.RefreshToken, func(i int) *session.Manager { return replicas[i%2] })
	if rotated != 1 || p.Calls() != 1 || p.Reuses() != 0 {
		t.Fatalf("%d rotated, %d provider calls, %d provider reuses; want 1, 1, 0", rotated, p.Calls(), p.Reuses())
	}
	if seen.leased.Load() == 0 {
		t.Fatal("no request read the family under the lease: the replicas never raced")
	}
	f, err := st.Get(t.Context(), s0.Family.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Provider) != "rt-1" || !f.ProviderRefreshAt.Equal(clk.Now().Add(5*time.Minute)) ||
		!f.LeaseUntil.IsZero() || f.Generation != 2 || f.ProviderSID != "sid-1" {
		t.Fatalf("family after the refresh: provider %q due %v, lease %v, generation %d, sid %q",
			f.Provider, f.ProviderRefreshAt, f.LeaseUntil, f.Generation, f.ProviderSID)
	}
	// The new provider tokens are not due yet: a plain rotation.
	if s2, err := replicas[1].Refresh(t.Context(), successor, ""); err != nil || !s2.Rotated || p.Calls() != 1 {
		t.Fatalf("next refresh = rotated %t, %v, %d provider calls; want a rotation without the provider", s2.Rotated, err, p.Calls())
	}
}

// testProviderGrantEnded: the provider refuses the grant: the family is
// revoked for that reason and the token no longer refreshes.
func testProviderGrantEnded(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	p := &FakeProvider{Now: clk.Now, Fail: func() error { return fmt.Errorf("invalid_grant: %w", session.ErrProviderGrant) }}
	m := newProviderManager(st, clk.Now, p)
	s0, err := startLogin(t.Context(), m, p, clk.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Refresh(t.Context(), s0.RefreshToken, ""); !errors.Is(err, session.ErrProviderGrant) || errors.Is(err, session.ErrProviderUnavailable) {
		t.Fatalf("Refresh = %v, want ErrProviderGrant", err)
	}
	f, err := st.Get(t.Context(), s0.Family.ID)
	if err != nil || f.RevokedAt.IsZero() || f.RevokeReason != "provider" || f.Generation != 1 {
		t.Fatalf("family = revoked %v (%q), generation %d, %v; want revoked for provider, not rotated", f.RevokedAt, f.RevokeReason, f.Generation, err)
	}
	if _, err := m.Refresh(t.Context(), s0.RefreshToken, ""); !errors.Is(err, session.ErrRevoked) || p.Calls() != 1 {
		t.Fatalf("second Refresh = %v after %d provider calls; want ErrRevoked after 1", err, p.Calls())
	}
}

// testProviderOutage: a provider failure changes nothing but the lease
// taken and released (two versions), and the next refresh works.
func testProviderOutage(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	var down atomic.Bool
	down.Store(true)
	p := &FakeProvider{Now: clk.Now, RefreshAfter: time.Minute, Fail: func() error {
		if down.Load() {
			return errOutage
		}
		return nil
	}}
	m := newProviderManager(st, clk.Now, p)
	s0, err := startLogin(t.Context(), m, p, clk.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	before, err := st.Get(t.Context(), s0.Family.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Refresh(t.Context(), s0.RefreshToken, "")
	if !errors.Is(err, session.ErrProviderUnavailable) || errors.Is(err, session.ErrProviderGrant) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Refresh during the outage = %v, want ErrProviderUnavailable", err)
	}
	want := before.Clone()
	want.Version += 2 // lease taken, lease released
	mustMatch(t, st, want)
	if after, _ := st.Get(t.Context(), s0.Family.ID); !after.LeaseUntil.IsZero() {
		t.Fatalf("lease kept after the outage: %v", after.LeaseUntil)
	}

	down.Store(false)
	s1, err := m.Refresh(t.Context(), s0.RefreshToken, "")
	if err != nil || !s1.Rotated || p.Calls() != 2 || p.Reuses() != 0 {
		t.Fatalf("Refresh after the outage = rotated %t, %v, %d calls, %d reuses; want a rotation, 2 calls, no reuse", s1.Rotated, err, p.Calls(), p.Reuses())
	}
	if f, _ := st.Get(t.Context(), s0.Family.ID); string(f.Provider) != "rt-1" {
		t.Fatalf("provider tokens %q, want rt-1", f.Provider)
	}
}

// testProviderDeadHolder: a lease left in the store by a replica that
// died holds others off until it runs out (a request bounded by its
// deadline gets ErrProviderUnavailable, no provider call); then the next
// request takes over with the stored tokens.
func testProviderDeadHolder(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	p := &FakeProvider{Now: clk.Now, RefreshAfter: time.Minute}
	m := newProviderManager(st, clk.Now, p)
	s0, err := startLogin(t.Context(), m, p, clk.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := st.Get(t.Context(), s0.Family.ID)
	if err != nil {
		t.Fatal(err)
	}
	dead := f.Clone()
	dead.LeaseUntil, dead.Version = clk.Now().Add(providerLease), f.Version+1
	if err := st.Swap(t.Context(), f.Version, dead); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	if _, err := m.Refresh(ctx, s0.RefreshToken, ""); !errors.Is(err, session.ErrProviderUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Refresh under another's lease = %v, want ErrProviderUnavailable with the deadline", err)
	}
	if p.Calls() != 0 {
		t.Fatalf("%d provider calls under another's lease", p.Calls())
	}
	clk.Advance(providerLease) // the lease has run out
	s1, err := m.Refresh(t.Context(), s0.RefreshToken, "")
	if err != nil || !s1.Rotated || p.Calls() != 1 || p.Reuses() != 0 {
		t.Fatalf("Refresh after the lease = rotated %t, %v, %d calls, %d reuses; want a rotation by one call", s1.Rotated, err, p.Calls(), p.Reuses())
	}
}

// testProviderCallerLeaves: the request that called the provider leaves
// mid-call; the provider's answer is still committed with our rotation, a
// replay of the same token (on any replica) gets that successor, and the
// provider never sees a token twice.
func testProviderCallerLeaves(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	p := &FakeProvider{Now: clk.Now, RefreshAfter: time.Minute, Started: make(chan struct{}, 1), Block: make(chan struct{})}
	m := newProviderManager(st, clk.Now, p)
	s0, err := startLogin(t.Context(), m, p, clk.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := m.Refresh(ctx, s0.RefreshToken, "")
		errc <- err
	}()
	<-p.Started
	cancel()
	if err := <-errc; !errors.Is(err, session.ErrProviderUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Refresh of a caller that left = %v, want ErrProviderUnavailable with its cancellation", err)
	}
	close(p.Block)
	m.Wait()
	f, err := st.Get(t.Context(), s0.Family.ID)
	if err != nil || string(f.Provider) != "rt-1" || f.Generation != 2 || !f.LeaseUntil.IsZero() {
		t.Fatalf("family = provider %q, generation %d, lease %v, %v; want the answer committed", f.Provider, f.Generation, f.LeaseUntil, err)
	}
	other := newProviderManager(st, clk.Now, p)
	r1, err := m.Refresh(t.Context(), s0.RefreshToken, "")
	if err != nil || r1.Rotated {
		t.Fatalf("replay = rotated %t, %v; want the committed successor", r1.Rotated, err)
	}
	if r2, err := other.Refresh(t.Context(), s0.RefreshToken, ""); err != nil || r2.RefreshToken != r1.RefreshToken {
		t.Fatalf("replay on another replica = same %t, %v", r2.RefreshToken == r1.RefreshToken, err)
	}
	if s2, err := other.Refresh(t.Context(), r1.RefreshToken, ""); err != nil || !s2.Rotated {
		t.Fatalf("the successor = rotated %t, %v; want a rotation", s2.Rotated, err)
	}
	if p.Calls() != 1 || p.Reuses() != 0 {
		t.Fatalf("%d provider calls, %d reuses; want 1, 0", p.Calls(), p.Reuses())
	}
}

// testProviderNotDue: no provider call before ProviderRefreshAt, none ever
// for a family without provider tokens; at ProviderRefreshAt exactly, one.
func testProviderNotDue(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	p := &FakeProvider{Now: clk.Now, RefreshAfter: time.Hour}
	m := newProviderManager(st, clk.Now, p)
	due, err := startLogin(t.Context(), m, p, clk.Now(), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := m.Start(t.Context(), "bob", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	rt, prt := due.RefreshToken, plain.RefreshToken
	refresh := func(rt string) string {
		t.Helper()
		is, err := m.Refresh(t.Context(), rt, "")
		if err != nil || !is.Rotated {
			t.Fatalf("Refresh = rotated %t, %v", is.Rotated, err)
		}
		return is.RefreshToken
	}
	for range 3 {
		rt, prt = refresh(rt), refresh(prt)
		clk.Advance(time.Minute)
	}
	if p.Calls() != 0 {
		t.Fatalf("%d provider calls before ProviderRefreshAt", p.Calls())
	}
	clk.Advance(2 * time.Minute) // ProviderRefreshAt itself
	rt, prt = refresh(rt), refresh(prt)
	if p.Calls() != 1 {
		t.Fatalf("%d provider calls at ProviderRefreshAt, want 1", p.Calls())
	}
	refresh(rt)
	refresh(prt)
	if p.Calls() != 1 {
		t.Fatalf("%d provider calls, want 1", p.Calls())
	}
	if f, _ := st.Get(t.Context(), plain.Family.ID); f.Provider != nil || f.ProviderSID != "" || !f.ProviderRefreshAt.IsZero() {
		t.Fatalf("a family without provider login gained provider fields: %+v", f)
	}
}
