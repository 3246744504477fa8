// Package storetest is the conformance suite every store.Store backend
// passes: Run checks the store contract (copies, compare-and-swap, subject
// index, expiry, a 100-goroutine race), RunSession drives session.Manager
// over the backend (rotation, grace, reuse, replicas racing on one token).
//
// A backend's test calls both:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, newStore)
//		storetest.RunSession(t, newStore)
//	}
//
// newStore must return an empty store reading time from now; it is called
// once per subtest. Time is injected, never slept: the suite moves its own
// clock. Values are chosen to survive a JSON round trip (claims hold only
// JSON types, numbers as json.Number, times are whole seconds in UTC), so a
// serialising backend can pass unchanged; it must give numbers back with
// the same digits.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

// NewStore returns an empty store for one subtest, reading time from now.
type NewStore func(t *testing.T, now func() time.Time) store.Store

// base is the suite's starting time: whole seconds, UTC.
var base = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// newClock returns a fake clock at base; backends read it concurrently.
func newClock() *fakeclock.Clock { return fakeclock.New(base) }

// Run runs the store contract against the backend newStore builds.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, st store.Store, clk *fakeclock.Clock)
	}{
		{"RoundTrip", testRoundTrip},
		{"CreateExists", testCreateExists},
		{"GetNotFound", testGetNotFound},
		{"GetReturnsCopy", testGetReturnsCopy},
		{"CreateAndSwapCopyInput", testCopyInput},
		{"Swap", testSwap},
		{"SwapStale", testSwapStale},
		{"SwapWrongNextVersion", testSwapWrongNextVersion},
		{"SwapNotFound", testSwapNotFound},
		{"Subject", testSubject},
		{"BySID", testBySID},
		{"BySIDExpiry", testBySIDExpiry},
		{"ListingFields", testListingFields},
		{"ExpiryPastAbsolute", testExpiry},
		{"Race100", testRace},
		{"ClaimOnce", testClaimOnce},
		{"ClaimExpiry", testClaimExpiry},
		{"ClaimApartFromFamilies", testClaimApartFromFamilies},
		{"ClaimRace100", testClaimRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			tc.run(t, newStore(t, clk.Now), clk)
		})
	}
}

// sampleClaims returns claims nested like real ones, level at the given
// digits.
func sampleClaims(level string) store.Claims {
	return store.MustClaims(map[string]any{
		"email": "ada@example.com",
		"admin": true,
		"level": json.Number(level),
		// Beyond float64's 53 bits, a fraction with a trailing zero, and
		// beyond float64's range: each must come back as written.
		"uid":   json.Number("1541815603606036481"),
		"ratio": json.Number("1.50"),
		"huge":  json.Number("1e400"),
		"none":  nil,
		"roles": []any{"reader", "writer"},
		"org": map[string]any{
			"id":    "o-1",
			"teams": []any{map[string]any{"name": "core", "size": json.Number("7")}, json.Number("9007199254740993")},
		},
	})
}

// sample returns a family with every field set (RevokedAt aside: a new
// family is live) and claims nested like real ones.
func sample(id, subject string, now time.Time) *store.Family {
	return &store.Family{
		ID:                id,
		Subject:           subject,
		Policy:            "shop",
		Claims:            sampleClaims("3"),
		CreatedAt:         now,
		LastUsedAt:        now.Add(3 * time.Second),
		UserAgent:         "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
		ClientAddress:     "2001:db8::17",
		IdleExpiresAt:     now.Add(time.Hour),
		AbsoluteExpiresAt: now.Add(2 * time.Hour),
		Secrets:           [][]byte{bytes.Repeat([]byte{0xa1}, 32), bytes.Repeat([]byte{0x00}, 32), {0xff, 0x00, 0x7f}},
		PreviousUntil:     now.Add(30 * time.Second),
		Successor:         []byte{0x00, 0x01, 0xfe, 0xff, '"', '\\', 0x80},
		Generation:        1 << 40,
		RefreshKey:        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
		CurrentSeen:       true,
		Provider:          []byte{0x00, 0xff, 's', 'e', 'a', 'l', 'e', 'd', 0x80},
		ProviderSID:       "08a8684b-db88-4b73-90a9-3cd1661f5466",
		ProviderRefreshAt: now.Add(5 * time.Minute),
		LeaseUntil:        now.Add(7 * time.Second),
		Version:           1,
	}
}

