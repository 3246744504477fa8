package authz

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
)

// errBackend is an infrastructure failure: no store sentinel.
var errBackend = errors.New("store: dial tcp 10.0.0.5:6379: connection refused")

// Requirement 8: a valid access token is answered without the store: no
// Check waits on it, even when it fails. The refresh cookie that comes
// along is confirmed in the background once per token (one read here: the
// first token has nothing to confirm), never written.
func TestValidTokenNeverTouchesStore(t *testing.T) {
	for _, failing := range []bool{false, true} {
		t.Run(fmt.Sprint("store failing=", failing), func(t *testing.T) {
			r, fs := newFaultRig(t)
			at, rt := r.login("alice", nil)
			fs.creates.Store(0)
			if failing {
				fs.getErr, fs.swapErr = errBackend, errBackend
			}
			for i := range 100 {
				r.clock.Advance(5 * time.Second) // 500 s in all: never within RefreshBefore
				cr := req("GET", "/api", "cookie", ours(at, rt))
				if i%2 == 1 {
					cr = req("POST", "/api", "authorization", "Bearer "+at, "cookie", ours("", rt))
				}
				d := r.decide(cr)
				if !d.Allow || d.Reason != "valid" || len(d.SetCookie) != 0 {
					t.Fatalf("check %d: allow=%v reason %s set-cookie %d", i, d.Allow, d.Reason, len(d.SetCookie))
				}
				r.sessions.Wait()
			}
			c, g, s := fs.creates.Load(), fs.gets.Load(), fs.swaps.Load()
			if c+s != 0 || (!failing && g != 1) {
				t.Fatalf("valid tokens reached the store: %d creates, %d gets, %d swaps", c, g, s)
			}
		})
	}
}

// Requirement 14.2: ahead of expiry a refresh is opportunistic. Against a
// store that hangs, a still-valid token passes within a small budget of
// the request's 0.5 s deadline (synctest's clock), and while the store is
// known to be failing the next requests do not even try.
func TestExpiringTokenPassesWhenTheStoreHangs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, fs := newFaultRig(t)
		at, rt := r.login("alice", nil)
		r.clock.Advance(testAccessTTL - 30*time.Second) // inside RefreshBefore
		fs.hang.Store(true)
		decide := func() (Decision, time.Duration) {
			ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
			defer cancel()
			cr, err := FromCheckRequest(req("GET", "/api", "cookie", ours(at, rt)))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			d := r.engine.Decide(ctx, cr, nil)
			return d, time.Since(start)
		}
		d, took := decide()
		if !d.Allow || d.Reason != "valid_deadline" || len(d.SetCookie) != 0 {
			t.Fatalf("allow=%v reason %s set-cookie %q", d.Allow, d.Reason, d.SetCookie)
		}
		if took > maxProactive {
			t.Fatalf("the refresh took %v of the deadline, budget %v", took, maxProactive)
		}
		gets := fs.gets.Load()
		for range 10 {
			if d, took := decide(); !d.Allow || d.Reason != "valid_store_unavailable" || took != 0 {
				t.Fatalf("while failing: allow=%v reason %s after %v", d.Allow, d.Reason, took)
			}
		}
		if fs.gets.Load() != gets {
			t.Fatal("a known-failing store was asked again within its hold")
		}
		fs.hang.Store(false)
		r.clock.Advance(10 * time.Second) // the hold is over: refreshes resume
		if d, _ := decide(); !d.Allow || d.Reason != "refreshed" {
			t.Fatalf("after the store came back: allow=%v reason %s", d.Allow, d.Reason)
		}
		r.sessions.Wait()
	})
}

// Requirement 14.3: after the store restarts empty, a user is logged out
// when the access token expires, not at the first refresh ahead of expiry.
func TestEmptiedStoreLogsOutAtExpiry(t *testing.T) {
	r, fs := newFaultRig(t)
	at, rt := r.login("alice", nil)
	fs.Store = memstore.New(r.clock.Now) // restarted empty
	r.clock.Advance(testAccessTTL - 30*time.Second)
	d, v := r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
	if !d.Allow || d.Reason != "valid_session_unknown" || len(v.setCookie) != 0 || v.received["authorization"] != "Bearer "+at {
		t.Fatalf("before expiry: allow=%v reason %s set-cookie %q", d.Allow, d.Reason, v.setCookie)
	}
	r.clock.Advance(time.Minute)
	d, v = r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
	if d.Allow || d.Reason != "refresh_unknown" || !slices.Equal(v.setCookie, r.cookies.Clear()) {
		t.Fatalf("after expiry: allow=%v reason %s set-cookie %q", d.Allow, d.Reason, v.setCookie)
	}
}

