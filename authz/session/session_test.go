package session_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

var (
	lt    = session.Lifetimes{Idle: time.Hour, Absolute: 4 * time.Hour, Grace: 30 * time.Second}
	epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	sentinels = []error{
		session.ErrMalformed, session.ErrUnknown, session.ErrUnknownSecret,
		session.ErrExpired, session.ErrRevoked, session.ErrReuse, session.ErrOtherPolicy,
	}
	errBoom = errors.New("boom")
)

// faultStore wraps a store: it can fail Get, Swap or Create, run a hook
// after Get, and honours its context like a networked backend would. Set
// the fields before use.
type faultStore struct {
	store.Store
	getErr, swapErr error
	createErrs      []error // returned by the first Creates, in order
	afterGet        func()
	beforeSwap      func()
	calls           atomic.Int64
	conflicts       atomic.Int64 // Swaps answered ErrConflict
}

func (s *faultStore) Create(ctx context.Context, f *store.Family) error {
	n := s.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return err
	}
	if i := int(n) - 1; i < len(s.createErrs) && s.createErrs[i] != nil {
		return s.createErrs[i]
	}
	return s.Store.Create(ctx, f)
}

func (s *faultStore) Get(ctx context.Context, id string) (*store.Family, error) {
	s.calls.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.getErr != nil {
		return nil, s.getErr
	}
	f, err := s.Store.Get(ctx, id)
	if s.afterGet != nil {
		s.afterGet()
	}
	return f, err
}