// next returns f's successor version with a change in every mutable field.
func next(f *store.Family, now time.Time) *store.Family {
	n := f.Clone()
	n.Secrets = append([][]byte{bytes.Repeat([]byte{0xb2}, 32)}, n.Secrets...)
	n.Successor = []byte("sealed-v2")
	n.IdleExpiresAt = now.Add(90 * time.Minute)
	n.LastUsedAt = now.Add(time.Minute)
	n.PreviousUntil = now.Add(time.Minute)
	n.RevokedAt = now
	n.RevokeReason = "api"
	n.Claims = sampleClaims("4")
	n.Generation = f.Generation + 1
	n.RefreshKey = "kid-2 ✓"
	n.CurrentSeen = !f.CurrentSeen
	n.Provider = []byte("sealed-provider-v2")
	n.ProviderSID = f.ProviderSID + "-2"
	n.ProviderRefreshAt = now.Add(10 * time.Minute)
	n.LeaseUntil = time.Time{} // a commit releases the lease
	n.Version = f.Version + 1
	return n
}

// diff describes how got differs from want, or returns "".
func diff(want, got *store.Family) string {
	if got == nil {
		return "got nil family"
	}
	var d []string
	add := func(field string, w, g any) { d = append(d, fmt.Sprintf("%s: got %#v, want %#v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", want.ID, got.ID)
	}
	if got.Subject != want.Subject {
		add("Subject", want.Subject, got.Subject)
	}
	if got.Policy != want.Policy {
		add("Policy", want.Policy, got.Policy)
	}
	if got.Claims != want.Claims { // the bytes as encoded: the same digits, the same order
		add("Claims", want.Claims.JSON(), got.Claims.JSON())
	}
	for _, tm := range []struct {
		field     string
		want, got time.Time
	}{
		{"CreatedAt", want.CreatedAt, got.CreatedAt},
		{"LastUsedAt", want.LastUsedAt, got.LastUsedAt},
		{"IdleExpiresAt", want.IdleExpiresAt, got.IdleExpiresAt},
		{"AbsoluteExpiresAt", want.AbsoluteExpiresAt, got.AbsoluteExpiresAt},
		{"PreviousUntil", want.PreviousUntil, got.PreviousUntil},
		{"RevokedAt", want.RevokedAt, got.RevokedAt},
		{"ProviderRefreshAt", want.ProviderRefreshAt, got.ProviderRefreshAt},
		{"LeaseUntil", want.LeaseUntil, got.LeaseUntil},
	} {
		if !tm.got.Equal(tm.want) {
			add(tm.field, tm.want, tm.got)
		}
	}
	if len(got.Secrets) != len(want.Secrets) {
		add("Secrets", want.Secrets, got.Secrets)
	} else {
		for i := range want.Secrets {
			if !bytes.Equal(got.Secrets[i], want.Secrets[i]) {
				add(fmt.Sprintf("Secrets[%d]", i), want.Secrets[i], got.Secrets[i])
			}
		}
	}
	if !bytes.Equal(got.Successor, want.Successor) {
		add("Successor", want.Successor, got.Successor)
	}
	if got.RevokeReason != want.RevokeReason {
		add("RevokeReason", want.RevokeReason, got.RevokeReason)
	}
	if got.Version != want.Version {
		add("Version", want.Version, got.Version)
	}
	if got.Generation != want.Generation {
		add("Generation", want.Generation, got.Generation)
	}
	if got.RefreshKey != want.RefreshKey {
		add("RefreshKey", want.RefreshKey, got.RefreshKey)
	}
	if got.CurrentSeen != want.CurrentSeen {
		add("CurrentSeen", want.CurrentSeen, got.CurrentSeen)
	}
	if !bytes.Equal(got.Provider, want.Provider) {
		add("Provider", want.Provider, got.Provider)
	}
	if got.ProviderSID != want.ProviderSID {
		add("ProviderSID", want.ProviderSID, got.ProviderSID)
	}
	if got.UserAgent != want.UserAgent {
		add("UserAgent", want.UserAgent, got.UserAgent)
	}
	if got.ClientAddress != want.ClientAddress {
		add("ClientAddress", want.ClientAddress, got.ClientAddress)
	}
	return strings.Join(d, "; ")
}

// mustCreate stores f or fails the test.
func mustCreate(t *testing.T, st store.Store, f *store.Family) {
	t.Helper()
	if err := st.Create(t.Context(), f.Clone()); err != nil {
		t.Fatalf("Create(%s): %v", f.ID, err)
	}
}

// mustMatch fails the test unless the stored family id equals want.
func mustMatch(t *testing.T, st store.Store, want *store.Family) {
	t.Helper()
	got, err := st.Get(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Get(%s): %v", want.ID, err)
	}
	if d := diff(want, got); d != "" {
		t.Fatalf("stored family differs: %s", d)
	}
}

func testRoundTrip(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	f := sample("fam-a", "alice", clk.Now())
	mustCreate(t, st, f)
	mustMatch(t, st, f)

	// A revoked family with every field set round-trips too.
	n := next(f, clk.Now())
	if err := st.Swap(t.Context(), 1, n.Clone()); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	mustMatch(t, st, n)

	// The default policy is "", and stays "" (not the zero of some other
	// encoding) through a swap.
	d := sample("fam-d", "alice", clk.Now())
	d.Policy = ""
	mustCreate(t, st, d)
	mustMatch(t, st, d)
	if err := st.Swap(t.Context(), 1, next(d, clk.Now())); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	mustMatch(t, st, next(d, clk.Now()))

	// A family without provider login keeps every provider field empty,
	// and a swap can empty them again.
	p := sample("fam-p", "alice", clk.Now())
	p.Provider, p.ProviderSID, p.ProviderRefreshAt, p.LeaseUntil = nil, "", time.Time{}, time.Time{}
	mustCreate(t, st, p)
	mustMatch(t, st, p)
	withLease := sample("fam-l", "alice", clk.Now())
	mustCreate(t, st, withLease)
	cleared := withLease.Clone()
	cleared.LeaseUntil, cleared.ProviderRefreshAt, cleared.Version = time.Time{}, time.Time{}, 2
	if err := st.Swap(t.Context(), 1, cleared.Clone()); err != nil {
		t.Fatalf("Swap: %v", err)
	}
	mustMatch(t, st, cleared)
}

func testCreateExists(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	f := sample("fam-a", "alice", clk.Now())
	mustCreate(t, st, f)
	other := sample("fam-a", "mallory", clk.Now())
	other.Claims = store.MustClaims(map[string]any{"admin": true})
	if err := st.Create(t.Context(), other); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	mustMatch(t, st, f)
	if fams, err := st.Subject(t.Context(), "mallory"); err != nil || len(fams) != 0 {
		t.Fatalf("Subject(mallory) = %d families, %v; want none", len(fams), err)
	}
}

func testGetNotFound(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	mustCreate(t, st, sample("fam-a", "alice", clk.Now()))
	for _, id := range []string{"fam-b", "", "FAM-A", "fam-a "} {
		if _, err := st.Get(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q): %v, want ErrNotFound", id, err)
		}
	}
}