// Requirement 9: a store that fails or is too slow never logs anyone out:
// no Set-Cookie at all on a 503, and valid tokens still pass.
func TestStoreFaultsKeepSessions(t *testing.T) {
	faults := []struct {
		name            string
		getErr, swapErr error
		slow            bool // answered as the request's time running out
	}{
		{"get fails", errBackend, nil, false},
		{"swap fails", nil, errBackend, false},
		{"get too slow", context.DeadlineExceeded, nil, true},
		{"swap too slow", nil, context.DeadlineExceeded, true},
	}
	requests := []struct {
		name    string
		advance time.Duration // after login
		method  string
		path    string
		bearer  bool
		status  int    // 200 = allowed
		reason  string //
		current bool   // allowed with the presented access token
	}{
		{"expired token", testAccessTTL + time.Minute, "GET", "/api", false, 503, "unavailable", false},
		{"expired bearer token", testAccessTTL + time.Minute, "GET", "/api", true, 503, "unavailable", false},
		{"expiring token", testAccessTTL - 30*time.Second, "GET", "/api", false, 200, "valid_store_unavailable", true},
		{"expiring bearer token", testAccessTTL - 30*time.Second, "GET", "/api", true, 200, "valid_store_unavailable", true},
		{"valid token", time.Minute, "GET", "/api", false, 200, "valid", true},
		{"refresh endpoint", time.Minute, "POST", "/auth/refresh", false, 503, "unavailable", false},
		{"logout endpoint", time.Minute, "POST", "/auth/logout", false, 503, "unavailable", false},
	}
	for _, f := range faults {
		for _, tc := range requests {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				r, fs := newFaultRig(t)
				at, rt := r.login("alice", nil)
				r.clock.Advance(tc.advance)
				fs.getErr, fs.swapErr = f.getErr, f.swapErr
				cr := req(tc.method, tc.path, "cookie", ours(at, rt))
				if tc.bearer {
					cr = req(tc.method, tc.path, "authorization", "Bearer "+at, "cookie", ours("", rt))
				}
				d, v := r.run(t, cr)
				want := tc.reason
				if f.slow {
					want = map[string]string{"unavailable": "deadline", "valid_store_unavailable": "valid_deadline"}[want]
					want = cmp.Or(want, tc.reason)
				}
				if v.status != tc.status || d.Reason != want {
					t.Fatalf("status %d reason %s, want %d %s", v.status, d.Reason, tc.status, want)
				}
				if len(v.setCookie) != 0 {
					t.Fatalf("a store fault sent Set-Cookie: %q", v.setCookie)
				}
				if tc.current && v.received["authorization"] != "Bearer "+at {
					t.Fatal("allowed without the presented access token")
				}
				if tc.status == 503 && (!strings.Contains(v.body, `"reason":"`+want+`"`) || d.Err == nil) {
					t.Fatalf("503 body %s, err %v", v.body, d.Err)
				}
				fam := r.family(familyOf(t, rt))
				if fam.Version != 1 || !fam.RevokedAt.IsZero() {
					t.Fatalf("family changed: version %d, revoked %v", fam.Version, fam.RevokedAt)
				}
			})
		}
	}
}

// Requirement 15: Envoy cancelling the Check in the middle of a rotation
// does not leave it half done, and its lost answer costs the user nothing:
// the swap runs on a detached context, the family moves by exactly one
// version, and the old token, presented again long after the grace window,
// yields the successor the cancelled request would have carried.
func TestRotationFinishesWhenCheckIsCancelled(t *testing.T) {
	r, fs := newFaultRig(t)
	at, rt := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var swapCtxErr error
	fs.beforeSwap = func(swapCtx context.Context) {
		cancel() // Envoy gives up on the Check
		swapCtxErr = swapCtx.Err()
	}
	cr, err := FromCheckRequest(req("GET", "/api", "cookie", ours(at, rt)))
	if err != nil {
		t.Fatal(err)
	}
	d := r.engine.Decide(ctx, cr, nil)
	r.sessions.Wait()
	fs.beforeSwap = nil
	if ctx.Err() == nil || fs.swaps.Load() != 1 {
		t.Fatalf("the hook did not run inside the one swap (swaps %d)", fs.swaps.Load())
	}
	if swapCtxErr != nil {
		t.Fatalf("the swap ran on the caller's cancelled context: %v", swapCtxErr)
	}
	// Nobody waits for d any more; whatever it says, it never clears.
	if !d.Allow && (d.Status != 503 || len(d.SetCookie) != 0) {
		t.Fatalf("allow=%v status %d set-cookie %q", d.Allow, d.Status, d.SetCookie)
	}
	f := r.family(familyOf(t, rt))
	if f.Version != 2 {
		t.Fatalf("family not rotated once: version %d", f.Version)
	}
	r.clock.Advance(10 * time.Minute) // far past the grace window
	replay := r.decide(req("GET", "/api", "cookie", ours(at, rt)))
	successor, _ := cookieValue(replay.SetCookie, testCookies.Refresh)
	if !replay.Allow || replay.Reason != "refreshed_grace" || generationOf(successor) != f.Generation {
		t.Fatalf("replay after a lost answer: allow=%v reason %s, the stored successor %v", replay.Allow, replay.Reason, successor != "")
	}
	if f := r.family(familyOf(t, rt)); f.Version != 2 || !f.RevokedAt.IsZero() {
		t.Fatalf("the replay changed the family: version %d, revoked %v", f.Version, f.RevokedAt)
	}
}

// A store's own sentinels are answers, not outages: a family that vanished
// between read and swap is unknown, and the cookies go.
func TestStoreSentinelIsNotAnOutage(t *testing.T) {
	r, fs := newFaultRig(t)
	at, rt := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute)
	fs.swapErr = store.ErrNotFound
	d, v := r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
	if v.status != 401 || d.Reason != "refresh_unknown" || !slices.Equal(v.setCookie, r.cookies.Clear()) {
		t.Fatalf("status %d reason %s cookies %q", v.status, d.Reason, v.setCookie)
	}
}

// TestNoRefreshKeyIsNoKeyring: without a refresh MAC key (no keyring yet,
// or the key of a family's token gone from it) the answer is the keyring
// outage, never the store's, and it clears nothing.
func TestNoRefreshKeyIsNoKeyring(t *testing.T) {
	for _, err := range []error{session.ErrNoRefreshKey, fmt.Errorf("wrapped: %w", session.ErrNoRefreshKey)} {
		a := answerFor(err)
		if a.status != http.StatusServiceUnavailable || a.reason != "no_keyring" || !a.outage() {
			t.Errorf("answerFor(%v) = %d %q, want 503 no_keyring", err, a.status, a.reason)
		}
	}
}