func (s *faultStore) Swap(ctx context.Context, expected uint64, next *store.Family) error {
	s.calls.Add(1)
	if s.beforeSwap != nil {
		s.beforeSwap()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.swapErr != nil {
		return s.swapErr
	}
	err := s.Store.Swap(ctx, expected, next)
	if errors.Is(err, store.ErrConflict) {
		s.conflicts.Add(1)
	}
	return err
}

func (s *faultStore) Subject(ctx context.Context, subject string) ([]*store.Family, error) {
	s.calls.Add(1)
	return s.Store.Subject(ctx, subject)
}

func (s *faultStore) BySID(ctx context.Context, sid string) ([]*store.Family, error) {
	s.calls.Add(1)
	return s.Store.BySID(ctx, sid)
}

type fixture struct {
	m   *session.Manager
	st  *faultStore
	mem *memstore.Store
	clk *fakeclock.Clock
}

func newFixture(l session.Lifetimes) *fixture {
	clk := fakeclock.New(epoch)
	mem := memstore.New(clk.Now)
	st := &faultStore{Store: mem}
	return &fixture{m: session.New(st, l, clk.Now), st: st, mem: mem, clk: clk}
}

func (fx *fixture) start(t *testing.T, subject string) session.Issued {
	t.Helper()
	is, err := fx.m.Start(t.Context(), subject, "", map[string]any{"email": subject + "@example.com"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return is
}

func (fx *fixture) refresh(t *testing.T, rt string) session.Issued {
	t.Helper()
	is, err := fx.m.Refresh(t.Context(), rt, "")
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return is
}

// present confirms that a request carried rt (what Presented does in the
// background).
func (fx *fixture) present(t *testing.T, rt string) {
	t.Helper()
	if err := fx.m.Confirm(t.Context(), rt); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
}

// stored reads family id straight from the memory store.
func (fx *fixture) stored(t *testing.T, id string) *store.Family {
	t.Helper()
	f, err := fx.mem.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("stored family %s: %v", id, err)
	}
	return f
}

// secretOf returns the secret a token carries: its MAC (the bytes after
// the generation and the key tag), or a legacy token's random secret.
func secretOf(rt string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(rt[strings.IndexByte(rt, '.')+1:])
	if err != nil {
		panic(err)
	}
	if len(b) == 8+4+32 {
		return b[12:]
	}
	return b
}

// keyTagOf returns the key tag a keyed token carries, as a family holds
// it (store.Family.RefreshKey).
func keyTagOf(rt string) string {
	b, err := base64.RawURLEncoding.DecodeString(rt[session.IDLength+1:])
	if err != nil {
		panic(err)
	}
	return string(b[8:12])
}

func randomB64(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// isSentinel reports whether err matches any session sentinel.
func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func TestStart(t *testing.T) {
	fx := newFixture(lt)
	claims := map[string]any{"roles": []any{"reader"}}
	is, err := fx.m.Start(t.Context(), "alice", "", claims)
	if err != nil {
		t.Fatal(err)
	}
	claims["roles"].([]any)[0] = "admin" // the caller's map is not shared
	f := fx.stored(t, is.Family.ID)
	switch {
	case f.Version != 1, f.Subject != "alice", f.Secrets != nil, f.Successor != nil:
		t.Fatalf("new family: %+v", f)
	case f.Generation != 1, session.Generation(is.RefreshToken) != 1, f.RefreshKey == "",
		f.RefreshKey != keyTagOf(is.RefreshToken):
		t.Fatalf("generation %d, key %x: not the issued token's", f.Generation, f.RefreshKey)
	case !f.CreatedAt.Equal(epoch), !f.IdleExpiresAt.Equal(epoch.Add(lt.Idle)), !f.AbsoluteExpiresAt.Equal(epoch.Add(lt.Absolute)):
		t.Fatalf("lifetimes: created %v idle %v absolute %v", f.CreatedAt, f.IdleExpiresAt, f.AbsoluteExpiresAt)
	case !strings.Contains(f.Claims.JSON(), `"roles":["reader"`):
		t.Fatalf("claims shared with the caller: %v", f.Claims)
	case !is.Rotated, !is.SessionEnd().Equal(epoch.Add(lt.Idle)):
		t.Fatalf("Issued: rotated %v, end %v", is.Rotated, is.SessionEnd())
	}
	if id, err := session.FamilyID(is.RefreshToken); err != nil || id != f.ID || len(id) != 22 {
		t.Fatalf("FamilyID = %q, %v; want %q", id, err, f.ID)
	}
	if len(is.RefreshToken) != 22+1+59 || session.TokenLength != 82 {
		t.Fatalf("token length %d", len(is.RefreshToken))
	}
	if _, err := fx.m.Start(t.Context(), "", "", nil); err == nil || isSentinel(err) {
		t.Fatalf("Start with empty subject: %v", err)
	}
}

func TestStartLifetimes(t *testing.T) {
	tests := []struct {
		name                         string
		l                            session.Lifetimes
		wantIdle, wantAbs, wantGrace time.Duration
	}{
		{"defaults", session.Lifetimes{}, 30 * 24 * time.Hour, 90 * 24 * time.Hour, 30 * time.Second},
		{"idle capped by absolute", session.Lifetimes{Idle: 10 * time.Hour, Absolute: time.Hour, Grace: time.Second}, time.Hour, time.Hour, time.Second},
		{"negative takes default", session.Lifetimes{Idle: -1, Absolute: -1, Grace: -1}, 30 * 24 * time.Hour, 90 * 24 * time.Hour, 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(tc.l)
			is := fx.start(t, "alice")
			if !is.Family.IdleExpiresAt.Equal(epoch.Add(tc.wantIdle)) || !is.Family.AbsoluteExpiresAt.Equal(epoch.Add(tc.wantAbs)) {
				t.Fatalf("idle %v absolute %v", is.Family.IdleExpiresAt.Sub(epoch), is.Family.AbsoluteExpiresAt.Sub(epoch))
			}
			r := fx.refresh(t, is.RefreshToken)
			if got := r.Family.PreviousUntil.Sub(epoch); got != tc.wantGrace {
				t.Fatalf("grace %v, want %v", got, tc.wantGrace)
			}
		})
	}
}

func TestStartRetriesIDCollisions(t *testing.T) {
	exists := fmt.Errorf("taken: %w", store.ErrExists)
	tests := []struct {
		name    string
		errs    []error
		wantErr bool
	}{
		{"first id free", nil, false},
		{"two collisions", []error{exists, exists}, false},
		{"always taken", []error{exists, exists, exists, exists, exists}, true},
		{"store fault", []error{errBoom}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(lt)
			fx.st.createErrs = tc.errs
			is, err := fx.m.Start(t.Context(), "alice", "", nil)
			if tc.wantErr {
				if err == nil || isSentinel(err) {
					t.Fatalf("Start = %v, want a non-sentinel error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fx.stored(t, is.Family.ID)
		})
	}
}

func TestRefreshRotates(t *testing.T) {
	fx := newFixture(lt)
	s0 := fx.start(t, "alice")
	fx.clk.Advance(10 * time.Minute)
	s1 := fx.refresh(t, s0.RefreshToken)
	f := fx.stored(t, s0.Family.ID)
	now := fx.clk.Now()
	switch {
	case !s1.Rotated, s1.RefreshToken == s0.RefreshToken:
		t.Fatalf("rotated %v, same token %v", s1.Rotated, s1.RefreshToken == s0.RefreshToken)
	case s1.Family.ID != s0.Family.ID, f.Version != 2, s1.Family.Version != 2:
		t.Fatalf("family %s version %d", f.ID, f.Version)
	case f.Generation != 2, session.Generation(s1.RefreshToken) != 2, f.Secrets != nil, f.Successor != nil:
		t.Fatalf("generation %d after one rotation, %d hashes kept", f.Generation, len(f.Secrets))
	case !f.PreviousUntil.Equal(now.Add(lt.Grace)), !f.IdleExpiresAt.Equal(now.Add(lt.Idle)), !f.AbsoluteExpiresAt.Equal(epoch.Add(lt.Absolute)):
		t.Fatalf("deadlines: previous %v idle %v absolute %v", f.PreviousUntil, f.IdleExpiresAt, f.AbsoluteExpiresAt)
	case !s1.SessionEnd().Equal(now.Add(lt.Idle)):
		t.Fatalf("SessionEnd %v", s1.SessionEnd())
	}
	if id, _ := session.FamilyID(s1.RefreshToken); id != s0.Family.ID {
		t.Fatalf("successor belongs to family %s", id)
	}
}

// Generations a table case presents: one of the issued tokens (0 = Start's),
// or a forgery.
const (
	randomSecret  = -1 // a real family id with a secret never issued
	unknownFamily = -2 // a well-formed token for a family that does not exist
	forgedCurrent = -3 // the newest generation and key tag with a MAC that does not verify
	forgedOld     = -4 // generation 1 and a real key tag with a MAC that does not verify
	nextGen       = -5 // a generation the family has not reached, forged
)

// forge returns the token a case presents.
func forge(gens []session.Issued, present int) string {
	switch present {
	case randomSecret:
		return gens[0].Family.ID + "." + randomB64(32)
	case unknownFamily:
		return randomB64(16) + "." + randomB64(32)
	case forgedCurrent, forgedOld, nextGen:
		newest := gens[len(gens)-1].RefreshToken
		gen := map[int]uint64{forgedCurrent: uint64(len(gens)), forgedOld: 1, nextGen: uint64(len(gens) + 1)}[present]
		mac := make([]byte, 32)
		rand.Read(mac)
		return session.Reforge(newest, gen, mac)
	}
	return gens[present].RefreshToken
}

// TestRefreshRules is the truth table of RFC 9700 §4.14.2 as this package
// applies it: rotate `rotations` times (at epoch), advance the clock, then
// present a generation.
func TestRefreshRules(t *testing.T) {
	tests := []struct {
		name        string
		rotations   int
		seen        bool // a request presented the newest token before
		present     int
		advance     time.Duration
		wantErr     error
		wantRotated bool
		wantRevoked bool
	}{
		{"current rotates", 0, false, 0, 0, nil, true, false},
		{"current rotates after others", 3, true, 3, 50 * time.Minute, nil, true, false},
		{"previous within grace: same successor", 1, true, 0, 29 * time.Second, nil, false, false},
		{"previous at grace end, successor seen: reuse", 1, true, 0, 30 * time.Second, session.ErrReuse, false, true},
		{"previous after grace, successor seen: reuse", 1, true, 0, time.Hour - time.Second, session.ErrReuse, false, true},
		{"previous after grace, successor never seen: same successor", 1, false, 0, time.Hour - time.Second, nil, false, false},
		{"previous at grace end, successor never seen: same successor", 1, false, 0, 30 * time.Second, nil, false, false},
		{"two back within grace: reuse", 2, false, 0, 0, session.ErrReuse, false, true},
		{"two back, newest never seen: reuse", 2, false, 0, time.Minute, session.ErrReuse, false, true},
		{"three back: reuse", 3, true, 0, 0, session.ErrReuse, false, true},
		{"15 back: reuse", 15, true, 0, 0, session.ErrReuse, false, true},
		{"16 back (once past the hashes kept): reuse", 16, true, 0, 0, session.ErrReuse, false, true},
		{"100 back: reuse", 100, true, 0, 0, session.ErrReuse, false, true},
		{"100 back, middle generation: reuse", 100, true, 50, 0, session.ErrReuse, false, true},
		{"forged MAC of the current generation: unknown", 3, true, forgedCurrent, 0, session.ErrUnknownSecret, false, false},
		{"forged MAC of an old generation: unknown, not revoked", 3, true, forgedOld, 0, session.ErrUnknownSecret, false, false},
		{"forged MAC, fresh family: unknown", 0, false, forgedCurrent, 0, session.ErrUnknownSecret, false, false},
		{"generation not reached: unknown", 2, true, nextGen, 0, session.ErrUnknownSecret, false, false},
		{"random secret: unknown, not revoked", 1, true, randomSecret, 0, session.ErrUnknownSecret, false, false},
		{"random secret, fresh family", 0, false, randomSecret, 0, session.ErrUnknownSecret, false, false},
		{"unknown family", 1, true, unknownFamily, 0, session.ErrUnknown, false, false},
		{"idle expired: current", 0, false, 0, time.Hour, session.ErrExpired, false, false},
		{"idle expired: superseded does not revoke", 2, true, 0, time.Hour, session.ErrExpired, false, false},
		{"idle expired: random secret", 1, true, randomSecret, 2 * time.Hour, session.ErrExpired, false, false},
		{"just before idle end", 1, true, 1, time.Hour - time.Nanosecond, nil, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(lt)
			gens := []session.Issued{fx.start(t, "alice")}
			for range tc.rotations {
				gens = append(gens, fx.refresh(t, gens[len(gens)-1].RefreshToken))
			}
			newest := gens[len(gens)-1]
			id := newest.Family.ID
			if tc.seen {
				fx.present(t, newest.RefreshToken)
			}
			before := fx.stored(t, id)
			fx.clk.Advance(tc.advance)

			got, err := fx.m.Refresh(t.Context(), forge(gens, tc.present), "")
			if !errors.Is(err, tc.wantErr) || (err != nil && tc.wantErr == nil) {
				t.Fatalf("Refresh = %v, want %v", err, tc.wantErr)
			}
			after := fx.stored(t, id)
			switch {
			case err != nil:
				if got.RefreshToken != "" || got.Family != nil {
					t.Fatalf("an error came with a token")
				}
			case tc.wantRotated:
				if !got.Rotated || after.Version != before.Version+1 || got.RefreshToken == newest.RefreshToken {
					t.Fatalf("rotated %v, version %d→%d", got.Rotated, before.Version, after.Version)
				}
			default: // grace replay: the newest token again, no write
				if got.Rotated || got.RefreshToken != newest.RefreshToken || after.Version != before.Version {
					t.Fatalf("grace: rotated %v, same %v, version %d→%d", got.Rotated, got.RefreshToken == newest.RefreshToken, before.Version, after.Version)
				}
			}
			if revoked := !after.RevokedAt.IsZero(); revoked != tc.wantRevoked {
				t.Fatalf("revoked %v (%q), want %v", revoked, after.RevokeReason, tc.wantRevoked)
			}
			if tc.wantRevoked {
				var re *session.ReuseError
				if !errors.As(err, &re) || re.Family != id || re.Subject != "alice" ||
					re.Current != uint64(len(gens)) || re.Presented != uint64(tc.present+1) {
					t.Fatalf("reuse error %+v: want family %s, generation %d of %d", re, id, tc.present+1, len(gens))
				}
				if after.RevokeReason != "reuse" || !after.RevokedAt.Equal(fx.clk.Now()) {
					t.Fatalf("revoked at %v for %q", after.RevokedAt, after.RevokeReason)
				}
				if _, err := fx.m.Refresh(t.Context(), newest.RefreshToken, ""); !errors.Is(err, session.ErrRevoked) {
					t.Fatalf("newest token after reuse: %v, want ErrRevoked", err)
				}
			}
			if err != nil && !tc.wantRevoked {
				if after.Version != before.Version {
					t.Fatalf("a refused refresh wrote: version %d→%d", before.Version, after.Version)
				}
				if !errors.Is(err, session.ErrExpired) {
					fx.refresh(t, newest.RefreshToken) // the rightful holder is unaffected
				}
			}
		})
	}
}

// Constant activity never extends the absolute lifetime, and rotation never
// moves the idle deadline past it.
func TestAbsoluteLifetime(t *testing.T) {
	fx := newFixture(lt)
	is := fx.start(t, "alice")
	absolute := is.Family.AbsoluteExpiresAt
	for fx.clk.Now().Add(50 * time.Minute).Before(absolute) {
		fx.clk.Advance(50 * time.Minute)
		is = fx.refresh(t, is.RefreshToken)
		f := is.Family
		if f.IdleExpiresAt.After(absolute) || !f.AbsoluteExpiresAt.Equal(absolute) {
			t.Fatalf("at %v: idle %v, absolute %v (want ≤ %v)", fx.clk.Now().Sub(epoch), f.IdleExpiresAt, f.AbsoluteExpiresAt, absolute)
		}
		want := fx.clk.Now().Add(lt.Idle)
		if want.After(absolute) {
			want = absolute
		}
		if !is.SessionEnd().Equal(want) {
			t.Fatalf("SessionEnd %v, want %v", is.SessionEnd(), want)
		}
	}
	if !is.Family.IdleExpiresAt.Equal(absolute) {
		t.Fatalf("last rotation did not cap idle at absolute: %v", is.Family.IdleExpiresAt)
	}
	fx.clk.Advance(absolute.Sub(fx.clk.Now()))
	if _, err := fx.m.Refresh(t.Context(), is.RefreshToken, ""); !errors.Is(err, session.ErrExpired) {
		t.Fatalf("at the absolute deadline: %v, want ErrExpired", err)
	}
	if f := fx.stored(t, is.Family.ID); !f.RevokedAt.IsZero() {
		t.Fatal("expiry revoked the family")
	}
	fx.clk.Advance(time.Nanosecond) // the store has now dropped it
	if _, err := fx.m.Refresh(t.Context(), is.RefreshToken, ""); !errors.Is(err, session.ErrUnknown) {
		t.Fatalf("past the absolute deadline: %v, want ErrUnknown", err)
	}
}

func TestMalformed(t *testing.T) {
	fx := newFixture(lt)
	good := fx.start(t, "alice").RefreshToken
	id, sec := good[:22], good[23:]
	tests := []struct{ name, rt string }{
		{"empty", ""},
		{"no dot", id + sec},
		{"dot only", "."},
		{"dot at the wrong place", id[:21] + "." + id[21:] + sec},
		{"extra dot", id + "." + sec[:20] + "." + sec[21:]},
		{"two tokens", good + "." + good},
		{"id too short", id[:21] + "." + sec},
		{"id too long", id + "A." + sec},
		{"secret too short", id + "." + sec[:42]},
		{"secret too long", id + "." + sec + "A"},
		{"std alphabet +", id + "." + "+" + sec[1:]},
		{"std alphabet /", "/" + id[1:] + "." + sec},
		{"padding", id + "." + sec[:42] + "="},
		{"space", id + "." + " " + sec[1:]},
		{"newline", id + "." + sec[:20] + "\n" + sec[21:]},
		{"non-ASCII", id + "." + "é" + sec[2:]},
		{"NUL", id + "." + "\x00" + sec[1:]},
		{"non-canonical id bits", id[:21] + "B" + "." + sec},     // 16 bytes leave 4 zero bits
		{"non-canonical secret bits", id + "." + sec[:42] + "B"}, // 32 bytes leave 2 zero bits
		{"bearer prefix", "Bearer " + good},
		{"huge", strings.Repeat("A", 1<<20)},
		{"huge with dot", strings.Repeat("A", 22) + "." + strings.Repeat("A", 1<<20)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := fx.st.calls.Load()
			if _, err := fx.m.Refresh(t.Context(), tc.rt, ""); !errors.Is(err, session.ErrMalformed) {
				t.Errorf("Refresh: %v, want ErrMalformed", err)
			}
			if err := fx.m.Logout(t.Context(), tc.rt); !errors.Is(err, session.ErrMalformed) {
				t.Errorf("Logout: %v, want ErrMalformed", err)
			}
			if _, err := session.FamilyID(tc.rt); !errors.Is(err, session.ErrMalformed) {
				t.Errorf("FamilyID: %v, want ErrMalformed", err)
			}
			if n := fx.st.calls.Load() - calls; n != 0 {
				t.Errorf("the store was called %d times for a malformed token", n)
			}
		})
	}
	fx.refresh(t, good) // still valid: the cases above only borrowed its parts
}

// Store faults are infrastructure errors: wrapped, matching no sentinel,
// and they never revoke anything.
func TestStoreFaults(t *testing.T) {
	tests := []struct {
		name            string
		op              string // "refresh" or "logout"
		stale           bool   // present the superseded token, after grace
		getErr, swapErr error
	}{
		{"rotate: get fails", "refresh", false, errBoom, nil},
		{"rotate: swap fails", "refresh", false, nil, errBoom},
		{"reuse: get fails", "refresh", true, errBoom, nil},
		{"reuse: revoking swap fails", "refresh", true, nil, errBoom},
		{"logout: get fails", "logout", false, errBoom, nil},
		{"logout: swap fails", "logout", false, nil, errBoom},
		{"logout of stale: swap fails", "logout", true, nil, errBoom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(lt)
			s0 := fx.start(t, "alice")
			s1 := fx.refresh(t, s0.RefreshToken)
			fx.present(t, s1.RefreshToken)
			fx.clk.Advance(time.Minute)
			rt := s1.RefreshToken
			if tc.stale {
				rt = s0.RefreshToken
			}
			before := fx.stored(t, s0.Family.ID)
			fx.st.getErr, fx.st.swapErr = tc.getErr, tc.swapErr
			var err error
			if tc.op == "logout" {
				err = fx.m.Logout(t.Context(), rt)
			} else {
				_, err = fx.m.Refresh(t.Context(), rt, "")
			}
			if !errors.Is(err, errBoom) || isSentinel(err) {
				t.Fatalf("error %v: want boom wrapped, matching no sentinel", err)
			}
			after := fx.stored(t, s0.Family.ID)
			if after.Version != before.Version || !after.RevokedAt.IsZero() {
				t.Fatalf("a failed store changed the family: version %d→%d, revoked %v", before.Version, after.Version, after.RevokedAt)
			}
			fx.st.getErr, fx.st.swapErr = nil, nil
			fx.refresh(t, s1.RefreshToken)
		})
	}
	t.Run("revoke and subject", func(t *testing.T) {
		fx := newFixture(lt)
		s := fx.start(t, "alice")
		fx.st.swapErr = errBoom
		if err := fx.m.Revoke(t.Context(), s.Family.ID, "admin"); !errors.Is(err, errBoom) || isSentinel(err) {
			t.Fatalf("Revoke: %v", err)
		}
		if n, err := fx.m.RevokeSubject(t.Context(), "alice", session.CauseAdmin, time.Time{}); n != 0 || !errors.Is(err, errBoom) || isSentinel(err) {
			t.Fatalf("RevokeSubject = %d, %v", n, err)
		}
	})
}

// A store dump holds hashes and a sealed successor only: no secret, in raw
// bytes or base64, appears anywhere in the records.
func TestStoreDumpHoldsNoSecret(t *testing.T) {
	fx := newFixture(lt)
	issued := []session.Issued{fx.start(t, "alice")}
	for range 4 {
		issued = append(issued, fx.refresh(t, issued[len(issued)-1].RefreshToken))
	}
	issued = append(issued, fx.refresh(t, issued[len(issued)-2].RefreshToken)) // a grace replay
	id := issued[0].Family.ID

	var dumps []string
	for _, is := range issued {
		dumps = append(dumps, fmt.Sprintf("%#v", *is.Family))
	}
	listed, err := fx.m.List(t.Context(), "alice")
	if err != nil || len(listed) != 1 {
		t.Fatalf("List = %d, %v", len(listed), err)
	}
	dumps = append(dumps, fmt.Sprintf("%#v", *listed[0]), fmt.Sprintf("%#v", *fx.stored(t, id)), fmt.Sprintf("%+v", *listed[0]))
	for _, is := range issued {
		raw := secretOf(is.RefreshToken)
		rawHex := strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%#v", raw), "[]byte{"), "}") // "0x1, 0x2, …" as %#v prints bytes
		for _, needle := range []string{is.RefreshToken, is.RefreshToken[23:], string(raw), rawHex} {
			for _, d := range dumps {
				if strings.Contains(d, needle) {
					t.Fatalf("a store record holds a secret (%.12q…)", needle)
				}
			}
		}
	}
}

func TestConcurrentRefresh(t *testing.T) {
	tests := []struct {
		name         string
		singleflight bool
	}{
		{"with singleflight", true},
		{"compare-and-swap alone", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const n = 50
			fx := newFixture(lt)
			s0 := fx.start(t, "alice")
			if !tc.singleflight {
				// Every call reads version 1 before any swaps, so 49 swaps
				// lose the compare-and-swap and must retry into the grace
				// path. (With singleflight the followers wait in Do instead,
				// so there is no barrier to hold.)
				session.NoSingleflight(fx.m)
				var gets atomic.Int64
				var read sync.WaitGroup
				read.Add(n)
				fx.st.afterGet = func() {
					if gets.Add(1) <= n {
						read.Done()
						read.Wait()
					}
				}
			}
			var (
				start = make(chan struct{})
				wg    sync.WaitGroup
				got   [n]session.Issued
				errs  [n]error
			)
			for i := range n {
				wg.Go(func() {
					<-start
					got[i], errs[i] = fx.m.Refresh(context.Background(), s0.RefreshToken, "")
				})
			}
			close(start)
			wg.Wait()
			rotated := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("call %d: %v", i, errs[i])
				}
				if got[i].Rotated {
					rotated++
				}
				if got[i].RefreshToken != got[0].RefreshToken || got[i].RefreshToken == s0.RefreshToken {
					t.Fatalf("call %d: a different token", i)
				}
			}
			if rotated != 1 {
				t.Fatalf("%d calls rotated, want exactly 1", rotated)
			}
			if c := fx.st.conflicts.Load(); !tc.singleflight && c != n-1 {
				t.Fatalf("%d swaps lost the compare-and-swap, want %d", c, n-1)
			}
			if f := fx.stored(t, s0.Family.ID); f.Version != 2 || !f.RevokedAt.IsZero() {
				t.Fatalf("family: version %d, revoked %v", f.Version, f.RevokedAt)
			}
			fx.refresh(t, got[0].RefreshToken)
		})
	}
}