// mutate changes everything reachable from f, in place.
func mutate(f *store.Family) {
	f.Subject = "mallory"
	f.Claims = store.MustClaims(map[string]any{"email": "mallory@example.com", "roles": []any{"admin"}})
	f.Secrets[0][0] ^= 0xff
	f.Secrets[1] = []byte("x")
	f.Successor[0] ^= 0xff
	f.Provider[0] ^= 0xff
	f.AbsoluteExpiresAt = f.AbsoluteExpiresAt.Add(1000 * time.Hour)
	f.Version = 99
}

func testGetReturnsCopy(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	f := sample("fam-a", "alice", clk.Now())
	mustCreate(t, st, f)
	got, err := st.Get(t.Context(), f.ID)
	if err != nil {
		t.Fatal(err)
	}
	mutate(got)
	mustMatch(t, st, f)
	fams, err := st.Subject(t.Context(), "alice")
	if err != nil || len(fams) != 1 {
		t.Fatalf("Subject = %d families, %v; want 1", len(fams), err)
	}
	mutate(fams[0])
	mustMatch(t, st, f)
}

func testCopyInput(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	f := sample("fam-a", "alice", clk.Now())
	in := f.Clone()
	if err := st.Create(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	mutate(in)
	mustMatch(t, st, f)

	n := next(f, clk.Now())
	in = n.Clone()
	if err := st.Swap(t.Context(), 1, in); err != nil {
		t.Fatal(err)
	}
	mutate(in)
	mustMatch(t, st, n)
}

func testSwap(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	f := sample("fam-a", "alice", clk.Now())
	mustCreate(t, st, f)
	for v := uint64(1); v <= 3; v++ {
		n := next(f, clk.Now())
		if err := st.Swap(t.Context(), v, n.Clone()); err != nil {
			t.Fatalf("Swap(%d): %v", v, err)
		}
		mustMatch(t, st, n)
		f = n
	}
}

func testSwapStale(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	f := sample("fam-a", "alice", clk.Now())
	mustCreate(t, st, f)
	v2 := next(f, clk.Now())
	if err := st.Swap(t.Context(), 1, v2.Clone()); err != nil {
		t.Fatal(err)
	}
	stale := next(f, clk.Now()) // built from version 1 again
	stale.Subject = "mallory"
	if err := st.Swap(t.Context(), 1, stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale Swap: %v, want ErrConflict", err)
	}
	mustMatch(t, st, v2)
	ahead := next(next(v2, clk.Now()), clk.Now()) // version 4 over stored 2
	if err := st.Swap(t.Context(), 3, ahead); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Swap from a future version: %v, want ErrConflict", err)
	}
	mustMatch(t, st, v2)
	if fams, _ := st.Subject(t.Context(), "mallory"); len(fams) != 0 {
		t.Fatalf("stale Swap indexed its subject")
	}
}

