package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

// lifetimes used by RunSession.
var lifetimes = session.Lifetimes{Idle: time.Hour, Absolute: 4 * time.Hour, Grace: 30 * time.Second}

// RunSession drives session.Manager over the backend newStore builds: the
// refresh rules of RFC 9700 §4.14.2 must hold whatever keeps the records,
// including when replicas (one Manager each, so no shared singleflight)
// race on the same token, and so must the provider-token refresh under one
// lease (session.WithProvider, with FakeProvider).
func RunSession(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, st store.Store, clk *fakeclock.Clock)
	}{
		{"RotateGraceReuse", testSessionLifecycle},
		{"Reuse100GenerationsBack", testSessionReuseFarBack},
		{"ForgedMACNeverRevokes", testSessionForged},
		{"KeyRotationLogsNobodyOut", testSessionKeyRotation},
		{"RetiredKeyRefreshesUntilIdleTTL", testSessionRefreshHorizon},
		{"ReplicasRace50", testSessionReplicas},
		{"RevokeSubject", testSessionRevokeSubject},
		{"RevokeSID", testSessionRevokeSID},
		{"AbsoluteExpiry", testSessionExpiry},
		{"Policy", testSessionPolicy},
		{"ClaimsExact", testSessionClaimsExact},
		{"ProviderRefreshOnceAcrossReplicas", testProviderRefreshOnceAcrossReplicas},
		{"ProviderGrantEndedRevokes", testProviderGrantEnded},
		{"ProviderOutageChangesNothing", testProviderOutage},
		{"ProviderLeaseOfDeadHolderRunsOut", testProviderDeadHolder},
		{"ProviderAnswerCommittedAfterCallerLeft", testProviderCallerLeaves},
		{"ProviderRefreshOnlyWhenDue", testProviderNotDue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			tc.run(t, newStore(t, clk.Now), clk)
		})
	}
}