// Work whose answer nobody can receive is not begun: a caller gone after
// the read leaves the family as it was, and the token still rotates later.
func TestNoSwapForAGoneCaller(t *testing.T) {
	for _, sf := range []bool{true, false} {
		t.Run(fmt.Sprint("singleflight=", sf), func(t *testing.T) {
			fx := newFixture(lt)
			if !sf {
				session.NoSingleflight(fx.m)
			}
			s0 := fx.start(t, "alice")
			ctx, cancel := context.WithCancel(t.Context())
			fx.st.afterGet = cancel
			_, err := fx.m.Refresh(ctx, s0.RefreshToken, "")
			fx.st.afterGet = nil
			if !errors.Is(err, context.Canceled) || isSentinel(err) {
				t.Fatalf("Refresh = %v, want context.Canceled", err)
			}
			fx.m.Wait()
			if f := fx.stored(t, s0.Family.ID); f.Version != 1 {
				t.Fatalf("a gone caller's refresh wrote: version %d", f.Version)
			}
			if s1 := fx.refresh(t, s0.RefreshToken); !s1.Rotated {
				t.Fatal("the token no longer rotates")
			}
		})
	}
	t.Run("cancelled before any store call", func(t *testing.T) {
		fx := newFixture(lt)
		s0 := fx.start(t, "alice")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := fx.st.calls.Load()
		if _, err := fx.m.Refresh(ctx, s0.RefreshToken, ""); !errors.Is(err, context.Canceled) || isSentinel(err) {
			t.Fatalf("Refresh = %v, want context.Canceled", err)
		}
		if fx.st.calls.Load() != calls {
			t.Fatal("a cancelled request reached the store")
		}
	})
}