func testSwapWrongNextVersion(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	f := sample("fam-a", "alice", clk.Now())
	mustCreate(t, st, f)
	for _, v := range []uint64{1, 3, 0} {
		n := next(f, clk.Now())
		n.Version = v
		err := st.Swap(t.Context(), 1, n)
		if err == nil {
			t.Fatalf("Swap(expected 1, next.Version %d) succeeded", v)
		}
		mustMatch(t, st, f)
	}
}

func testSwapNotFound(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	mustCreate(t, st, sample("fam-a", "alice", clk.Now()))
	n := next(sample("fam-b", "alice", clk.Now()), clk.Now())
	if err := st.Swap(t.Context(), 1, n); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Swap of a missing family: %v, want ErrNotFound", err)
	}
	if _, err := st.Get(t.Context(), "fam-b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Swap of a missing family created it: %v", err)
	}
}

func testSubject(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	now := clk.Now()
	for _, f := range []*store.Family{
		sample("a1", "alice", now), sample("a2", "alice", now.Add(time.Second)),
		sample("a3", "alice", now.Add(2*time.Second)), sample("b1", "bob", now),
	} {
		mustCreate(t, st, f)
	}
	a2, _ := st.Get(t.Context(), "a2")
	if err := st.Swap(t.Context(), 1, next(a2, now)); err != nil { // revoked still listed
		t.Fatal(err)
	}
	tests := []struct {
		subject string
		want    []string
	}{
		{"alice", []string{"a1", "a2", "a3"}},
		{"bob", []string{"b1"}},
		{"carol", nil},
		{"", nil},
	}
	for _, tc := range tests {
		fams, err := st.Subject(t.Context(), tc.subject)
		if err != nil {
			t.Fatalf("Subject(%q): %v", tc.subject, err)
		}
		if got := ids(fams); !sameSet(got, tc.want) {
			t.Errorf("Subject(%q) = %v, want %v", tc.subject, got, tc.want)
		}
		for _, f := range fams {
			if f.Subject != tc.subject {
				t.Errorf("Subject(%q) returned %s of %q", tc.subject, f.ID, f.Subject)
			}
		}
	}
}