func testSessionLifecycle(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	ctx := t.Context()
	m := session.New(st, lifetimes, clk.Now)
	s0, err := m.Start(ctx, "alice", "", map[string]any{"email": "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := m.Refresh(ctx, s0.RefreshToken, "")
	if err != nil || !s1.Rotated || s1.RefreshToken == s0.RefreshToken {
		t.Fatalf("Refresh = rotated %v, %v; want a new token", s1.Rotated, err)
	}
	clk.Advance(10 * time.Second)
	replay, err := m.Refresh(ctx, s0.RefreshToken, "")
	if err != nil || replay.Rotated || replay.RefreshToken != s1.RefreshToken {
		t.Fatalf("grace replay = rotated %v, same %v, %v; want the same successor", replay.Rotated, replay.RefreshToken == s1.RefreshToken, err)
	}
	clk.Advance(lifetimes.Grace)
	// Nobody has presented s1 yet (its answer may have been lost): s0 still
	// yields it, however late.
	late, err := m.Refresh(ctx, s0.RefreshToken, "")
	if err != nil || late.Rotated || late.RefreshToken != s1.RefreshToken {
		t.Fatalf("replay after grace, successor unseen = rotated %v, same %v, %v; want the same successor", late.Rotated, late.RefreshToken == s1.RefreshToken, err)
	}
	if err := m.Confirm(ctx, s1.RefreshToken); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	if f, err := st.Get(ctx, s0.Family.ID); err != nil || !f.CurrentSeen || f.Generation != 2 {
		t.Fatalf("after Confirm: %+v, %v; want generation 2 seen", f, err)
	}
	if _, err := m.Refresh(ctx, s0.RefreshToken, ""); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("replay after grace, successor seen: %v, want ErrReuse", err)
	}
	if _, err := m.Refresh(ctx, s1.RefreshToken, ""); !errors.Is(err, session.ErrRevoked) {
		t.Fatalf("newest token after reuse: %v, want ErrRevoked", err)
	}
	f, err := st.Get(ctx, s0.Family.ID)
	if err != nil || f.RevokedAt.IsZero() || f.RevokeReason != "reuse" {
		t.Fatalf("family after reuse: %+v, %v; want revoked for reuse", f, err)
	}
}

// testSessionReplicas: 50 replicas read the family, then all rotate at
// once. The store's compare-and-swap alone must let exactly one rotate; the
// 49 others lose the swap, read again and take the grace path to the
// identical successor.
func testSessionReplicas(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	const n = 50
	s0, err := session.New(st, lifetimes, clk.Now).Start(t.Context(), "alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	bst := &barrierStore{Store: st, n: n}
	bst.read.Add(n)
	_, rotated := refreshAtOnce(t, n, s0.RefreshToken, func(int) *session.Manager {
		return session.New(bst, lifetimes, clk.Now) // one per replica
	})
	if rotated != 1 {
		t.Fatalf("%d replicas rotated, want exactly 1", rotated)
	}
	if c := bst.conflicts.Load(); c != n-1 {
		t.Fatalf("%d swaps lost the compare-and-swap, want %d", c, n-1)
	}
	f, err := st.Get(t.Context(), s0.Family.ID)
	if err != nil || f.Version != 2 || !f.RevokedAt.IsZero() {
		t.Fatalf("family after the race: version %d, revoked %v, %v; want version 2, live", f.Version, f.RevokedAt, err)
	}
}

// barrierStore holds the first n Gets until all n have read, so that n
// replicas really swap from the same version; it counts lost swaps.
type barrierStore struct {
	store.Store
	n         int64
	gets      atomic.Int64
	read      sync.WaitGroup
	conflicts atomic.Int64
}

func (s *barrierStore) Get(ctx context.Context, id string) (*store.Family, error) {
	f, err := s.Store.Get(ctx, id)
	if s.gets.Add(1) <= s.n {
		s.read.Done()
		s.read.Wait()
	}
	return f, err
}

func (s *barrierStore) Swap(ctx context.Context, expected uint64, next *store.Family) error {
	err := s.Store.Swap(ctx, expected, next)
	if errors.Is(err, store.ErrConflict) {
		s.conflicts.Add(1)
	}
	return err
}

// testSessionRevokeSID: back-channel logout of one provider session
// revokes every family started from it, on two replicas at once, each
// reported to the hook once; other provider sessions go on refreshing.
func testSessionRevokeSID(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	ctx := t.Context()
	var mu sync.Mutex
	reported := map[string]int{}
	hook := session.OnRevoke(func(r session.Revocation) {
		mu.Lock()
		defer mu.Unlock()
		if r.Cause == session.CauseBackChannel && r.ProviderSID == "op-sid-1" {
			reported[r.Family]++
		}
	})
	a, b := session.New(st, lifetimes, clk.Now, hook), session.New(st, lifetimes, clk.Now, hook)
	start := func(subject, sid string) session.Issued {
		t.Helper()
		is, err := a.StartLogin(ctx, session.Login{Subject: subject, Provider: []byte("sealed"), ProviderSID: sid, UserAgent: "ua", ClientAddress: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	ended := []session.Issued{start("alice", "op-sid-1"), start("alice", "op-sid-1"), start("bob", "op-sid-1")}
	other := start("alice", "op-sid-2")
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, m := range []*session.Manager{a, b} {
		wg.Go(func() {
			n, err := m.RevokeSID(ctx, "op-sid-1", session.CauseBackChannel, time.Time{})
			if err != nil {
				t.Errorf("RevokeSID: %v", err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != 3 {
		t.Fatalf("RevokeSID revoked %v families on the two replicas, want 3 in all", counts)
	}
	for _, is := range ended {
		if _, err := a.Refresh(ctx, is.RefreshToken, ""); !errors.Is(err, session.ErrRevoked) {
			t.Errorf("Refresh after back-channel logout: %v, want ErrRevoked", err)
		}
		if reported[is.Family.ID] != 1 {
			t.Errorf("family %s reported %d times, want once", is.Family.ID, reported[is.Family.ID])
		}
	}
	if _, err := a.Refresh(ctx, other.RefreshToken, ""); err != nil {
		t.Errorf("another provider session: %v", err)
	}
	if n, err := a.RevokeSID(ctx, "op-sid-unknown", "", time.Time{}); n != 0 || err != nil {
		t.Errorf("RevokeSID(unknown) = %d, %v", n, err)
	}
}

func testSessionRevokeSubject(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	ctx := t.Context()
	m := session.New(st, lifetimes, clk.Now)
	var alice []session.Issued
	for range 3 {
		s, err := m.Start(ctx, "alice", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		alice = append(alice, s)
	}
	bob, err := m.Start(ctx, "bob", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Logout(ctx, alice[0].RefreshToken); err != nil {
		t.Fatal(err)
	}
	if n, err := m.RevokeSubject(ctx, "alice", session.CauseAdmin, time.Time{}); n != 2 || err != nil {
		t.Fatalf("RevokeSubject = %d, %v; want 2 (one was already revoked)", n, err)
	}
	fams, err := m.List(ctx, "alice")
	if err != nil || len(fams) != 3 {
		t.Fatalf("List = %d families, %v; want 3", len(fams), err)
	}
	for _, f := range fams {
		if f.RevokedAt.IsZero() {
			t.Errorf("family %s still live", f.ID)
		}
	}
	for _, s := range alice {
		if _, err := m.Refresh(ctx, s.RefreshToken, ""); !errors.Is(err, session.ErrRevoked) {
			t.Errorf("Refresh of a revoked family: %v, want ErrRevoked", err)
		}
	}
	if _, err := m.Refresh(ctx, bob.RefreshToken, ""); err != nil {
		t.Fatalf("bob's session was touched: %v", err)
	}
}

// testSessionExpiry: constant activity never extends the absolute lifetime;
// once it has passed the store forgets the family.
func testSessionExpiry(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	ctx := t.Context()
	m := session.New(st, lifetimes, clk.Now)
	s, err := m.Start(ctx, "alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	absolute := s.Family.AbsoluteExpiresAt
	for clk.Now().Add(45 * time.Minute).Before(absolute) {
		clk.Advance(45 * time.Minute)
		if s, err = m.Refresh(ctx, s.RefreshToken, ""); err != nil {
			t.Fatalf("Refresh at %v: %v", clk.Now().Sub(base), err)
		}
		if s.Family.IdleExpiresAt.After(absolute) || !s.Family.AbsoluteExpiresAt.Equal(absolute) {
			t.Fatalf("rotation moved lifetimes: idle %v, absolute %v, want ≤ %v", s.Family.IdleExpiresAt, s.Family.AbsoluteExpiresAt, absolute)
		}
	}
	clk.Advance(absolute.Sub(clk.Now()))
	if _, err := m.Refresh(ctx, s.RefreshToken, ""); !errors.Is(err, session.ErrExpired) {
		t.Fatalf("Refresh at the absolute deadline: %v, want ErrExpired", err)
	}
	clk.Advance(time.Second)
	if _, err := m.Refresh(ctx, s.RefreshToken, ""); !errors.Is(err, session.ErrUnknown) {
		t.Fatalf("Refresh past the absolute deadline: %v, want ErrUnknown (dropped by the store)", err)
	}
}

// testSessionPolicy: the policy a family was started for survives the
// store and every rotation; another policy's refresh, on another replica,
// writes nothing, unless that policy accepts the family's sessions.
func testSessionPolicy(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	ctx := t.Context()
	s0, err := session.New(st, lifetimes, clk.Now).Start(ctx, "alice", "shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	other := session.New(st, lifetimes, clk.Now) // another replica
	if _, err := other.Refresh(ctx, s0.RefreshToken, "admin"); !errors.Is(err, session.ErrOtherPolicy) {
		t.Fatalf("shop session refreshed for admin: %v, want ErrOtherPolicy", err)
	}
	if f, err := st.Get(ctx, s0.Family.ID); err != nil || f.Version != 1 || f.Policy != "shop" {
		t.Fatalf("after a refused refresh: %+v, %v; want version 1, policy shop", f, err)
	}
	sharing := session.New(st, lifetimes, clk.Now, session.AcceptSessions(func(policy, from string) bool {
		return policy == "admin" && from == "shop"
	}))
	s1, err := sharing.Refresh(ctx, s0.RefreshToken, "admin")
	if err != nil || !s1.Rotated || s1.Family.Policy != "shop" {
		t.Fatalf("accepted refresh: %v, %v", s1, err)
	}
	if f, err := st.Get(ctx, s0.Family.ID); err != nil || f.Version != 2 || f.Policy != "shop" {
		t.Fatalf("after rotation: %+v, %v; want version 2, policy shop", f, err)
	}
}

// testSessionClaimsExact: claims come back from every rotation and grace
// replay with the digits they were started with, so each refresh mints the
// same identity (a float64 would make uid 1541815603606036481 into
// 1541815603606036500).
func testSessionClaimsExact(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	ctx := t.Context()
	claims := func() map[string]any {
		return map[string]any{
			"uid": json.Number("1541815603606036481"), "ratio": json.Number("1.5"), "huge": json.Number("1e400"),
			"ids": []any{json.Number("1541815603606036481"), json.Number("-0")}, "org": map[string]any{"id": json.Number("9007199254740993")},
		}
	}
	m := session.New(st, lifetimes, clk.Now)
	s, err := m.Start(ctx, "alice", "", claims())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		clk.Advance(time.Minute)
		prev := s.RefreshToken
		if s, err = m.Refresh(ctx, prev, ""); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		if !reflect.DeepEqual(decoded(t, s.Family), claims()) {
			t.Fatalf("claims after refresh %d = %#v, want %#v", i, s.Family.Claims, claims())
		}
		replay, err := m.Refresh(ctx, prev, "") // within grace
		if err != nil || replay.Rotated || !reflect.DeepEqual(decoded(t, replay.Family), claims()) {
			t.Fatalf("claims after grace replay %d = %#v, %v; want %#v", i, replay.Family.Claims, err, claims())
		}
	}
	f, err := st.Get(ctx, s.Family.ID)
	if err != nil || !reflect.DeepEqual(decoded(t, f), claims()) {
		t.Fatalf("stored claims = %#v, %v; want %#v", f.Claims, err, claims())
	}
}

// decoded returns f's claims as a map (nil when f is nil).
func decoded(t *testing.T, f *store.Family) map[string]any {
	t.Helper()
	if f == nil {
		return nil
	}
	m, err := f.Claims.Map()
	if err != nil {
		t.Fatalf("claims of %s: %v", f.ID, err)
	}
	return m
}

// refreshAtOnce presents the refresh token rt to n Refresh calls released
// together, the i-th on replica(i) (called before the release). Every call
// must succeed with one and the same successor, never rt itself; it
// returns that successor and how many of the calls rotated.
func refreshAtOnce(t *testing.T, n int, rt string, replica func(i int) *session.Manager) (successor string, rotated int) {
	t.Helper()
	var (
		start = make(chan struct{})
		wg    sync.WaitGroup
		got   = make([]session.Issued, n)
		errs  = make([]error, n)
	)
	for i := range n {
		m := replica(i)
		wg.Go(func() {
			<-start
			got[i], errs[i] = m.Refresh(context.Background(), rt, "")
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if got[i].Rotated {
			rotated++
		}
		if got[i].RefreshToken != got[0].RefreshToken || got[i].RefreshToken == rt {
			t.Fatalf("request %d got another successor", i)
		}
	}
	return got[0].RefreshToken, rotated
}

// testSessionReuseFarBack: every generation's secret is derivable by the
// server, so a token superseded 100 rotations ago is still recognised as
// issued, and its return revokes the family.
func testSessionReuseFarBack(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	ctx := t.Context()
	m := session.New(st, lifetimes, clk.Now)
	s0, err := m.Start(ctx, "alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	is := s0
	for range 100 {
		if is, err = m.Refresh(ctx, is.RefreshToken, ""); err != nil || !is.Rotated {
			t.Fatalf("rotation: %v", err)
		}
		if err := m.Confirm(ctx, is.RefreshToken); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(lifetimes.Grace)
	var re *session.ReuseError
	if _, err := m.Refresh(ctx, s0.RefreshToken, ""); !errors.As(err, &re) || re.Presented != 1 || re.Current != 101 {
		t.Fatalf("generation 1 of 101: %v, want reuse", err)
	}
	if f, err := st.Get(ctx, s0.Family.ID); err != nil || f.RevokeReason != session.CauseReuse || f.Secrets != nil || f.Successor != nil {
		t.Fatalf("after reuse: %+v, %v; want revoked for reuse, no secret material", f, err)
	}
}

// forge returns keyed token rt naming generation gen, its MAC altered.
func forge(t *testing.T, rt string, gen uint64) string {
	t.Helper()
	i := session.IDLength + 1
	b, err := base64.RawURLEncoding.DecodeString(rt[i:])
	if err != nil || len(b) != 44 {
		t.Fatalf("not a keyed token: %v", err)
	}
	binary.BigEndian.PutUint64(b, gen)
	b[20] ^= 0x01
	return rt[:i] + base64.RawURLEncoding.EncodeToString(b)
}

// testSessionForged: a token whose MAC does not verify is never issued,
// whatever generation it names: ErrUnknownSecret, nothing written, the
// family never revoked (nobody logs a user out by guessing).
func testSessionForged(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	ctx := t.Context()
	m := session.New(st, lifetimes, clk.Now)
	is, err := m.Start(ctx, "alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if is, err = m.Refresh(ctx, is.RefreshToken, ""); err != nil {
			t.Fatal(err)
		}
	}
	before, err := st.Get(ctx, is.Family.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, gen := range []uint64{1, 3, 4, 5, 1 << 40} {
		if _, err := m.Refresh(ctx, forge(t, is.RefreshToken, gen), ""); !errors.Is(err, session.ErrUnknownSecret) {
			t.Fatalf("forged MAC of generation %d: %v, want ErrUnknownSecret", gen, err)
		}
		if err := m.Logout(ctx, forge(t, is.RefreshToken, gen)); !errors.Is(err, session.ErrUnknownSecret) {
			t.Fatalf("logout with a forged MAC of generation %d: %v, want ErrUnknownSecret", gen, err)
		}
	}
	if after, err := st.Get(ctx, is.Family.ID); err != nil || after.Version != before.Version || !after.RevokedAt.IsZero() {
		t.Fatalf("after forgeries: %+v, %v; want unchanged", after, err)
	}
	if _, err := m.Refresh(ctx, is.RefreshToken, ""); err != nil {
		t.Fatalf("the rightful holder after forgeries: %v", err)
	}
}

// testSessionKeyRotation: a token made under the previous key refreshes
// while that key is in the ring, and its successor is made under the key
// in use; two replicas sharing the keys agree on every token.
func testSessionKeyRotation(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	ctx := t.Context()
	a, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.Generate(keys.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	ring := func(active *keys.Key, others ...*keys.Key) *keys.Keyring {
		r, err := keys.NewKeyring(active, others...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	src := new(keys.Holder)
	src.Store(ring(a))
	m1 := session.New(st, lifetimes, clk.Now, session.RefreshKeys(src))
	m2 := session.New(st, lifetimes, clk.Now, session.RefreshKeys(src)) // another replica
	s0, err := m1.Start(ctx, "alice", "", nil)
	if err != nil || s0.Family.RefreshKey != keyTag(a.ID) {
		t.Fatalf("Start: key %x, %v; want %s's tag", s0.Family.RefreshKey, err, a.ID)
	}
	src.Store(ring(b, a)) // b signs, a still verifies
	s1, err := m2.Refresh(ctx, s0.RefreshToken, "")
	if err != nil || !s1.Rotated || s1.Family.RefreshKey != keyTag(b.ID) {
		t.Fatalf("refresh of a token of the previous key: %v, key %x; want rotated under %s", err, s1.Family.RefreshKey, b.ID)
	}
	if again, err := m1.Refresh(ctx, s0.RefreshToken, ""); err != nil || again.RefreshToken != s1.RefreshToken {
		t.Fatalf("grace replay across the key rotation: same %v, %v", again.RefreshToken == s1.RefreshToken, err)
	}
	src.Store(ring(b)) // a leaves the ring
	s2, err := m1.Refresh(ctx, s1.RefreshToken, "")
	if err != nil || s2.Family.RefreshKey != keyTag(b.ID) {
		t.Fatalf("refresh under the new key alone: %v", err)
	}
	// A token whose key left the ring verifies no more: unknown, and it
	// revokes nothing (its family moved to the new key long ago).
	clk.Advance(lifetimes.Grace)
	if err := m1.Confirm(ctx, s2.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := m2.Refresh(ctx, s0.RefreshToken, ""); !errors.Is(err, session.ErrUnknownSecret) {
		t.Fatalf("token of a key gone from the ring: %v, want ErrUnknownSecret", err)
	}
	// Under a key still in the ring, an old generation is reuse.
	if _, err := m2.Refresh(ctx, s1.RefreshToken, ""); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("superseded token of the key in use: %v, want ErrReuse", err)
	}
}

// testSessionRefreshHorizon: a key retired in the keys Secret (still
// listed) keeps deriving refresh MACs until retire-at plus the sessions'
// idle TTL, so an old generation made under it is still reuse; past that
// horizon its tokens read as unknown and revoke nothing, while the family,
// which moved to the new key, lives on.
func testSessionRefreshHorizon(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	ctx := t.Context()
	a, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	l := keys.Lifecycle{AccessTTL: time.Minute, RefreshTTL: lifetimes.Idle}
	start := clk.Now()
	src := new(keys.Holder)
	ring := func(entries ...keys.Entry) {
		r, err := keys.NewSecretKeyring(entries, l, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		src.Store(r)
	}
	ring(keys.Entry{Name: "a", Key: a, ActivateAt: start.Add(-time.Hour)})
	m := session.New(st, lifetimes, clk.Now, session.RefreshKeys(src))
	s0, err := m.Start(ctx, "alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// b takes over now; a retires now and may refresh for lifetimes.Idle.
	retire := start
	ring(keys.Entry{Name: "a", Key: a, ActivateAt: start.Add(-time.Hour), RetireAt: retire},
		keys.Entry{Name: "b", Key: b, ActivateAt: start})
	is := s0
	for range 3 { // a rotation every 15 minutes keeps the family alive
		clk.Advance(15 * time.Minute)
		if is, err = m.Refresh(ctx, is.RefreshToken, ""); err != nil || !is.Rotated || is.Family.RefreshKey != keyTag(b.ID) {
			t.Fatalf("rotation under b: %v", err)
		}
		if err := m.Confirm(ctx, is.RefreshToken); err != nil {
			t.Fatal(err)
		}
	}
	// Before the horizon: a's old generation is genuine, superseded: reuse.
	f, err := st.Get(ctx, s0.Family.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Refresh(ctx, s0.RefreshToken, ""); !errors.Is(err, session.ErrReuse) {
		t.Fatalf("generation 1 under a retiring key, within the horizon: %v, want ErrReuse", err)
	}
	// Put the family back as it was, to present the same token past the
	// horizon.
	cur, err := st.Get(ctx, f.ID)
	if err != nil || cur.RevokedAt.IsZero() {
		t.Fatalf("after reuse: %+v, %v; want revoked", cur, err)
	}
	f.Version = cur.Version + 1
	if err := st.Swap(ctx, cur.Version, f); err != nil {
		t.Fatal(err)
	}
	clk.Advance(retire.Add(lifetimes.Idle).Sub(clk.Now()))
	if is, err = m.Refresh(ctx, is.RefreshToken, ""); err != nil || !is.Rotated {
		t.Fatalf("the family, under b, at a's horizon: %v", err)
	}
	if _, err := m.Refresh(ctx, s0.RefreshToken, ""); !errors.Is(err, session.ErrUnknownSecret) {
		t.Fatalf("generation 1 under a, past a's refresh horizon: %v, want ErrUnknownSecret", err)
	}
	if f, err := st.Get(ctx, s0.Family.ID); err != nil || !f.RevokedAt.IsZero() {
		t.Fatalf("after a token past the horizon: %+v, %v; want the family live", f, err)
	}
}

// keyTag is the tag naming key kid in a family (store.Family.RefreshKey)
// and in its tokens: the first 4 bytes of SHA-256 of the kid.
func keyTag(kid string) string {
	h := sha256.Sum256([]byte(kid))
	return string(h[:4])
}