// A swap is begun only when the deadline leaves at least the time the read
// took: with a store answering in 300 ms and 500 ms to go, the read leaves
// 200 ms, too little for the swap (ErrDeadline, nothing written); with 700
// ms it rotates. Time is synctest's.
func TestSwapNeedsTimeBeforeTheDeadline(t *testing.T) {
	for _, tc := range []struct {
		deadline time.Duration
		wantErr  error
	}{
		{500 * time.Millisecond, session.ErrDeadline},
		{700 * time.Millisecond, nil},
	} {
		t.Run(tc.deadline.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fx := newFixture(lt)
				s0 := fx.start(t, "alice")
				fx.st.afterGet = func() { time.Sleep(300 * time.Millisecond) }
				ctx, cancel := context.WithTimeout(t.Context(), tc.deadline)
				defer cancel()
				is, err := fx.m.Refresh(ctx, s0.RefreshToken, "")
				if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
					t.Fatalf("Refresh = %v, want %v", err, tc.wantErr)
				}
				wantVersion := uint64(1)
				if tc.wantErr == nil {
					wantVersion = 2
					if !is.Rotated {
						t.Fatal("not rotated")
					}
				}
				if f := fx.stored(t, s0.Family.ID); f.Version != wantVersion {
					t.Fatalf("version %d, want %d", f.Version, wantVersion)
				}
			})
		})
	}
}