// testBySID: the sid index lists the families of one provider session,
// revoked ones too, follows a swap that changes the sid, and knows no
// family for "" or an unknown sid.
func testBySID(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	now := clk.Now()
	withSID := func(id, subject, sid string) *store.Family {
		f := sample(id, subject, now)
		f.ProviderSID = sid
		return f
	}
	for _, f := range []*store.Family{
		withSID("s1a", "alice", "sid-1"), withSID("s1b", "bob", "sid-1"), withSID("s2", "alice", "sid-2"),
		withSID("none", "alice", ""), withSID("moves", "carol", "sid-1"),
	} {
		mustCreate(t, st, f)
	}
	s1a, _ := st.Get(t.Context(), "s1a")
	revoked := s1a.Clone()
	revoked.RevokedAt, revoked.RevokeReason, revoked.Version = now, "logout", 2
	if err := st.Swap(t.Context(), 1, revoked); err != nil { // revoked still listed
		t.Fatal(err)
	}
	moves, _ := st.Get(t.Context(), "moves")
	moved := moves.Clone()
	moved.ProviderSID, moved.Version = "sid-3", 2
	if err := st.Swap(t.Context(), 1, moved); err != nil {
		t.Fatal(err)
	}
	none, _ := st.Get(t.Context(), "none")
	gained := none.Clone()
	gained.ProviderSID, gained.Version = "sid-2", 2
	if err := st.Swap(t.Context(), 1, gained); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sid  string
		want []string
	}{
		{"sid-1", []string{"s1a", "s1b"}},
		{"sid-2", []string{"s2", "none"}},
		{"sid-3", []string{"moves"}},
		{"sid-unknown", nil},
		{"", nil},
	}
	for _, tc := range tests {
		fams, err := st.BySID(t.Context(), tc.sid)
		if err != nil {
			t.Fatalf("BySID(%q): %v", tc.sid, err)
		}
		if got := ids(fams); !sameSet(got, tc.want) {
			t.Errorf("BySID(%q) = %v, want %v", tc.sid, got, tc.want)
		}
		for _, f := range fams {
			if f.ProviderSID != tc.sid {
				t.Errorf("BySID(%q) returned %s of sid %q", tc.sid, f.ID, f.ProviderSID)
			}
			if f.ID == "s1a" && f.RevokedAt.IsZero() {
				t.Errorf("BySID(%q) returned s1a unrevoked", tc.sid)
			}
		}
	}
	// What is returned is a copy.
	fams, _ := st.BySID(t.Context(), "sid-2")
	for _, f := range fams {
		mutate(f)
	}
	s2 := sample("s2", "alice", now)
	s2.ProviderSID = "sid-2"
	mustMatch(t, st, s2)
}

// testBySIDExpiry: a family leaves the sid index when its absolute
// lifetime has passed (not at the instant itself), and the sid can be
// used again afterwards.
func testBySIDExpiry(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	now := clk.Now()
	short := sample("short", "alice", now) // absolute: now+2h
	long := sample("long", "bob", now)
	long.AbsoluteExpiresAt = now.Add(10 * time.Hour)
	mustCreate(t, st, short)
	mustCreate(t, st, long)
	sid := short.ProviderSID
	check := func(want ...string) {
		t.Helper()
		fams, err := st.BySID(t.Context(), sid)
		if err != nil {
			t.Fatalf("BySID: %v", err)
		}
		if got := ids(fams); !sameSet(got, want) {
			t.Fatalf("BySID at %v = %v, want %v", clk.Now().Sub(now), got, want)
		}
	}
	clk.Advance(2 * time.Hour) // exactly at short's absolute deadline: still kept
	check("short", "long")
	clk.Advance(time.Second)
	check("long")
	clk.Advance(8 * time.Hour) // past long's too
	check()
	again := sample("again", "carol", clk.Now())
	mustCreate(t, st, again)
	check("again")
}

// testListingFields: LastUsedAt, UserAgent and ClientAddress round-trip,
// each empty on its own, and a swap keeps or changes them.
func testListingFields(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	now := clk.Now()
	for i, tc := range []struct {
		lastUsed time.Time
		ua, addr string
	}{
		{time.Time{}, "", ""},
		{now, "", ""},
		{time.Time{}, "curl/8.5.0", ""},
		{time.Time{}, "", "192.0.2.1"},
		{now.Add(time.Second), strings.Repeat("é", 128), "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"},
	} {
		f := sample(fmt.Sprint("fam-", i), "alice", now)
		f.LastUsedAt, f.UserAgent, f.ClientAddress = tc.lastUsed, tc.ua, tc.addr
		if i%2 == 0 {
			f.ProviderSID, f.Provider, f.Policy = "", nil, ""
		}
		mustCreate(t, st, f)
		mustMatch(t, st, f)
		n := f.Clone()
		n.LastUsedAt, n.Version = now.Add(time.Hour), 2
		if err := st.Swap(t.Context(), 1, n.Clone()); err != nil {
			t.Fatal(err)
		}
		mustMatch(t, st, n)
	}
}

func ids(fams []*store.Family) []string {
	var out []string
	for _, f := range fams {
		out = append(out, f.ID)
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[string]int)
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

func testExpiry(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	now := clk.Now()
	short := sample("short", "alice", now) // absolute: now+2h
	long := sample("long", "alice", now)
	long.AbsoluteExpiresAt = now.Add(10 * time.Hour)
	mustCreate(t, st, short)
	mustCreate(t, st, long)

	clk.Advance(2 * time.Hour) // exactly at the absolute deadline: still kept
	mustMatch(t, st, short)

	clk.Advance(time.Second) // past it: gone
	if _, err := st.Get(t.Context(), "short"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get past absolute expiry: %v, want ErrNotFound", err)
	}
	if err := st.Swap(t.Context(), 1, next(short, clk.Now())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Swap past absolute expiry: %v, want ErrNotFound", err)
	}
	fams, err := st.Subject(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(fams); !sameSet(got, []string{"long"}) {
		t.Fatalf("Subject after expiry = %v, want [long]", got)
	}
	mustMatch(t, st, long)

	// An expired id counts as absent: it can be created again.
	again := sample("short", "bob", clk.Now())
	mustCreate(t, st, again)
	mustMatch(t, st, again)
}

// testRace: 100 goroutines read the same version, then all swap at once.
// Exactly one wins; the 99 others get ErrConflict and change nothing.
func testRace(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	const n = 100
	mustCreate(t, st, sample("fam-a", "alice", clk.Now()))
	var (
		read    sync.WaitGroup // barrier: every goroutine has read version 1
		done    sync.WaitGroup
		errs    [n]error
		written [n]*store.Family
	)
	read.Add(n)
	for i := range n {
		done.Go(func() {
			f, err := st.Get(context.Background(), "fam-a")
			read.Done()
			if err != nil {
				errs[i] = err
				return
			}
			read.Wait()
			nf := f.Clone()
			nf.Claims = store.MustClaims(map[string]any{"winner": json.Number(strconv.Itoa(i))})
			nf.Version = f.Version + 1
			written[i] = nf.Clone()
			errs[i] = st.Swap(context.Background(), f.Version, nf)
		})
	}
	done.Wait()

	winner, conflicts := -1, 0
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("goroutines %d and %d both won the swap", winner, i)
			}
			winner = i
		case errors.Is(err, store.ErrConflict):
			conflicts++
		default:
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}
	if winner < 0 || conflicts != n-1 {
		t.Fatalf("winner %d, %d conflicts; want one winner and %d conflicts", winner, conflicts, n-1)
	}
	mustMatch(t, st, written[winner])
}