// A swap that has started finishes when the caller leaves; the answer is
// lost, so the caller's next request presents the previous token again and
// gets the same successor, however late, since nobody presented it.
func TestLostAnswerIsNotReuse(t *testing.T) {
	for _, sf := range []bool{true, false} {
		t.Run(fmt.Sprint("singleflight=", sf), func(t *testing.T) {
			fx := newFixture(lt)
			if !sf {
				session.NoSingleflight(fx.m)
			}
			s0 := fx.start(t, "alice")
			ctx, cancel := context.WithCancel(t.Context())
			fx.st.beforeSwap = cancel
			_, _ = fx.m.Refresh(ctx, s0.RefreshToken, "") // answered or not: the swap finishes
			fx.st.beforeSwap = nil
			fx.clk.Advance(time.Hour - time.Second) // far past grace
			again := fx.refresh(t, s0.RefreshToken)
			f := fx.stored(t, s0.Family.ID)
			if again.Rotated || f.Version != 2 || session.Generation(again.RefreshToken) != f.Generation {
				t.Fatalf("replay after a lost answer: rotated %v, version %d", again.Rotated, f.Version)
			}
			if !f.RevokedAt.IsZero() {
				t.Fatal("a lost answer revoked the family")
			}
			// The holder now uses it: it rotates, and the old one is theft.
			fx.present(t, again.RefreshToken)
			fx.refresh(t, again.RefreshToken)
			if _, err := fx.m.Refresh(t.Context(), s0.RefreshToken, ""); !errors.Is(err, session.ErrReuse) {
				t.Fatalf("two generations back: %v, want ErrReuse", err)
			}
		})
	}
}