// mustClaim fails the test unless Claim(key, until) answers want.
func mustClaim(t *testing.T, st store.Store, key string, until time.Time, want bool) {
	t.Helper()
	got, err := st.Claim(t.Context(), key, until)
	if err != nil {
		t.Fatalf("Claim(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Claim(%q) = %t, want %t", key, got, want)
	}
}

// testClaimOnce: the first Claim of a key wins, every later one loses,
// whatever until it asks for; other keys are independent. An until not
// after now is refused.
func testClaimOnce(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	until := clk.Now().Add(10 * time.Minute)
	mustClaim(t, st, "state:abc", until, true)
	mustClaim(t, st, "state:abc", until, false)
	mustClaim(t, st, "state:abc", until.Add(time.Hour), false)
	mustClaim(t, st, "state:abd", until, true)
	mustClaim(t, st, "STATE:abc", until, true)
	mustClaim(t, st, "", until, true)
	mustClaim(t, st, "", until, false)
	for _, u := range []time.Time{clk.Now(), clk.Now().Add(-time.Second), {}} {
		if ok, err := st.Claim(t.Context(), "state:past", u); err == nil || ok {
			t.Errorf("Claim until %v = %t, %v; want an error", u, ok, err)
		}
	}
	mustClaim(t, st, "state:past", until, true) // the refusals recorded nothing
}

// testClaimExpiry: a marker lives through its until (like a family's
// absolute expiry) and is gone after it, by the store's clock; then the key
// can be claimed again.
func testClaimExpiry(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	until := clk.Now().Add(time.Minute)
	mustClaim(t, st, "jti:1", until, true)
	mustClaim(t, st, "jti:2", until.Add(time.Hour), true)
	clk.Set(until)
	mustClaim(t, st, "jti:1", until.Add(time.Minute), false) // at the instant: still held
	clk.Advance(time.Millisecond)
	mustClaim(t, st, "jti:1", clk.Now().Add(time.Minute), true) // past it: free again
	mustClaim(t, st, "jti:1", clk.Now().Add(time.Minute), false)
	mustClaim(t, st, "jti:2", clk.Now().Add(time.Minute), false) // the longer marker lives on
}

// testClaimApartFromFamilies: markers and families never share a name: a
// key equal to a family's id neither sees nor changes the family.
func testClaimApartFromFamilies(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	f := sample("fam-a", "alice", clk.Now())
	mustCreate(t, st, f)
	mustClaim(t, st, "fam-a", clk.Now().Add(time.Minute), true)
	mustMatch(t, st, f)
	g := sample("fam-b", "alice", clk.Now())
	mustClaim(t, st, "fam-b", clk.Now().Add(time.Minute), true)
	mustCreate(t, st, g)
	mustMatch(t, st, g)
}

// testClaimRace: 100 goroutines claim one key at once; exactly one wins.
func testClaimRace(t *testing.T, st store.Store, clk *fakeclock.Clock) {
	const n = 100
	until := clk.Now().Add(time.Minute)
	var (
		start sync.WaitGroup
		done  sync.WaitGroup
		won   [n]bool
		errs  [n]error
	)
	start.Add(n)
	for i := range n {
		done.Go(func() {
			start.Done()
			start.Wait()
			won[i], errs[i] = st.Claim(context.Background(), "state:race", until)
		})
	}
	done.Wait()
	winners := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if won[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Fatalf("%d goroutines won the claim, want exactly 1", winners)
	}
}