// Theft is caught the moment two parties have each used a token of the
// family, whoever refreshed first: the first party's next request presents
// the successor, and the other party's stale token is then a reuse.
func TestTheftStillDetected(t *testing.T) {
	for _, attackerFirst := range []bool{true, false} {
		t.Run(fmt.Sprint("attacker first=", attackerFirst), func(t *testing.T) {
			fx := newFixture(lt)
			stolen := fx.start(t, "alice") // victim and attacker both hold it
			first := fx.refresh(t, stolen.RefreshToken)
			fx.m.Presented(first.RefreshToken) // the first party's next request
			fx.m.Wait()
			fx.clk.Advance(time.Minute)
			_, err := fx.m.Refresh(t.Context(), stolen.RefreshToken, "") // the other party
			var re *session.ReuseError
			if !errors.As(err, &re) || re.Presented != 1 || re.Current != 2 {
				t.Fatalf("second party: %v, want a reuse of generation 1 of 2", err)
			}
			if _, err := fx.m.Refresh(t.Context(), first.RefreshToken, ""); !errors.Is(err, session.ErrRevoked) {
				t.Fatalf("first party after the reuse: %v, want ErrRevoked", err)
			}
		})
	}
}

// Presented confirms a token once per process and never for a superseded
// or unknown one; a store fault lets a later request try again.
func TestPresented(t *testing.T) {
	fx := newFixture(lt)
	s0 := fx.start(t, "alice")
	s1 := fx.refresh(t, s0.RefreshToken)
	if fx.stored(t, s0.Family.ID).CurrentSeen {
		t.Fatal("a rotation's successor starts seen")
	}
	fx.m.Presented(s0.RefreshToken) // superseded: changes nothing
	fx.m.Presented("garbage")
	fx.m.Wait()
	if f := fx.stored(t, s0.Family.ID); f.CurrentSeen || f.Version != 2 {
		t.Fatalf("a stale token confirmed: seen %v, version %d", f.CurrentSeen, f.Version)
	}
	fx.st.getErr = errBoom
	fx.m.Presented(s1.RefreshToken)
	fx.m.Wait()
	if fx.stored(t, s0.Family.ID).CurrentSeen || !fx.m.Failing() {
		t.Fatal("a failed confirmation: seen, or the store not failing")
	}
	fx.st.getErr = nil
	calls := fx.st.calls.Load()
	fx.m.Presented(s1.RefreshToken) // the store is spared while failing
	fx.m.Wait()
	if fx.st.calls.Load() != calls {
		t.Fatal("a failing store was asked to confirm")
	}
	fx.clk.Advance(6 * time.Second)
	if fx.m.Failing() {
		t.Fatal("still failing long after the fault")
	}
	fx.m.Presented(s1.RefreshToken)
	fx.m.Wait()
	if f := fx.stored(t, s0.Family.ID); !f.CurrentSeen || f.Version != 3 {
		t.Fatalf("after the fault: seen %v, version %d", f.CurrentSeen, f.Version)
	}
	fx.m.Presented(s1.RefreshToken) // known here: no store call
	fx.m.Wait()
	if n := fx.st.calls.Load() - calls; n != 2 {
		t.Fatalf("%d store calls, want 2 (one get, one swap)", n)
	}
}

func TestLogout(t *testing.T) {
	tests := []struct {
		name       string
		present    int // generation, or randomSecret / unknownFamily
		seen       bool
		advance    time.Duration
		revoked    bool // the family was revoked ("admin") beforehand
		wantErr    error
		wantReason string // "" means not revoked afterwards
	}{
		{"current", 1, false, 0, false, nil, "logout"},
		{"previous within grace", 0, true, 10 * time.Second, false, nil, "logout"},
		{"previous after grace, successor seen: reuse", 0, true, time.Minute, false, session.ErrReuse, "reuse"},
		{"previous after grace, successor never seen", 0, false, time.Minute, false, nil, "logout"},
		{"idle-expired current still logs out", 1, false, 2 * time.Hour, false, nil, "logout"},
		{"already revoked", 1, false, 0, true, nil, "admin"},
		{"already revoked, stale token", 0, true, time.Minute, true, nil, "admin"},
		{"random secret", randomSecret, false, 0, false, session.ErrUnknownSecret, ""},
		{"unknown family", unknownFamily, false, 0, false, session.ErrUnknown, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(lt)
			s0 := fx.start(t, "alice")
			gens := []session.Issued{s0, fx.refresh(t, s0.RefreshToken)}
			id := s0.Family.ID
			if tc.seen {
				fx.present(t, gens[1].RefreshToken)
			}
			if tc.revoked {
				if err := fx.m.Revoke(t.Context(), id, "admin"); err != nil {
					t.Fatal(err)
				}
			}
			fx.clk.Advance(tc.advance)
			if err := fx.m.Logout(t.Context(), forge(gens, tc.present)); !errors.Is(err, tc.wantErr) || (err != nil && tc.wantErr == nil) {
				t.Fatalf("Logout = %v, want %v", err, tc.wantErr)
			}
			f := fx.stored(t, id)
			if f.RevokeReason != tc.wantReason || f.RevokedAt.IsZero() != (tc.wantReason == "") {
				t.Fatalf("afterwards: revoked %v for %q, want %q", f.RevokedAt, f.RevokeReason, tc.wantReason)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	fx := newFixture(lt)
	s := fx.start(t, "alice")
	id := s.Family.ID
	tests := []struct {
		name, id, reason string
		wantErr          error
		wantReason       string
	}{
		{"unknown id", randomB64(16), "admin", session.ErrUnknown, ""},
		{"malformed id", "not-an-id", "admin", session.ErrUnknown, ""},
		{"empty id", "", "admin", session.ErrUnknown, ""},
		{"revoke", id, "admin", nil, "admin"},
		{"again keeps the first reason", id, "logout", nil, "admin"},
	}
	for _, tc := range tests {
		if err := fx.m.Revoke(t.Context(), tc.id, tc.reason); !errors.Is(err, tc.wantErr) || (err != nil && tc.wantErr == nil) {
			t.Fatalf("%s: Revoke = %v, want %v", tc.name, err, tc.wantErr)
		}
		if f := fx.stored(t, id); f.RevokeReason != tc.wantReason {
			t.Fatalf("%s: reason %q, want %q", tc.name, f.RevokeReason, tc.wantReason)
		}
	}
	if _, err := fx.m.Refresh(t.Context(), s.RefreshToken, ""); !errors.Is(err, session.ErrRevoked) {
		t.Fatalf("Refresh after Revoke: %v", err)
	}
	s2 := fx.start(t, "bob")
	if err := fx.m.Revoke(t.Context(), s2.Family.ID, ""); err != nil || fx.stored(t, s2.Family.ID).RevokeReason != "admin" {
		t.Fatalf("Revoke with an empty reason: %v", err)
	}
}

func TestRevokeSubjectAndList(t *testing.T) {
	fx := newFixture(lt)
	var alice []session.Issued
	for range 4 { // created at t=0,1,2,3 minutes
		alice = append(alice, fx.start(t, "alice"))
		fx.clk.Advance(time.Minute)
	}
	bob := fx.start(t, "bob")
	if err := fx.m.Logout(t.Context(), alice[1].RefreshToken); err != nil {
		t.Fatal(err)
	}
	fx.clk.Advance(30 * time.Minute) // t=34m: 2 and 3 are used, 0 is not
	alice[2] = fx.refresh(t, alice[2].RefreshToken)
	alice[3] = fx.refresh(t, alice[3].RefreshToken)
	fx.clk.Advance(30 * time.Minute) // t=64m: 0 idled out at 60m; 2 and 3 live until 94m

	fams, err := fx.m.List(t.Context(), "alice")
	if err != nil || len(fams) != 4 {
		t.Fatalf("List = %d, %v; want 4", len(fams), err)
	}
	for i, f := range fams {
		if f.ID != alice[i].Family.ID {
			t.Fatalf("List[%d] = %s, want oldest first", i, f.ID)
		}
	}
	if n, err := fx.m.RevokeSubject(t.Context(), "alice", session.CauseAdmin, time.Time{}); n != 2 || err != nil {
		t.Fatalf("RevokeSubject = %d, %v; want 2 (one logged out, one idle-expired)", n, err)
	}
	tests := []struct {
		name   string
		is     session.Issued
		reason string
	}{
		{"idle-expired: skipped", alice[0], ""},
		{"logged out before", alice[1], "logout"},
		{"live", alice[2], "admin"},
		{"live", alice[3], "admin"},
		{"other subject", bob, ""},
	}
	for _, tc := range tests {
		if f := fx.stored(t, tc.is.Family.ID); f.RevokeReason != tc.reason {
			t.Errorf("%s: reason %q, want %q", tc.name, f.RevokeReason, tc.reason)
		}
	}
	if n, err := fx.m.RevokeSubject(t.Context(), "alice", session.CauseAdmin, time.Time{}); n != 0 || err != nil {
		t.Fatalf("second RevokeSubject = %d, %v; want 0", n, err)
	}
	if n, err := fx.m.RevokeSubject(t.Context(), "nobody", session.CauseAdmin, time.Time{}); n != 0 || err != nil {
		t.Fatalf("RevokeSubject(nobody) = %d, %v", n, err)
	}
}

func TestSessionEnd(t *testing.T) {
	tests := []struct {
		name string
		f    *store.Family
		want time.Time
	}{
		{"no family", nil, time.Time{}},
		{"idle first", &store.Family{IdleExpiresAt: epoch, AbsoluteExpiresAt: epoch.Add(time.Hour)}, epoch},
		{"absolute first", &store.Family{IdleExpiresAt: epoch.Add(time.Hour), AbsoluteExpiresAt: epoch}, epoch},
		{"equal", &store.Family{IdleExpiresAt: epoch, AbsoluteExpiresAt: epoch}, epoch},
	}
	for _, tc := range tests {
		if got := (session.Issued{Family: tc.f}).SessionEnd(); !got.Equal(tc.want) {
			t.Errorf("%s: SessionEnd = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// BenchmarkRefresh measures one rotation on the memory store.
func BenchmarkRefresh(b *testing.B) {
	for _, sf := range []bool{true, false} {
		b.Run(fmt.Sprint("singleflight=", sf), func(b *testing.B) {
			clk := fakeclock.New(epoch)
			m := session.New(memstore.New(clk.Now), lt, clk.Now)
			if !sf {
				session.NoSingleflight(m)
			}
			ctx := context.Background()
			is, err := m.Start(ctx, "alice", "", map[string]any{"email": "ada@example.com", "roles": []any{"a", "b"}})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if is, err = m.Refresh(ctx, is.RefreshToken, ""); err != nil || !is.Rotated {
					b.Fatal(err)
				}
			}
		})
	}
}

// Issued holds a secret: printing or logging it never shows the token.
func TestIssuedRedacts(t *testing.T) {
	fx := newFixture(lt)
	is := fx.refresh(t, fx.start(t, "alice").RefreshToken)
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("refreshed", "issued", is)
	for _, out := range []string{fmt.Sprint(is), fmt.Sprintf("%v %+v %s %#v", is, is, is, is), buf.String()} {
		if strings.Contains(out, is.RefreshToken[23:]) || !strings.Contains(out, is.Family.ID) {
			t.Fatalf("output leaks the token or lacks the family: %s", out)
		}
	}
}

// BenchmarkPresented is the hot-path cost of a refresh cookie that comes
// with a valid access token and is already known to this process.
func BenchmarkPresented(b *testing.B) {
	fx := newFixture(lt)
	s, err := fx.m.Start(b.Context(), "alice", "", nil)
	if err != nil {
		b.Fatal(err)
	}
	fx.m.Presented(s.RefreshToken)
	fx.m.Wait()
	b.ReportAllocs()
	for b.Loop() {
		fx.m.Presented(s.RefreshToken)
	}
}

// A family belongs to the policy it was started for: another policy's
// Refresh is ErrOtherPolicy and writes nothing, unless that policy accepts
// the family's sessions. Families from before policies ("") are
// default-policy sessions.
func TestRefreshOtherPolicy(t *testing.T) {
	// admin accepts shop's sessions; nobody accepts admin's.
	accepts := func(policy, from string) bool { return policy == "admin" && from == "shop" }
	tests := []struct {
		name          string
		family, route string
		sharing       bool
		wantErr       error
	}{
		{"own policy", "shop", "shop", false, nil},
		{"default policy", "", "", false, nil},
		{"shop session on admin", "shop", "admin", false, session.ErrOtherPolicy},
		{"default session on a named policy", "", "shop", false, session.ErrOtherPolicy},
		{"named session on the default policy", "shop", "", false, session.ErrOtherPolicy},
		{"accepted: shop session on admin", "shop", "admin", true, nil},
		{"not accepted the other way", "admin", "shop", true, session.ErrOtherPolicy},
		{"not accepted: default session on admin", "", "admin", true, session.ErrOtherPolicy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := fakeclock.New(epoch)
			mem := memstore.New(clk.Now)
			var opts []session.Option
			if tc.sharing {
				opts = append(opts, session.AcceptSessions(accepts))
			}
			m := session.New(mem, lt, clk.Now, opts...)
			s0, err := m.Start(t.Context(), "alice", tc.family, nil)
			if err != nil {
				t.Fatal(err)
			}
			if f, _ := mem.Get(t.Context(), s0.Family.ID); f.Policy != tc.family {
				t.Fatalf("stored policy %q, want %q", f.Policy, tc.family)
			}
			got, err := m.Refresh(t.Context(), s0.RefreshToken, tc.route)
			if !errors.Is(err, tc.wantErr) || (err != nil && tc.wantErr == nil) {
				t.Fatalf("Refresh = %v, want %v", err, tc.wantErr)
			}
			f, _ := mem.Get(t.Context(), s0.Family.ID)
			switch {
			case tc.wantErr != nil && (f.Version != 1 || !f.RevokedAt.IsZero()):
				t.Fatalf("refused refresh wrote the family: version %d, revoked %v", f.Version, f.RevokedAt)
			case tc.wantErr == nil && (!got.Rotated || f.Version != 2):
				t.Fatalf("accepted refresh: rotated %v, version %d", got.Rotated, f.Version)
			case f.Policy != tc.family:
				t.Fatalf("refresh changed the family's policy to %q", f.Policy)
			}
			// The refused token still works for its own policy.
			if tc.wantErr != nil {
				if _, err := m.Refresh(t.Context(), s0.RefreshToken, tc.family); err != nil {
					t.Fatalf("own policy after a refusal: %v", err)
				}
			}
		})
	}
}

// Concurrent refreshes of one token for two policies are not coalesced:
// the one whose policy may not have the session never receives the other's
// successor.
func TestRefreshSingleflightKeepsPolicies(t *testing.T) {
	fx := newFixture(lt)
	s0, err := fx.m.Start(t.Context(), "alice", "shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Both callers are inside Refresh, past the coalescing point, before
	// either reads the store: coalesced, the second would share the first's
	// result.
	var arrived sync.WaitGroup
	arrived.Add(2)
	release := make(chan struct{})
	var once sync.Once
	fx.st.afterGet = func() {
		arrived.Done()
		once.Do(func() { <-release })
	}
	var wg sync.WaitGroup
	var shopErr, adminErr error
	wg.Go(func() { _, shopErr = fx.m.Refresh(context.Background(), s0.RefreshToken, "shop") })
	wg.Go(func() { _, adminErr = fx.m.Refresh(context.Background(), s0.RefreshToken, "admin") })
	both := make(chan struct{})
	go func() { arrived.Wait(); close(both) }()
	select {
	case <-both:
	case <-time.After(10 * time.Second):
		close(release)
		wg.Wait()
		t.Fatal("only one refresh read the store: the two policies were coalesced")
	}
	close(release)
	wg.Wait()
	if shopErr != nil || !errors.Is(adminErr, session.ErrOtherPolicy) {
		t.Fatalf("shop: %v; admin: %v (want nil, ErrOtherPolicy)", shopErr, adminErr)
	}
}
